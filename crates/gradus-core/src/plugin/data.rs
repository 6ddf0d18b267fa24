//! Data sources and batching strategies.

use candle_core::Tensor;
use serde_json::Value;

use crate::error::Result;
use crate::rng::SeededRng;

/// What the targets of a data set mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Task {
    /// Class indices `0..num_classes` (u32 targets).
    Classification {
        /// Number of classes.
        num_classes: usize,
    },
    /// Real-valued targets `(N, outputs)`.
    Regression,
}

/// An in-memory data set: features `(N, sample shape...)` and targets.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Features, first dimension the sample index.
    pub features: Tensor,
    /// Targets: `(N,)` u32 class indices, or `(N, k)` floats for regression.
    pub targets: Tensor,
    /// What the targets mean.
    pub task: Task,
}

/// Produces a data set.
pub trait DataSource: Send {
    /// Loads (or generates) the data; `rng` serves generated data sets.
    fn load(&self, rng: &mut SeededRng) -> Result<Dataset>;
}

/// Splits one epoch over `n` samples into batches of sample indices.
pub trait Batching: Send {
    /// The batches of one epoch, in order; `rng` serves shuffling.
    fn epoch(&self, n: usize, rng: &mut SeededRng) -> Result<Vec<Vec<u32>>>;
}

/// Builds a data source from its JSON config.
pub type DataSourceBuild = fn(config: &Value, path: &str) -> Result<Box<dyn DataSource>>;

/// Builds a batching strategy from its JSON config.
pub type BatchingBuild = fn(config: &Value, path: &str) -> Result<Box<dyn Batching>>;
