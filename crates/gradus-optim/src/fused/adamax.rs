//! Fused Adamax.

use crate::adamax::AdamaxConfig;
use crate::fused::sgd::{effective_grad, sign, specialize2};
use crate::fused::{Elem, FusedUpdate};
use crate::rule::ParamState;

/// The coefficients of one Adamax step (see [`AdamaxConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct AdamaxStep {
    clr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
}

/// Plans step t = `state.step` of `cfg`. Buffers, in order: `exp_avg`, `exp_inf`.
pub fn plan(cfg: &AdamaxConfig, state: &mut ParamState) -> FusedUpdate {
    FusedUpdate::Adamax(AdamaxStep {
        clr: cfg.lr / (1.0 - cfg.betas.0.powi(state.step as i32)),
        beta1: cfg.betas.0,
        beta2: cfg.betas.1,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        maximize: cfg.maximize,
    })
}

impl AdamaxStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let [a, b, _] = s;
        let (g, m, u) = (&g[..n], &mut a[..n], &mut b[..n]);
        let (wd, has_wd) = (T::of(self.weight_decay), self.weight_decay != 0.0);
        let (b1, b2, eps, clr) = (
            T::of(1.0 - self.beta1),
            T::of(self.beta2),
            T::of(self.eps),
            T::of(self.clr),
        );
        specialize2(
            self.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let mi = m[i] + (gi - m[i]) * b1;
                    m[i] = mi;
                    let ui = T::max_of(u[i] * b2, gi.abs() + eps);
                    u[i] = ui;
                    p[i] = p[i] - mi / ui * clr;
                }
            },
        );
    }
}
