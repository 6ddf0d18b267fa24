//! Gradus regularize: what keeps a model from memorizing its training set.
//!
//! - **Penalties** added to the loss ([`L1`], [`L2`], [`ElasticNet`]) and **post-step
//!   corrections** ([`L1`] with `proximal`, [`MaxNorm`], decoupled [`WeightDecay`]): registered
//!   as regularizers (`l1`, `l2`, `elastic_net`, `max_norm`, `weight_decay`). Each applies to
//!   parameters picked by name patterns ([`ParamFilter`]); by default weight matrices and kernels
//!   only, never biases or normalization parameters.
//! - **The dropout family** as layers (`dropout`, `dropout2d`, `alpha_dropout`,
//!   `gaussian_dropout`, `drop_connect`, `drop_path`), each also a plain
//!   [`candle_core::ModuleT`] with its own seeded generator. Inverted scaling: evaluation mode is
//!   exactly the identity. Binary masks are drawn from the seeded generator into a bitset
//!   ([`KeepMask`]), one bit per dropped unit, and applied by a fused CPU op.
//! - **[`EarlyStopping`]**, fed one metric per epoch, with Keras' semantics.
//!
//! Label smoothing is an option of the `cross_entropy` loss, in `gradus-loss`.
//!
//! A binary that only names these components through JSON must still link the crate:
//! `use gradus_regularize as _;`.
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor, Var};
//! use gradus_core::plugin::regularizer::Regularizer;
//! use gradus_core::NamedVar;
//! use gradus_regularize::{Dropout, L2, L2Config};
//!
//! # fn main() -> gradus_core::Result<()> {
//! let w = Var::ones((2, 3), DType::F32, &Device::Cpu)?;
//! let params = [NamedVar::new("fc.weight", w)];
//! let l2 = L2::new(L2Config { lambda: 0.1, ..L2Config::default() }, "regularizers[0]")?;
//! let penalty = l2.penalty(&params)?.expect("fc.weight is selected"); // 0.1 * 6
//! assert!((penalty.to_scalar::<f32>()? - 0.6).abs() < 1e-6);
//!
//! let dropout = Dropout::new(0.5, 42)?;
//! let x = Tensor::ones((4, 8), DType::F32, &Device::Cpu)?;
//! let eval = dropout.forward_t(&x, false)?; // evaluation: the identity
//! assert_eq!(eval.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod alpha_dropout;
mod drop_connect;
mod drop_path;
mod dropout;
mod dropout2d;
mod early_stopping;
mod elastic_net;
mod gaussian_dropout;
mod l1;
mod l2;
mod layer_util;
pub mod mask;
mod max_norm;
mod penalty;
pub mod select;
mod weight_decay;

#[cfg(test)]
mod testing;

pub use alpha_dropout::{AlphaDropout, AlphaDropoutConfig};
pub use drop_connect::{kaiming_uniform_linear, DropConnect, DropConnectConfig};
pub use drop_path::{DropPath, DropPathConfig, DropPathMode};
pub use dropout::{Dropout, DropoutConfig};
pub use dropout2d::{Dropout2d, Dropout2dConfig};
pub use early_stopping::{Decision, EarlyStopping, EarlyStoppingConfig, Mode, StopReason};
pub use elastic_net::{ElasticNet, ElasticNetConfig};
pub use gaussian_dropout::{GaussianDropout, GaussianDropoutConfig};
pub use l1::{L1Config, L1};
pub use l2::{L2Config, L2};
pub use mask::KeepMask;
pub use max_norm::{MaxNorm, MaxNormConfig};
pub use penalty::PenaltyLog;
pub use select::ParamFilter;
pub use weight_decay::{WeightDecay, WeightDecayConfig};

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
