//! `constant_factor`: a constant factor until a milestone (`torch.optim.lr_scheduler.ConstantLR`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::default_hyperparameter;

/// Multiplies the hyperparameter by `factor` until epoch `total_iters`, then restores it.
///
/// Chainable form (as PyTorch's `get_lr`), with `η` the value in force:
/// `η₀ = η·factor`; at `t = total_iters`: `η ← η·(1/factor)`; otherwise unchanged.
/// The value is `initial·factor` for `t < total_iters` and `initial` from then on (with
/// `total_iters = 0` the factor is never undone, as in PyTorch).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConstantFactorConfig {
    /// Multiplier in force before `total_iters`, in `(0, 1]`. Default: `1/3` (torch.optim.lr_scheduler.ConstantLR).
    pub factor: f64,
    /// Number of steps the factor applies for. Default: `5` (torch.optim.lr_scheduler.ConstantLR).
    pub total_iters: u64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for ConstantFactorConfig {
    fn default() -> Self {
        ConstantFactorConfig {
            factor: 1.0 / 3.0,
            total_iters: 5,
            hyperparameter: default_hyperparameter(),
        }
    }
}

impl ConstantFactorConfig {
    /// Checks the ranges PyTorch checks; a zero factor is rejected too (PyTorch would divide by
    /// it at `total_iters`).
    pub fn validate(&self) -> Result<()> {
        if !(self.factor > 0.0 && self.factor <= 1.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "Constant multiplicative factor expected to be between 0 and 1 (zero excluded), got {}",
                self.factor
            )));
        }
        Ok(())
    }
}

/// The `constant_factor` rule.
pub struct ConstantFactor(ConstantFactorConfig);

impl Rule for ConstantFactor {
    const NAME: &'static str = "constant_factor";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        if epoch == 0 {
            current * self.0.factor
        } else if epoch != self.0.total_iters {
            current
        } else {
            current * (1.0 / self.0.factor)
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: ConstantFactorConfig = parse_config(config, path)?;
    config.validate()?;
    let name = config.hyperparameter.clone();
    Chained::start(ConstantFactor(config), &name, optimizer, path)
}

gradus_core::register_schedule!(
    "constant_factor",
    "constant factor until total_iters, then the initial value (torch ConstantLR)",
    ConstantFactorConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn zero_factor_is_rejected() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let err = run(
            json!({"type": "constant_factor", "factor": 0.0}),
            &mut opt,
            "lr",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn takes_only_the_two_documented_values(
            factor in 0.01f64..=1.0, total in 1u64..20, lr in 1e-4f64..1.0,
        ) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let config = json!({"type": "constant_factor", "factor": factor, "total_iters": total});
            let seen = run(config, &mut opt, "lr", 30).unwrap();
            for (t, v) in seen.iter().enumerate() {
                let want = if (t as u64) < total { lr * factor } else { lr };
                prop_assert!((v - want).abs() <= 1e-12 * lr, "t={} {} vs {}", t, v, want);
            }
        }
    }
}
