//! Full-batch: batch gradient descent.

use gradus_core::config::parse_config;
use gradus_core::plugin::data::Batching;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One batch holding every sample, in data-set order: each optimizer step follows the exact
/// gradient of the training loss `(1/n) sum_i grad l_i` (batch gradient descent).
///
/// Stable (no sampling noise, so a fixed learning rate can converge) but each step costs a
/// full pass over the data and memory for all of it at once. There is nothing to shuffle: the
/// gradient of a sum does not depend on the order of its terms.
#[derive(Debug, Clone, Default)]
pub struct FullBatch;

/// Configuration of [`FullBatch`]: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FullConfig {}

impl Batching for FullBatch {
    fn epoch(&self, n: usize, rng: &mut SeededRng) -> Result<Vec<Vec<u32>>> {
        Ok(vec![super::order(n, false, rng)?])
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Batching>> {
    let _: FullConfig = parse_config(config, path)?;
    Ok(Box::new(FullBatch))
}

gradus_core::register_batching!(
    "full",
    "the whole training set per step (batch gradient descent)",
    FullConfig,
    build
);
