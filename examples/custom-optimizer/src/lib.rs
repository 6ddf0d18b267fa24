//! An optimizer plugin written outside Gradus: Lion, registered with one macro line.
//!
//! A binary that wants it names this crate (`use custom_optimizer as _;`) so the linker keeps
//! the registration; `gradus list optimizer` then shows `lion` and `gradus replay` runs it.
#![deny(missing_docs)]

use candle_core::Tensor;
use gradus_core::{Error, Result};
use gradus_optim::{GroupedOptimizer, ParamState, Rule};
use serde::{Deserialize, Serialize};

/// Lion: the sign of an interpolated momentum, with decoupled weight decay.
///
/// ```text
/// c ← β₁ m + (1 − β₁) g
/// θ ← θ (1 − γ λ) − γ sign(c)
/// m ← β₂ m + (1 − β₂) g                      (exp_avg)
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, λ = `weight_decay`. Defaults from the paper: Chen et al.,
/// "Symbolic Discovery of Optimization Algorithms" (NeurIPS 2023).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LionConfig {
    /// Learning rate γ. Default: `1e-4`.
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.99]`.
    pub betas: (f64, f64),
    /// Decoupled weight decay λ. Default: `0`.
    pub weight_decay: f64,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
        }
    }
}

/// Lion as an optimizer (also a `candle_nn::Optimizer`).
pub type Lion = GroupedOptimizer<LionConfig>;

impl Rule for LionConfig {
    const NAME: &'static str = "lion";
    gradus_optim::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
    );

    fn validate(&self) -> Result<()> {
        gradus_optim::validate::lr(self.lr)?;
        gradus_optim::validate::betas(self.betas)?;
        gradus_optim::validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg"]
    }

    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor> {
        let (beta1, beta2) = self.betas;
        let m = state.buffer_or("exp_avg", || Ok(grad.zeros_like()?))?;
        let c = ((&m * beta1)? + (grad * (1.0 - beta1))?)?;
        let decayed = gradus_optim::decay::decoupled(param, self.lr, self.weight_decay)?;
        let next = (decayed - (c.sign()? * self.lr)?)?;
        state.set_buffer("exp_avg", ((m * beta2)? + (grad * (1.0 - beta2))?)?);
        if next.dims() != param.dims() {
            return Err(Error::ShapeMismatch {
                context: "lion update".into(),
                expected: param.dims().to_vec(),
                actual: next.dims().to_vec(),
            });
        }
        Ok(next)
    }
}

gradus_core::register_optimizer!(
    "lion",
    "Lion, sign of interpolated momentum (Chen et al., 2023) - example plugin",
    LionConfig,
    gradus_optim::build::build_rule::<LionConfig>
);
