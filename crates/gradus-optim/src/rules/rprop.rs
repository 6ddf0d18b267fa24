//! Rprop, resilient backpropagation (`torch.optim.Rprop`).

use candle_core::Tensor;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay;
use crate::validate;

/// Rprop: per-coordinate step sizes that grow while the gradient keeps its sign and shrink when
/// it flips; only the sign of the gradient moves the parameter.
///
/// Per parameter θ with gradient g at step t (PyTorch's single-tensor formulation):
///
/// ```text
/// g ← −g                                           if maximize
/// f ← η₊ if g·g_prev > 0,  η₋ if g·g_prev < 0,  1 otherwise
/// Δ ← clamp(Δ · f, Δ_min, Δ_max)                   (step_size, starts at γ)
/// g ← 0                                            where f = η₋ (the sign flipped)
/// θ ← θ − sign(g) · Δ
/// g_prev ← g                                       (prev, starts at 0)
/// ```
///
/// γ = `lr`, (η₋, η₊) = `etas`, (Δ_min, Δ_max) = `step_sizes`. State: `prev`, `step_size`
/// (PyTorch's names). Defaults are `torch.optim.Rprop`'s (PyTorch 2.15): lr `1e-2`, etas
/// `(0.5, 1.2)`, step_sizes `(1e-6, 50)`. Paper: Riedmiller & Braun, "A Direct Adaptive Method
/// for Faster Backpropagation Learning: The RPROP Algorithm" (ICNN 1993). Rprop is a full-batch
/// method: with noisy mini-batch gradients its sign test misfires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RpropConfig {
    /// Learning rate γ: the initial step size of every coordinate. Default: `1e-2`.
    pub lr: f64,
    /// Multiplicative decrease and increase factors (η₋, η₊), 0 < η₋ < 1 < η₊.
    /// Default: `[0.5, 1.2]`.
    pub etas: (f64, f64),
    /// Smallest and largest allowed step sizes (Δ_min, Δ_max). Default: `[1e-6, 50]`.
    pub step_sizes: (f64, f64),
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for RpropConfig {
    fn default() -> Self {
        RpropConfig {
            lr: 1e-2,
            etas: (0.5, 1.2),
            step_sizes: (1e-6, 50.0),
            maximize: false,
        }
    }
}

/// Rprop as an optimizer (also a `candle_nn::Optimizer`).
pub type Rprop = GroupedOptimizer<RpropConfig>;

/// The coefficients of one Rprop step (the same at every step: Rprop has no schedule).
#[derive(Debug, Clone, Copy)]
pub struct RpropStep {
    lr: f64,
    etaminus: f64,
    etaplus: f64,
    step_size_min: f64,
    step_size_max: f64,
    maximize: bool,
}

impl Rule for RpropConfig {
    const NAME: &'static str = "rprop";
    crate::hyperparameters!(
        "lr" => lr,
        "etaminus" => etas.0,
        "etaplus" => etas.1,
        "step_size_min" => step_sizes.0,
        "step_size_max" => step_sizes.1,
    );
    type Step = RpropStep;
    type Kernel = RpropKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        let (minus, plus) = self.etas;
        if !(0.0 < minus && minus < 1.0 && 1.0 < plus) {
            return Err(Error::InvalidHyperparameter(format!(
                "Invalid eta values: {minus}, {plus}"
            )));
        }
        // PyTorch does not check `step_sizes`; with Δ_min > Δ_max its clamp (and ours) gives
        // Δ_max.
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["prev", "step_size"]
    }

    /// `step_size` starts at `lr` (PyTorch's `full_like(grad, lr)`), `prev` at 0.
    fn initial_value(&self, name: &str) -> f64 {
        if name == "step_size" {
            self.lr
        } else {
            0.0
        }
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> RpropStep {
        RpropStep {
            lr: self.lr,
            etaminus: self.etas.0,
            etaplus: self.etas.1,
            step_size_min: self.step_sizes.0,
            step_size_max: self.step_sizes.1,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &RpropStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::signed(grad, step.maximize)?;
        let prev = buffers.get_or("prev", || Ok(param.zeros_like()?))?;
        let lr = step.lr;
        let step_size = buffers.get_or("step_size", || Ok((param.zeros_like()? + lr)?))?;
        let agreement = (&grad * &prev)?;
        let grew = agreement.gt(0.0)?;
        let flipped = agreement.lt(0.0)?;
        let zeros = param.zeros_like()?;
        let factor = grew.where_cond(
            &(&zeros + step.etaplus)?,
            &flipped.where_cond(&(&zeros + step.etaminus)?, &(&zeros + 1.0)?)?,
        )?;
        let step_size = (step_size * factor)?
            .maximum(step.step_size_min)?
            .minimum(step.step_size_max)?;
        let grad = flipped.where_cond(&zeros, &grad)?;
        let next = (param - (grad.sign()? * &step_size)?)?;
        buffers.set("step_size", step_size);
        buffers.set("prev", grad);
        Ok(next)
    }
}

/// Rprop's fused kernel. Buffers, in order: `prev`, `step_size` (created at `lr`).
#[derive(Debug, Clone, Copy)]
pub struct RpropKernel;

impl Kernel<RpropStep> for RpropKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &RpropStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [prev, size, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, prev, size) = (&g[..n], &mut prev[..n], &mut size[..n]);
        let zero = T::of(0.0);
        let (plus, minus, one) = (T::of(step.etaplus), T::of(step.etaminus), T::of(1.0));
        let (low, high) = (T::of(step.step_size_min), T::of(step.step_size_max));
        specialize2(
            step.maximize,
            false,
            #[inline(always)]
            |maximize, _| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = g[i] * sg;
                    let agreement = gi * prev[i];
                    let flipped = agreement < zero;
                    let factor = if agreement > zero {
                        plus
                    } else if flipped {
                        minus
                    } else {
                        one
                    };
                    // Candle's `maximum` then `minimum`, as the reference path clamps.
                    let s = T::max_of(size[i] * factor, low);
                    let s = if high < s { high } else { s };
                    size[i] = s;
                    let gi = if flipped { zero } else { gi };
                    prev[i] = gi;
                    p[i] = p[i] - gi.sign() * s;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "rprop",
    "Rprop, resilient backpropagation with sign-based adaptive step sizes (torch.optim.Rprop)",
    RpropConfig,
    crate::engine::build::build_rule::<RpropConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_steps, run_steps_with_grad, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params()) {
            // Step sizes start at γ = 0 and the clamp's floor is 0 too.
            let cfg = RpropConfig { lr: 0.0, step_sizes: (0.0, 50.0), ..RpropConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn first_step_moves_each_coordinate_by_exactly_lr(p in small_params(), lr in 1e-4f64..1e-1) {
            let cfg = RpropConfig { lr, ..RpropConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            for (b, a) in before.iter().zip(&after) {
                let expected = if *b == 0.0 { *b } else { b - lr * b.signum() };
                prop_assert_eq!(*a, expected);
            }
        }

        #[test]
        fn step_sizes_stay_within_bounds(p in small_params(), steps in 1usize..12) {
            let cfg = RpropConfig { lr: 0.3, step_sizes: (1e-3, 0.5), ..RpropConfig::default() };
            let vars: Vec<candle_core::Var> = p.iter().map(|v| candle_core::Var::new(v.as_slice(), &candle_core::Device::Cpu).unwrap()).collect();
            let named = vars.iter().enumerate().map(|(i, v)| gradus_core::NamedVar::new(format!("p{i}"), v.clone())).collect();
            let mut opt = Rprop::from_named(named, cfg).unwrap();
            for _ in 0..steps {
                let mut loss = vars[0].as_tensor().sqr().unwrap().sum_all().unwrap();
                for v in &vars[1..] {
                    loss = (loss + v.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
                }
                opt.apply(&loss.backward().unwrap()).unwrap();
            }
            for i in 0..vars.len() {
                let s = opt.param_state(&format!("p{i}")).unwrap();
                for v in s.buffers.get("step_size").unwrap().to_vec1::<f64>().unwrap() {
                    prop_assert!((1e-3..=0.5).contains(&v), "step size {}", v);
                }
            }
        }
    }

    #[test]
    fn constant_gradient_grows_the_step_by_etaplus() {
        // g = 1 every step: steps of γ, γη₊, γη₊² (no clamp within the default bounds).
        let cfg = RpropConfig::default();
        let (before, after) = run_steps_with_grad(cfg, &[vec![1.0]], 3, 1.0);
        let moved = before[0] - after[0];
        let expected = 0.01 + 0.01 * 1.2 + 0.01 * 1.2 * 1.2;
        assert!((moved - expected).abs() < 1e-15, "{moved} vs {expected}");
    }

    #[test]
    fn invalid_etas_are_rejected_with_pytorch_wording() {
        let err = RpropConfig {
            etas: (0.5, 0.9),
            ..RpropConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.to_string(), "Invalid eta values: 0.5, 0.9");
    }
}
