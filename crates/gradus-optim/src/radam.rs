//! RAdam: rectified Adam (`torch.optim.RAdam`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::grouped::GroupedOptimizer;
use crate::rule::{ParamState, Rule};
use crate::{decay, moments, validate};

/// RAdam: Adam whose adaptive term is switched on only once its variance is tractable, and
/// rectified by r_t.
///
/// ```text
/// g ← −g if maximize
/// θ ← θ (1 − γ λ) if decoupled_weight_decay, else g ← g + λ θ
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   m̂ ← m / (1 − β₁ᵗ)
/// ρ∞ ← 2 / (1 − β₂) − 1,   ρₜ ← ρ∞ − 2 t β₂ᵗ / (1 − β₂ᵗ)
/// if ρₜ > 5:  rₜ ← √((ρₜ − 4)(ρₜ − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρₜ))
///             θ ← θ − γ m̂ rₜ √(1 − β₂ᵗ) / (√v + ε)
/// else:       θ ← θ − γ m̂
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`. Defaults are
/// `torch.optim.RAdam`'s (PyTorch 2.15). Paper: Liu et al., "On the Variance of the Adaptive
/// Learning Rate and Beyond" (ICLR 2020).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadamConfig {
    /// Learning rate γ. Default: `1e-3` (torch.optim.RAdam).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly (RAdamW) instead of adding λθ to g. Default: `false`.
    pub decoupled_weight_decay: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for RadamConfig {
    fn default() -> Self {
        RadamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// RAdam as an optimizer (also a `candle_nn::Optimizer`).
pub type Radam = GroupedOptimizer<RadamConfig>;

impl Rule for RadamConfig {
    const NAME: &'static str = "radam";
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
        vec!["exp_avg", "exp_avg_sq"]
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
        let m = moments::ema(state, "exp_avg", &grad, beta1)?;
        let v = moments::ema_sq(state, "exp_avg_sq", &grad, beta2)?;
        let t = state.step as i32;
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2 = 1.0 - beta2.powi(t);
        let m_hat = (m / bias_correction1)?;
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * f64::from(t) * beta2.powi(t) / bias_correction2;
        if rho_t > 5.0 {
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt();
            let adaptive = (v.sqrt()? + self.eps)?.recip()?;
            let adaptive = (adaptive * bias_correction2.sqrt())?;
            Ok((param - (((m_hat * self.lr)? * adaptive)? * rect)?)?)
        } else {
            Ok((param - (m_hat * self.lr)?)?)
        }
    }

    fn fused(&self, state: &mut ParamState) -> Option<crate::fused::FusedUpdate> {
        Some(crate::fused::radam::plan(self, state))
    }
}

gradus_core::register_optimizer!(
    "radam",
    "rectified Adam (torch.optim.RAdam)",
    RadamConfig,
    crate::build::build_rule::<RadamConfig>
);
