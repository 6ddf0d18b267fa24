//! Gradus optimizers: the classic family, PyTorch-exact, as registry plugins and as drop-ins
//! for `candle_nn::Optimizer`; gradient clipping, accumulation and the non-finite guard.
#![deny(missing_docs)]

pub mod accumulate;
pub mod clip;
pub mod guard;
