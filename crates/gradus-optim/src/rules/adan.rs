//! Adan, adaptive Nesterov momentum (pytorch-optimizer's `Adan`).

use candle_core::Tensor;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay;
use crate::validate;

/// Adan: Adam-like moments of the gradient and of its difference between steps.
///
/// Per parameter θ with gradient g at step t (pytorch-optimizer 4.1.0's `Adan`):
///
/// ```text
/// g ← −g                                   if maximize
/// d ← g − gₜ₋₁           (gₜ₋₁ = the first gradient at step 1, before `maximize`'s flip)
/// m ← m + (g − m)(1 − β₁)                  (exp_avg)
/// n ← n + (d − n)(1 − β₂)                  (exp_avg_diff)
/// z ← g + β₂ d
/// v ← β₃ v + (1 − β₃) z²                   (exp_avg_sq)
/// ρ ← √v / √(1 − β₃ᵗ) + ε
/// θ ← θ (1 − γ λ)                          if weight_decouple
/// θ ← θ − γ/(1 − β₁ᵗ) · m/ρ − γ β₂/(1 − β₂ᵗ) · n/ρ
/// θ ← θ / (1 + γ λ)                        if not weight_decouple
/// ```
///
/// γ = `lr`, (β₁, β₂, β₃) = `betas`, ε = `eps`, λ = `weight_decay`. The buffer `previous_grad`
/// holds −gₜ₋₁, as in the reference. Defaults are pytorch-optimizer 4.1.0's. Paper: Xie et
/// al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models" (2022,
/// arXiv:2208.06677).
///
/// Not implemented: `max_grad_norm` > 0 (clipping by the global norm over every parameter,
/// which a per-parameter rule cannot take; refused by name). `foreach` chooses the reference's
/// batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdanConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Decay rates (β₁, β₂, β₃) of the gradient, difference and squared moments. Default:
    /// `[0.98, 0.92, 0.99]`.
    pub betas: (f64, f64, f64),
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ by `1 − γλ` before the step instead of dividing by `1 + γλ` after. Default:
    /// `false`.
    pub weight_decouple: bool,
    /// Global gradient-norm clipping: not implemented, only `0` is accepted.
    pub max_grad_norm: f64,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
    /// ε added to the denominator. Default: `1e-8`.
    pub eps: f64,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for AdanConfig {
    fn default() -> Self {
        AdanConfig {
            lr: 1e-3,
            betas: (0.98, 0.92, 0.99),
            weight_decay: 0.0,
            weight_decouple: false,
            max_grad_norm: 0.0,
            foreach: None,
            eps: 1e-8,
            maximize: false,
        }
    }
}

/// Adan as an optimizer (also a `candle_nn::Optimizer`).
pub type Adan = GroupedOptimizer<AdanConfig>;

/// The coefficients of one Adan step.
#[derive(Debug, Clone, Copy)]
pub struct AdanStep {
    beta1: f64,
    beta2: f64,
    beta3: f64,
    eps: f64,
    /// 1 / √(1 − β₃ᵗ).
    inv_bias_correction3_sqrt: f64,
    /// γ / (1 − β₁ᵗ).
    step_size: f64,
    /// γ β₂ / (1 − β₂ᵗ).
    diff_step_size: f64,
    /// `1 − γλ` (decoupled) or `1 / (1 + γλ)` (coupled), when λ ≠ 0.
    decay: Option<f64>,
    decoupled: bool,
    maximize: bool,
}

impl Rule for AdanConfig {
    const NAME: &'static str = "adan";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "beta3" => betas.2,
        "weight_decay" => weight_decay,
        "eps" => eps,
    );
    type Step = AdanStep;
    type Kernel = AdanKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas((self.betas.0, self.betas.1))?;
        validate::in_range("beta3", self.betas.2, 0.0, 1.0)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("max_grad_norm", self.max_grad_norm)?;
        validate::eps(self.eps)?;
        if self.max_grad_norm != 0.0 {
            return Err(Error::InvalidHyperparameter(
                "adan: `max_grad_norm` > 0 (global gradient clipping) is not implemented \
                 (only the default 0)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq", "exp_avg_diff", "previous_grad"]
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdanStep {
        let t = t as i32;
        let (beta1, beta2, beta3) = self.betas;
        let (lr, wd) = (self.lr, self.weight_decay);
        AdanStep {
            beta1,
            beta2,
            beta3,
            eps: self.eps,
            inv_bias_correction3_sqrt: 1.0 / (1.0 - beta3.powi(t)).sqrt(),
            step_size: lr / (1.0 - beta1.powi(t)),
            diff_step_size: lr * beta2 / (1.0 - beta2.powi(t)),
            decay: (wd != 0.0).then(|| {
                if self.weight_decouple {
                    1.0 - lr * wd
                } else {
                    1.0 / (1.0 + lr * wd)
                }
            }),
            decoupled: self.weight_decouple,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AdanStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        // The reference starts previous_grad at −g, before the sign flip of `maximize`.
        let previous = buffers.get_or("previous_grad", || Ok(grad.neg()?))?;
        let grad = decay::signed(grad, step.maximize)?;
        let diff = (previous + &grad)?;
        let m = crate::rules::moments::ema(buffers, "exp_avg", &grad, step.beta1)?;
        let n = crate::rules::moments::ema(buffers, "exp_avg_diff", &diff, step.beta2)?;
        let z = ((diff * step.beta2)? + &grad)?;
        let v = crate::rules::moments::ema_sq(buffers, "exp_avg_sq", &z, step.beta3)?;
        let denom = ((v.sqrt()? * step.inv_bias_correction3_sqrt)? + step.eps)?;
        let mut param = param.clone();
        if let (Some(f), true) = (step.decay, step.decoupled) {
            param = (param * f)?;
        }
        param = (param - ((m / &denom)? * step.step_size)?)?;
        param = (param - ((n / &denom)? * step.diff_step_size)?)?;
        if let (Some(f), false) = (step.decay, step.decoupled) {
            param = (param * f)?;
        }
        buffers.set("previous_grad", grad.neg()?);
        Ok(param)
    }
}

/// Adan's fused kernel. Buffers, in order: `exp_avg`, `exp_avg_sq`, `exp_avg_diff`,
/// `previous_grad`.
#[derive(Debug, Clone, Copy)]
pub struct AdanKernel;

impl Kernel<AdanStep> for AdanKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdanStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, v, d, prev],
            fresh,
        } = chunk;
        let n = p.len();
        let (g, m, v, d, prev) = (
            &g[..n],
            &mut m[..n],
            &mut v[..n],
            &mut d[..n],
            &mut prev[..n],
        );
        let one_minus_b1 = T::of(1.0 - step.beta1);
        let (b2, one_minus_b2) = (T::of(step.beta2), T::of(1.0 - step.beta2));
        let (b3, one_minus_b3) = (T::of(step.beta3), T::of(1.0 - step.beta3));
        let (inv_bc3, eps) = (T::of(step.inv_bias_correction3_sqrt), T::of(step.eps));
        let (step_size, diff_step_size) = (T::of(step.step_size), T::of(step.diff_step_size));
        let factor = T::of(step.decay.unwrap_or(1.0));
        let has_decay = step.decay.is_some();
        let (before, after) = (has_decay && step.decoupled, has_decay && !step.decoupled);
        specialize2(
            step.maximize,
            fresh,
            #[inline(always)]
            |maximize, fresh| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let previous = if fresh { -g[i] } else { prev[i] };
                    let gi = g[i] * sg;
                    let di = previous + gi;
                    let mi = m[i] + (gi - m[i]) * one_minus_b1;
                    m[i] = mi;
                    let ni = d[i] + (di - d[i]) * one_minus_b2;
                    d[i] = ni;
                    let zi = di * b2 + gi;
                    let vi = v[i] * b3 + zi * zi * one_minus_b3;
                    v[i] = vi;
                    let denom = vi.sqrt() * inv_bc3 + eps;
                    let mut pi = p[i];
                    if before {
                        pi = pi * factor;
                    }
                    pi = pi - mi / denom * step_size;
                    pi = pi - ni / denom * diff_step_size;
                    if after {
                        pi = pi * factor;
                    }
                    p[i] = pi;
                    prev[i] = -gi;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "adan",
    "Adan, adaptive Nesterov momentum (pytorch-optimizer Adan)",
    AdanConfig,
    crate::engine::build::build_rule::<AdanConfig>
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
            let cfg = AdanConfig { lr: 0.0, weight_decay: wd, weight_decouple: decouple, ..AdanConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn first_step_moves_each_coordinate_by_about_lr(p in small_params(), lr in 1e-4f64..1e-1) {
            // Step 1: d = 0, so m̂ = g, n = 0 and √v̂ = |g|: the step is γ g/(|g| + ε).
            let cfg = AdanConfig { lr, ..AdanConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            for (b, a) in before.iter().zip(&after) {
                if b.abs() > 1e-3 {
                    prop_assert!(((b - a).abs() - lr).abs() <= lr * 1e-4, "moved {} for lr {}", (b - a).abs(), lr);
                }
            }
        }
    }

    #[test]
    fn global_clipping_is_refused_by_name() {
        let err = AdanConfig {
            max_grad_norm: 1.0,
            ..AdanConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_grad_norm") && err.contains("not implemented"));
    }
}
