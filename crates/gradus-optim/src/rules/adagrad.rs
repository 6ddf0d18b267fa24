//! AdaGrad (`torch.optim.Adagrad`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad};
use crate::validate;

/// AdaGrad: per-coordinate step sizes from the sum of squared gradients.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// γ̃ ← γ / (1 + (t − 1) η)
/// s ← s + g²                                  (sum, starts at initial_accumulator_value)
/// θ ← θ − γ̃ g / (√s + ε)
/// ```
///
/// γ = `lr`, η = `lr_decay`, λ = `weight_decay`, ε = `eps`. Defaults are `torch.optim.Adagrad`'s
/// (PyTorch 2.15): lr `1e-2`, eps `1e-10`. Paper: Duchi, Hazan & Singer, "Adaptive Subgradient
/// Methods for Online Learning and Stochastic Optimization" (JMLR 2011).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdagradConfig {
    /// Learning rate γ. Default: `1e-2` (torch.optim.Adagrad).
    pub lr: f64,
    /// Learning-rate decay η per step. Default: `0`.
    pub lr_decay: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Initial value of the sum s. Default: `0`.
    pub initial_accumulator_value: f64,
    /// ε added to √s. Default: `1e-10`.
    pub eps: f64,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

/// AdaGrad as an optimizer (also a `candle_nn::Optimizer`).
pub type Adagrad = GroupedOptimizer<AdagradConfig>;

impl Rule for AdagradConfig {
    const NAME: &'static str = "adagrad";
    crate::hyperparameters!(
        "lr" => lr,
        "lr_decay" => lr_decay,
        "weight_decay" => weight_decay,
        "eps" => eps,
    );
    type Step = AdagradStep;
    type Kernel = AdagradKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::non_negative("lr_decay", self.lr_decay)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        validate::eps(self.eps)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["sum"]
    }

    fn initial_value(&self, _name: &str) -> f64 {
        self.initial_accumulator_value
    }

    /// The decayed step size γ̃ = γ / (1 + (t − 1) η).
    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdagradStep {
        AdagradStep {
            clr: self.lr / (1.0 + t.saturating_sub(1) as f64 * self.lr_decay),
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: self.maximize,
            initial_accumulator_value: self.initial_accumulator_value,
        }
    }

    fn update(
        &self,
        step: &AdagradStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, step.maximize)?,
            param,
            step.weight_decay,
        )?;
        let init = step.initial_accumulator_value;
        let sum = buffers.get_or("sum", || Ok((param.zeros_like()? + init)?))?;
        let sum = (sum + grad.sqr()?)?;
        buffers.set("sum", sum.clone());
        Ok((param - ((grad / (sum.sqrt()? + step.eps)?)? * step.clr)?)?)
    }
}

/// The coefficients of one AdaGrad step.
#[derive(Debug, Clone, Copy)]
pub struct AdagradStep {
    /// γ̃ = γ / (1 + (t − 1) η).
    clr: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
    initial_accumulator_value: f64,
}

/// AdaGrad's fused kernel. State: buffer `sum` (created at `initial_accumulator_value`).
#[derive(Debug, Clone, Copy)]
pub struct AdagradKernel;

impl Kernel<AdagradStep> for AdagradKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdagradStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [sum, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, sum) = (&g[..n], &mut sum[..n]);
        let (wd, has_wd) = (T::of(step.weight_decay), step.weight_decay != 0.0);
        let (clr, eps) = (T::of(step.clr), T::of(step.eps));
        specialize2(
            step.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let acc = sum[i] + gi * gi;
                    sum[i] = acc;
                    p[i] = p[i] - gi / (acc.sqrt() + eps) * clr;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "adagrad",
    "AdaGrad, step sizes from accumulated squared gradients (torch.optim.Adagrad)",
    AdagradConfig,
    crate::engine::build::build_rule::<AdagradConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::small_params;
    use candle_core::{Device, Var};
    use gradus_core::NamedVar;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// The effective step γ̃/(√s + ε) never grows: s only accumulates and γ̃ only decays.
        #[test]
        fn effective_step_never_grows(p in small_params(), lr_decay in 0.0f64..0.1) {
            let cfg = AdagradConfig { lr: 0.1, lr_decay, ..AdagradConfig::default() };
            let var = Var::new(p[0].as_slice(), &Device::Cpu).unwrap();
            let mut opt = Adagrad::from_named(vec![NamedVar::new("w", var.clone())], cfg.clone()).unwrap();
            let mut previous: Option<Vec<f64>> = None;
            for _ in 0..5 {
                let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.apply(&loss.backward().unwrap()).unwrap();
                let state = opt.param_state("w").unwrap();
                let sum = state.buffers.get("sum").unwrap().to_vec1::<f64>().unwrap();
                let clr = cfg.lr / (1.0 + (state.step - 1) as f64 * lr_decay);
                let eff: Vec<f64> = sum.iter().map(|s| clr / (s.sqrt() + cfg.eps)).collect();
                if let Some(prev) = &previous {
                    for (e, q) in eff.iter().zip(prev) {
                        prop_assert!(e <= q);
                    }
                }
                previous = Some(eff);
            }
        }
    }
}
