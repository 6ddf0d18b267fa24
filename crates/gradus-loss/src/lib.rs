//! Gradus losses: what a model is trained to minimize, each with PyTorch's formula and mean
//! reduction, usable from code and by name from JSON as
//! [`LossKind`] plugins.
//!
//! | name | type | PyTorch |
//! |---|---|---|
//! | `cross_entropy` | [`CrossEntropy`] | `torch.nn.CrossEntropyLoss(label_smoothing=)`, class indices or probabilities |
//! | `mse` | [`Mse`] | `torch.nn.MSELoss()` |
//! | `bce_with_logits` | [`BceWithLogits`] | `torch.nn.BCEWithLogitsLoss()` |
//!
//! A loss implements [`Loss`] (`compute(output, targets)`,
//! a scalar tensor differentiable in `output`) and registers itself with one
//! [`register_loss!`](gradus_core::register_loss) line; a plugin crate adds a loss the same
//! way (`examples/custom-optimizer` adds `huber`). Options of the PyTorch classes that are not
//! implemented (`weight`, `ignore_index`, `reduction`, `pos_weight`) are unknown fields: a
//! config naming one is an error that names it.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use gradus_loss::{build_loss, CrossEntropy, CrossEntropyConfig, Loss};
//!
//! # fn main() -> gradus_core::Result<()> {
//! let logits = Tensor::new(&[[2.0f64, 0.5, -1.0], [0.1, 0.2, 0.3]], &Device::Cpu)?;
//! let labels = Tensor::new(&[0u32, 2], &Device::Cpu)?;
//! // From JSON, through the registry ...
//! let by_name = build_loss(&serde_json::json!({"type": "cross_entropy", "label_smoothing": 0.1}), "loss")?;
//! // ... or from code.
//! let typed = CrossEntropy::new(CrossEntropyConfig { label_smoothing: 0.1 })?;
//! let a = by_name.compute(&logits, &labels)?.to_scalar::<f64>()?;
//! let b = typed.compute(&logits, &labels)?.to_scalar::<f64>()?;
//! assert_eq!(a, b);
//! assert!((a - 0.7016270724432006).abs() < 1e-12);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod bce_with_logits;
pub mod cross_entropy;
pub mod mse;
mod targets;

pub use bce_with_logits::{BceWithLogits, BceWithLogitsConfig};
pub use cross_entropy::{cross_entropy, cross_entropy_soft, CrossEntropy, CrossEntropyConfig};
pub use gradus_core::plugin::loss::Loss;
pub use mse::{Mse, MseConfig};
pub use targets::aligned_targets;

use gradus_core::registry::{resolve, LossKind};
use gradus_core::Result;
use serde_json::Value;

/// Builds the loss `{"type": name, ...}` found at JSON path `path` through the registry, so a
/// plugin loss linked into the binary is found like a built-in.
///
/// Configs are strict: an unknown field is an error naming `path` and the nearest valid field;
/// an unknown `type` lists the registered losses and suggests the nearest.
pub fn build_loss(config: &Value, path: &str) -> Result<Box<dyn Loss>> {
    let (entry, rest) = resolve::<LossKind>(config, path)?;
    (entry.build)(&rest, path)
}

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
