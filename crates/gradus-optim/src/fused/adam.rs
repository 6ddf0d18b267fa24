//! Fused Adam, AMSGrad and AdamW (coupled or decoupled weight decay, maximize).

use crate::adam::AdamStep;
use crate::fused::moments::{Decay, Moments};
use crate::fused::sgd::{effective_grad, sign, specialize2};
use crate::fused::{Elem, FusedUpdate};
use crate::rule::ParamState;

/// The coefficients of one Adam step (see [`AdamConfig`](crate::AdamConfig)).
#[derive(Debug, Clone, Copy)]
pub struct AdamStepCoef {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decay_factor: f64,
    step_size: f64,
    inv_bias_correction2_sqrt: f64,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
}

/// Plans step t = `state.step` of `h`. Buffers, in order: `exp_avg`, `exp_avg_sq`,
/// `max_exp_avg_sq` (AMSGrad).
pub(crate) fn plan(h: &AdamStep, state: &mut ParamState) -> FusedUpdate {
    let t = state.step as i32;
    let (beta1, beta2) = h.betas;
    FusedUpdate::Adam(AdamStepCoef {
        beta1,
        beta2,
        eps: h.eps,
        weight_decay: h.weight_decay,
        decay_factor: 1.0 - h.lr * h.weight_decay,
        step_size: h.lr / (1.0 - beta1.powi(t)),
        // The reference divides by √(1 − β₂ᵗ), which Candle turns into a product by its
        // reciprocal.
        inv_bias_correction2_sqrt: 1.0 / (1.0 - beta2.powi(t)).sqrt(),
        amsgrad: h.amsgrad,
        maximize: h.maximize,
        decoupled: h.decoupled,
    })
}

impl AdamStepCoef {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let [a, b, c] = s;
        let (g, m, v) = (&g[..n], &mut a[..n], &mut b[..n]);
        let decay = Decay::<T>::new(self.weight_decay, self.decay_factor, self.decoupled);
        let moments = Moments::<T>::new(self.beta1, self.beta2);
        let (inv_bc2, eps, step) = (
            T::of(self.inv_bias_correction2_sqrt),
            T::of(self.eps),
            T::of(self.step_size),
        );
        let vmax: &mut [T] = if self.amsgrad {
            &mut c[..n]
        } else {
            Default::default()
        };
        specialize2(
            self.maximize,
            decay.coupled,
            #[inline(always)]
            |maximize, coupled| {
                specialize2(
                    decay.decoupled,
                    self.amsgrad,
                    #[inline(always)]
                    |decoupled, amsgrad| {
                        let sg = sign::<T>(maximize);
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                            let pi = decay.param(p[i], decoupled);
                            let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                            let xi = if amsgrad {
                                let xi = T::max_of(vmax[i], vi);
                                vmax[i] = xi;
                                xi
                            } else {
                                vi
                            };
                            p[i] = pi - mi / (xi.sqrt() * inv_bc2 + eps) * step;
                        }
                    },
                )
            },
        );
    }
}
