//! Losses: model output and targets in, a differentiable scalar out.

use candle_core::Tensor;
use serde_json::Value;

use crate::error::Result;

/// A training loss: `compute(output, targets)` is the mean loss of a batch as a scalar tensor
/// through which gradients flow into `output`.
///
/// Targets are whatever the data set holds: class indices (`u32`), probabilities after mixing
/// augmentations (floats of the output's shape), or regression values; a loss that cannot take
/// the targets it is given returns an error (a shape error names both shapes), never panics.
pub trait Loss: Send + Sync {
    /// The mean loss of a batch (a scalar tensor in the output's dtype).
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor>;

    /// The registered name (`cross_entropy`, ...).
    fn name(&self) -> &str;
}

/// Builds a loss from its JSON config (without `"type"`), found at `path`.
pub type LossBuild = fn(config: &Value, path: &str) -> Result<Box<dyn Loss>>;
