//! Fused RAdam (coupled or decoupled weight decay, maximize).

use crate::fused::moments::{Decay, Moments};
use crate::fused::sgd::{effective_grad, sign, specialize3};
use crate::fused::{Elem, FusedUpdate};
use crate::radam::RadamConfig;
use crate::rule::ParamState;

/// The coefficients of one RAdam step (see [`RadamConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct RadamStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decay_factor: f64,
    inv_bias_correction1: f64,
    bias_correction2_sqrt: f64,
    /// rₜ when ρₜ > 5, else `None` (the un-adapted step).
    rect: Option<f64>,
    decoupled: bool,
    maximize: bool,
}

/// Plans step t = `state.step` of `cfg`. Buffers, in order: `exp_avg`, `exp_avg_sq`.
pub fn plan(cfg: &RadamConfig, state: &mut ParamState) -> FusedUpdate {
    let (beta1, beta2) = cfg.betas;
    let t = state.step as i32;
    let bias_correction1 = 1.0 - beta1.powi(t);
    let bias_correction2 = 1.0 - beta2.powi(t);
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho_t = rho_inf - 2.0 * f64::from(t) * beta2.powi(t) / bias_correction2;
    let rect = (rho_t > 5.0).then(|| {
        ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt()
    });
    FusedUpdate::Radam(RadamStep {
        lr: cfg.lr,
        beta1,
        beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        decay_factor: 1.0 - cfg.lr * cfg.weight_decay,
        inv_bias_correction1: 1.0 / bias_correction1,
        bias_correction2_sqrt: bias_correction2.sqrt(),
        rect,
        decoupled: cfg.decoupled_weight_decay,
        maximize: cfg.maximize,
    })
}

impl RadamStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let [a, b, _] = s;
        let (g, m, v) = (&g[..n], &mut a[..n], &mut b[..n]);
        let decay = Decay::<T>::new(self.weight_decay, self.decay_factor, self.decoupled);
        let moments = Moments::<T>::new(self.beta1, self.beta2);
        let (inv_bc1, lr, eps) = (
            T::of(self.inv_bias_correction1),
            T::of(self.lr),
            T::of(self.eps),
        );
        let bc2 = T::of(self.bias_correction2_sqrt);
        let one = T::of(1.0);
        specialize3(
            self.maximize,
            decay.coupled,
            decay.decoupled,
            #[inline(always)]
            |maximize, coupled, decoupled| {
                let sg = sign::<T>(maximize);
                match self.rect {
                    Some(rect) => {
                        let rect = T::of(rect);
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                            let pi = decay.param(p[i], decoupled);
                            let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                            let adaptive = one / (vi.sqrt() + eps) * bc2;
                            p[i] = pi - mi * inv_bc1 * lr * adaptive * rect;
                        }
                    }
                    None => {
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                            let pi = decay.param(p[i], decoupled);
                            let (mi, _) = moments.update(&mut m[i], &mut v[i], gi);
                            p[i] = pi - mi * inv_bc1 * lr;
                        }
                    }
                }
            },
        );
    }
}
