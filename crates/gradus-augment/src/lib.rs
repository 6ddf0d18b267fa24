//! Gradus augment: seeded, batched data augmentation for images and token sequences.
//!
//! Image augmentations transform an [`ImageBatch`] `(n, c, h, w)` of f32 pixels; text
//! augmentations transform a token sequence (strings, or token ids through
//! [`text::build_id_augmentation`]). Every operation is a registered plugin built by
//! name from JSON (`{"type": "random_crop", "size": 32, "padding": 4}`), and every random
//! choice comes from the [`SeededRng`](gradus_core::SeededRng) passed in: the same seed gives
//! the same bits, whatever the number of threads.
//!
//! Image ops draw each sample's parameters in sample order first, then do the pixel work in
//! parallel across samples (rayon). The deterministic pixel cores live in [`functional`] and
//! reproduce torchvision.transforms.v2.functional (see `docs/augmentation.md`).
//!
//! A binary that builds augmentations by name must link this crate: `use gradus_augment as _;`.
#![deny(missing_docs)]

mod batch;
pub mod functional;
pub mod image;
pub mod params;
pub mod text;

#[cfg(test)]
mod conformance_tests;

pub use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch, TextAugmentation};

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
