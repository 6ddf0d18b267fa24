//! Schedules: drive an optimizer's hyperparameters (lr, momentum, betas, ...) over time.

use serde_json::Value;

use crate::error::Result;
use crate::plugin::optimizer::Optimizer;

/// A stateful schedule, stepped once per optimizer step or once per epoch (the caller decides).
///
/// Construction may already set the hyperparameters for step 0 (as PyTorch's schedulers do).
pub trait Schedule: Send {
    /// Advances one position and writes the new values into `optimizer`; `metric` feeds
    /// metric-driven schedules such as `reduce_on_plateau`.
    fn step(&mut self, optimizer: &mut dyn Optimizer, metric: Option<f64>) -> Result<()>;

    /// The schedule's state (counters, best metric, ...) as JSON.
    fn state(&self) -> Value;

    /// Restores state saved by [`Schedule::state`].
    fn load_state(&mut self, state: &Value) -> Result<()>;
}

/// Builds a schedule from its JSON config; may write step-0 values into `optimizer`.
pub type ScheduleBuild =
    fn(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>>;
