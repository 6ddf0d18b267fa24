//! Exponential moving averages of gradients and the hyperparameter accessors the Adam family
//! shares.

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

/// Reads `lr`, `beta1`, `beta2`, `eps`, `weight_decay` of an Adam-like config.
pub fn get_adam_like(
    name: &str,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> Option<f64> {
    match name {
        "lr" => Some(lr),
        "beta1" => Some(betas.0),
        "beta2" => Some(betas.1),
        "eps" => Some(eps),
        "weight_decay" => Some(weight_decay),
        _ => None,
    }
}

/// Writes one of `lr`, `beta1`, `beta2`, `eps`, `weight_decay` of an Adam-like config.
pub fn set_adam_like(
    name: &str,
    value: f64,
    lr: &mut f64,
    betas: &mut (f64, f64),
    eps: &mut f64,
    weight_decay: &mut f64,
) -> bool {
    let slot = match name {
        "lr" => lr,
        "beta1" => &mut betas.0,
        "beta2" => &mut betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
        _ => return false,
    };
    *slot = value;
    true
}
