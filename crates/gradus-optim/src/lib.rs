//! Gradus optimizers: the classic family, PyTorch-exact, as registry plugins and as drop-ins
//! for `candle_nn::Optimizer`; gradient clipping, accumulation and the non-finite guard.
//!
//! Each optimizer is a config type implementing [`Rule`] (its per-parameter update), run by
//! the one adaptor [`GroupedOptimizer`] (groups, state, hyperparameters). Switching a Candle
//! program from `candle_nn::AdamW` is a one-type change:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{Module, Optimizer, VarBuilder, VarMap};
//!
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let model = candle_nn::linear(2, 1, vb.pp("fc"))?;
//! // was: candle_nn::AdamW::new(varmap.all_vars(), candle_nn::ParamsAdamW::default())?
//! let mut opt = gradus_optim::AdamW::new(varmap.all_vars(), gradus_optim::AdamWConfig::default())?;
//! let x = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
//! let loss = model.forward(&x)?.sqr()?.mean_all()?;
//! opt.backward_step(&loss)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod accumulate;
pub mod adadelta;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod adamw;
pub mod build;
pub mod clip;
pub mod conformance;
pub mod decay;
pub mod fused;
pub mod grouped;
pub mod groups;
pub mod guard;
pub mod moments;
pub mod nadam;
pub mod radam;
pub mod replay;
pub mod rmsprop;
pub mod rule;
pub mod sgd;
mod slot;
pub mod validate;

#[cfg(test)]
mod testing;

pub use adadelta::{Adadelta, AdadeltaConfig};
pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use adamax::{Adamax, AdamaxConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use build::build_optimizer;
pub use fused::UpdatePath;
pub use grouped::GroupedOptimizer;
pub use groups::GroupSpec;
pub use nadam::{Nadam, NadamConfig};
pub use radam::{Radam, RadamConfig};
pub use rmsprop::{Rmsprop, RmspropConfig};
pub use rule::{ParamState, Rule};
pub use sgd::{Sgd, SgdConfig};
