//! ADOPT, Adam with the current gradient left out of its own normalization (pytorch-optimizer's
//! `ADOPT`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad, Decay};
use crate::validate;

/// ADOPT: the gradient is normalized by the second moment of the *previous* steps, clipped,
/// then averaged into the momentum.
///
/// Per parameter θ with gradient g at step t (pytorch-optimizer 4.1.0's `ADOPT`):
///
/// ```text
/// g ← −g                                   if maximize
/// θ ← θ (1 − λ γ)  (1 − λ if fixed_decay)  if weight_decouple, else g ← g + λ θ
/// t = 1:   v ← v + g²                      (exp_avg_sq; no step)
/// t > 1:   ĝ ← clamp(g / max(√v, ε), −t^¼, t^¼)
///          m ← m + (ĝ − m)(1 − β₁)         (exp_avg)
///          θ ← θ − γ m
///          v ← β₂ v + (1 − β₂) g²
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`. The clipping bound t^¼ is the
/// reference's default `clip_lambda` (a Python callable, which a config cannot carry: the
/// option is not accepted). Defaults are pytorch-optimizer 4.1.0's. Paper: Taniguchi et al.,
/// "ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal Rate" (NeurIPS 2024).
/// `foreach` chooses the reference's batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdoptConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Decay rates (β₁, β₂). Default: `[0.9, 0.9999]`.
    pub betas: (f64, f64),
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly instead of adding λθ to g. Default: `false`.
    pub weight_decouple: bool,
    /// Decoupled decay by `1 − λ` instead of `1 − λγ`. Default: `false`.
    pub fixed_decay: bool,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
    /// Lower bound of √v in the normalization. Default: `1e-6`.
    pub eps: f64,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for AdoptConfig {
    fn default() -> Self {
        AdoptConfig {
            lr: 1e-3,
            betas: (0.9, 0.9999),
            weight_decay: 0.0,
            weight_decouple: false,
            fixed_decay: false,
            foreach: None,
            eps: 1e-6,
            maximize: false,
        }
    }
}

/// ADOPT as an optimizer (also a `candle_nn::Optimizer`).
pub type Adopt = GroupedOptimizer<AdoptConfig>;

/// The coefficients of one ADOPT step.
#[derive(Debug, Clone, Copy)]
pub struct AdoptStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// The learning rate of the decoupled decay: γ, or 1 under `fixed_decay`.
    decay_lr: f64,
    decoupled: bool,
    /// t^¼, the clipping bound (t > 1).
    clip: f64,
    /// t = 1: only v is updated.
    first: bool,
    maximize: bool,
}

impl Rule for AdoptConfig {
    const NAME: &'static str = "adopt";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
        "eps" => eps,
    );
    type Step = AdoptStep;
    type Kernel = AdoptKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)?;
        validate::eps(self.eps)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdoptStep {
        AdoptStep {
            lr: self.lr,
            beta1: self.betas.0,
            beta2: self.betas.1,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decay_lr: if self.fixed_decay { 1.0 } else { self.lr },
            decoupled: self.weight_decouple,
            clip: (t as f64).powf(0.25),
            first: t == 1,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AdoptStep,
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
        let m = buffers.get_or("exp_avg", || Ok(grad.zeros_like()?))?;
        let v = buffers.get_or("exp_avg_sq", || Ok(grad.zeros_like()?))?;
        if step.first {
            buffers.set("exp_avg_sq", (v + grad.sqr()?)?);
            // A copy: the engine cannot set a variable to its own storage.
            return Ok(param.copy()?);
        }
        let denom = v.sqrt()?.maximum(step.eps)?;
        let normed = (&grad / denom)?.clamp(-step.clip, step.clip)?;
        let m = (&m + ((normed - &m)? * (1.0 - step.beta1))?)?;
        buffers.set("exp_avg", m.clone());
        let next = (&param - (m * step.lr)?)?;
        let v = ((v * step.beta2)? + (grad.sqr()? * (1.0 - step.beta2))?)?;
        buffers.set("exp_avg_sq", v);
        Ok(next)
    }
}

/// ADOPT's fused kernel. Buffers, in order: `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, Copy)]
pub struct AdoptKernel;

impl Kernel<AdoptStep> for AdoptKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdoptStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, v, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let decay = Decay::<T>::new(step.weight_decay, step.decay_lr, step.decoupled);
        let (eps, hi, lo) = (T::of(step.eps), T::of(step.clip), T::of(-step.clip));
        let (one_minus_b1, b2, one_minus_b2) = (
            T::of(1.0 - step.beta1),
            T::of(step.beta2),
            T::of(1.0 - step.beta2),
        );
        let lr = T::of(step.lr);
        let first = step.first;
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
                    if first {
                        v[i] = v[i] + gi * gi;
                        p[i] = pi;
                        continue;
                    }
                    let denom = T::max_of(v[i].sqrt(), eps);
                    let x = gi / denom;
                    // Candle's clamp: maximum with the lower bound, then minimum with the upper.
                    let x = T::max_of(x, lo);
                    let x = if x > hi { hi } else { x };
                    let mi = m[i] + (x - m[i]) * one_minus_b1;
                    m[i] = mi;
                    p[i] = pi - mi * lr;
                    v[i] = v[i] * b2 + gi * gi * one_minus_b2;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "adopt",
    "ADOPT, Adam normalized by the previous second moment, clipped (pytorch-optimizer ADOPT)",
    AdoptConfig,
    crate::engine::build::build_rule::<AdoptConfig>
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
            let cfg = AdoptConfig { lr: 0.0, weight_decay: wd, weight_decouple: decouple, ..AdoptConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn the_first_step_leaves_params_unchanged(p in small_params(), lr in 0.0f64..1.0) {
            let cfg = AdoptConfig { lr, ..AdoptConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params()) {
            let up = AdoptConfig { lr: 0.01, maximize: true, ..AdoptConfig::default() };
            let down = AdoptConfig { lr: 0.01, ..AdoptConfig::default() };
            let (b1, a1) = run_steps(up, &p, 2);
            let (_, a2) = run_steps(down, &p, 2);
            // Step 1 moves nothing, so step 2 sees the same θ and the mirrored gradient.
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }
    }
}
