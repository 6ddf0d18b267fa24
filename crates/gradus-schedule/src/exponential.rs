//! `exponential`: decay by `gamma` every step (`torch.optim.lr_scheduler.ExponentialLR`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// Multiplies the hyperparameter by `gamma` every step.
///
/// Chainable form: `η ← γ·η` at every `t > 0`; closed form `η_t = initial·γ^t`.
/// Symbols: `γ` = `gamma`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExponentialConfig {
    /// Multiplicative decay per step. Required (no default in torch.optim.lr_scheduler.ExponentialLR).
    pub gamma: Option<f64>,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for ExponentialConfig {
    fn default() -> Self {
        ExponentialConfig {
            gamma: None,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `exponential` rule.
pub struct Exponential {
    gamma: f64,
}

impl Rule for Exponential {
    const NAME: &'static str = "exponential";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        if epoch == 0 {
            current
        } else {
            current * self.gamma
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: ExponentialConfig = parse_config(config, path)?;
    let gamma = required(&config.gamma, "gamma", path)?;
    if !gamma.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "invalid gamma: {gamma}"
        )));
    }
    Chained::start(
        Exponential { gamma },
        &config.hyperparameter,
        optimizer,
        path,
    )
}

gradus_core::register_schedule!(
    "exponential",
    "decay by gamma every step (torch ExponentialLR)",
    ExponentialConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn decays_monotonically_within_zero_and_initial(
            gamma in 0.0f64..=1.0, lr in 1e-4f64..1.0,
        ) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "exponential", "gamma": gamma}), &mut opt, "lr", 40)
                .unwrap();
            for w in seen.windows(2) {
                prop_assert!(w[1] <= w[0]);
            }
            for (t, v) in seen.iter().enumerate() {
                prop_assert!(*v >= 0.0 && *v <= lr);
                prop_assert!((v - lr * gamma.powi(t as i32)).abs() <= 1e-12 * lr);
            }
        }
    }
}
