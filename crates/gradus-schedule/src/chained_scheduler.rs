//! `chained`: several schedules stepped together (`torch.optim.lr_scheduler.ChainedScheduler`).

use std::collections::BTreeMap;

use gradus_core::config::{index_path, join_path, parse_config};
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driven::{tagged_state, untag_state};

/// Steps every schedule of `schedules`, in order, at each step (PyTorch's `ChainedScheduler`).
///
/// The children are built in order through the registry (any registered schedule), each on
/// the values its predecessors left, as PyTorch's schedulers are constructed one after another
/// on one optimizer before they are chained. Chainable children (`exponential`,
/// `multiplicative`, `linear`, `constant_factor`, `step`, `multi_step`, ...) compose: their
/// factors multiply (`linear` warm-up chained with `exponential` decay gives
/// `initial·φ_linear(t)·γᵗ`); a closed-form child (`wsd`, `one_cycle`) overwrites what the
/// children before it wrote. The metric passed to [`Schedule::step`] goes to every child.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChainedConfig {
    /// Child schedule configs, each with its `type`, at least one. Required.
    #[schemars(schema_with = "gradus_core::schema::schedules")]
    pub schedules: Vec<Value>,
}

/// The `chained` schedule.
pub struct ChainedScheduler {
    children: Vec<Box<dyn Schedule>>,
    /// Set by a state load, until the next step.
    resumed: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainedSchedulerState {
    children: Vec<Value>,
}

impl Schedule for ChainedScheduler {
    fn step(&mut self, optimizer: &mut dyn Optimizer, metric: Option<f64>) -> Result<()> {
        for (k, child) in self.children.iter_mut().enumerate() {
            if self.resumed && k > 0 {
                // A resumed chainable child starts from its saved values; in a chain those are
                // the ones its predecessor has just written.
                let mut state = child.state();
                if let Some((name, _)) = driven(&state) {
                    let values = (0..optimizer.group_count())
                        .map(|g| optimizer.hyperparameter(g, &name))
                        .collect::<Result<Vec<f64>>>()?;
                    if let Some(last) = state.pointer_mut("/state/driven/last") {
                        *last = Value::from(values);
                    }
                    child.load_state(&state)?;
                }
            }
            child.step(optimizer, metric)?;
        }
        self.resumed = false;
        Ok(())
    }

    /// The children's states, each child's last-written values replaced by the values the
    /// whole chain left (the last child's that drives the same hyperparameter): a resumed
    /// child starts from those, as a running one reads them from the optimizer.
    fn state(&self) -> Value {
        let mut children: Vec<Value> = self.children.iter().map(|c| c.state()).collect();
        let mut finals: BTreeMap<String, Value> = BTreeMap::new();
        for child in &children {
            if let Some((name, last)) = driven(child) {
                finals.insert(name, last);
            }
        }
        for child in &mut children {
            if let Some((name, _)) = driven(child) {
                if let Some(last) = child.pointer_mut("/state/driven/last") {
                    *last = finals[&name].clone();
                }
            }
        }
        tagged_state("chained", &ChainedSchedulerState { children })
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let saved: ChainedSchedulerState = untag_state("chained", state)?;
        if saved.children.len() != self.children.len() {
            return Err(Error::StateMismatch(format!(
                "chained state has {} schedules, this one has {}",
                saved.children.len(),
                self.children.len()
            )));
        }
        for (child, s) in self.children.iter_mut().zip(&saved.children) {
            child.load_state(s)?;
        }
        self.resumed = true;
        Ok(())
    }
}

/// The hyperparameter and last-written values of a chainable child's state, if it has them.
fn driven(state: &Value) -> Option<(String, Value)> {
    let driven = state.pointer("/state/driven")?;
    let name = driven.get("hyperparameter")?.as_str()?.to_string();
    Some((name, driven.get("last")?.clone()))
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: ChainedConfig = parse_config(config, path)?;
    let list_path = join_path(path, "schedules");
    if config.schedules.is_empty() {
        return Err(Error::config(
            list_path,
            "ChainedScheduler expects at least one scheduler",
        ));
    }
    let children = config
        .schedules
        .iter()
        .enumerate()
        .map(|(i, child)| crate::build_schedule(child, &index_path(&list_path, i), optimizer))
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(ChainedScheduler {
        children,
        resumed: false,
    }))
}

gradus_core::register_schedule!(
    "chained",
    "several schedules stepped together, their factors composed (torch ChainedScheduler)",
    ChainedConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn chained_factors_multiply(g1 in 0.5f64..1.0, g2 in 0.5f64..1.0, lr in 1e-3f64..1.0) {
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let config = json!({"type": "chained", "schedules": [
                {"type": "exponential", "gamma": g1},
                {"type": "multiplicative", "factor": g2},
            ]});
            let seen = run(config, &mut opt, "lr", 20).unwrap();
            let mut expected = lr;
            for v in &seen {
                prop_assert!((v - expected).abs() <= 1e-14 * lr);
                expected = expected * g1 * g2;
            }
        }
    }

    #[test]
    fn warmup_then_decay_as_pytorch_composes_them() {
        // LinearLR(start 0.5, total 2) chained with ExponentialLR(0.9): φ_linear(t) · 0.9ᵗ.
        let mut opt = FakeOptimizer::sgd(&[1.0]);
        let config = json!({"type": "chained", "schedules": [
            {"type": "linear", "start_factor": 0.5, "total_iters": 2},
            {"type": "exponential", "gamma": 0.9},
        ]});
        let seen = run(config, &mut opt, "lr", 5).unwrap();
        let linear = [0.5, 0.75, 1.0, 1.0, 1.0];
        for (t, v) in seen.iter().enumerate() {
            let expected = linear[t] * 0.9f64.powi(t as i32);
            assert!((v - expected).abs() < 1e-12, "step {t}: {v} vs {expected}");
        }
    }

    #[test]
    fn needs_a_schedule() {
        let mut opt = FakeOptimizer::sgd(&[1.0]);
        assert!(run(json!({"type": "chained"}), &mut opt, "lr", 1).is_err());
    }
}
