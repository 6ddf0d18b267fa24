//! AdamW: Adam with decoupled weight decay (`torch.optim.AdamW`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::grouped::GroupedOptimizer;
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::adam::{AdamHyper, AdamKernel, AdamStep};

/// AdamW: the [`Adam`](crate::AdamConfig) update with the decay applied to θ directly (the same
/// coefficients and fused kernel, [`AdamKernel`]).
///
/// ```text
/// θ ← θ (1 − γ λ)
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   v̂ ← max(v̂, v) if amsgrad
/// θ ← θ − γ / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
/// ```
///
/// Same fields as `adam` except that the decay is always decoupled and λ defaults to `0.01`
/// (torch.optim.AdamW, PyTorch 2.15). Paper: Loshchilov & Hutter, "Decoupled Weight Decay
/// Regularization" (ICLR 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Learning rate γ. Default: `1e-3` (torch.optim.AdamW).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Decoupled weight decay λ. Default: `0.01`.
    pub weight_decay: f64,
    /// AMSGrad variant. Default: `false`.
    pub amsgrad: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// AdamW as an optimizer (also a `candle_nn::Optimizer`).
pub type AdamW = GroupedOptimizer<AdamWConfig>;

impl AdamWConfig {
    fn hyper(&self) -> AdamHyper {
        AdamHyper {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: self.amsgrad,
            maximize: self.maximize,
            decoupled: true,
        }
    }
}

impl Rule for AdamWConfig {
    const NAME: &'static str = "adamw";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );
    type Step = AdamStep;
    type Kernel = AdamKernel;

    fn validate(&self) -> Result<()> {
        self.hyper().validate()
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        self.hyper().buffer_names()
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdamStep {
        self.hyper().plan(t)
    }

    fn update(
        &self,
        step: &AdamStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        step.update(param, grad, buffers)
    }
}

gradus_core::register_optimizer!(
    "adamw",
    "Adam with decoupled weight decay (torch.optim.AdamW)",
    AdamWConfig,
    crate::engine::build::build_rule::<AdamWConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_steps_with_grad;

    #[test]
    fn decay_alone_shrinks_by_exactly_one_minus_lr_wd() {
        let cfg = AdamWConfig {
            lr: 0.01,
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let (before, after) = run_steps_with_grad(cfg, &[vec![2.0, -1.0, 0.5]], 1, 0.0);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(*a, b * (1.0 - 0.01 * 0.5));
        }
    }
}
