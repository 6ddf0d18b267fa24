//! Lion, evolved sign momentum (pytorch-optimizer's `Lion`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad, Decay};
use crate::validate;

/// Lion: the sign of an interpolation of the momentum and the gradient.
///
/// Per parameter θ with gradient g (pytorch-optimizer 4.1.0's `Lion`):
///
/// ```text
/// g ← −g                                     if maximize
/// θ ← θ (1 − λ γ)  (1 − λ if fixed_decay)    if weight_decouple, else g ← g + λ θ
/// c ← m + (g − m)(1 − β₁)
/// m ← m + (g − m)(1 − β₂)                    (exp_avg)
/// θ ← θ − γ sign(c)
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, λ = `weight_decay`. Defaults are pytorch-optimizer 4.1.0's.
/// Paper: Chen et al., "Symbolic Discovery of Optimization Algorithms" (NeurIPS 2023).
/// `foreach` chooses the reference's batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LionConfig {
    /// Learning rate γ. Default: `1e-4`.
    pub lr: f64,
    /// (β₁, β₂): the interpolation of the step and the momentum's decay. Default:
    /// `[0.9, 0.99]`.
    pub betas: (f64, f64),
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly instead of adding λθ to g. Default: `true`.
    pub weight_decouple: bool,
    /// Decoupled decay by `1 − λ` instead of `1 − λγ`. Default: `false`.
    pub fixed_decay: bool,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
            weight_decouple: true,
            fixed_decay: false,
            foreach: None,
            maximize: false,
        }
    }
}

/// Lion as an optimizer (also a `candle_nn::Optimizer`).
pub type Lion = GroupedOptimizer<LionConfig>;

/// The coefficients of one Lion step.
#[derive(Debug, Clone, Copy)]
pub struct LionStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
    /// The learning rate of the decoupled decay: γ, or 1 under `fixed_decay`.
    decay_lr: f64,
    decoupled: bool,
    maximize: bool,
}

impl Rule for LionConfig {
    const NAME: &'static str = "lion";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
    );
    type Step = LionStep;
    type Kernel = LionKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg"]
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> LionStep {
        LionStep {
            lr: self.lr,
            beta1: self.betas.0,
            beta2: self.betas.1,
            weight_decay: self.weight_decay,
            decay_lr: if self.fixed_decay { 1.0 } else { self.lr },
            decoupled: self.weight_decouple,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &LionStep,
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
        let diff = (&grad - &m)?;
        let c = (&m + (&diff * (1.0 - step.beta1))?)?;
        buffers.set("exp_avg", (&m + (diff * (1.0 - step.beta2))?)?);
        Ok((param - (c.sign()? * step.lr)?)?)
    }
}

/// Lion's fused kernel. Buffer: `exp_avg`.
#[derive(Debug, Clone, Copy)]
pub struct LionKernel;

impl Kernel<LionStep> for LionKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &LionStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m) = (&g[..n], &mut m[..n]);
        let decay = Decay::<T>::new(step.weight_decay, step.decay_lr, step.decoupled);
        let (one_minus_b1, one_minus_b2) = (T::of(1.0 - step.beta1), T::of(1.0 - step.beta2));
        let lr = T::of(step.lr);
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
                    let diff = gi - m[i];
                    let c = m[i] + diff * one_minus_b1;
                    m[i] = m[i] + diff * one_minus_b2;
                    p[i] = pi - c.sign() * lr;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "lion",
    "Lion, sign of an interpolated momentum (pytorch-optimizer Lion)",
    LionConfig,
    crate::engine::build::build_rule::<LionConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, run_steps, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1, decouple in any::<bool>()) {
            let cfg = LionConfig { lr: 0.0, weight_decay: wd, weight_decouple: decouple, ..LionConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn the_first_step_is_lr_times_the_sign_of_the_gradient(p in small_params(), lr in 0.0f64..0.5) {
            // m = 0: c = (1 − β₁) g, so θ ← θ − γ sign(2θ).
            let cfg = LionConfig { lr, ..LionConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            let expected: Vec<f64> = before.iter().map(|t| t - lr * t.signum() * (*t != 0.0) as u8 as f64).collect();
            assert_close(&after, &expected, 1e-15);
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params()) {
            let up = LionConfig { lr: 0.01, maximize: true, ..LionConfig::default() };
            let down = LionConfig { lr: 0.01, ..LionConfig::default() };
            let (b1, a1) = run_steps(up, &p, 1);
            let (_, a2) = run_steps(down, &p, 1);
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }
    }
}
