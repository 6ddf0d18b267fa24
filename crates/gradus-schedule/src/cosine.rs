//! `cosine`: cosine annealing (`torch.optim.lr_scheduler.CosineAnnealingLR`).

use std::f64::consts::PI;

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// Anneals the hyperparameter from its initial value to `eta_min` along a half cosine over
/// `t_max` steps, then back up (period `2·t_max`), as PyTorch does past `t_max`.
///
/// Closed form (SGDR without restarts):
/// `η_t = η_min + (initial − η_min)·(1 + cos(π·t/T_max))/2`.
/// Computed with PyTorch's recursive form, so values match `torch` to the last bits:
/// `η_t = (1 + cos(π·t/T_max)) / (1 + cos(π·(t−1)/T_max)) · (η_{t−1} − η_min) + η_min`, and at
/// `(t − 1 − T_max) mod 2T_max = 0`: `η_t = η_{t−1} + (initial − η_min)·(1 − cos(π/T_max))/2`.
/// Symbols: `T_max` = `t_max`, `η_min` = `eta_min`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CosineConfig {
    /// Half period, in steps, positive. Required (`T_max`, no default in torch.optim.lr_scheduler.CosineAnnealingLR).
    pub t_max: Option<u64>,
    /// Lowest value. Default: `0.0` (torch.optim.lr_scheduler.CosineAnnealingLR).
    pub eta_min: f64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for CosineConfig {
    fn default() -> Self {
        CosineConfig {
            t_max: None,
            eta_min: 0.0,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `cosine` rule.
pub struct Cosine {
    t_max: u64,
    eta_min: f64,
}

impl Rule for Cosine {
    const NAME: &'static str = "cosine";

    fn value(&self, epoch: u64, current: f64, initial: f64) -> f64 {
        let (t, t_max, eta_min) = (epoch as f64, self.t_max as f64, self.eta_min);
        if epoch == 0 {
            return current;
        }
        let phase = (epoch as i128 - 1 - self.t_max as i128).rem_euclid(2 * self.t_max as i128);
        if phase == 0 {
            current + (initial - eta_min) * (1.0 - (PI / t_max).cos()) / 2.0
        } else {
            (1.0 + (PI * t / t_max).cos()) / (1.0 + (PI * (t - 1.0) / t_max).cos())
                * (current - eta_min)
                + eta_min
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: CosineConfig = parse_config(config, path)?;
    let t_max = required(&config.t_max, "t_max", path)?;
    if t_max == 0 {
        return Err(Error::InvalidHyperparameter(
            "Expected positive integer T_max, but got 0".into(),
        ));
    }
    if !config.eta_min.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "invalid eta_min: {}",
            config.eta_min
        )));
    }
    let rule = Cosine {
        t_max,
        eta_min: config.eta_min,
    };
    Chained::start(rule, &config.hyperparameter, optimizer, path)
}

gradus_core::register_schedule!(
    "cosine",
    "cosine annealing from the initial value to eta_min over t_max steps (torch CosineAnnealingLR)",
    CosineConfig,
    build
);

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn stays_between_eta_min_and_initial_and_tracks_closed_form(
            t_max in 1u64..30, eta_frac in 0.0f64..1.0, lr in 1e-3f64..1.0,
        ) {
            let eta_min = lr * eta_frac;
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "cosine", "t_max": t_max, "eta_min": eta_min}),
                &mut opt, "lr", 80).unwrap();
            for (t, v) in seen.iter().enumerate() {
                let tol = 1e-9 * lr;
                prop_assert!(*v >= eta_min - tol && *v <= lr + tol, "t={} {}", t, v);
                let closed = eta_min
                    + (lr - eta_min) * (1.0 + (PI * t as f64 / t_max as f64).cos()) / 2.0;
                prop_assert!((v - closed).abs() <= tol, "t={} {} vs {}", t, v, closed);
            }
        }
    }
}
