//! Training controls that work on any optimizer, not per rule: gradient clipping, gradient
//! accumulation and the non-finite guard.

pub mod accumulate;
pub mod clip;
pub mod guard;
