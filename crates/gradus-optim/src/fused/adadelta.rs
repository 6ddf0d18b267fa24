//! Fused Adadelta.

use crate::adadelta::AdadeltaConfig;
use crate::fused::sgd::{effective_grad, sign, specialize2};
use crate::fused::{Elem, FusedUpdate};
use crate::rule::ParamState;

/// The coefficients of one Adadelta step (see [`AdadeltaConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct AdadeltaStep {
    lr: f64,
    rho: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
}

/// Plans one step of `cfg`. Buffers, in order: `square_avg`, `acc_delta`.
pub fn plan(cfg: &AdadeltaConfig, _state: &mut ParamState) -> FusedUpdate {
    FusedUpdate::Adadelta(AdadeltaStep {
        lr: cfg.lr,
        rho: cfg.rho,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        maximize: cfg.maximize,
    })
}

impl AdadeltaStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let [a, b, _] = s;
        let (g, v, u) = (&g[..n], &mut a[..n], &mut b[..n]);
        let (wd, has_wd) = (T::of(self.weight_decay), self.weight_decay != 0.0);
        let (rho, one_rho, eps, lr) = (
            T::of(self.rho),
            T::of(1.0 - self.rho),
            T::of(self.eps),
            T::of(self.lr),
        );
        specialize2(
            self.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let vi = v[i] * rho + gi * gi * one_rho;
                    v[i] = vi;
                    let delta = (u[i] + eps).sqrt() / (vi + eps).sqrt() * gi;
                    u[i] = u[i] * rho + delta * delta * one_rho;
                    p[i] = p[i] - delta * lr;
                }
            },
        );
    }
}
