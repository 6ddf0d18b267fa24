//! The trainable elementwise affine transform `y * weight + bias` of the normalization layers.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use gradus_core::plugin::layer::LayerContext;
use gradus_core::Result;

/// Optional `weight` (initialized to ones) and `bias` (zeros) of a given shape.
#[derive(Debug, Clone, Default)]
pub(crate) struct Affine {
    pub(crate) weight: Option<Tensor>,
    pub(crate) bias: Option<Tensor>,
}

impl Affine {
    /// Registers `weight` / `bias` as trainable parameters of the layer being built from JSON.
    pub(crate) fn from_context(
        ctx: &mut LayerContext,
        shape: &[usize],
        weight: bool,
        bias: bool,
    ) -> Result<Self> {
        let (dtype, device) = (ctx.dtype, ctx.device.clone());
        let weight = if weight {
            Some(ctx.parameter("weight", Tensor::ones(shape, dtype, &device)?)?)
        } else {
            None
        };
        let bias = if bias {
            Some(ctx.parameter("bias", Tensor::zeros(shape, dtype, &device)?)?)
        } else {
            None
        };
        Ok(Affine { weight, bias })
    }

    /// Gets (or, from a `VarMap`, creates) `weight` / `bias` through a Candle `VarBuilder`.
    pub(crate) fn from_var_builder(
        vb: &VarBuilder,
        shape: &[usize],
        weight: bool,
        bias: bool,
    ) -> Result<Self> {
        let weight = if weight {
            Some(vb.get_with_hints(shape, "weight", Init::Const(1.0))?)
        } else {
            None
        };
        let bias = if bias {
            Some(vb.get_with_hints(shape, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Affine { weight, bias })
    }

    /// `y * weight + bias`, with the parameters reshaped to `view` for broadcasting and taken
    /// to `y`'s dtype (f32 when a bf16/f16 layer normalizes in f32; the gradient flows back
    /// through the cast).
    pub(crate) fn apply(&self, y: Tensor, view: &[usize]) -> Result<Tensor> {
        let dtype = y.dtype();
        let y = match &self.weight {
            Some(w) => y.broadcast_mul(&w.reshape(view)?.to_dtype(dtype)?)?,
            None => y,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape(view)?.to_dtype(dtype)?)?,
            None => y,
        })
    }
}

/// Dtype and device of a `VarBuilder`.
pub(crate) fn placement(vb: &VarBuilder) -> (DType, Device) {
    (vb.dtype(), vb.device().clone())
}
