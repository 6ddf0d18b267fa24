//! Adadelta (`torch.optim.Adadelta`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::grouped::GroupedOptimizer;
use crate::rule::{ParamState, Rule};
use crate::{decay, moments, validate};

/// Adadelta: a step size from the ratio of running RMS of updates and of gradients.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// v ← ρ v + (1 − ρ) g²                       (square_avg)
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ u + (1 − ρ) Δ²                       (acc_delta)
/// θ ← θ − γ Δ
/// ```
///
/// γ = `lr`, ρ = `rho`, ε = `eps`, λ = `weight_decay`. Defaults are `torch.optim.Adadelta`'s
/// (PyTorch 2.15): lr `1.0`, rho `0.9`, eps `1e-6`. Paper: Zeiler, "ADADELTA: An Adaptive
/// Learning Rate Method" (2012).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdadeltaConfig {
    /// Coefficient γ scaling Δ. Default: `1.0` (torch.optim.Adadelta).
    pub lr: f64,
    /// Decay ρ of the running averages. Default: `0.9`.
    pub rho: f64,
    /// ε inside the square roots. Default: `1e-6`.
    pub eps: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// Adadelta as an optimizer (also a `candle_nn::Optimizer`).
pub type Adadelta = GroupedOptimizer<AdadeltaConfig>;

impl Rule for AdadeltaConfig {
    const NAME: &'static str = "adadelta";
    crate::hyperparameters!(
        "lr" => lr,
        "rho" => rho,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::in_range("rho", self.rho, 0.0, 1.0)?;
        validate::eps(self.eps)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["square_avg", "acc_delta"]
    }

    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, self.maximize)?,
            param,
            self.weight_decay,
        )?;
        let v = moments::ema_sq(state, "square_avg", &grad, self.rho)?;
        let u = state.buffer_or("acc_delta", || Ok(grad.zeros_like()?))?;
        let std = (v + self.eps)?.sqrt()?;
        let delta = (((&u + self.eps)?.sqrt()? / std)? * &grad)?;
        let u = ((u * self.rho)? + (delta.sqr()? * (1.0 - self.rho))?)?;
        state.set_buffer("acc_delta", u);
        Ok((param - (delta * self.lr)?)?)
    }

    fn fused(&self, state: &mut ParamState) -> Option<crate::fused::FusedUpdate> {
        Some(crate::fused::adadelta::plan(self, state))
    }
}

gradus_core::register_optimizer!(
    "adadelta",
    "Adadelta, step sizes from running RMS of updates and gradients (torch.optim.Adadelta)",
    AdadeltaConfig,
    crate::build::build_rule::<AdadeltaConfig>
);
