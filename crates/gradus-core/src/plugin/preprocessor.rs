//! Input preprocessing fitted on the training split only.

use candle_core::Tensor;
use serde_json::Value;

use crate::error::Result;
use crate::state_dict::StateDict;

/// A fitted, invertible transform of input features.
pub trait Preprocessor: Send {
    /// Learns statistics from the training features `(N, features...)`.
    fn fit(&mut self, train: &Tensor) -> Result<()>;

    /// Applies the fitted transform.
    fn transform(&self, x: &Tensor) -> Result<Tensor>;

    /// Undoes [`Preprocessor::transform`].
    fn inverse(&self, x: &Tensor) -> Result<Tensor>;

    /// Fitted statistics, saved next to the model weights.
    fn state(&self) -> StateDict;

    /// Restores statistics saved by [`Preprocessor::state`].
    fn load_state(&mut self, state: &StateDict) -> Result<()>;
}

/// Builds a preprocessor from its JSON config.
pub type PreprocessorBuild = fn(config: &Value, path: &str) -> Result<Box<dyn Preprocessor>>;
