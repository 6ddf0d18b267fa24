//! Initializers: draw a parameter tensor of a given shape from the seeded generator.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use crate::error::Result;
use crate::rng::SeededRng;

/// Fills a new parameter tensor.
pub trait Initializer: Send + Sync {
    /// A tensor of `shape` (PyTorch layout: `(out, in, k...)`), drawn from `rng`.
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor>;
}

/// Builds an initializer from its JSON config.
pub type InitializerBuild = fn(config: &Value, path: &str) -> Result<Box<dyn Initializer>>;
