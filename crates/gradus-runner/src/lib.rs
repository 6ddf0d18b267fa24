//! The Gradus runner: the `gradus` command line and the library behind it.
//!
//! Linking this crate links every Gradus component crate, so their registrations are present
//! in the binary (a crate nothing names is dropped by the linker, registrations and all).
#![deny(missing_docs)]

pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod device;
pub mod experiment;
pub mod fuzz;
pub mod html;
pub mod lab;
pub mod list;
pub mod metrics;
pub mod optimizer_controls;
pub mod overrides;
pub mod pipeline;
pub mod plots;
pub mod replay;
pub mod run;
pub mod schema;
pub mod signals;
pub mod threads;
pub mod train;

// Name every component crate so that the linker keeps their registrations.
use gradus_augment as _;
use gradus_data as _;
use gradus_init as _;
use gradus_layers as _;
use gradus_loss as _;
use gradus_norm as _;
use gradus_optim as _;
use gradus_regularize as _;
use gradus_schedule as _;

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
