//! Data augmentation of image batches and token sequences.

use serde_json::Value;

use crate::error::Result;
use crate::rng::SeededRng;

/// A batch of images `(n, c, h, w)` as row-major f32 pixels, with optional soft targets
/// `(n, num_classes)` that mixing augmentations (mixup, cutmix) update.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    /// Pixels, row-major `(n, c, h, w)`.
    pub pixels: Vec<f32>,
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Soft targets, row-major `(n, num_classes)`, when the task has classes.
    pub targets: Option<Vec<f32>>,
    /// Number of classes of `targets`.
    pub num_classes: usize,
}

/// A random transform of an image batch; each sample draws its own parameters.
pub trait ImageAugmentation: Send + Sync {
    /// Transforms `batch` in place (its size may change, e.g. a crop).
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()>;
}

/// A random transform of one token sequence.
pub trait TextAugmentation: Send + Sync {
    /// Returns the transformed sequence.
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>>;
}

/// Builds an image augmentation from its JSON config.
pub type ImageAugmentationBuild =
    fn(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>>;

/// Builds a text augmentation from its JSON config.
pub type TextAugmentationBuild =
    fn(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>>;
