//! Mini-batches: mini-batch gradient descent.

use gradus_core::config::parse_config;
use gradus_core::plugin::data::Batching;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `batch_size` samples per step, like `torch.utils.data.DataLoader(dataset, batch_size,
/// shuffle, drop_last)`: each epoch visits a fresh permutation (with `shuffle`) cut into
/// consecutive batches; the last batch is shorter when `batch_size` does not divide `n`,
/// unless `drop_last` drops it.
///
/// The standard compromise: the gradient estimate's variance falls as `1 / batch_size`, a
/// batch is large enough to use vector hardware and batch normalization, and an epoch still
/// takes `ceil(n / batch_size)` steps.
#[derive(Debug, Clone)]
pub struct MiniBatch {
    config: MiniBatchConfig,
}

/// Configuration of [`MiniBatch`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MiniBatchConfig {
    /// Samples per batch, at least 1. Default: `32` (Keras `Model.fit`; PyTorch's `DataLoader`
    /// defaults to `1`, which is the `stochastic` strategy).
    pub batch_size: usize,
    /// Draw a new permutation each epoch. Default: `true` (what training loops pass to
    /// PyTorch's `DataLoader`, whose own default is `False`).
    pub shuffle: bool,
    /// Drop the last batch when it is shorter than `batch_size`. Default: `false`
    /// (torch.utils.data.DataLoader).
    pub drop_last: bool,
}

impl Default for MiniBatchConfig {
    fn default() -> Self {
        MiniBatchConfig {
            batch_size: 32,
            shuffle: true,
            drop_last: false,
        }
    }
}

impl MiniBatch {
    /// Validates `config`.
    pub fn new(config: MiniBatchConfig) -> Result<Self> {
        if config.batch_size == 0 {
            // torch.utils.data.BatchSampler's wording.
            return Err(Error::InvalidHyperparameter(format!(
                "batch_size should be a positive integer value, but got batch_size={}",
                config.batch_size
            )));
        }
        Ok(MiniBatch { config })
    }

    /// Number of batches in an epoch over `n` samples: `ceil(n / batch_size)`, or
    /// `floor(n / batch_size)` with `drop_last` (as `len(DataLoader)`).
    pub fn num_batches(&self, n: usize) -> usize {
        let b = self.config.batch_size;
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }
}

impl Batching for MiniBatch {
    fn epoch(&self, n: usize, rng: &mut SeededRng) -> Result<Vec<Vec<u32>>> {
        let order = super::order(n, self.config.shuffle, rng)?;
        super::chunk(&order, self.config.batch_size, self.config.drop_last)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Batching>> {
    let config: MiniBatchConfig = parse_config(config, path)?;
    MiniBatch::new(config)
        .map(|m| Box::new(m) as Box<dyn Batching>)
        .map_err(|e| {
            Error::config(
                gradus_core::config::join_path(path, "batch_size"),
                e.to_string(),
            )
        })
}

gradus_core::register_batching!(
    "mini_batch",
    "batch_size samples per step, shuffled each epoch (mini-batch gradient descent)",
    MiniBatchConfig,
    build
);
