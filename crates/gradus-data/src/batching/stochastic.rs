//! Single-sample batches: stochastic gradient descent.

use gradus_core::config::parse_config;
use gradus_core::plugin::data::Batching;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One sample per step, in a fresh random order each epoch (stochastic gradient descent in
/// its original sense; the same as `mini_batch` with `batch_size = 1`).
///
/// Each step is cheap and its gradient `grad l_i` is an unbiased but noisy estimate of the
/// full gradient: the noise can help leave sharp minima, but needs a decaying learning rate
/// to converge, and single samples use vector hardware poorly. Batch normalization cannot
/// train on batches of one.
#[derive(Debug, Clone)]
pub struct Stochastic {
    config: StochasticConfig,
}

/// Configuration of [`Stochastic`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StochasticConfig {
    /// Visit the samples in a new random order each epoch. Default: `true` (stochastic
    /// gradient descent samples at random; PyTorch's `DataLoader` leaves `shuffle=False`).
    pub shuffle: bool,
}

impl Default for StochasticConfig {
    fn default() -> Self {
        StochasticConfig { shuffle: true }
    }
}

impl Stochastic {
    /// Builds the strategy.
    pub fn new(config: StochasticConfig) -> Self {
        Stochastic { config }
    }
}

impl Batching for Stochastic {
    fn epoch(&self, n: usize, rng: &mut SeededRng) -> Result<Vec<Vec<u32>>> {
        super::chunk(&super::order(n, self.config.shuffle, rng)?, 1, false)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Batching>> {
    let config: StochasticConfig = parse_config(config, path)?;
    Ok(Box::new(Stochastic::new(config)))
}

gradus_core::register_batching!(
    "stochastic",
    "one sample per step, shuffled each epoch (stochastic gradient descent)",
    StochasticConfig,
    build
);
