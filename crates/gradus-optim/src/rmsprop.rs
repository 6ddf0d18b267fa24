//! RMSprop, plain or centered, with optional momentum (`torch.optim.RMSprop`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::grouped::GroupedOptimizer;
use crate::rule::{ParamState, Rule};
use crate::{decay, moments, validate};

/// RMSprop: divide the gradient by a running RMS of recent gradients.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// v ← α v + (1 − α) g²                         (square_avg)
/// ḡ ← α ḡ + (1 − α) g,  ṽ ← v − ḡ²             if centered (grad_avg), else ṽ ← v
/// b ← μ b + g / (√ṽ + ε),  θ ← θ − γ b          if μ > 0 (momentum_buffer)
/// θ ← θ − γ g / (√ṽ + ε)                        otherwise
/// ```
///
/// γ = `lr`, α = `alpha`, ε = `eps`, λ = `weight_decay`, μ = `momentum`. Defaults are
/// `torch.optim.RMSprop`'s (PyTorch 2.15): lr `1e-2`, alpha `0.99`. Source: Hinton, Lecture 6e of
/// "Neural Networks for Machine Learning" (2012); centered form: Graves (2013).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmspropConfig {
    /// Learning rate γ. Default: `1e-2` (torch.optim.RMSprop).
    pub lr: f64,
    /// Smoothing constant α. Default: `0.99`.
    pub alpha: f64,
    /// ε added to the RMS. Default: `1e-8`.
    pub eps: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Momentum μ. Default: `0`.
    pub momentum: f64,
    /// Normalize by the centered second moment (an estimate of the variance). Default: `false`.
    pub centered: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        RmspropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// RMSprop as an optimizer (also a `candle_nn::Optimizer`).
pub type Rmsprop = GroupedOptimizer<RmspropConfig>;

impl Rule for RmspropConfig {
    const NAME: &'static str = "rmsprop";
    crate::hyperparameters!(
        "lr" => lr,
        "alpha" => alpha,
        "eps" => eps,
        "weight_decay" => weight_decay,
        "momentum" => momentum,
    );

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::momentum(self.momentum)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("alpha", self.alpha)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["square_avg"];
        if self.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        if self.centered {
            names.push("grad_avg");
        }
        names
    }

    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, self.maximize)?,
            param,
            self.weight_decay,
        )?;
        let v = moments::ema_sq(state, "square_avg", &grad, self.alpha)?;
        let v = if self.centered {
            let mean = moments::ema(state, "grad_avg", &grad, self.alpha)?;
            (v - mean.sqr()?)?
        } else {
            v
        };
        let avg = (v.sqrt()? + self.eps)?;
        if self.momentum > 0.0 {
            let buf = state.buffer_or("momentum_buffer", || Ok(grad.zeros_like()?))?;
            let buf = ((buf * self.momentum)? + (&grad / avg)?)?;
            state.set_buffer("momentum_buffer", buf.clone());
            Ok((param - (buf * self.lr)?)?)
        } else {
            Ok((param - ((grad / avg)? * self.lr)?)?)
        }
    }

    fn fused(&self, state: &mut ParamState) -> Option<crate::fused::FusedUpdate> {
        Some(crate::fused::rmsprop::plan(self, state))
    }
}

gradus_core::register_optimizer!(
    "rmsprop",
    "RMSprop, plain or centered, with optional momentum (torch.optim.RMSprop)",
    RmspropConfig,
    crate::build::build_rule::<RmspropConfig>
);
