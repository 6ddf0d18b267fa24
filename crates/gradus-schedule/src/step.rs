//! `step`: decay by `gamma` every `step_size` steps (`torch.optim.lr_scheduler.StepLR`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// Multiplies the hyperparameter by `gamma` every `step_size` steps.
///
/// Chainable form: at `t > 0` with `t mod step_size = 0`, `η ← γ·η`; otherwise unchanged.
/// Closed form: `η_t = initial·γ^⌊t/step_size⌋`. Symbols: `γ` = `gamma`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StepConfig {
    /// Period of the decay, in steps, positive. Required (no default in torch.optim.lr_scheduler.StepLR).
    pub step_size: Option<u64>,
    /// Multiplicative decay. Default: `0.1` (torch.optim.lr_scheduler.StepLR).
    pub gamma: f64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for StepConfig {
    fn default() -> Self {
        StepConfig {
            step_size: None,
            gamma: 0.1,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `step` rule.
pub struct Step {
    step_size: u64,
    gamma: f64,
}

impl Rule for Step {
    const NAME: &'static str = "step";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        if epoch == 0 || !epoch.is_multiple_of(self.step_size) {
            current
        } else {
            current * self.gamma
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: StepConfig = parse_config(config, path)?;
    let step_size = required(&config.step_size, "step_size", path)?;
    if step_size == 0 {
        return Err(Error::InvalidHyperparameter(
            "StepLR step_size must be a positive integer, got 0".into(),
        ));
    }
    if !config.gamma.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "invalid gamma: {}",
            config.gamma
        )));
    }
    let rule = Step {
        step_size,
        gamma: config.gamma,
    };
    Chained::start(rule, &config.hyperparameter, optimizer, path)
}

gradus_core::register_schedule!(
    "step",
    "decay by gamma every step_size steps (torch StepLR)",
    StepConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn missing_step_size_is_an_error_naming_it() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let err = run(json!({"type": "step"}), &mut opt, "lr", 1).unwrap_err();
        assert!(err.to_string().contains("schedule.step_size"), "{err}");
        let err = run(json!({"type": "step", "step_size": 0}), &mut opt, "lr", 1).unwrap_err();
        assert!(err.to_string().contains("positive integer"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn stays_between_zero_and_initial_and_never_grows(
            step_size in 1u64..10, gamma in 0.0f64..=1.0, lr in 1e-4f64..1.0,
        ) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "step", "step_size": step_size, "gamma": gamma}),
                &mut opt, "lr", 40).unwrap();
            for w in seen.windows(2) {
                prop_assert!(w[1] <= w[0]);
            }
            for (t, v) in seen.iter().enumerate() {
                prop_assert!(*v >= 0.0 && *v <= lr);
                let closed = lr * gamma.powi((t as u64 / step_size) as i32);
                prop_assert!((v - closed).abs() <= 1e-12 * lr);
            }
        }
    }
}
