//! A test double of [`Optimizer`]: stored per-group hyperparameters, no parameters.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict};
use serde_json::Value;

/// Hyperparameters by name, one value per group; `step` does nothing.
#[derive(Debug, Clone)]
pub struct FakeOptimizer {
    pub names: Vec<&'static str>,
    pub groups: Vec<Vec<f64>>,
}

impl FakeOptimizer {
    /// An SGD-like double: `lr`, `momentum`, `weight_decay`.
    pub fn sgd(lrs: &[f64]) -> Self {
        FakeOptimizer {
            names: vec!["lr", "momentum", "weight_decay"],
            groups: lrs.iter().map(|&lr| vec![lr, 0.9, 0.0]).collect(),
        }
    }

    /// An Adam-like double: `lr`, `beta1`, `beta2`, `eps`, `weight_decay`.
    pub fn adam(lrs: &[f64]) -> Self {
        FakeOptimizer {
            names: vec!["lr", "beta1", "beta2", "eps", "weight_decay"],
            groups: lrs
                .iter()
                .map(|&lr| vec![lr, 0.9, 0.999, 1e-8, 0.0])
                .collect(),
        }
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| Error::InvalidHyperparameter(format!("no hyperparameter `{name}`")))
    }

    /// Sets `name` in `group`, panicking on an unknown name (tests only).
    #[allow(dead_code)]
    pub fn set_hyperparameter_for_test(&mut self, group: usize, name: &str, value: f64) {
        self.set_hyperparameter(group, name, value)
            .expect("known hyperparameter");
    }

    /// The value of `name` in `group`.
    pub fn get(&self, group: usize, name: &str) -> f64 {
        self.hyperparameter(group, name)
            .expect("known hyperparameter")
    }
}

impl Optimizer for FakeOptimizer {
    fn algorithm(&self) -> &str {
        "fake"
    }

    fn step(&mut self, _grads: &GradStore) -> Result<()> {
        Ok(())
    }

    fn params(&self) -> Vec<NamedVar> {
        Vec::new()
    }

    fn group_count(&self) -> usize {
        self.groups.len()
    }

    fn hyperparameter_names(&self) -> Vec<&'static str> {
        self.names.clone()
    }

    fn hyperparameter(&self, group: usize, name: &str) -> Result<f64> {
        let i = self.index(name)?;
        self.groups
            .get(group)
            .map(|g| g[i])
            .ok_or_else(|| Error::InvalidHyperparameter(format!("no group {group}")))
    }

    fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        let i = self.index(name)?;
        if !value.is_finite() {
            return Err(Error::InvalidHyperparameter(format!(
                "invalid {name} value: {value}"
            )));
        }
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| Error::InvalidHyperparameter(format!("no group {group}")))?;
        g[i] = value;
        Ok(())
    }

    fn state_dict(&self) -> Result<StateDict> {
        let mut sd = StateDict::new();
        for (g, values) in self.groups.iter().enumerate() {
            for (name, v) in self.names.iter().zip(values) {
                sd.insert(
                    format!("param_groups.{g}.{name}"),
                    Tensor::new(*v, &Device::Cpu)?,
                );
            }
        }
        Ok(sd)
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        for (g, values) in self.groups.iter_mut().enumerate() {
            for (name, v) in self.names.iter().zip(values.iter_mut()) {
                *v = state
                    .require(&format!("param_groups.{g}.{name}"), &[])?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(())
    }
}

/// Builds `config` on `opt` and returns the value of `name` (group 0) in force during each of
/// `steps` optimizer steps, stepping the schedule after each.
pub fn run(config: Value, opt: &mut FakeOptimizer, name: &str, steps: usize) -> Result<Vec<f64>> {
    let mut schedule: Box<dyn Schedule> = crate::build_schedule(&config, "schedule", opt)?;
    let mut seen = Vec::with_capacity(steps);
    for _ in 0..steps {
        seen.push(opt.hyperparameter(0, name)?);
        schedule.step(opt, None)?;
    }
    Ok(seen)
}
