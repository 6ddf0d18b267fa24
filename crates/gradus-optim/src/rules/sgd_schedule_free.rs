//! Schedule-free SGD (schedulefree 1.4.1's `SGDScheduleFree`).

use candle_core::Tensor;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::kernel::{Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::schedule_free::{
    averaging, build_schedule_free, step_yz, Averaging, ScheduleFree, ScheduleFreeRule, YzCoefs,
    SCALARS,
};
use crate::validate;

/// Schedule-free SGD: plain gradient steps on `z`, an average of the iterates in place of a
/// learning-rate schedule, and momentum as the interpolation between the two.
///
/// Per parameter (the parameter holds `y` in training mode), step t (schedulefree 1.4.1's
/// `SGDScheduleFree`, non-`foreach` path):
///
/// ```text
/// γ_t, c_t                     (see schedule_free::averaging: warmup, weights t^r γ_max^p)
/// u ← g + λ y
/// y ← lerp(y, z, c_t) + γ_t (β (1 − c_t) − 1) u
/// z ← z − γ_t u                                   (z, starts at θ₀)
/// ```
///
/// γ = `lr`, β = `momentum` (in (0, 1)), λ = `weight_decay` (taken at `y`), `warmup_steps`,
/// `r`, p = `weight_lr_power`. Defaults are schedulefree 1.4.1's. [`ScheduleFree`] adds the
/// train/eval split (`x = lerp(y, z, 1 − 1/β)`). The averaging state is per parameter here and
/// per group in the reference: the same while every parameter has a gradient at every step.
/// Paper: Defazio et al., "The Road Less Scheduled" (NeurIPS 2024). `foreach` chooses the
/// reference's batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SgdScheduleFreeConfig {
    /// Learning rate γ. Default: `1.0`.
    pub lr: f64,
    /// Interpolation β between `z` and the average, in (0, 1). Default: `0.9`.
    pub momentum: f64,
    /// Weight decay λ, at `y`. Default: `0`.
    pub weight_decay: f64,
    /// Linear warmup of the learning rate over this many steps. Default: `0`.
    pub warmup_steps: u64,
    /// Polynomial weighting of the average (weights `t^r`). Default: `0`.
    pub r: f64,
    /// Weighting of the average by the largest learning rate so far. Default: `2`.
    pub weight_lr_power: f64,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
}

impl Default for SgdScheduleFreeConfig {
    fn default() -> Self {
        SgdScheduleFreeConfig {
            lr: 1.0,
            momentum: 0.9,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
            foreach: None,
        }
    }
}

/// Schedule-free SGD as an optimizer, with its train/eval split.
pub type SgdScheduleFree = ScheduleFree<SgdScheduleFreeConfig>;

/// The coefficients of one schedule-free SGD step.
#[derive(Debug, Clone, Copy)]
pub struct SgdScheduleFreeStep {
    avg: Averaging,
    momentum: f64,
    weight_decay: f64,
}

impl Rule for SgdScheduleFreeConfig {
    const NAME: &'static str = "sgd_schedule_free";
    crate::hyperparameters!(
        "lr" => lr,
        "momentum" => momentum,
        "weight_decay" => weight_decay,
        "r" => r,
        "weight_lr_power" => weight_lr_power,
    );
    type Step = SgdScheduleFreeStep;
    type Kernel = SgdScheduleFreeKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::weight_decay(self.weight_decay)?;
        if !(self.momentum > 0.0 && self.momentum < 1.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "Momentum must be between 0 and 1 exclusive: {}",
                self.momentum
            )));
        }
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["z"]
    }

    fn scalar_names(&self) -> Vec<&'static str> {
        SCALARS.to_vec()
    }

    fn plan(&self, t: u64, scalars: &mut Scalars) -> SgdScheduleFreeStep {
        let avg = averaging(
            t,
            self.lr,
            self.warmup_steps,
            self.r,
            self.weight_lr_power,
            scalars,
        );
        SgdScheduleFreeStep {
            avg,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
        }
    }

    fn update(
        &self,
        step: &SgdScheduleFreeStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let z = buffers.get_or("z", || Ok(param.copy()?))?;
        let u = if step.weight_decay != 0.0 {
            (grad + (param * step.weight_decay)?)?
        } else {
            grad.clone()
        };
        let (y, z) = step_yz(param, &z, &u, &step.avg, step.momentum)?;
        buffers.set("z", z);
        Ok(y)
    }
}

impl ScheduleFreeRule for SgdScheduleFreeConfig {
    fn interpolation(&self) -> f64 {
        self.momentum
    }
}

/// Schedule-free SGD's fused kernel. Buffer: `z` (set to θ on the first step).
#[derive(Debug, Clone, Copy)]
pub struct SgdScheduleFreeKernel;

impl Kernel<SgdScheduleFreeStep> for SgdScheduleFreeKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &SgdScheduleFreeStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [z, ..],
            fresh,
        } = chunk;
        let n = p.len();
        let (g, z) = (&g[..n], &mut z[..n]);
        if fresh {
            z.copy_from_slice(p);
        }
        let wd = T::of(step.weight_decay);
        let has_wd = step.weight_decay != 0.0;
        let yz = YzCoefs::<T>::new(&step.avg, step.momentum);
        for i in 0..n {
            let u = if has_wd { g[i] + p[i] * wd } else { g[i] };
            (p[i], z[i]) = yz.apply(p[i], z[i], u);
        }
    }
}

gradus_core::register_optimizer!(
    "sgd_schedule_free",
    "Schedule-free SGD, averaged iterates instead of a schedule (schedulefree SGDScheduleFree)",
    SgdScheduleFreeConfig,
    build_schedule_free::<SgdScheduleFreeConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, run_steps, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1) {
            let cfg = SgdScheduleFreeConfig { lr: 0.0, weight_decay: wd, ..Default::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn the_first_step_is_a_gradient_step(p in small_params(), lr in 0.0f64..0.5) {
            // c₁ = 1 and z = θ: y ← θ − γ g with g = 2θ.
            let cfg = SgdScheduleFreeConfig { lr, ..Default::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            let expected: Vec<f64> = before.iter().map(|t| t - lr * 2.0 * t).collect();
            assert_close(&after, &expected, 1e-12);
        }

        #[test]
        fn momentum_outside_zero_one_is_refused(m in prop_oneof![-1.0f64..=0.0, 1.0f64..2.0]) {
            let cfg = SgdScheduleFreeConfig { momentum: m, ..Default::default() };
            prop_assert!(cfg.validate().is_err());
        }
    }
}
