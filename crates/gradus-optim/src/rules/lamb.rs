//! LAMB, layer-wise adaptive moments (pytorch-optimizer's `Lamb`).

use candle_core::{DType, Tensor};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, Decay};
use crate::validate;

/// The largest weight norm LAMB's trust ratio uses (pytorch-optimizer's `Lamb.clamp`).
const WEIGHT_NORM_CLAMP: f64 = 10.0;

/// LAMB: Adam's direction scaled per tensor by the trust ratio ‖θ‖ / ‖u‖.
///
/// Per parameter θ with gradient g at step t (pytorch-optimizer 4.1.0's `Lamb`):
///
/// ```text
/// g ← −g                                          if maximize
/// m ← β₁ m + β₃ g          β₃ = 1 − β₁ if grad_averaging, else 1   (exp_avg)
/// v ← β₂ v + (1 − β₂) g²                                            (exp_avg_sq)
/// θ ← θ (1 − λ γ)           if weight_decouple (1 − λ if fixed_decay)
/// u ← m / (√v + ε)          (+ λ θ when coupled)
/// r ← min(‖θ‖, 10) / (‖u‖ + ε), or 1 when either norm is 0 or `adam`
/// θ ← θ − γ / (1 − β₁ᵗ) · r · u
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`; norms are Frobenius norms over
/// the whole tensor. The first moment's bias correction divides the step size; the second
/// moment is not bias-corrected (as in the reference). Defaults are pytorch-optimizer 4.1.0's.
/// Paper: You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"
/// (ICLR 2020).
///
/// Not implemented (a non-default value is refused, naming the option): `rectify` (with
/// `degenerated_to_sgd`, `n_sma_threshold`) and `pre_norm` (a global gradient norm over every
/// parameter, which a per-parameter rule cannot take). `max_grad_norm` only acts under
/// `pre_norm`; `foreach` chooses the reference's batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LambConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the moments. Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly instead of adding λθ to the update. Default: `true`.
    pub weight_decouple: bool,
    /// Decoupled decay by `1 − λ` instead of `1 − λγ`. Default: `false`.
    pub fixed_decay: bool,
    /// RAdam rectification: not implemented, only `false` is accepted.
    pub rectify: bool,
    /// SGD steps before rectification starts: only with `rectify`, so only `false` is accepted.
    pub degenerated_to_sgd: bool,
    /// Rectification threshold: only with `rectify`; any value is accepted. Default: `5`.
    pub n_sma_threshold: u32,
    /// Scale the gradient's contribution to m by `1 − β₁`. Default: `true`.
    pub grad_averaging: bool,
    /// Reference norm of `pre_norm`'s gradient scaling (no effect without it). Default: `1`.
    pub max_grad_norm: f64,
    /// Use a trust ratio of 1 (Adam without the second moment's bias correction). Default:
    /// `false`.
    pub adam: bool,
    /// Scale gradients by their global norm: not implemented, only `false` is accepted.
    pub pre_norm: bool,
    /// ε added to √v and to the update's norm. Default: `1e-6`.
    pub eps: f64,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            weight_decay: 0.0,
            weight_decouple: true,
            fixed_decay: false,
            rectify: false,
            degenerated_to_sgd: false,
            n_sma_threshold: 5,
            grad_averaging: true,
            max_grad_norm: 1.0,
            adam: false,
            pre_norm: false,
            eps: 1e-6,
            foreach: None,
            maximize: false,
        }
    }
}

/// LAMB as an optimizer (also a `candle_nn::Optimizer`).
pub type Lamb = GroupedOptimizer<LambConfig>;

/// The coefficients of one LAMB step.
#[derive(Debug, Clone, Copy)]
pub struct LambStep {
    beta1: f64,
    beta2: f64,
    /// β₃: the gradient's weight in m.
    beta3: f64,
    eps: f64,
    weight_decay: f64,
    /// The learning rate of the decoupled decay: γ, or 1 under `fixed_decay`.
    decay_lr: f64,
    decoupled: bool,
    /// γ / (1 − β₁ᵗ).
    step_size: f64,
    adam: bool,
    maximize: bool,
}

impl LambStep {
    /// The trust ratio from ‖θ‖² and ‖u‖² (f64 sums over the tensor).
    fn trust_ratio(&self, weight_sq: f64, update_sq: f64) -> f64 {
        let weight_norm = weight_sq.sqrt().clamp(0.0, WEIGHT_NORM_CLAMP);
        let update_norm = update_sq.sqrt();
        if self.adam || weight_norm == 0.0 || update_norm == 0.0 {
            1.0
        } else {
            weight_norm / (update_norm + self.eps)
        }
    }
}

/// Σ x² of a tensor, in f64.
pub(crate) fn sum_sq(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?)
}

impl Rule for LambConfig {
    const NAME: &'static str = "lamb";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
        "eps" => eps,
    );
    type Step = LambStep;
    type Kernel = LambKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("max_grad_norm", self.max_grad_norm)?;
        validate::eps(self.eps)?;
        for (name, on) in [
            ("rectify", self.rectify),
            ("degenerated_to_sgd", self.degenerated_to_sgd),
            ("pre_norm", self.pre_norm),
        ] {
            if on {
                return Err(Error::InvalidHyperparameter(format!(
                    "lamb: `{name}: true` is not implemented (only the default `false`)"
                )));
            }
        }
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> LambStep {
        let (beta1, beta2) = self.betas;
        LambStep {
            beta1,
            beta2,
            beta3: if self.grad_averaging {
                1.0 - beta1
            } else {
                1.0
            },
            eps: self.eps,
            weight_decay: self.weight_decay,
            decay_lr: if self.fixed_decay { 1.0 } else { self.lr },
            decoupled: self.weight_decouple,
            step_size: self.lr / (1.0 - beta1.powi(t as i32)),
            adam: self.adam,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &LambStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::signed(grad, step.maximize)?;
        let m = buffers.get_or("exp_avg", || Ok(grad.zeros_like()?))?;
        let m = ((m * step.beta1)? + (&grad * step.beta3)?)?;
        buffers.set("exp_avg", m.clone());
        let v = crate::rules::moments::ema_sq(buffers, "exp_avg_sq", &grad, step.beta2)?;
        let (param, update) = if step.decoupled {
            let param = decay::decoupled(param, step.decay_lr, step.weight_decay)?;
            let update = (m / (v.sqrt()? + step.eps)?)?;
            (param, update)
        } else {
            let update = (m / (v.sqrt()? + step.eps)?)?;
            let update = decay::coupled(&update, param, step.weight_decay)?;
            (param.clone(), update)
        };
        let trust = step.trust_ratio(sum_sq(&param)?, sum_sq(&update)?);
        Ok((&param - (update * (step.step_size * trust))?)?)
    }
}

/// LAMB's fused kernel: a reduce pass updates m and v and sums ‖θ‖² and ‖u‖², then the apply
/// pass steps θ with the tensor's trust ratio. Buffers, in order: `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, Copy)]
pub struct LambKernel;

/// LAMB's element coefficients in a kernel's dtype.
struct LambElems<T> {
    eps: T,
    wd: T,
    coupled: bool,
    decay: Decay<T>,
}

impl<T: Elem> LambElems<T> {
    fn new(step: &LambStep) -> Self {
        let decay = Decay::<T>::new(step.weight_decay, step.decay_lr, step.decoupled);
        LambElems {
            eps: T::of(step.eps),
            wd: T::of(step.weight_decay),
            coupled: decay.coupled,
            decay,
        }
    }

    /// θ after the decoupled decay, and the update u, from the new moments; the decay flags
    /// are the kernel's specialized constants.
    #[inline(always)]
    fn update_with(&self, p: T, m: T, v: T, decoupled: bool, coupled: bool) -> (T, T) {
        let p = self.decay.param(p, decoupled);
        let u = m / (v.sqrt() + self.eps);
        let u = if coupled { u + p * self.wd } else { u };
        (p, u)
    }
}

/// Independent accumulators of each norm in the reduce pass.
const LANES: usize = 8;

impl Kernel<LambStep> for LambKernel {
    const REDUCES: bool = true;

    #[inline(always)]
    fn reduce<T: Elem>(step: &LambStep, chunk: Chunk<'_, T>, sums: &mut Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, v, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let sg = sign::<T>(step.maximize);
        let (b1, b3, b2, one_minus_b2) = (
            T::of(step.beta1),
            T::of(step.beta3),
            T::of(step.beta2),
            T::of(1.0 - step.beta2),
        );
        let e = LambElems::<T>::new(step);
        // Eight independent f64 accumulators per norm, and one loop per decay case: a single
        // running sum is a serial dependency chain, and per-element flags keep LLVM from
        // vectorizing the loop. The partial sums are added in a fixed order (deterministic).
        let (mut weight, mut update) = ([0.0f64; LANES], [0.0f64; LANES]);
        specialize2(
            e.decay.decoupled,
            e.coupled,
            #[inline(always)]
            |decoupled, coupled| {
                let mut step_at = |i: usize, lane: usize| {
                    let gi = g[i] * sg;
                    let mi = m[i] * b1 + gi * b3;
                    m[i] = mi;
                    let vi = v[i] * b2 + gi * gi * one_minus_b2;
                    v[i] = vi;
                    let (pi, ui) = e.update_with(p[i], mi, vi, decoupled, coupled);
                    let (pi, ui) = (pi.to_f64(), ui.to_f64());
                    weight[lane] += pi * pi;
                    update[lane] += ui * ui;
                };
                let whole = n / LANES * LANES;
                for base in (0..whole).step_by(LANES) {
                    for lane in 0..LANES {
                        step_at(base + lane, lane);
                    }
                }
                for i in whole..n {
                    step_at(i, 0);
                }
            },
        );
        let weight_sq: f64 = weight.iter().sum();
        let update_sq: f64 = update.iter().sum();
        sums[0] += weight_sq;
        sums[1] += update_sq;
    }

    #[inline(always)]
    fn apply<T: Elem>(step: &LambStep, chunk: Chunk<'_, T>, sums: &Sums) {
        let Chunk {
            param: p,
            state: [m, v, ..],
            ..
        } = chunk;
        let n = p.len();
        let (m, v) = (&m[..n], &v[..n]);
        let e = LambElems::<T>::new(step);
        let coef = T::of(step.step_size * step.trust_ratio(sums[0], sums[1]));
        specialize2(
            e.decay.decoupled,
            e.coupled,
            #[inline(always)]
            |decoupled, coupled| {
                for i in 0..n {
                    let (pi, ui) = e.update_with(p[i], m[i], v[i], decoupled, coupled);
                    p[i] = pi - ui * coef;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "lamb",
    "LAMB, Adam with a per-tensor trust ratio (pytorch-optimizer Lamb)",
    LambConfig,
    crate::engine::build::build_rule::<LambConfig>
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
            let cfg = LambConfig { lr: 0.0, weight_decay: wd, weight_decouple: decouple, ..LambConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params()) {
            let up = LambConfig { lr: 0.01, maximize: true, ..LambConfig::default() };
            let down = LambConfig { lr: 0.01, ..LambConfig::default() };
            let (b1, a1) = run_steps(up, &p, 1);
            let (_, a2) = run_steps(down, &p, 1);
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }

        #[test]
        fn first_step_has_the_length_of_lr_times_the_weight_norm(p in small_params(), lr in 1e-4f64..1e-1) {
            // Step 1: the step γ/(1 − β₁) · r u has norm γ/(1 − β₁) · min(‖θ‖, 10) ‖u‖/(‖u‖ + ε),
            // ≈ 10 γ min(‖θ‖, 10) per tensor (‖u‖ ≫ ε).
            let cfg = LambConfig { lr, ..LambConfig::default() };
            for one in &p {
                let (before, after) = run_steps(cfg.clone(), std::slice::from_ref(one), 1);
                let norm = before.iter().map(|x| x * x).sum::<f64>().sqrt();
                let moved = before.iter().zip(&after).map(|(b, a)| (b - a).powi(2)).sum::<f64>().sqrt();
                if norm > 1e-2 {
                    let expected = lr / (1.0 - 0.9) * norm.min(10.0);
                    prop_assert!((moved - expected).abs() <= expected * 1e-4, "moved {moved}, ‖θ‖ {norm}");
                }
            }
        }
    }

    #[test]
    fn unimplemented_options_are_refused_by_name() {
        for (cfg, name) in [
            (
                LambConfig {
                    rectify: true,
                    ..LambConfig::default()
                },
                "rectify",
            ),
            (
                LambConfig {
                    pre_norm: true,
                    ..LambConfig::default()
                },
                "pre_norm",
            ),
        ] {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains("not implemented"),
                "{err}"
            );
        }
    }
}
