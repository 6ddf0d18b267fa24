//! Exponential moving averages of gradients, shared by the Adam family, RMSprop and Adadelta.

use candle_core::Tensor;
use gradus_core::Result;

use crate::rule::ParamState;

/// `m ← β m + (1 − β) g` in buffer `name` (zero-initialized), returning the new m.
pub fn ema(state: &mut ParamState, name: &'static str, grad: &Tensor, beta: f64) -> Result<Tensor> {
    let m = state.buffer_or(name, || Ok(grad.zeros_like()?))?;
    // PyTorch's lerp_: m + (1 − β)(g − m).
    let next = (&m + ((grad - &m)? * (1.0 - beta))?)?;
    state.set_buffer(name, next.clone());
    Ok(next)
}

/// `v ← β v + (1 − β) g²` in buffer `name` (zero-initialized), returning the new v.
pub fn ema_sq(
    state: &mut ParamState,
    name: &'static str,
    grad: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    let v = state.buffer_or(name, || Ok(grad.zeros_like()?))?;
    let next = ((v * beta)? + (grad.sqr()? * (1.0 - beta))?)?;
    state.set_buffer(name, next.clone());
    Ok(next)
}
