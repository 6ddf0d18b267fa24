//! NAdam: Adam with Nesterov momentum (`torch.optim.NAdam`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::grouped::GroupedOptimizer;
use crate::rule::{ParamState, Rule};
use crate::{decay, moments, validate};

/// NAdam: Adam whose first moment is used with a Nesterov look-ahead and a momentum schedule.
///
/// ```text
/// g ← −g if maximize
/// θ ← θ (1 − γ λ) if decoupled_weight_decay, else g ← g + λ θ
/// μₜ ← β₁ (1 − ½ · 0.96^(t ψ)),   μₜ₊₁ ← β₁ (1 − ½ · 0.96^((t+1) ψ))
/// Πₜ ← Πₜ₋₁ μₜ                                     (mu_product, Π₀ = 1)
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
/// d ← √(v / (1 − β₂ᵗ)) + ε
/// θ ← θ − γ (1 − μₜ) / (1 − Πₜ) · g / d − γ μₜ₊₁ / (1 − Πₜ μₜ₊₁) · m / d
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`, ψ = `momentum_decay`.
/// Defaults are `torch.optim.NAdam`'s (PyTorch 2.15): lr `2e-3`, momentum_decay `4e-3`. Paper:
/// Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NadamConfig {
    /// Learning rate γ. Default: `2e-3` (torch.optim.NAdam).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Momentum decay ψ. Default: `4e-3`.
    pub momentum_decay: f64,
    /// Decay θ directly (NAdamW) instead of adding λθ to g. Default: `false`.
    pub decoupled_weight_decay: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for NadamConfig {
    fn default() -> Self {
        NadamConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// NAdam as an optimizer (also a `candle_nn::Optimizer`).
pub type Nadam = GroupedOptimizer<NadamConfig>;

impl Rule for NadamConfig {
    const NAME: &'static str = "nadam";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
        "momentum_decay" => momentum_decay,
    );

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("momentum_decay", self.momentum_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }

    fn scalar_names(&self) -> Vec<&'static str> {
        vec!["mu_product"]
    }

    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor> {
        let (beta1, beta2) = self.betas;
        let mut grad = decay::signed(grad, self.maximize)?;
        let param = if self.decoupled_weight_decay {
            decay::decoupled(param, self.lr, self.weight_decay)?
        } else {
            grad = decay::coupled(&grad, param, self.weight_decay)?;
            param.clone()
        };
        let t = state.step as f64;
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(t * self.momentum_decay));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * self.momentum_decay));
        let mu_product = state.scalars.get("mu_product").copied().unwrap_or(1.0) * mu;
        state.scalars.insert("mu_product", mu_product);
        let m = moments::ema(state, "exp_avg", &grad, beta1)?;
        let v = moments::ema_sq(state, "exp_avg_sq", &grad, beta2)?;
        let bias_correction2 = 1.0 - beta2.powi(state.step as i32);
        let denom = ((v / bias_correction2)?.sqrt()? + self.eps)?;
        let grad_coef = self.lr * (1.0 - mu) / (1.0 - mu_product);
        let m_coef = self.lr * mu_next / (1.0 - mu_product * mu_next);
        let param = (param - ((grad / &denom)? * grad_coef)?)?;
        Ok((param - ((m / denom)? * m_coef)?)?)
    }

    fn fused(&self, state: &mut ParamState) -> Option<crate::fused::FusedUpdate> {
        Some(crate::fused::nadam::plan(self, state))
    }
}

gradus_core::register_optimizer!(
    "nadam",
    "Adam with Nesterov momentum (torch.optim.NAdam)",
    NadamConfig,
    crate::build::build_rule::<NadamConfig>
);
