//! Schedule-free AdamW (schedulefree 1.4.1's `AdamWScheduleFree`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::kernel::{Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::schedule_free::{
    averaging, build_schedule_free, step_yz, Averaging, ScheduleFree, ScheduleFreeRule, YzCoefs,
    SCALARS,
};
use crate::validate;

/// Schedule-free AdamW: Adam's normalization, no momentum buffer, and an average of the
/// iterates in place of a learning-rate schedule.
///
/// Per parameter (the parameter holds `y` in training mode), step t (schedulefree 1.4.1's
/// `AdamWScheduleFree`, non-`foreach` path):
///
/// ```text
/// γ_t, c_t                     (see schedule_free::averaging: warmup, weights t^r γ_max^p)
/// v ← β₂ v + (1 − β₂) g²                          (exp_avg_sq)
/// u ← g / (√(v / (1 − β₂ᵗ)) + ε) + λ y
/// y ← lerp(y, z, c_t) + γ_t (β₁ (1 − c_t) − 1) u
/// z ← z − γ_t u                                   (z, starts at θ₀)
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay` (taken at `y`), `warmup_steps`,
/// `r`, p = `weight_lr_power`. Defaults are schedulefree 1.4.1's. [`ScheduleFree`] adds the
/// train/eval split (`x = lerp(y, z, 1 − 1/β₁)`). The averaging state (`k`, `lr_max`,
/// `weight_sum`) is per group in the reference and per parameter here (`<param>.lr_max`,
/// `<param>.weight_sum`): the same while every parameter has a gradient at every step.
/// Paper: Defazio et al., "The Road Less Scheduled" (NeurIPS 2024). `foreach` chooses the
/// reference's batching only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWScheduleFreeConfig {
    /// Learning rate γ. Default: `0.0025`.
    pub lr: f64,
    /// (β₁, β₂): the interpolation of `y` and the second moment's decay. Default:
    /// `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε added to the denominator. Default: `1e-8`.
    pub eps: f64,
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

impl Default for AdamWScheduleFreeConfig {
    fn default() -> Self {
        AdamWScheduleFreeConfig {
            lr: 0.0025,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
            foreach: None,
        }
    }
}

/// Schedule-free AdamW as an optimizer, with its train/eval split.
pub type AdamWScheduleFree = ScheduleFree<AdamWScheduleFreeConfig>;

/// The coefficients of one schedule-free AdamW step.
#[derive(Debug, Clone, Copy)]
pub struct AdamWScheduleFreeStep {
    avg: Averaging,
    beta1: f64,
    beta2: f64,
    /// 1 / (1 − β₂ᵗ): Candle divides by a scalar as a multiplication by its reciprocal.
    inv_bias_correction2: f64,
    eps: f64,
    weight_decay: f64,
}

impl Rule for AdamWScheduleFreeConfig {
    const NAME: &'static str = "adamw_schedule_free";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
        "r" => r,
        "weight_lr_power" => weight_lr_power,
    );
    type Step = AdamWScheduleFreeStep;
    type Kernel = AdamWScheduleFreeKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)?;
        if self.betas.0 == 0.0 {
            // eval() moves θ by 1 − 1/β₁.
            return Err(gradus_core::Error::InvalidHyperparameter(
                "Invalid beta parameter at index 0: 0 (schedule-free needs beta1 > 0)".into(),
            ));
        }
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["z", "exp_avg_sq"]
    }

    fn scalar_names(&self) -> Vec<&'static str> {
        SCALARS.to_vec()
    }

    fn plan(&self, t: u64, scalars: &mut Scalars) -> AdamWScheduleFreeStep {
        let avg = averaging(
            t,
            self.lr,
            self.warmup_steps,
            self.r,
            self.weight_lr_power,
            scalars,
        );
        AdamWScheduleFreeStep {
            avg,
            beta1: self.betas.0,
            beta2: self.betas.1,
            inv_bias_correction2: 1.0 / (1.0 - self.betas.1.powi(t as i32)),
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    fn update(
        &self,
        step: &AdamWScheduleFreeStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let z = buffers.get_or("z", || Ok(param.copy()?))?;
        let v = buffers.get_or("exp_avg_sq", || Ok(param.zeros_like()?))?;
        let v = ((v * step.beta2)? + (grad.sqr()? * (1.0 - step.beta2))?)?;
        let denom = ((&v * step.inv_bias_correction2)?.sqrt()? + step.eps)?;
        let mut u = (grad / denom)?;
        if step.weight_decay != 0.0 {
            u = (u + (param * step.weight_decay)?)?;
        }
        let (y, z) = step_yz(param, &z, &u, &step.avg, step.beta1)?;
        buffers.set("z", z);
        buffers.set("exp_avg_sq", v);
        Ok(y)
    }
}

impl ScheduleFreeRule for AdamWScheduleFreeConfig {
    fn interpolation(&self) -> f64 {
        self.betas.0
    }
}

/// Schedule-free AdamW's fused kernel. Buffers: `z` (set to θ on the first step), `exp_avg_sq`.
#[derive(Debug, Clone, Copy)]
pub struct AdamWScheduleFreeKernel;

impl Kernel<AdamWScheduleFreeStep> for AdamWScheduleFreeKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdamWScheduleFreeStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [z, v, ..],
            fresh,
        } = chunk;
        let n = p.len();
        let (g, z, v) = (&g[..n], &mut z[..n], &mut v[..n]);
        if fresh {
            z.copy_from_slice(p);
        }
        let (b2, one_minus_b2) = (T::of(step.beta2), T::of(1.0 - step.beta2));
        let (inv_bc2, eps, wd) = (
            T::of(step.inv_bias_correction2),
            T::of(step.eps),
            T::of(step.weight_decay),
        );
        let has_wd = step.weight_decay != 0.0;
        let yz = YzCoefs::<T>::new(&step.avg, step.beta1);
        for i in 0..n {
            let gi = g[i];
            let vi = v[i] * b2 + gi * gi * one_minus_b2;
            v[i] = vi;
            let mut u = gi / ((vi * inv_bc2).sqrt() + eps);
            if has_wd {
                u = u + p[i] * wd;
            }
            (p[i], z[i]) = yz.apply(p[i], z[i], u);
        }
    }
}

gradus_core::register_optimizer!(
    "adamw_schedule_free",
    "Schedule-free AdamW, averaged iterates instead of a schedule (schedulefree AdamWScheduleFree)",
    AdamWScheduleFreeConfig,
    build_schedule_free::<AdamWScheduleFreeConfig>
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
            let cfg = AdamWScheduleFreeConfig { lr: 0.0, weight_decay: wd, ..Default::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn the_first_step_is_a_normalized_gradient_step(p in small_params(), lr in 0.0f64..0.1) {
            // c₁ = 1 and z = θ: y ← θ − γ u, with u = g / (|g| + ε) (v̂ = g²) and g = 2θ.
            let cfg = AdamWScheduleFreeConfig { lr, ..Default::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            let expected: Vec<f64> = before.iter().map(|t| t - lr * (2.0 * t) / ((2.0 * t).abs() + 1e-8)).collect();
            assert_close(&after, &expected, 1e-12);
        }
    }
}
