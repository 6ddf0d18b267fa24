//! What the fused Adam-family kernels (Adam / AdamW, NAdam, RAdam) share: their weight decay,
//! coupled into the gradient or decoupled onto θ, and their two moment estimates, in the
//! reference path's order of operations ([`crate::moments`]).

use crate::fused::Elem;

/// Weight decay in the kernel's dtype. `coupled` and `decoupled` (at most one set) are the
/// flags a kernel specializes its loop on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decay<T> {
    pub(crate) coupled: bool,
    pub(crate) decoupled: bool,
    /// λ, for the coupled gradient `g + λθ`.
    pub(crate) wd: T,
    /// `1 − γλ`, for the decoupled `θ(1 − γλ)`.
    factor: T,
}

impl<T: Elem> Decay<T> {
    /// Decay `weight_decay` (λ), applied to θ as `factor` (`1 − γλ`) when `decoupled`.
    pub(crate) fn new(weight_decay: f64, factor: f64, decoupled: bool) -> Self {
        let on = weight_decay != 0.0;
        Decay {
            coupled: on && !decoupled,
            decoupled: on && decoupled,
            wd: T::of(weight_decay),
            factor: T::of(factor),
        }
    }

    /// θ before the update: decayed when `decoupled` (the kernel's specialized flag).
    #[inline(always)]
    pub(crate) fn param(&self, p: T, decoupled: bool) -> T {
        if decoupled {
            p * self.factor
        } else {
            p
        }
    }
}

/// β₁ and β₂ of the two moment estimates, in the kernel's dtype.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments<T> {
    one_minus_b1: T,
    b2: T,
    one_minus_b2: T,
}

impl<T: Elem> Moments<T> {
    /// The moments of `betas` (β₁, β₂).
    pub(crate) fn new(beta1: f64, beta2: f64) -> Self {
        Moments {
            one_minus_b1: T::of(1.0 - beta1),
            b2: T::of(beta2),
            one_minus_b2: T::of(1.0 - beta2),
        }
    }

    /// `m ← m + (g − m)(1 − β₁)` (PyTorch's `lerp_`) and `v ← β₂ v + (1 − β₂) g²`, stored and
    /// returned.
    #[inline(always)]
    pub(crate) fn update(&self, m: &mut T, v: &mut T, g: T) -> (T, T) {
        let mi = *m + (g - *m) * self.one_minus_b1;
        *m = mi;
        let vi = *v * self.b2 + g * g * self.one_minus_b2;
        *v = vi;
        (mi, vi)
    }
}
