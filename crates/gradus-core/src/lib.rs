//! Gradus core: plugin traits, the plugin registry, strict JSON configs, the seeded RNG and
//! named-tensor state dictionaries.
//!
//! Every algorithm crate of Gradus depends on this crate (and Candle) only. A component
//! implements one of the traits of [`plugin`] and registers itself with one macro line, e.g.
//! [`register_optimizer!`]; the runner then builds it by name from JSON.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod json_float;
pub mod json_strict;
pub mod limits;
mod macros;
pub mod plugin;
pub mod registry;
pub mod rng;
pub mod schema;
pub mod state_dict;
pub mod suggest;

pub use error::{Error, Result};
pub use plugin::optimizer::{NamedVar, Optimizer, UpdatePath};
pub use rng::SeededRng;
pub use state_dict::StateDict;

#[doc(hidden)]
pub use inventory;

/// The `schemars` this crate derives config schemas with: a plugin derives
/// `gradus_core::schemars::JsonSchema` with `#[schemars(crate = "gradus_core::schemars")]`
/// (see [`schema`]).
pub use schemars;

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
