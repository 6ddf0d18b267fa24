//! Gradus optimizers: the classic family, PyTorch-exact, as registry plugins and as drop-ins
//! for `candle_nn::Optimizer`; gradient clipping, accumulation and the non-finite guard.
//!
//! Each optimizer is a config type implementing [`Rule`] (its per-step coefficients, its
//! reference update and, optionally, its fused CPU [`Kernel`]), run by the one adaptor
//! [`GroupedOptimizer`] (groups, state, hyperparameters, the update path). The crate has three
//! parts, and dependencies point one way (rules and controls use the engine, never the reverse):
//!
//! - [`engine`]: the rule and kernel traits, the grouped adaptor, the fused path's machinery;
//! - [`rules`]: the built-in algorithms, one file each;
//! - [`controls`]: clipping, accumulation, the non-finite guard and weight averaging
//!   ([`averaging`]: EMA and SWA as `torch.optim.swa_utils`, with `update_bn`).
//!
//! Switching a Candle program from `candle_nn::AdamW` is a one-type change:
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

pub mod conformance;
pub mod controls;
pub mod engine;
pub mod replay;
pub mod rules;
pub mod validate;

#[cfg(test)]
mod testing;

// The modules' earlier paths (`gradus_optim::adam`, `gradus_optim::clip`, ...) stay valid.
pub use controls::{accumulate, averaging, clip, guard, loss_scale, sam};
pub use engine::{build, grouped, groups, precision, rule};
pub use rules::{
    adabelief, adadelta, adafactor, adagrad, adam, adamax, adamw, adan, ademamix, adopt, asgd,
    decay, lamb, lars, lbfgs, lookahead, moments, muon, muon_aux, nadam, prodigy, radam, rmsprop,
    rprop, sgd,
};

pub use engine::build::build_optimizer;
pub use engine::dropin::named_vars;
pub use engine::elem::Elem;
pub use engine::grouped::GroupedOptimizer;
pub use engine::groups::GroupSpec;
pub use engine::kernel::{Chunk, Kernel, NoKernel, Sums, MAX_BUFFERS};
pub use engine::path::UpdatePath;
pub use engine::precision::{Precision, Rounding, StateDtype};
pub use engine::rule::{Buffers, ParamState, Rule, Scalars};
pub use rules::adabelief::{Adabelief, AdabeliefConfig};
pub use rules::adadelta::{Adadelta, AdadeltaConfig};
pub use rules::adafactor::{Adafactor, AdafactorConfig};
pub use rules::adagrad::{Adagrad, AdagradConfig};
pub use rules::adam::{Adam, AdamConfig};
pub use rules::adamax::{Adamax, AdamaxConfig};
pub use rules::adamw::{AdamW, AdamWConfig};
pub use rules::adamw_schedule_free::{AdamWScheduleFree, AdamWScheduleFreeConfig};
pub use rules::adan::{Adan, AdanConfig};
pub use rules::ademamix::{Ademamix, AdemamixConfig};
pub use rules::adopt::{Adopt, AdoptConfig};
pub use rules::asgd::{Asgd, AsgdConfig};
pub use rules::lamb::{Lamb, LambConfig};
pub use rules::lars::{Lars, LarsConfig};
pub use rules::lion::{Lion, LionConfig};
pub use rules::lookahead::{Lookahead, LookaheadConfig};
pub use rules::muon::{Muon, MuonConfig};
pub use rules::muon_aux::{MuonWithAuxAdamW, MuonWithAuxAdamWConfig};
pub use rules::nadam::{Nadam, NadamConfig};
pub use rules::prodigy::{Prodigy, ProdigyConfig};
pub use rules::radam::{Radam, RadamConfig};
pub use rules::rmsprop::{Rmsprop, RmspropConfig};
pub use rules::rprop::{Rprop, RpropConfig};
pub use rules::schedule_free::{ScheduleFree, ScheduleFreeRule};
pub use rules::sgd::{Sgd, SgdConfig};
pub use rules::sgd_schedule_free::{SgdScheduleFree, SgdScheduleFreeConfig};

// What a Candle program needs besides the optimizer types, without a dependency on gradus-core.
// The core trait is re-exported under another name, so that importing it never clashes with
// `candle_nn::Optimizer` (the optimizer types' inherent methods make importing it unneeded).
pub use gradus_core::{Error, NamedVar, Optimizer as GradusOptimizer, Result, StateDict};

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
