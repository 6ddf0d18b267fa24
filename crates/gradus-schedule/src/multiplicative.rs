//! `multiplicative`: multiply by a constant factor every step
//! (`torch.optim.lr_scheduler.MultiplicativeLR` with `lr_lambda = lambda epoch: factor`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// Multiplies the hyperparameter by `factor` at every step after construction.
///
/// Chainable form (PyTorch's `MultiplicativeLR.get_lr`): `η ← f·η` at every `t > 0`, the value
/// in force at step 0 kept; closed form `η_t = initial·fᵗ` while nothing else writes the
/// hyperparameter. PyTorch takes a function of the epoch; a JSON config takes its constant
/// case. Symbols: `f` = `factor`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MultiplicativeConfig {
    /// Factor f applied at every step. Required (PyTorch's `lr_lambda` has no default).
    pub factor: Option<f64>,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for MultiplicativeConfig {
    fn default() -> Self {
        MultiplicativeConfig {
            factor: None,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `multiplicative` rule.
pub struct Multiplicative {
    factor: f64,
}

impl Rule for Multiplicative {
    const NAME: &'static str = "multiplicative";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        if epoch > 0 {
            current * self.factor
        } else {
            current
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: MultiplicativeConfig = parse_config(config, path)?;
    let factor = required(&config.factor, "factor", path)?;
    if !factor.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "invalid factor: {factor}"
        )));
    }
    Chained::start(
        Multiplicative { factor },
        &config.hyperparameter,
        optimizer,
        path,
    )
}

gradus_core::register_schedule!(
    "multiplicative",
    "multiply by a constant factor every step (torch MultiplicativeLR)",
    MultiplicativeConfig,
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
        fn follows_the_powers_of_the_factor(factor in 0.0f64..=1.5, lr in 1e-4f64..1.0) {
            let mut opt = FakeOptimizer::sgd(&[lr, 2.0 * lr]);
            let seen = run(json!({"type": "multiplicative", "factor": factor}), &mut opt, "lr", 30)
                .unwrap();
            let mut expected = lr;
            for v in &seen {
                prop_assert_eq!(*v, expected);
                expected *= factor;
            }
        }
    }

    #[test]
    fn factor_is_required() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let err = run(json!({"type": "multiplicative"}), &mut opt, "lr", 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("factor"), "{err}");
    }
}
