//! `Sequential`: the model of a pipeline, a list of layers with shapes inferred in order.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use gradus_core::plugin::layer::{ForwardContext, Layer};
use gradus_core::{Error, Result, SeededRng, StateDict};
use serde_json::Value;

use crate::build::{Placement, Stack};

/// Layers applied in order, as `torch.nn.Sequential`.
///
/// Layer `i` is built from `layers[i]` (JSON path `{path}[i]`) for the output shape of layer
/// `i - 1` (the model input for `i = 0`); its parameters are named `layers.{i}.weight`, ... in
/// the [`VarMap`], its buffers `layers.{i}.running_mean`, ... in [`Sequential::buffers`].
///
/// Mixed precision: the parameters are of the model's dtype; [`Sequential::forward`] casts its
/// input to that dtype and, for a bf16/f16 model, returns its output widened to f32, so that
/// the loss and the metrics are computed and accumulated in f32 (the gradient flows back
/// through both casts).
pub struct Sequential {
    stack: Stack,
    input_shape: Vec<usize>,
    dtype: DType,
}

impl Sequential {
    /// Builds every layer, inferring shapes layer by layer from `input_shape` (one sample,
    /// without the batch dimension). Initial values are drawn from `rng` in layer order.
    pub fn build(
        layers: &[Value],
        path: &str,
        input_shape: &[usize],
        vars: &VarMap,
        rng: &mut SeededRng,
        dtype: DType,
        device: &Device,
    ) -> Result<Sequential> {
        let mut at = Placement {
            vars,
            rng,
            dtype,
            device: device.clone(),
        };
        let stack = Stack::build(layers, path, "layers", input_shape, &mut at)?;
        Ok(Sequential {
            stack,
            input_shape: input_shape.to_vec(),
            dtype,
        })
    }

    /// The dtype of the parameters (and of the computation between the input and the output).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape of one input sample.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Shape of one output sample.
    pub fn output_shape(&self) -> Vec<usize> {
        self.stack.output_shape.clone()
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.stack.layers.len()
    }

    /// True when the model has no layer (it is then the identity).
    pub fn is_empty(&self) -> bool {
        self.stack.layers.is_empty()
    }

    /// Runs the model on a batch `(N, input_shape...)` of any float dtype (cast to the model's);
    /// a batch of another shape is an [`Error::ShapeMismatch`]. A bf16/f16 model's output is
    /// widened to f32.
    pub fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        let y = self.forward_in_dtype(x, ctx)?;
        Ok(match y.dtype() {
            DType::BF16 | DType::F16 => y.to_dtype(DType::F32)?,
            _ => y,
        })
    }

    /// [`Sequential::forward`] with the output left in the model's dtype (a model nested as a
    /// layer hands it on to the next layer as it is).
    fn forward_in_dtype(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        let dims = x.dims();
        if dims.len() != self.input_shape.len() + 1 || dims[1..] != self.input_shape[..] {
            let mut expected = vec![dims.first().copied().unwrap_or(0)];
            expected.extend_from_slice(&self.input_shape);
            return Err(Error::ShapeMismatch {
                context: "model input (N, ...)".to_string(),
                expected,
                actual: dims.to_vec(),
            });
        }
        self.stack.forward(&x.to_dtype(self.dtype)?, ctx)
    }

    /// Every layer's buffers (running statistics), named `layers.{i}.{name}`.
    pub fn buffers(&self) -> StateDict {
        self.stack.buffers("layers")
    }

    /// Restores buffers saved by [`Sequential::buffers`].
    pub fn load_buffers(&mut self, buffers: &StateDict) -> Result<()> {
        self.stack.load_buffers("layers", buffers)
    }

    /// `(type, output shape)` of each layer, for a model summary.
    pub fn describe(&self) -> Vec<(String, Vec<usize>)> {
        self.stack.summary.clone()
    }
}

/// A `Sequential` is itself a [`Layer`], so that what works on a layer (a model nested as a
/// layer, `gradus_optim::averaging::update_bn`) works on a whole model.
impl Layer for Sequential {
    fn output_shape(&self) -> Vec<usize> {
        Sequential::output_shape(self)
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        self.forward_in_dtype(x, ctx)
    }

    fn buffers(&self) -> StateDict {
        Sequential::buffers(self)
    }

    fn load_buffers(&mut self, buffers: &StateDict) -> Result<()> {
        Sequential::load_buffers(self, buffers)
    }

    fn reset_running_stats(&mut self) -> Result<usize> {
        self.stack.reset_running_stats()
    }

    fn set_cumulative_stats(&mut self, cumulative: bool) -> Result<()> {
        self.stack.set_cumulative_stats(cumulative)
    }
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("input_shape", &self.input_shape)
            .field("layers", &self.stack.summary)
            .finish()
    }
}

#[cfg(test)]
#[path = "sequential_tests.rs"]
mod tests;
