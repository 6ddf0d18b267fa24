//! The object-safe trait of each plugin kind and the signature of its constructor.
//!
//! Algorithm crates implement these traits and register constructors with the
//! `register_*!` macros; the runner only ever sees `Box<dyn Trait>`.

pub mod augment;
pub mod data;
pub mod initializer;
pub mod layer;
pub mod loss;
pub mod optimizer;
pub mod preprocessor;
pub mod regularizer;
pub mod schedule;
