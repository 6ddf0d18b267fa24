//! Training controls that work on any optimizer, not per rule: gradient clipping, gradient
//! accumulation, the non-finite guard, weight averaging, loss scaling and sharpness-aware
//! minimization.

pub mod accumulate;
pub mod averaging;
pub mod clip;
pub mod guard;
pub mod loss_scale;
pub mod sam;
