//! Training controls that work on any optimizer, not per rule: gradient clipping, gradient
//! accumulation, the non-finite guard and weight averaging.

pub mod accumulate;
pub mod averaging;
pub mod clip;
pub mod guard;
