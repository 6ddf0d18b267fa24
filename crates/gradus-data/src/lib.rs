//! Gradus data: data sources, train/validation/test splits and batching strategies.
//!
//! Every source and batching strategy is a registered plugin, built by name from JSON:
//!
//! | kind | name | what |
//! | --- | --- | --- |
//! | data source | [`digits`](digits::Digits) | the embedded UCI / scikit-learn handwritten digits (1,797 8x8 images, 10 classes) |
//! | data source | [`csv`](csv_source::CsvSource) | a numeric CSV file, classification or regression |
//! | data source | [`idx`](idx::IdxSource) | MNIST-style IDX image and label files, optionally gzipped |
//! | data source | [`synthetic`](synthetic::Synthetic) | two moons, spirals, blobs, linear and polynomial regression |
//! | batching | [`full`](batching::FullBatch) | the whole set per step: batch gradient descent |
//! | batching | [`stochastic`](batching::Stochastic) | one sample per step: stochastic gradient descent |
//! | batching | [`mini_batch`](batching::MiniBatch) | `batch_size` samples per step: mini-batch gradient descent |
//!
//! [`split()`] divides a [`Dataset`] into train / validation / test parts (optionally
//! stratified), and [`Loader`] iterates over the batches of an epoch without the runner:
//!
//! ```
//! use gradus_core::SeededRng;
//! use gradus_core::plugin::data::DataSource;
//! use gradus_data::{split, Loader, MiniBatch, MiniBatchConfig, SplitConfig};
//!
//! # fn main() -> gradus_core::Result<()> {
//! let mut rng = SeededRng::new(0);
//! let digits = gradus_data::Digits::new(Default::default())?.load(&mut rng)?;
//! let parts = split(&digits, &SplitConfig { test: 0.2, stratify: true, ..Default::default() }, &mut rng)?;
//! let loader = Loader::new(parts.train, Box::new(MiniBatch::new(MiniBatchConfig::default())?), 0);
//! let epoch = loader.epoch(0)?;
//! assert_eq!(epoch.len(), 45); // ceil(1437 / 32) batches
//! for batch in epoch {
//!     let (x, y) = batch?;
//!     assert_eq!(x.dims()[1..], [1, 8, 8]);
//!     assert_eq!(x.dims()[0], y.dims()[0]);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! All features are `f32`; classification targets are `(N,)` `u32` class indices and
//! regression targets `(N, 1)` `f32`. Data is loaded on the CPU.
#![deny(missing_docs)]

pub mod batching;
mod column;
pub mod csv_source;
pub mod digits;
mod gather;
pub mod idx;
mod loader;
pub mod split;
pub mod synthetic;
mod tensors;

pub use batching::{
    FullBatch, FullConfig, MiniBatch, MiniBatchConfig, Stochastic, StochasticConfig,
};
pub use column::Column;
pub use csv_source::{CsvConfig, CsvSource, CsvTask};
pub use digits::{Digits, DigitsConfig, Layout};
pub use gather::gather;
pub use gradus_core::plugin::data::{Batching, DataSource, Dataset, Task};
pub use idx::{IdxConfig, IdxSource};
pub use loader::{Epoch, Loader};
pub use split::{split, split_indices, SplitConfig, SplitIndices, Splits};
pub use synthetic::{Synthetic, SyntheticConfig, SyntheticKind};

#[cfg(test)]
mod tests {
    use gradus_core::registry::catalog;

    #[test]
    fn every_component_is_registered() {
        let names = |kind| -> Vec<&'static str> {
            catalog(Some(kind))
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect()
        };
        assert_eq!(names("data_source"), ["csv", "digits", "idx", "synthetic"]);
        assert_eq!(names("batching"), ["full", "mini_batch", "stochastic"]);
    }
}

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
