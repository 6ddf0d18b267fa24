//! AdEMAMix, Adam with a mixture of a fast and a slow momentum (pytorch-optimizer's `AdEMAMix`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad, Decay};
use crate::rules::moments;
use crate::validate;

/// AdEMAMix: Adam's fast momentum plus α times a slow one, over Adam's denominator.
///
/// Per parameter θ with gradient g at step t (pytorch-optimizer 4.1.0's `AdEMAMix`):
///
/// ```text
/// g ← −g                                     if maximize
/// θ ← θ (1 − λ γ)  (1 − λ if fixed_decay)    if weight_decouple, else g ← g + λ θ
/// m₁ ← m₁ + (g − m₁)(1 − β₁)                 (exp_avg)
/// v ← β₂ v + (1 − β₂) g²                     (exp_avg_sq)
/// m₂ ← m₂ + (g − m₂)(1 − β₃(t))              (exp_avg_slow)
/// θ ← θ − γ (m₁ / (1 − β₁ᵗ) + α(t) m₂) / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// With `t_alpha_beta3` = T the slow momentum warms up: α(t) = min(t α / T, α) and
/// β₃(t) = min(exp(ln β₁ ln β₃ / ((1 − t/T) ln β₃ + (t/T) ln β₁)), β₃); without it α(t) = α
/// and β₃(t) = β₃. γ = `lr`, (β₁, β₂, β₃) = `betas`, ε = `eps`, λ = `weight_decay`. Defaults
/// are pytorch-optimizer 4.1.0's. Paper: Pagliardini, Ablin & Grangier, "The AdEMAMix
/// Optimizer: Better, Faster, Older" (ICLR 2025). `foreach` chooses the reference's batching
/// only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdemamixConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Decay rates (β₁, β₂, β₃) of the fast, squared and slow moments. Default:
    /// `[0.9, 0.999, 0.9999]`.
    pub betas: (f64, f64, f64),
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly instead of adding λθ to g. Default: `false`.
    pub weight_decouple: bool,
    /// Decoupled decay by `1 − λ` instead of `1 − λγ`. Default: `false`.
    pub fixed_decay: bool,
    /// Weight α of the slow momentum. Default: `5`.
    pub alpha: f64,
    /// Warm-up length T of α and β₃, or none. Default: `null`.
    pub t_alpha_beta3: Option<f64>,
    /// ε added to the denominator. Default: `1e-8`.
    pub eps: f64,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
}

impl Default for AdemamixConfig {
    fn default() -> Self {
        AdemamixConfig {
            lr: 1e-3,
            betas: (0.9, 0.999, 0.9999),
            weight_decay: 0.0,
            weight_decouple: false,
            fixed_decay: false,
            alpha: 5.0,
            t_alpha_beta3: None,
            eps: 1e-8,
            maximize: false,
            foreach: None,
        }
    }
}

/// AdEMAMix as an optimizer (also a `candle_nn::Optimizer`).
pub type Ademamix = GroupedOptimizer<AdemamixConfig>;

/// The coefficients of one AdEMAMix step.
#[derive(Debug, Clone, Copy)]
pub struct AdemamixStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    /// β₃(t).
    beta3: f64,
    /// α(t).
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    /// The learning rate of the decoupled decay: γ, or 1 under `fixed_decay`.
    decay_lr: f64,
    decoupled: bool,
    /// 1 / (1 − β₁ᵗ).
    inv_bias_correction1: f64,
    /// 1 / √(1 − β₂ᵗ).
    inv_bias_correction2_sqrt: f64,
    maximize: bool,
}

impl Rule for AdemamixConfig {
    const NAME: &'static str = "ademamix";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "beta3" => betas.2,
        "weight_decay" => weight_decay,
        "alpha" => alpha,
        "eps" => eps,
    );
    type Step = AdemamixStep;
    type Kernel = AdemamixKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas((self.betas.0, self.betas.1))?;
        if !(0.0..1.0).contains(&self.betas.2) {
            return Err(gradus_core::Error::InvalidHyperparameter(format!(
                "Invalid beta parameter at index 2: {}",
                self.betas.2
            )));
        }
        validate::non_negative("alpha", self.alpha)?;
        if let Some(t) = self.t_alpha_beta3 {
            validate::non_negative("t_alpha_beta3", t)?;
        }
        validate::weight_decay(self.weight_decay)?;
        validate::eps(self.eps)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq", "exp_avg_slow"]
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdemamixStep {
        let (beta1, beta2, beta3) = self.betas;
        let step = t as f64;
        let (alpha, beta3) = match self.t_alpha_beta3 {
            None => (self.alpha, beta3),
            Some(total) => {
                let (log1, log3) = (beta1.ln(), beta3.ln());
                let r = step / total;
                (
                    (step * self.alpha / total).min(self.alpha),
                    (log1 * log3 / ((1.0 - r) * log3 + r * log1))
                        .exp()
                        .min(beta3),
                )
            }
        };
        let t = t as i32;
        AdemamixStep {
            lr: self.lr,
            beta1,
            beta2,
            beta3,
            alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decay_lr: if self.fixed_decay { 1.0 } else { self.lr },
            decoupled: self.weight_decouple,
            inv_bias_correction1: 1.0 / (1.0 - beta1.powi(t)),
            inv_bias_correction2_sqrt: 1.0 / (1.0 - beta2.powi(t)).sqrt(),
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AdemamixStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let mut grad = decay::signed(grad, step.maximize)?;
        let param = if step.decoupled {
            decay::decoupled(param, step.decay_lr, step.weight_decay)?
        } else {
            grad = decay::coupled(&grad, param, step.weight_decay)?;
            param.clone()
        };
        let m = moments::ema(buffers, "exp_avg", &grad, step.beta1)?;
        let v = moments::ema_sq(buffers, "exp_avg_sq", &grad, step.beta2)?;
        let slow = moments::ema(buffers, "exp_avg_slow", &grad, step.beta3)?;
        let denom = ((v.sqrt()? * step.inv_bias_correction2_sqrt)? + step.eps)?;
        let update = ((m * step.inv_bias_correction1)? + (slow * step.alpha)?)?;
        Ok((param - ((update / denom)? * step.lr)?)?)
    }
}

/// AdEMAMix's fused kernel. Buffers, in order: `exp_avg`, `exp_avg_sq`, `exp_avg_slow`.
#[derive(Debug, Clone, Copy)]
pub struct AdemamixKernel;

impl Kernel<AdemamixStep> for AdemamixKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdemamixStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, v, slow, _],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, v, slow) = (&g[..n], &mut m[..n], &mut v[..n], &mut slow[..n]);
        let decay = Decay::<T>::new(step.weight_decay, step.decay_lr, step.decoupled);
        let moments = moments::Moments::<T>::new(step.beta1, step.beta2);
        let one_minus_b3 = T::of(1.0 - step.beta3);
        let (inv_bc1, inv_bc2, eps, alpha, lr) = (
            T::of(step.inv_bias_correction1),
            T::of(step.inv_bias_correction2_sqrt),
            T::of(step.eps),
            T::of(step.alpha),
            T::of(step.lr),
        );
        specialize2(
            step.maximize,
            decay.coupled,
            #[inline(always)]
            |maximize, coupled| {
                let sg = sign::<T>(maximize);
                let decoupled = decay.decoupled;
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                    let pi = decay.param(p[i], decoupled);
                    let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                    let si = slow[i] + (gi - slow[i]) * one_minus_b3;
                    slow[i] = si;
                    let denom = vi.sqrt() * inv_bc2 + eps;
                    let u = mi * inv_bc1 + si * alpha;
                    p[i] = pi - u / denom * lr;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "ademamix",
    "AdEMAMix, Adam with a mixture of fast and slow momenta (pytorch-optimizer AdEMAMix)",
    AdemamixConfig,
    crate::engine::build::build_rule::<AdemamixConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_steps, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1, decouple in any::<bool>()) {
            let cfg = AdemamixConfig { lr: 0.0, weight_decay: wd, weight_decouple: decouple, ..AdemamixConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn alpha_zero_is_adam_without_weight_decay(p in small_params(), lr in 1e-4f64..1e-1) {
            let cfg = AdemamixConfig { lr, alpha: 0.0, ..AdemamixConfig::default() };
            let adam = crate::AdamConfig { lr, ..crate::AdamConfig::default() };
            let (_, a) = run_steps(cfg, &p, 3);
            let (_, b) = run_steps(adam, &p, 3);
            crate::testing::assert_close(&a, &b, 1e-12);
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params()) {
            let up = AdemamixConfig { lr: 0.01, maximize: true, ..AdemamixConfig::default() };
            let down = AdemamixConfig { lr: 0.01, ..AdemamixConfig::default() };
            let (b1, a1) = run_steps(up, &p, 1);
            let (_, a2) = run_steps(down, &p, 1);
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }
    }

    #[test]
    fn the_warm_up_rises_to_alpha_and_beta3() {
        let cfg = AdemamixConfig {
            t_alpha_beta3: Some(10.0),
            ..AdemamixConfig::default()
        };
        let first = cfg.plan(1, &mut Scalars::new());
        assert!((first.alpha - 0.5).abs() < 1e-15);
        // β₃(t) rises from β₁ (t = 0) to β₃ (t = T), log-harmonically: 0.99901 at t = 1.
        assert!((first.beta3 - 0.99901).abs() < 1e-5, "{}", first.beta3);
        let done = cfg.plan(10, &mut Scalars::new());
        assert_eq!(done.alpha, 5.0);
        assert!((done.beta3 - 0.9999).abs() < 1e-12);
    }
}
