//! `multi_step`: decay by `gamma` at each milestone (`torch.optim.lr_scheduler.MultiStepLR`).

use std::collections::BTreeMap;

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// Multiplies the hyperparameter by `gamma` at each milestone.
///
/// Chainable form: at `t` in `milestones`, `η ← η·γ^c` with `c` the number of times `t` is
/// listed (PyTorch counts repeats); otherwise unchanged. Closed form:
/// `η_t = initial·γ^(number of milestones ≤ t)`. Symbols: `γ` = `gamma`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MultiStepConfig {
    /// Steps at which to decay. Required (no default in torch.optim.lr_scheduler.MultiStepLR).
    pub milestones: Option<Vec<u64>>,
    /// Multiplicative decay. Default: `0.1` (torch.optim.lr_scheduler.MultiStepLR).
    pub gamma: f64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for MultiStepConfig {
    fn default() -> Self {
        MultiStepConfig {
            milestones: None,
            gamma: 0.1,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `multi_step` rule.
pub struct MultiStep {
    counts: BTreeMap<u64, u32>,
    gamma: f64,
}

impl Rule for MultiStep {
    const NAME: &'static str = "multi_step";

    fn value(&self, epoch: u64, current: f64, _initial: f64) -> f64 {
        match self.counts.get(&epoch) {
            None => current,
            // Python's `gamma ** count` is C `pow`.
            Some(&count) => current * self.gamma.powf(f64::from(count)),
        }
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: MultiStepConfig = parse_config(config, path)?;
    let milestones = required(&config.milestones, "milestones", path)?;
    if !config.gamma.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "invalid gamma: {}",
            config.gamma
        )));
    }
    let mut counts = BTreeMap::new();
    for m in milestones {
        *counts.entry(m).or_insert(0) += 1;
    }
    let rule = MultiStep {
        counts,
        gamma: config.gamma,
    };
    Chained::start(rule, &config.hyperparameter, optimizer, path)
}

gradus_core::register_schedule!(
    "multi_step",
    "decay by gamma at each milestone (torch MultiStepLR)",
    MultiStepConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn repeated_milestone_decays_twice() {
        let mut opt = FakeOptimizer::sgd(&[1.0]);
        let seen = run(
            json!({"type": "multi_step", "milestones": [2, 2], "gamma": 0.5}),
            &mut opt,
            "lr",
            4,
        )
        .unwrap();
        assert_eq!(seen, vec![1.0, 1.0, 0.25, 0.25]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_closed_form_within_bounds(
            milestones in proptest::collection::vec(0u64..40, 0..5),
            gamma in 0.0f64..=1.0, lr in 1e-4f64..1.0,
        ) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "multi_step", "milestones": milestones, "gamma": gamma}),
                &mut opt, "lr", 40).unwrap();
            for (t, v) in seen.iter().enumerate() {
                let passed = milestones.iter().filter(|&&m| m <= t as u64).count();
                let closed = lr * gamma.powi(passed as i32);
                prop_assert!(*v >= 0.0 && *v <= lr);
                prop_assert!((v - closed).abs() <= 1e-12 * lr, "t={} {} vs {}", t, v, closed);
            }
        }
    }
}
