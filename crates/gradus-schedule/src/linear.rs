//! `linear`: linear change of a multiplicative factor (`torch.optim.lr_scheduler.LinearLR`),
//! the usual warm-up.

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::default_hyperparameter;

/// Scales the hyperparameter by a factor going linearly from `start_factor` to `end_factor`
/// over `total_iters` steps, then keeps it.
///
/// Closed form: `η_t = initial·(s + (e − s)·min(t, N)/N)`. Computed with PyTorch's chainable
/// form: `η_0 = s·η`; for `0 < t ≤ N`: `η ← η·(1 + (e − s)/(N·s + (t − 1)·(e − s)))`.
/// Symbols: `s` = `start_factor`, `e` = `end_factor`, `N` = `total_iters`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LinearConfig {
    /// Factor at step 0, in `(0, 1]`. Default: `1/3` (torch.optim.lr_scheduler.LinearLR).
    pub start_factor: f64,
    /// Factor from `total_iters` on, in `[0, 1]`. Default: `1.0` (torch.optim.lr_scheduler.LinearLR).
    pub end_factor: f64,
    /// Steps of the linear change. Default: `5` (torch.optim.lr_scheduler.LinearLR).
    pub total_iters: u64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            start_factor: 1.0 / 3.0,
            end_factor: 1.0,
            total_iters: 5,
            hyperparameter: default_hyperparameter(),
        }
    }
}

impl LinearConfig {
    /// Checks the ranges PyTorch checks, with its wording.
    pub fn validate(&self) -> Result<()> {
        if !(self.start_factor > 0.0 && self.start_factor <= 1.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "Starting multiplicative factor expected to be greater than 0 and less or equal to 1, got {}",
                self.start_factor
            )));
        }
        if !(0.0..=1.0).contains(&self.end_factor) {
            return Err(Error::InvalidHyperparameter(format!(
                "Ending multiplicative factor expected to be between 0 and 1, got {}",
                self.end_factor
            )));
        }
        Ok(())
    }
}

/// The `linear` rule.
pub struct Linear(LinearConfig);

impl Rule for Linear {
    const NAME: &'static str = "linear";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        let LinearConfig {
            start_factor: s,
            end_factor: e,
            total_iters: n,
            ..
        } = self.0;
        if epoch == 0 {
            current * s
        } else if epoch > n {
            current
        } else {
            current * (1.0 + (e - s) / (n as f64 * s + (epoch - 1) as f64 * (e - s)))
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: LinearConfig = parse_config(config, path)?;
    config.validate()?;
    let name = config.hyperparameter.clone();
    Chained::start(Linear(config), &name, optimizer, path)
}

gradus_core::register_schedule!(
    "linear",
    "factor changing linearly from start_factor to end_factor over total_iters (torch LinearLR)",
    LinearConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn out_of_range_factors_are_rejected() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        for bad in [json!({"start_factor": 0.0}), json!({"end_factor": 1.5})] {
            let mut config = bad.clone();
            config["type"] = json!("linear");
            assert!(run(config, &mut opt, "lr", 1).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn stays_between_the_two_factors(
            s in 0.01f64..=1.0, e in 0.0f64..=1.0, n in 1u64..30, lr in 1e-3f64..1.0,
        ) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "linear", "start_factor": s, "end_factor": e,
                "total_iters": n}), &mut opt, "lr", 40).unwrap();
            let (lo, hi) = (lr * s.min(e), lr * s.max(e));
            for (t, v) in seen.iter().enumerate() {
                let tol = 1e-9 * lr;
                prop_assert!(*v >= lo - tol && *v <= hi + tol);
                let closed = lr * (s + (e - s) * (t as u64).min(n) as f64 / n as f64);
                prop_assert!((v - closed).abs() <= tol, "t={} {} vs {}", t, v, closed);
            }
        }
    }
}
