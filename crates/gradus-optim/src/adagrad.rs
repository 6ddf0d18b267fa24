//! AdaGrad (`torch.optim.Adagrad`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::grouped::GroupedOptimizer;
use crate::rule::{ParamState, Rule};
use crate::{decay, validate};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, self.maximize)?,
            param,
            self.weight_decay,
        )?;
        let init = self.initial_accumulator_value;
        let sum = state.buffer_or("sum", || Ok((param.zeros_like()? + init)?))?;
        let sum = (sum + grad.sqr()?)?;
        state.set_buffer("sum", sum.clone());
        let clr = self.lr / (1.0 + (state.step - 1) as f64 * self.lr_decay);
        Ok((param - ((grad / (sum.sqrt()? + self.eps)?)? * clr)?)?)
    }

    fn fused(&self, state: &mut ParamState) -> Option<crate::fused::FusedUpdate> {
        Some(crate::fused::adagrad::plan(self, state))
    }
}

gradus_core::register_optimizer!(
    "adagrad",
    "AdaGrad, step sizes from accumulated squared gradients (torch.optim.Adagrad)",
    AdagradConfig,
    crate::build::build_rule::<AdagradConfig>
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
                let sum = state.buffers["sum"].to_vec1::<f64>().unwrap();
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
