//! Fused RMSprop (plain or centered, with or without momentum).

use crate::fused::sgd::{effective_grad, sign, specialize2};
use crate::fused::{Elem, FusedUpdate};
use crate::rmsprop::RmspropConfig;
use crate::rule::ParamState;

/// The coefficients of one RMSprop step (see [`RmspropConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct RmspropStep {
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    maximize: bool,
}

/// Plans one step of `cfg`. Buffers, in order: `square_avg`, `momentum_buffer` (μ > 0),
/// `grad_avg` (centered).
pub fn plan(cfg: &RmspropConfig, _state: &mut ParamState) -> FusedUpdate {
    FusedUpdate::Rmsprop(RmspropStep {
        lr: cfg.lr,
        alpha: cfg.alpha,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        momentum: cfg.momentum,
        centered: cfg.centered,
        maximize: cfg.maximize,
    })
}

impl RmspropStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let g = &g[..n];
        let (wd, has_wd) = (T::of(self.weight_decay), self.weight_decay != 0.0);
        let (alpha, one_minus, eps, lr) = (
            T::of(self.alpha),
            T::of(1.0 - self.alpha),
            T::of(self.eps),
            T::of(self.lr),
        );
        let [a, b, c] = s;
        let v = &mut a[..n];
        let has_momentum = self.momentum > 0.0;
        let (buf, mean): (&mut [T], &mut [T]) = match (has_momentum, self.centered) {
            (true, true) => (&mut b[..n], &mut c[..n]),
            (true, false) => (&mut b[..n], Default::default()),
            (false, true) => (Default::default(), &mut b[..n]),
            (false, false) => (Default::default(), Default::default()),
        };
        let mu = T::of(self.momentum);
        specialize2(
            self.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                match (has_momentum, self.centered) {
                    (false, false) => {
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                            let vi = v[i] * alpha + gi * gi * one_minus;
                            v[i] = vi;
                            p[i] = p[i] - gi / (vi.sqrt() + eps) * lr;
                        }
                    }
                    (false, true) => {
                        let mean = &mut mean[..n];
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                            let vi = v[i] * alpha + gi * gi * one_minus;
                            v[i] = vi;
                            let mi = mean[i] + (gi - mean[i]) * one_minus;
                            mean[i] = mi;
                            p[i] = p[i] - gi / ((vi - mi * mi).sqrt() + eps) * lr;
                        }
                    }
                    (true, centered) => {
                        let buf = &mut buf[..n];
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                            let vi = v[i] * alpha + gi * gi * one_minus;
                            v[i] = vi;
                            let var = if centered {
                                let mi = mean[i] + (gi - mean[i]) * one_minus;
                                mean[i] = mi;
                                vi - mi * mi
                            } else {
                                vi
                            };
                            let bi = buf[i] * mu + gi / (var.sqrt() + eps);
                            buf[i] = bi;
                            p[i] = p[i] - bi * lr;
                        }
                    }
                }
            },
        );
    }
}
