//! Weight decay and the sign flip of `maximize`, shared by the rules: each in its tensor form
//! (the reference path) beside its element form (the fused kernels), in the same order of
//! operations.

use candle_core::Tensor;
use gradus_core::Result;

use crate::engine::elem::Elem;

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

/// Element form of [`signed`] then [`coupled`]: `g · sign`, then `+ θ λ` when `has_wd`
/// (`sign` is ±1 from [`sign`](crate::engine::kernel::sign), an exact negation).
#[inline(always)]
pub fn effective_grad<T: Elem>(g: T, p: T, sign: T, wd: T, has_wd: bool) -> T {
    let g = g * sign;
    if has_wd {
        g + p * wd
    } else {
        g
    }
}

/// Weight decay in a kernel's dtype, coupled into the gradient or decoupled onto θ. `coupled`
/// and `decoupled` (at most one set) are the flags a kernel specializes its loop on.
#[derive(Debug, Clone, Copy)]
pub struct Decay<T> {
    /// λ ≠ 0 and coupled: the gradient becomes `g + λθ`.
    pub coupled: bool,
    /// λ ≠ 0 and decoupled: θ becomes `θ(1 − γλ)`.
    pub decoupled: bool,
    /// λ, for the coupled gradient.
    pub wd: T,
    /// `1 − γλ`, for the decoupled θ.
    factor: T,
}

impl<T: Elem> Decay<T> {
    /// Decay λ = `weight_decay` with learning rate `lr`; decoupled (`θ(1 − γλ)`) when
    /// `decoupled`, else coupled.
    pub fn new(weight_decay: f64, lr: f64, decoupled: bool) -> Self {
        let on = weight_decay != 0.0;
        Decay {
            coupled: on && !decoupled,
            decoupled: on && decoupled,
            wd: T::of(weight_decay),
            factor: T::of(1.0 - lr * weight_decay),
        }
    }

    /// θ before the update: decayed when `decoupled` (the kernel's specialized flag).
    #[inline(always)]
    pub fn param(&self, p: T, decoupled: bool) -> T {
        if decoupled {
            p * self.factor
        } else {
            p
        }
    }
}
