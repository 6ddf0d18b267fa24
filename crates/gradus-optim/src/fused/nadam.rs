//! Fused NAdam (coupled or decoupled weight decay, maximize).

use crate::fused::moments::{Decay, Moments};
use crate::fused::sgd::{effective_grad, sign, specialize3};
use crate::fused::{Elem, FusedUpdate};
use crate::nadam::NadamConfig;
use crate::rule::ParamState;

/// The coefficients of one NAdam step (see [`NadamConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct NadamStep {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decay_factor: f64,
    inv_bias_correction2: f64,
    grad_coef: f64,
    m_coef: f64,
    decoupled: bool,
    maximize: bool,
}

/// Plans step t = `state.step` of `cfg`, advancing the scalar `mu_product` as the reference
/// path does. Buffers, in order: `exp_avg`, `exp_avg_sq`.
pub fn plan(cfg: &NadamConfig, state: &mut ParamState) -> FusedUpdate {
    let (beta1, beta2) = cfg.betas;
    let t = state.step as f64;
    let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(t * cfg.momentum_decay));
    let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * cfg.momentum_decay));
    let mu_product = state.scalars.get("mu_product").copied().unwrap_or(1.0) * mu;
    state.scalars.insert("mu_product", mu_product);
    FusedUpdate::Nadam(NadamStep {
        beta1,
        beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        decay_factor: 1.0 - cfg.lr * cfg.weight_decay,
        inv_bias_correction2: 1.0 / (1.0 - beta2.powi(state.step as i32)),
        grad_coef: cfg.lr * (1.0 - mu) / (1.0 - mu_product),
        m_coef: cfg.lr * mu_next / (1.0 - mu_product * mu_next),
        decoupled: cfg.decoupled_weight_decay,
        maximize: cfg.maximize,
    })
}

impl NadamStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3]) {
        let n = p.len();
        let [a, b, _] = s;
        let (g, m, v) = (&g[..n], &mut a[..n], &mut b[..n]);
        let decay = Decay::<T>::new(self.weight_decay, self.decay_factor, self.decoupled);
        let moments = Moments::<T>::new(self.beta1, self.beta2);
        let (inv_bc2, eps) = (T::of(self.inv_bias_correction2), T::of(self.eps));
        let (gc, mc) = (T::of(self.grad_coef), T::of(self.m_coef));
        specialize3(
            self.maximize,
            decay.coupled,
            decay.decoupled,
            #[inline(always)]
            |maximize, coupled, decoupled| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                    let pi = decay.param(p[i], decoupled);
                    let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                    let denom = (vi * inv_bc2).sqrt() + eps;
                    let pi = pi - gi / denom * gc;
                    p[i] = pi - mi / denom * mc;
                }
            },
        );
    }
}
