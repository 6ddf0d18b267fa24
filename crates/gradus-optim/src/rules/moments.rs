//! Exponential moving averages of gradients, shared by the Adam family, RMSprop and Adadelta:
//! the tensor form (reference path) beside the element form (fused kernels), in the same order
//! of operations.

use candle_core::Tensor;
use gradus_core::Result;

use crate::engine::elem::Elem;
use crate::engine::rule::Buffers;

/// `m ← β m + (1 − β) g` in buffer `name` (zero-initialized), returning the new m. Computed as
/// PyTorch's `lerp_`: `m + (g − m)(1 − β)`.
pub fn ema(buffers: &mut Buffers, name: &'static str, grad: &Tensor, beta: f64) -> Result<Tensor> {
    let m = buffers.get_or(name, || Ok(grad.zeros_like()?))?;
    let next = (&m + ((grad - &m)? * (1.0 - beta))?)?;
    buffers.set(name, next.clone());
    Ok(next)
}

/// `v ← β v + (1 − β) g²` in buffer `name` (zero-initialized), returning the new v.
pub fn ema_sq(
    buffers: &mut Buffers,
    name: &'static str,
    grad: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    let v = buffers.get_or(name, || Ok(grad.zeros_like()?))?;
    let next = ((v * beta)? + (grad.sqr()? * (1.0 - beta))?)?;
    buffers.set(name, next.clone());
    Ok(next)
}

/// β₁ and β₂ of two moment estimates ([`ema`] and [`ema_sq`]), in a kernel's dtype.
#[derive(Debug, Clone, Copy)]
pub struct Moments<T> {
    one_minus_b1: T,
    b2: T,
    one_minus_b2: T,
}

impl<T: Elem> Moments<T> {
    /// The moments of `betas` (β₁, β₂).
    pub fn new(beta1: f64, beta2: f64) -> Self {
        Moments {
            one_minus_b1: T::of(1.0 - beta1),
            b2: T::of(beta2),
            one_minus_b2: T::of(1.0 - beta2),
        }
    }

    /// `m ← m + (g − m)(1 − β₁)` and `v ← β₂ v + (1 − β₂) g²`, stored and returned.
    #[inline(always)]
    pub fn update(&self, m: &mut T, v: &mut T, g: T) -> (T, T) {
        let mi = *m + (g - *m) * self.one_minus_b1;
        *m = mi;
        let vi = *v * self.b2 + g * g * self.one_minus_b2;
        *v = vi;
        (mi, vi)
    }
}
