//! `polynomial`: polynomial decay to zero (`torch.optim.lr_scheduler.PolynomialLR`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::default_hyperparameter;

/// Decays the hyperparameter to zero over `total_iters` steps along `(1 − t/N)^p`, then keeps 0.
///
/// Closed form: `η_t = initial·(1 − min(t, N)/N)^p`. Computed with PyTorch's chainable form:
/// for `0 < t ≤ N`: `η ← η·((1 − t/N)/(1 − (t − 1)/N))^p`.
/// Symbols: `N` = `total_iters`, `p` = `power`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolynomialConfig {
    /// Steps of the decay. Default: `5` (torch.optim.lr_scheduler.PolynomialLR).
    pub total_iters: u64,
    /// Exponent, at least 0. Default: `1.0` (torch.optim.lr_scheduler.PolynomialLR).
    pub power: f64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for PolynomialConfig {
    fn default() -> Self {
        PolynomialConfig {
            total_iters: 5,
            power: 1.0,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `polynomial` rule.
pub struct Polynomial {
    total_iters: u64,
    power: f64,
}

impl Rule for Polynomial {
    const NAME: &'static str = "polynomial";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        if epoch == 0 || epoch > self.total_iters {
            return current;
        }
        let (t, n) = (epoch as f64, self.total_iters as f64);
        current * ((1.0 - t / n) / (1.0 - (t - 1.0) / n)).powf(self.power)
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: PolynomialConfig = parse_config(config, path)?;
    // PyTorch accepts a negative power and then divides by zero at `total_iters`.
    if !(config.power >= 0.0 && config.power.is_finite()) {
        return Err(Error::InvalidHyperparameter(format!(
            "Expected a non-negative power, but got {}",
            config.power
        )));
    }
    let rule = Polynomial {
        total_iters: config.total_iters,
        power: config.power,
    };
    Chained::start(rule, &config.hyperparameter, optimizer, path)
}

gradus_core::register_schedule!(
    "polynomial",
    "polynomial decay to zero over total_iters (torch PolynomialLR)",
    PolynomialConfig,
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
        fn decays_from_initial_to_zero(
            n in 1u64..30, power in 0.1f64..4.0, lr in 1e-3f64..1.0,
        ) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "polynomial", "total_iters": n, "power": power}),
                &mut opt, "lr", 40).unwrap();
            for (t, v) in seen.iter().enumerate() {
                let tol = 1e-9 * lr;
                prop_assert!(*v >= 0.0 && *v <= lr + tol);
                let closed = lr * (1.0 - (t as u64).min(n) as f64 / n as f64).powf(power);
                prop_assert!((v - closed).abs() <= tol, "t={} {} vs {}", t, v, closed);
            }
            prop_assert_eq!(seen[n as usize], 0.0);
        }
    }
}
