//! The optimizer engine: everything that turns a per-parameter [`Rule`](crate::Rule) into an
//! optimizer, knowing no optimizer by name.
//!
//! - [`rule`]: the [`Rule`](crate::Rule) trait (config, per-step coefficients, reference update,
//!   kernel) and the state it keeps;
//! - [`kernel`]: the open fused-kernel interface ([`Kernel`](crate::Kernel), [`Chunk`](crate::Chunk),
//!   reduce-then-apply [`Sums`](crate::Sums)) and helpers for writing kernels;
//! - [`grouped`]: [`GroupedOptimizer`](crate::GroupedOptimizer), the one adaptor (groups, state,
//!   hyperparameters, both optimizer traits, the step protocol); [`groups`] parses groups from
//!   JSON and [`build`] is the registry glue;
//! - the fused path's machinery: chunking, the rayon split and pulp SIMD dispatch (`chunks`),
//!   [`aligned`] state buffers placed off the parameter's page offset, the in-place write through
//!   `candle_core::InplaceOp2` (`step`), per-parameter facts read once (`slot`), and [`path`]
//!   (which parameters the fused path can take);
//! - [`precision`]: bf16/f16 parameters (f32 state, f32 master weights, rounding), stepped in
//!   f32 on both paths; on the fused path the rule's f32 kernel runs over widened tiles
//!   (`widen`).
//!
//! For contiguous f32/f64 parameters on the CPU the fused path runs the rule's kernel element by
//! element, in the parameter's dtype and in the reference path's order of operations, so the two
//! paths agree to rounding (bit for bit on the golden cases). Dependencies point one way: rules
//! and controls use the engine; the engine uses no rule.

pub mod aligned;
pub mod build;
pub(crate) mod chunks;
pub mod dropin;
pub mod elem;
pub mod grouped;
pub mod groups;
pub mod kernel;
pub(crate) mod narrow;
pub mod path;
pub mod precision;
pub mod rule;
pub(crate) mod slot;
mod state;
pub(crate) mod step;
pub(crate) mod widen;
