//! `sequential`: schedules one after another at milestones
//! (`torch.optim.lr_scheduler.SequentialLR`).

use gradus_core::config::{index_path, join_path, parse_config};
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driven::{check_name, tagged_state, untag_state};

/// Runs `schedules[0]` until `milestones[0]`, then `schedules[1]` restarted from its step 0,
/// and so on (PyTorch's `SequentialLR`).
///
/// Every child is built through the registry from its own config (any registered schedule,
/// nested `sequential` included) against the optimizer's values as they were when the
/// sequential schedule was built, so each child's initial value is the group's original one
/// (PyTorch's shared `initial_lr`). At a milestone the child's hyperparameter is reset to that
/// initial value and the child is rebuilt, which gives its step-0 values: PyTorch's
/// `scheduler.step(0)`. The metric passed to [`Schedule::step`] goes to the active child.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SequentialConfig {
    /// Child schedule configs, each with its `type`. Required (no default in torch.optim.lr_scheduler.SequentialLR).
    #[schemars(schema_with = "gradus_core::schema::schedules")]
    pub schedules: Vec<Value>,
    /// Strictly increasing steps at which the next child takes over; one fewer than
    /// `schedules`. Required (no default in torch.optim.lr_scheduler.SequentialLR).
    pub milestones: Vec<u64>,
}

struct Child {
    config: Value,
    path: String,
    hyperparameter: String,
    initial: Vec<f64>,
    schedule: Box<dyn Schedule>,
}

/// The `sequential` schedule.
pub struct Sequential {
    children: Vec<Child>,
    milestones: Vec<u64>,
    last_epoch: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequentialState {
    last_epoch: u64,
    children: Vec<Value>,
}

impl Child {
    /// Resets the driven hyperparameter to its initial values and (re)builds the child, which
    /// writes its step-0 values.
    fn rebuild(&mut self, optimizer: &mut dyn Optimizer) -> Result<()> {
        for (g, v) in self.initial.iter().enumerate() {
            optimizer.set_hyperparameter(g, &self.hyperparameter, *v)?;
        }
        self.schedule = crate::build_schedule(&self.config, &self.path, optimizer)?;
        Ok(())
    }
}

impl Schedule for Sequential {
    fn step(&mut self, optimizer: &mut dyn Optimizer, metric: Option<f64>) -> Result<()> {
        let epoch = self.last_epoch + 1;
        // bisect_right: the number of milestones <= epoch.
        let index = self.milestones.partition_point(|&m| m <= epoch);
        let child = &mut self.children[index];
        if index > 0 && self.milestones[index - 1] == epoch {
            child.rebuild(optimizer)?;
        } else {
            child.schedule.step(optimizer, metric)?;
        }
        self.last_epoch = epoch;
        Ok(())
    }

    fn state(&self) -> Value {
        tagged_state(
            "sequential",
            &SequentialState {
                last_epoch: self.last_epoch,
                children: self.children.iter().map(|c| c.schedule.state()).collect(),
            },
        )
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let saved: SequentialState = untag_state("sequential", state)?;
        if saved.children.len() != self.children.len() {
            return Err(Error::StateMismatch(format!(
                "sequential state has {} schedules, this one has {}",
                saved.children.len(),
                self.children.len()
            )));
        }
        for (child, s) in self.children.iter_mut().zip(&saved.children) {
            child.schedule.load_state(s)?;
        }
        self.last_epoch = saved.last_epoch;
        Ok(())
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: SequentialConfig = parse_config(config, path)?;
    let n = config.schedules.len();
    if n == 0 {
        return Err(Error::config(
            join_path(path, "schedules"),
            "SequentialLR expects at least one scheduler, but got no scheduler",
        ));
    }
    if config.milestones.len() + 1 != n {
        return Err(Error::config(
            join_path(path, "milestones"),
            format!(
                "Sequential Schedulers expects number of schedulers provided to be one more \
                 than the number of milestone points, but got number of schedulers {n} and the \
                 number of milestones to be equal to {}",
                config.milestones.len()
            ),
        ));
    }
    if config.milestones.windows(2).any(|w| w[0] >= w[1]) || config.milestones.first() == Some(&0) {
        return Err(Error::config(
            join_path(path, "milestones"),
            format!(
                "milestones must be positive and strictly increasing, got {:?}",
                config.milestones
            ),
        ));
    }
    let list_path = join_path(path, "schedules");
    let mut children = Vec::with_capacity(n);
    for (i, child_config) in config.schedules.iter().enumerate() {
        let child_path = index_path(&list_path, i);
        let hyperparameter = match child_config.get("hyperparameter") {
            None => "lr".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(Error::config(
                    join_path(&child_path, "hyperparameter"),
                    "expected a string",
                ))
            }
        };
        check_name(
            optimizer,
            &hyperparameter,
            &join_path(&child_path, "hyperparameter"),
        )?;
        let initial = (0..optimizer.group_count())
            .map(|g| optimizer.hyperparameter(g, &hyperparameter))
            .collect::<Result<Vec<_>>>()?;
        children.push((child_config.clone(), child_path, hyperparameter, initial));
    }
    // Build the later children first, each from the original values, and the first one last,
    // so that the optimizer ends with the first child's step-0 values (PyTorch resets `lr` to
    // `initial_lr` and redoes the first scheduler's initial step).
    let mut built: Vec<Option<Child>> = (0..n).map(|_| None).collect();
    for i in (1..n).chain(std::iter::once(0)) {
        let (config, path, hyperparameter, initial) = children[i].clone();
        for (g, v) in initial.iter().enumerate() {
            optimizer.set_hyperparameter(g, &hyperparameter, *v)?;
        }
        let schedule = crate::build_schedule(&config, &path, optimizer)?;
        built[i] = Some(Child {
            config,
            path,
            hyperparameter,
            initial,
            schedule,
        });
    }
    Ok(Box::new(Sequential {
        children: built.into_iter().flatten().collect(),
        milestones: config.milestones,
        last_epoch: 0,
    }))
}

gradus_core::register_schedule!(
    "sequential",
    "schedules one after another, switching at milestones (torch SequentialLR)",
    SequentialConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use serde_json::json;

    #[test]
    fn milestone_count_must_match() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let config = json!({"type": "sequential", "milestones": [3, 5],
            "schedules": [{"type": "exponential", "gamma": 0.5}]});
        let err = run(config, &mut opt, "lr", 1).unwrap_err();
        assert!(
            err.to_string()
                .contains("one more than the number of milestone"),
            "{err}"
        );
    }

    #[test]
    fn child_errors_name_their_path() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let config = json!({"type": "sequential", "milestones": [3],
            "schedules": [{"type": "exponential", "gamma": 0.5}, {"type": "cosine", "tmax": 3}]});
        let err = run(config, &mut opt, "lr", 1).unwrap_err();
        assert!(err.to_string().contains("schedule.schedules[1]"), "{err}");
    }

    #[test]
    fn second_child_restarts_from_the_initial_value() {
        let mut opt = FakeOptimizer::sgd(&[1.0]);
        let config = json!({"type": "sequential", "milestones": [3], "schedules": [
            {"type": "exponential", "gamma": 0.5}, {"type": "step", "step_size": 2, "gamma": 0.1}]});
        let seen = run(config, &mut opt, "lr", 7).unwrap();
        let want = [1.0, 0.5, 0.25, 1.0, 1.0, 0.1, 0.1];
        for (a, b) in seen.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{seen:?}");
        }
    }
}
