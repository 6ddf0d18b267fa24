//! Optimizers: update parameters from gradients, with per-group hyperparameters and state.

use candle_core::backprop::GradStore;
use candle_core::Var;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::state_dict::StateDict;

/// Which implementation of the update an optimizer (or gradient clipping) runs: a value
/// carried by each optimizer and each clipping config, never process-wide state.
///
/// In JSON: `"path": "auto" | "fused" | "reference"` on an `optimizer` or `clip` object.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UpdatePath {
    /// The fused CPU kernel for each parameter where it is eligible (contiguous f32/f64 on the
    /// CPU, and a rule that has a kernel), the reference path for the others.
    #[default]
    Auto,
    /// Candle tensor ops for every parameter (any device, any float dtype).
    Reference,
    /// The fused kernel for every parameter; a step over an ineligible one is an error.
    Fused,
}

impl UpdatePath {
    /// The JSON name (`auto`, `reference`, `fused`).
    pub fn name(self) -> &'static str {
        match self {
            UpdatePath::Auto => "auto",
            UpdatePath::Reference => "reference",
            UpdatePath::Fused => "fused",
        }
    }
}

impl std::fmt::Display for UpdatePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A trainable variable with its name in the model's `VarMap` (`layers.0.weight`).
#[derive(Debug, Clone)]
pub struct NamedVar {
    /// Name used for parameter-group patterns and state-dict keys.
    pub name: String,
    /// The variable itself (shared storage with the model).
    pub var: Var,
}

impl NamedVar {
    /// Pairs a name with a variable.
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        NamedVar {
            name: name.into(),
            var,
        }
    }
}

/// An optimizer over a fixed set of named parameters split into groups.
///
/// Hyperparameters are addressed by name (`lr`, `momentum`, `beta1`, `beta2`, `weight_decay`,
/// ...) and group index, so that schedules can drive any of them.
pub trait Optimizer: Send {
    /// The registered name of the algorithm (`adam`).
    fn algorithm(&self) -> &str;

    /// Applies one update from `grads`; parameters without a gradient are left alone.
    fn step(&mut self, grads: &GradStore) -> Result<()>;

    /// The parameters this optimizer updates, in order.
    fn params(&self) -> Vec<NamedVar>;

    /// Number of parameter groups (at least 1).
    fn group_count(&self) -> usize;

    /// Names of the schedulable scalar hyperparameters.
    fn hyperparameter_names(&self) -> Vec<&'static str>;

    /// The value of hyperparameter `name` in `group`.
    fn hyperparameter(&self, group: usize, name: &str) -> Result<f64>;

    /// Sets hyperparameter `name` in `group`, validated as at construction.
    fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()>;

    /// All optimizer state as named tensors (`<param>.exp_avg`, `<param>.step`, ...).
    fn state_dict(&self) -> Result<StateDict>;

    /// Restores state saved by [`Optimizer::state_dict`]; any mismatch is an error.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()>;

    /// Learning rate of the first group.
    fn learning_rate(&self) -> Result<f64> {
        self.hyperparameter(0, "lr")
    }

    /// Sets the learning rate of every group.
    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        (0..self.group_count()).try_for_each(|g| self.set_hyperparameter(g, "lr", lr))
    }

    /// Switches to training mode: the parameters become the point where gradients are taken
    /// (schedule-free optimizers move them back from the averaged point to `y`). Optimizers
    /// without a train/eval split ignore it (the default: a no-op).
    fn train(&mut self) -> Result<()> {
        Ok(())
    }

    /// Switches to evaluation mode: the parameters become the point a user evaluates and saves
    /// (schedule-free optimizers move them to the averaged point `x`; stepping is then an error
    /// until [`Optimizer::train`]). Optimizers without a train/eval split ignore it (the
    /// default: a no-op).
    fn eval(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether [`Optimizer::eval`] moves the parameters to a different point than training
    /// uses (schedule-free optimizers). Default: `false`.
    fn has_eval_point(&self) -> bool {
        false
    }

    /// Whether a step needs a closure that re-evaluates the loss and gradients
    /// ([`Optimizer::step_with_closure`]; L-BFGS, torch's `step(closure)`), so that a plain
    /// [`Optimizer::step`] is an error. Default: `false`.
    fn needs_closure(&self) -> bool {
        false
    }

    /// One step driven by `closure`, which returns `(loss, gradients)` at the current
    /// parameters and may be called several times (a line search); returns the loss of the
    /// first call. The default calls it once and steps with its gradients, as torch's
    /// `step(closure)` of a first-order optimizer.
    fn step_with_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<(f64, GradStore)>,
    ) -> Result<f64> {
        let (loss, grads) = closure()?;
        self.step(&grads)?;
        Ok(loss)
    }

    /// The update path this optimizer takes. An optimizer with a single implementation (the
    /// default) reports [`UpdatePath::Auto`].
    fn update_path(&self) -> UpdatePath {
        UpdatePath::Auto
    }

    /// Chooses the update path. An optimizer with a single implementation (the default)
    /// accepts `auto` and `reference` and refuses `fused`, which it does not have.
    fn set_update_path(&mut self, path: UpdatePath) -> Result<()> {
        match path {
            UpdatePath::Fused => Err(Error::Unsupported(format!(
                "`{}` has no fused kernel; use the auto or reference path",
                self.algorithm()
            ))),
            UpdatePath::Auto | UpdatePath::Reference => Ok(()),
        }
    }
}

/// Builds an optimizer from its JSON config (without `"type"`), found at `path`.
pub type OptimizerBuild =
    fn(config: &Value, path: &str, params: &[NamedVar]) -> Result<Box<dyn Optimizer>>;
