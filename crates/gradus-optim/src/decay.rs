//! Small shared pieces of the update rules: the sign flip of `maximize`, coupled L2 decay
//! and decoupled (AdamW-style) decay.

use candle_core::Tensor;
use gradus_core::Result;

/// `−g` when maximizing, else `g`.
pub fn signed(grad: &Tensor, maximize: bool) -> Result<Tensor> {
    Ok(if maximize { grad.neg()? } else { grad.clone() })
}

/// Coupled L2: `g + λ θ` (the penalty λ/2 ‖θ‖² folded into the gradient).
pub fn coupled(grad: &Tensor, param: &Tensor, weight_decay: f64) -> Result<Tensor> {
    Ok(if weight_decay != 0.0 {
        (grad + (param * weight_decay)?)?
    } else {
        grad.clone()
    })
}

/// Decoupled decay: `θ (1 − γ λ)`, applied to the parameter before the adaptive step.
pub fn decoupled(param: &Tensor, lr: f64, weight_decay: f64) -> Result<Tensor> {
    Ok(if weight_decay != 0.0 {
        (param * (1.0 - lr * weight_decay))?
    } else {
        param.clone()
    })
}
