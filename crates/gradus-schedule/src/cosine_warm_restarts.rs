//! `cosine_warm_restarts`: cosine annealing with warm restarts, SGDR
//! (`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`).

use std::f64::consts::PI;

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// Cosine annealing from the initial value to `eta_min` over a cycle of `T_i` steps, then a
/// restart at the initial value; cycles grow by `t_mult` (Loshchilov & Hutter, SGDR,
/// <https://arxiv.org/abs/1608.03983>).
///
/// `η_t = η_min + (initial − η_min)·(1 + cos(π·T_cur/T_i))/2`, where `T_cur` counts the steps
/// since the last restart and `T_i` is the current cycle length (`T_0`, `T_0·T_mult`, ...).
/// Symbols: `T_0` = `t_0`, `T_mult` = `t_mult`, `η_min` = `eta_min`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CosineWarmRestartsConfig {
    /// Length of the first cycle, positive. Required (`T_0`, no default in torch.optim.lr_scheduler.CosineAnnealingWarmRestarts).
    pub t_0: Option<u64>,
    /// Growth factor of the cycle length, at least 1. Default: `1` (torch.optim.lr_scheduler.CosineAnnealingWarmRestarts).
    pub t_mult: u64,
    /// Lowest value. Default: `0.0` (torch.optim.lr_scheduler.CosineAnnealingWarmRestarts).
    pub eta_min: f64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for CosineWarmRestartsConfig {
    fn default() -> Self {
        CosineWarmRestartsConfig {
            t_0: None,
            t_mult: 1,
            eta_min: 0.0,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `cosine_warm_restarts` rule.
pub struct CosineWarmRestarts {
    t_0: u64,
    t_mult: u64,
    eta_min: f64,
}

impl CosineWarmRestarts {
    /// `(T_cur, T_i)` after `epoch` unit steps, exactly as PyTorch's incremental update
    /// (`T_cur += 1; if T_cur >= T_i: T_cur -= T_i; T_i *= T_mult`).
    fn position(&self, epoch: u64) -> (u64, u64) {
        if self.t_mult == 1 {
            return (epoch % self.t_0, self.t_0);
        }
        let (mut t_cur, mut t_i) = (epoch, self.t_0);
        while t_cur >= t_i {
            t_cur -= t_i;
            t_i = t_i.saturating_mul(self.t_mult);
        }
        (t_cur, t_i)
    }
}

impl Rule for CosineWarmRestarts {
    const NAME: &'static str = "cosine_warm_restarts";

    fn value(&self, epoch: u64, _current: f64, initial: f64) -> f64 {
        let (t_cur, t_i) = self.position(epoch);
        self.eta_min
            + (initial - self.eta_min) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: CosineWarmRestartsConfig = parse_config(config, path)?;
    let t_0 = required(&config.t_0, "t_0", path)?;
    if t_0 == 0 {
        return Err(Error::InvalidHyperparameter(
            "Expected positive integer T_0, but got 0".into(),
        ));
    }
    if config.t_mult < 1 {
        return Err(Error::InvalidHyperparameter(format!(
            "Expected integer T_mult >= 1, but got {}",
            config.t_mult
        )));
    }
    if !config.eta_min.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "Expected float or int eta_min, but got {}",
            config.eta_min
        )));
    }
    let rule = CosineWarmRestarts {
        t_0,
        t_mult: config.t_mult,
        eta_min: config.eta_min,
    };
    Chained::start(rule, &config.hyperparameter, optimizer, path)
}

gradus_core::register_schedule!(
    "cosine_warm_restarts",
    "cosine annealing with warm restarts every t_0·t_mult^i steps (torch CosineAnnealingWarmRestarts)",
    CosineWarmRestartsConfig,
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
        fn stays_within_bounds_and_restarts_at_initial(
            t_0 in 1u64..8, t_mult in 1u64..4, eta_frac in 0.0f64..1.0, lr in 1e-3f64..1.0,
        ) {
            let eta_min = lr * eta_frac;
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "cosine_warm_restarts", "t_0": t_0, "t_mult": t_mult,
                "eta_min": eta_min}), &mut opt, "lr", 60).unwrap();
            let tol = 1e-12 * lr;
            for v in &seen {
                prop_assert!(*v >= eta_min - tol && *v <= lr + tol);
            }
            // Restarts at 0, T_0, T_0 + T_0·T_mult, ...
            let (mut restart, mut len) = (0u64, t_0);
            while restart < 60 {
                prop_assert!((seen[restart as usize] - lr).abs() <= tol);
                restart += len;
                len *= t_mult;
            }
        }
    }
}
