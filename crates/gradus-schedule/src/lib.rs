//! Gradus schedules: PyTorch's `torch.optim.lr_scheduler` family as registry plugins that drive
//! any hyperparameter of any [`Optimizer`] through its trait (`lr` by default; `momentum`,
//! `beta1`, `beta2`, `weight_decay`, ... with `"hyperparameter"`).
//!
//! Every schedule follows PyTorch 2.x exactly: building it records each group's initial value
//! (`initial_lr`) and writes the step-0 values; each [`Schedule::step`] advances one position
//! (the caller steps per optimizer step or per epoch). Chainable schedules use PyTorch's
//! recursive forms, so values agree with `torch` to about 1e-16 relative. State is JSON and a
//! reloaded schedule continues bit-identically.
//!
//! ```
//! use gradus_schedule::build_schedule;
//! # use gradus_core::{Optimizer, NamedVar, StateDict, Result};
//! # use candle_core::backprop::GradStore;
//! # struct Sgd { lr: f64 }
//! # impl Optimizer for Sgd {
//! #     fn algorithm(&self) -> &str { "sgd" }
//! #     fn step(&mut self, _: &GradStore) -> Result<()> { Ok(()) }
//! #     fn params(&self) -> Vec<NamedVar> { vec![] }
//! #     fn group_count(&self) -> usize { 1 }
//! #     fn hyperparameter_names(&self) -> Vec<&'static str> { vec!["lr"] }
//! #     fn hyperparameter(&self, _: usize, _: &str) -> Result<f64> { Ok(self.lr) }
//! #     fn set_hyperparameter(&mut self, _: usize, _: &str, v: f64) -> Result<()> { self.lr = v; Ok(()) }
//! #     fn state_dict(&self) -> Result<StateDict> { Ok(StateDict::new()) }
//! #     fn load_state_dict(&mut self, _: &StateDict) -> Result<()> { Ok(()) }
//! # }
//! let mut opt = Sgd { lr: 0.1 };
//! let config = serde_json::json!({"type": "step", "step_size": 2, "gamma": 0.5});
//! let mut schedule = build_schedule(&config, "schedule", &mut opt)?;
//! for _ in 0..4 {
//!     // ... optimizer step ...
//!     schedule.step(&mut opt, None)?;
//! }
//! assert_eq!(opt.learning_rate()?, 0.025);
//! # Ok::<(), gradus_core::Error>(())
//! ```
#![deny(missing_docs)]

mod chained;
mod cycled;
mod driven;

pub mod chained_scheduler;
pub mod constant_factor;
pub mod cosine;
pub mod cosine_warm_restarts;
pub mod cyclic;
pub mod exponential;
pub mod linear;
pub mod multi_step;
pub mod multiplicative;
pub mod one_cycle;
pub mod polynomial;
pub mod reduce_on_plateau;
pub mod sequential;
pub mod step;
pub mod swalr;
pub mod wsd;

#[cfg(test)]
mod testing;

pub use driven::PerGroup;
pub use gradus_core::plugin::schedule::Schedule;
use gradus_core::registry::{resolve, ScheduleKind};
use gradus_core::{Optimizer, Result};
use serde_json::Value;

/// Builds the schedule `{"type": name, ...}` found at JSON path `path` through the registry;
/// building writes its step-0 values into `optimizer`.
pub fn build_schedule(
    config: &Value,
    path: &str,
    optimizer: &mut dyn Optimizer,
) -> Result<Box<dyn Schedule>> {
    let (entry, rest) = resolve::<ScheduleKind>(config, path)?;
    (entry.build)(&rest, path, optimizer).map_err(|e| e.at(path))
}

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
