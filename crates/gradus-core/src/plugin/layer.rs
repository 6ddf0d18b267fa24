//! Model layers and normalization layers, built from JSON with shapes inferred layer by layer.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde_json::Value;

use crate::config::join_path;
use crate::error::{Error, Result};
use crate::plugin::initializer::Initializer;
use crate::registry::{resolve, InitializerKind};
use crate::rng::SeededRng;
use crate::state_dict::StateDict;

/// What a layer needs while it is being built.
pub struct LayerContext<'a> {
    /// Shape of one input sample, without the batch dimension.
    pub input_shape: Vec<usize>,
    /// Where trainable parameters are registered.
    pub vars: &'a VarMap,
    /// Name prefix of this layer's parameters (`layers.3`).
    pub prefix: String,
    /// JSON path of this layer's config (`model.layers[3]`), for messages.
    pub path: String,
    /// Seeded generator for initial values.
    pub rng: &'a mut SeededRng,
    /// Parameter dtype.
    pub dtype: DType,
    /// Parameter device.
    pub device: Device,
}

impl LayerContext<'_> {
    /// Checks, before it is allocated, that a parameter `name` of shape `dims` stays within
    /// [`crate::limits::max_tensor_elements`]; the error names the layer.
    pub fn check_parameter(&self, name: &str, dims: &[usize]) -> Result<()> {
        crate::limits::tensor_elements(&self.path, name, dims).map(|_| ())
    }

    /// Registers a trainable parameter `prefix.name` with the given initial value.
    pub fn parameter(&mut self, name: &str, initial: Tensor) -> Result<Tensor> {
        let full = join_path(&self.prefix, name);
        let var = Var::from_tensor(&initial)?;
        let mut data = self
            .vars
            .data()
            .lock()
            .map_err(|_| Error::Unsupported("parameter store lock poisoned".to_string()))?;
        if data.contains_key(&full) {
            return Err(Error::config(full, "parameter defined twice"));
        }
        let tensor = var.as_tensor().clone();
        data.insert(full, var);
        Ok(tensor)
    }

    /// Builds the initializer described by `config` (at JSON path `path`), or `default` when
    /// `config` is absent.
    pub fn initializer(
        &self,
        config: Option<&Value>,
        default: &Value,
        path: &str,
    ) -> Result<Box<dyn Initializer>> {
        let config = config.unwrap_or(default);
        let (entry, rest) = resolve::<InitializerKind>(config, path)?;
        (entry.build)(&rest, path).map_err(|e| e.at(path))
    }
}

/// What a layer sees at each forward pass.
pub struct ForwardContext<'a> {
    /// Training mode (dropout active, batch statistics) or evaluation mode.
    pub train: bool,
    /// Seeded generator for stochastic layers.
    pub rng: &'a mut SeededRng,
}

/// A model layer with a fixed output shape.
pub trait Layer: Send {
    /// Shape of one output sample, without the batch dimension.
    fn output_shape(&self) -> Vec<usize>;

    /// Runs the layer on a batch `(N, input_shape...)`.
    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor>;

    /// Non-trainable buffers (running statistics) to save with the model.
    fn buffers(&self) -> StateDict {
        StateDict::new()
    }

    /// Restores buffers saved by [`Layer::buffers`].
    fn load_buffers(&mut self, _buffers: &StateDict) -> Result<()> {
        Ok(())
    }

    /// Resets the running statistics of every batch-norm layer in this layer (itself, or the
    /// layers it contains) to their initial values, as PyTorch's
    /// `_BatchNorm.reset_running_stats` (mean 0, variance 1, no batches tracked), and returns
    /// how many sets of statistics it reset. Layers without running statistics reset nothing
    /// (the default, `0`).
    ///
    /// Used by `update_bn` after weight averaging, which recomputes the statistics for the
    /// averaged weights with [`Layer::set_cumulative_stats`].
    fn reset_running_stats(&mut self) -> Result<usize> {
        Ok(0)
    }

    /// With `true`, every batch-norm layer in this layer updates its running statistics as a
    /// cumulative average over the batches seen since the last reset (PyTorch's `momentum =
    /// None`: factor `1 / num_batches_tracked`); with `false`, it goes back to its configured
    /// momentum. Layers without running statistics ignore it (the default).
    fn set_cumulative_stats(&mut self, _cumulative: bool) -> Result<()> {
        Ok(())
    }
}

/// Builds a layer from its JSON config.
pub type LayerBuild =
    fn(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>>;
