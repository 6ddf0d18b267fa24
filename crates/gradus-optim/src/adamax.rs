//! Adamax: Adam with the infinity norm (`torch.optim.Adamax`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::grouped::GroupedOptimizer;
use crate::rule::{ParamState, Rule};
use crate::{decay, moments, validate};

/// Adamax: the second moment replaced by an exponentially weighted infinity norm.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// m ← β₁ m + (1 − β₁) g               (exp_avg)
/// u ← max(β₂ u, |g| + ε)              (exp_inf)
/// θ ← θ − γ / (1 − β₁ᵗ) · m / u
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`. Defaults are
/// `torch.optim.Adamax`'s (PyTorch 2.15): lr `2e-3`. Paper: Kingma & Ba (2015), section 7.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamaxConfig {
    /// Learning rate γ. Default: `2e-3` (torch.optim.Adamax).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// Adamax as an optimizer (also a `candle_nn::Optimizer`).
pub type Adamax = GroupedOptimizer<AdamaxConfig>;

impl Rule for AdamaxConfig {
    const NAME: &'static str = "adamax";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_inf"]
    }

    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, self.maximize)?,
            param,
            self.weight_decay,
        )?;
        let m = moments::ema(state, "exp_avg", &grad, self.betas.0)?;
        let u = state.buffer_or("exp_inf", || Ok(grad.zeros_like()?))?;
        let u = (u * self.betas.1)?.maximum(&(grad.abs()? + self.eps)?)?;
        state.set_buffer("exp_inf", u.clone());
        let clr = self.lr / (1.0 - self.betas.0.powi(state.step as i32));
        Ok((param - ((m / u)? * clr)?)?)
    }

    fn fused(&self, state: &mut ParamState) -> Option<crate::fused::FusedUpdate> {
        Some(crate::fused::adamax::plan(self, state))
    }
}

gradus_core::register_optimizer!(
    "adamax",
    "Adam with the infinity norm (torch.optim.Adamax)",
    AdamaxConfig,
    crate::build::build_rule::<AdamaxConfig>
);
