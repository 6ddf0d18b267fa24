//! Fused AdaGrad.

use crate::adagrad::AdagradConfig;
use crate::fused::sgd::{effective_grad, sign, specialize2};
use crate::fused::{Elem, FusedUpdate};
use crate::rule::ParamState;

/// The coefficients of one AdaGrad step (see [`AdagradConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct AdagradStep {
    clr: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
    pub(crate) initial_accumulator_value: f64,
}

/// Plans one step of `cfg`: γ̃ = γ / (1 + (t − 1) η). State: buffer `sum`.
pub fn plan(cfg: &AdagradConfig, state: &mut ParamState) -> FusedUpdate {
    FusedUpdate::Adagrad(AdagradStep {
        clr: cfg.lr / (1.0 + state.step.saturating_sub(1) as f64 * cfg.lr_decay),
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        maximize: cfg.maximize,
        initial_accumulator_value: cfg.initial_accumulator_value,
    })
}

impl AdagradStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let (g, sum) = (&g[..n], &mut s[0][..n]);
        let (wd, has_wd) = (T::of(self.weight_decay), self.weight_decay != 0.0);
        let (clr, eps) = (T::of(self.clr), T::of(self.eps));
        specialize2(
            self.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let acc = sum[i] + gi * gi;
                    sum[i] = acc;
                    p[i] = p[i] - gi / (acc.sqrt() + eps) * clr;
                }
            },
        );
    }
}
