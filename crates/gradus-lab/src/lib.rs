//! Gradus lab: every registered optimizer, schedule and clipping mode run on small 2-D
//! problems, and drawn: the pictures of the optimization lecture made by the real optimizers.
//!
//! - [`problem`]: the `problem` plugin kind ([`Problem`], [`register_problem!`]) and its
//!   registry; [`problems`]: the built-ins (`quadratic`, `rosenbrock`, `beale`, `himmelblau`,
//!   `rastrigin`, `saddle`, `monkey_saddle`, `plateau`, `cliff`, `least_squares`).
//! - [`experiment`]: the strict experiment JSON (problem, start, steps, noise, runs);
//!   [`run`]: the loop (gradient, noise, clip, optimizer step, schedule step) and its traces;
//!   [`summary`], [`plot`], [`output`]: what is measured and written; [`presets`]: the
//!   lecture's figures.
//!
//! ```
//! use gradus_lab::{run_experiment, summarize, Experiment};
//! let json = serde_json::json!({
//!     "problem": {"type": "quadratic", "kappa": 50, "angle": 0.3},
//!     "steps": 400,
//!     "runs": [
//!         {"name": "gd", "optimizer": {"type": "sgd", "lr": 0.025}},
//!         {"name": "momentum", "optimizer": {"type": "sgd", "lr": 0.025, "momentum": 0.8}}
//!     ]
//! });
//! let experiment = Experiment::from_json(&json, "example")?;
//! let traces = run_experiment(&experiment)?;
//! let summary = summarize(&experiment, &traces.runs);
//! assert!(summary[1].steps_to_tolerance < summary[0].steps_to_tolerance);
//! # Ok::<(), gradus_core::Error>(())
//! ```
#![deny(missing_docs)]

pub mod batching;
pub mod experiment;
pub mod output;
pub mod plot;
pub mod presets;
pub mod problem;
pub mod problems;
pub mod run;
pub mod summary;

pub use experiment::{Experiment, RunSpec};
pub use output::{run_to_folder, Report};
pub use presets::{preset, preset_names};
pub use problem::{build_problem, Point, Problem, ViewBox};
pub use run::{run_experiment, Trace, Traces};
pub use summary::{summarize, RunSummary};

/// What [`register_problem!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use gradus_core::config::default_json;
    pub use inventory;
}

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
