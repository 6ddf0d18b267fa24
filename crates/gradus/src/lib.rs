//! Gradus: optimizers, schedules, losses, regularizers, initializers, normalization, augmentation and
//! data pipelines for Candle, re-exported from one crate behind features (all on by default).
//!
//! The optimizer lab (`gradus-lab`) is behind the non-default feature `lab`.
//!
//! Each module is the crate of the same name: depend on `gradus-optim` alone if that is all you
//! need. Naming this facade also links every enabled component, so all of them are registered.
#![deny(missing_docs)]

pub use gradus_core as core;

#[cfg(feature = "augment")]
pub use gradus_augment as augment;
#[cfg(feature = "data")]
pub use gradus_data as data;
#[cfg(feature = "init")]
pub use gradus_init as init;
#[cfg(feature = "lab")]
pub use gradus_lab as lab;
#[cfg(feature = "layers")]
pub use gradus_layers as layers;
#[cfg(feature = "loss")]
pub use gradus_loss as loss;
#[cfg(feature = "norm")]
pub use gradus_norm as norm;
#[cfg(feature = "optim")]
pub use gradus_optim as optim;
#[cfg(feature = "regularize")]
pub use gradus_regularize as regularize;
#[cfg(feature = "schedule")]
pub use gradus_schedule as schedule;

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
