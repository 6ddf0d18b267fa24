//! AdaBelief, Adam whose denominator tracks the belief in the gradient (pytorch-optimizer's
//! `AdaBelief`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize3, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad, Decay};
use crate::rules::moments;
use crate::validate;

/// AdaBelief: Adam with the variance of g around its momentum in place of g².
///
/// Per parameter θ with gradient g at step t (pytorch-optimizer 4.1.0's `AdaBelief`):
///
/// ```text
/// g ← −g                                       if maximize
/// θ ← θ (1 − λ γ)  (1 − λ if fixed_decay)      if weight_decouple, else g ← g + λ θ
/// m ← m + (g − m)(1 − β₁)                      (exp_avg)
/// s ← β₂ s + (1 − β₂)(g − m)² + ε              (exp_avg_var)
/// ŝ ← max(ŝ, s) if ams_bound (max_exp_avg_var), else ŝ = s
/// θ ← θ − γ/(1 − β₁ᵗ) · m / (√ŝ / √(1 − β₂ᵗ) + ε)
/// ```
///
/// With `rectify` (RAdam's rectification): ρ∞ = 2/(1 − β₂) − 1, ρₜ = ρ∞ − 2tβ₂ᵗ/(1 − β₂ᵗ);
/// when ρₜ ≥ `n_sma_threshold`, θ ← θ − γ rₜ/(1 − β₁ᵗ) · m/(√ŝ + ε) with
/// rₜ = √((1 − β₂ᵗ)(ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ)); below it θ ← θ − γ/(1 − β₁ᵗ) · m
/// if `degenerated_to_sgd`, else no step. γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`,
/// λ = `weight_decay`. Defaults are pytorch-optimizer 4.1.0's. Paper: Zhuang et al., "AdaBelief
/// Optimizer: Adapting Stepsizes by the Belief in Observed Gradients" (NeurIPS 2020). `foreach`
/// chooses the reference's batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdabeliefConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Decay rates (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly instead of adding λθ to g. Default: `true`.
    pub weight_decouple: bool,
    /// Decoupled decay by `1 − λ` instead of `1 − λγ`. Default: `false`.
    pub fixed_decay: bool,
    /// RAdam's rectification. Default: `false`.
    pub rectify: bool,
    /// Least ρₜ for the rectified adaptive step. Default: `5`.
    pub n_sma_threshold: u32,
    /// Below the threshold, take an SGD step on m (else none). Default: `true`.
    pub degenerated_to_sgd: bool,
    /// Use the running maximum of s. Default: `false`.
    pub ams_bound: bool,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
    /// ε added to s and to the denominator. Default: `1e-16`.
    pub eps: f64,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for AdabeliefConfig {
    fn default() -> Self {
        AdabeliefConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            weight_decay: 0.0,
            weight_decouple: true,
            fixed_decay: false,
            rectify: false,
            n_sma_threshold: 5,
            degenerated_to_sgd: true,
            ams_bound: false,
            foreach: None,
            eps: 1e-16,
            maximize: false,
        }
    }
}

/// AdaBelief as an optimizer (also a `candle_nn::Optimizer`).
pub type Adabelief = GroupedOptimizer<AdabeliefConfig>;

/// What a step does with the moments.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// θ ← θ − step_size · m / (√ŝ · inv + ε).
    Adaptive,
    /// θ ← θ − step_size · m.
    Sgd,
    /// Moments only.
    Skip,
}

/// The coefficients of one AdaBelief step.
#[derive(Debug, Clone, Copy)]
pub struct AdabeliefStep {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// The learning rate of the decoupled decay: γ, or 1 under `fixed_decay`.
    decay_lr: f64,
    decoupled: bool,
    /// γ rₜ / (1 − β₁ᵗ).
    step_size: f64,
    /// 1 / √(1 − β₂ᵗ), or 1 when rectified.
    inv_bias_correction2_sqrt: f64,
    mode: Mode,
    ams_bound: bool,
    maximize: bool,
}

/// pytorch-optimizer's rectified step size and ρₜ (`get_rectify_step_size`): γ rₜ, γ when
/// degenerating to SGD, −γ for no step.
fn rectify_step_size(t: u64, lr: f64, beta2: f64, threshold: f64, to_sgd: bool) -> (f64, f64) {
    let n_sma_max = 2.0 / (1.0 - beta2) - 1.0;
    let beta2_t = beta2.powi(t as i32);
    let n_sma = n_sma_max - 2.0 * t as f64 * beta2_t / (1.0 - beta2_t);
    let rt = if n_sma >= threshold {
        ((1.0 - beta2_t) * (n_sma - 4.0) / (n_sma_max - 4.0) * (n_sma - 2.0) / n_sma * n_sma_max
            / (n_sma_max - 2.0))
            .sqrt()
    } else if to_sgd {
        1.0
    } else {
        -1.0
    };
    (lr * rt, n_sma)
}

impl Rule for AdabeliefConfig {
    const NAME: &'static str = "adabelief";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
        "eps" => eps,
    );
    type Step = AdabeliefStep;
    type Kernel = AdabeliefKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)?;
        validate::eps(self.eps)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["exp_avg", "exp_avg_var"];
        if self.ams_bound {
            names.push("max_exp_avg_var");
        }
        names
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdabeliefStep {
        let (beta1, beta2) = self.betas;
        let bias_correction1 = 1.0 - beta1.powi(t as i32);
        let (step_size, mode, inv) = if self.rectify {
            let threshold = self.n_sma_threshold as f64;
            let (step_size, n_sma) =
                rectify_step_size(t, self.lr, beta2, threshold, self.degenerated_to_sgd);
            let mode = if n_sma >= threshold {
                Mode::Adaptive
            } else if step_size > 0.0 {
                Mode::Sgd
            } else {
                Mode::Skip
            };
            (step_size, mode, 1.0)
        } else {
            let inv = 1.0 / (1.0 - beta2.powi(t as i32)).sqrt();
            (self.lr, Mode::Adaptive, inv)
        };
        AdabeliefStep {
            beta1,
            beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decay_lr: if self.fixed_decay { 1.0 } else { self.lr },
            decoupled: self.weight_decouple,
            step_size: step_size / bias_correction1,
            inv_bias_correction2_sqrt: inv,
            mode,
            ams_bound: self.ams_bound,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AdabeliefStep,
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
        let residual = (&grad - &m)?;
        let s = buffers.get_or("exp_avg_var", || Ok(grad.zeros_like()?))?;
        let s = (((s * step.beta2)? + (residual.sqr()? * (1.0 - step.beta2))?)? + step.eps)?;
        buffers.set("exp_avg_var", s.clone());
        let s = if step.ams_bound {
            let max = buffers
                .get_or("max_exp_avg_var", || Ok(s.zeros_like()?))?
                .maximum(&s)?;
            buffers.set("max_exp_avg_var", max.clone());
            max
        } else {
            s
        };
        Ok(match step.mode {
            Mode::Adaptive => {
                let denom = ((s.sqrt()? * step.inv_bias_correction2_sqrt)? + step.eps)?;
                (param - ((m / denom)? * step.step_size)?)?
            }
            Mode::Sgd => (param - (m * step.step_size)?)?,
            // A copy: the engine cannot set a variable to its own storage.
            Mode::Skip => param.copy()?,
        })
    }
}

/// AdaBelief's fused kernel. Buffers, in order: `exp_avg`, `exp_avg_var`, `max_exp_avg_var`
/// (`ams_bound`).
#[derive(Debug, Clone, Copy)]
pub struct AdabeliefKernel;

impl Kernel<AdabeliefStep> for AdabeliefKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdabeliefStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, s, smax, _],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, s) = (&g[..n], &mut m[..n], &mut s[..n]);
        let smax: &mut [T] = if step.ams_bound {
            &mut smax[..n]
        } else {
            Default::default()
        };
        let decay = Decay::<T>::new(step.weight_decay, step.decay_lr, step.decoupled);
        let (one_minus_b1, b2, one_minus_b2) = (
            T::of(1.0 - step.beta1),
            T::of(step.beta2),
            T::of(1.0 - step.beta2),
        );
        let (eps, inv, step_size) = (
            T::of(step.eps),
            T::of(step.inv_bias_correction2_sqrt),
            T::of(step.step_size),
        );
        // θ's decoupled-decay factor, 1 without it: θ · 1 is θ exactly, so the loop needs no
        // branch for it.
        let keep = decay.param(T::of(1.0), decay.decoupled);
        let mut state = Moments {
            m,
            s,
            smax,
            one_minus_b1,
            b2,
            one_minus_b2,
            eps,
        };
        // Every flag and the mode are fixed for the step: each combination gets its own loop,
        // without branches, which the compiler vectorizes.
        specialize3(
            step.maximize,
            decay.coupled,
            step.ams_bound,
            #[inline(always)]
            |maximize, coupled, ams| {
                let grad = Gradient {
                    g,
                    sign: sign::<T>(maximize),
                    wd: decay.wd,
                    coupled,
                    keep,
                };
                match step.mode {
                    Mode::Adaptive => state.run(p, &grad, ams, |pi, mi, si| {
                        pi - mi / (si.sqrt() * inv + eps) * step_size
                    }),
                    Mode::Sgd => state.run(p, &grad, ams, |pi, mi, _| pi - mi * step_size),
                    Mode::Skip => state.run(p, &grad, ams, |pi, _, _| pi),
                }
            },
        );
    }
}

/// The gradient of one chunk as the update sees it: signed (`maximize`), with coupled decay
/// `g + λθ`, and `keep`, θ's decoupled-decay factor (1 without it).
struct Gradient<'a, T> {
    g: &'a [T],
    sign: T,
    wd: T,
    coupled: bool,
    keep: T,
}

/// The moment buffers of one chunk and their coefficients, for [`Moments::run`].
struct Moments<'a, T> {
    m: &'a mut [T],
    s: &'a mut [T],
    smax: &'a mut [T],
    one_minus_b1: T,
    b2: T,
    one_minus_b2: T,
    eps: T,
}

impl<T: Elem> Moments<'_, T> {
    /// One pass: m ← m + (g − m)(1 − β₁), s ← β₂s + (1 − β₂)(g − m)² + ε, ŝ = max(ŝ, s)
    /// with `ams`, then θ ← `update(θ · keep, m, ŝ)`.
    #[inline(always)]
    fn run(
        &mut self,
        p: &mut [T],
        grad: &Gradient<'_, T>,
        ams: bool,
        update: impl Fn(T, T, T) -> T,
    ) {
        let n = p.len();
        let (g, m, s) = (&grad.g[..n], &mut self.m[..n], &mut self.s[..n]);
        let smax: &mut [T] = if ams { &mut self.smax[..n] } else { &mut [] };
        for i in 0..n {
            let gi = effective_grad(g[i], p[i], grad.sign, grad.wd, grad.coupled);
            let mi = m[i] + (gi - m[i]) * self.one_minus_b1;
            m[i] = mi;
            let r = gi - mi;
            let si = s[i] * self.b2 + r * r * self.one_minus_b2 + self.eps;
            s[i] = si;
            let si = if ams {
                let x = T::max_of(smax[i], si);
                smax[i] = x;
                x
            } else {
                si
            };
            p[i] = update(p[i] * grad.keep, mi, si);
        }
    }
}

gradus_core::register_optimizer!(
    "adabelief",
    "AdaBelief, Adam over the variance of g around its momentum (pytorch-optimizer AdaBelief)",
    AdabeliefConfig,
    crate::engine::build::build_rule::<AdabeliefConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_steps, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1, rectify in any::<bool>(), ams_bound in any::<bool>()) {
            let cfg = AdabeliefConfig { lr: 0.0, weight_decay: wd, rectify, ams_bound, ..AdabeliefConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params(), rectify in any::<bool>()) {
            let up = AdabeliefConfig { lr: 0.01, maximize: true, rectify, ..AdabeliefConfig::default() };
            let down = AdabeliefConfig { lr: 0.01, rectify, ..AdabeliefConfig::default() };
            let (b1, a1) = run_steps(up, &p, 1);
            let (_, a2) = run_steps(down, &p, 1);
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }
    }

    #[test]
    fn rectification_degenerates_to_sgd_then_adapts() {
        let cfg = AdabeliefConfig {
            rectify: true,
            betas: (0.9, 0.6),
            ..AdabeliefConfig::default()
        };
        // β₂ = 0.6: ρ∞ = 4, ρₜ < 5 always, so every step is the SGD step on m.
        assert_eq!(cfg.plan(1, &mut Scalars::new()).mode, Mode::Sgd);
        let cfg = AdabeliefConfig {
            rectify: true,
            ..AdabeliefConfig::default()
        };
        assert_eq!(cfg.plan(1, &mut Scalars::new()).mode, Mode::Sgd);
        assert_eq!(cfg.plan(10, &mut Scalars::new()).mode, Mode::Adaptive);
        let skip = AdabeliefConfig {
            degenerated_to_sgd: false,
            ..cfg
        };
        assert_eq!(skip.plan(1, &mut Scalars::new()).mode, Mode::Skip);
    }
}
