//! Gradus initializers: the `torch.nn.init` family (constant, uniform, normal, truncated normal,
//! Xavier/Glorot, He/Kaiming, orthogonal, eye), LeCun, and `nn.Linear`'s default, registered by
//! name as [`InitializerKind`](gradus_core::registry::InitializerKind) plugins.
//!
//! Every initializer draws from the [`SeededRng`](gradus_core::SeededRng) it is given (same seed,
//! same bits) and follows PyTorch's formulas; fans and gains come from [`fan_in_and_fan_out`] and
//! [`calculate_gain`], which reproduce `torch.nn.init` exactly.
//!
//! ```
//! use candle_core::{DType, Device};
//! use gradus_core::plugin::initializer::Initializer;
//! use gradus_core::SeededRng;
//! use gradus_init::{XavierConfig, XavierUniform};
//!
//! let init = XavierUniform::new(XavierConfig::default())?;
//! let mut rng = SeededRng::new(0);
//! let w = init.init(&[64, 32], DType::F32, &Device::Cpu, &mut rng)?;
//! let bound = (6.0f32 / (64.0 + 32.0)).sqrt();
//! assert!(w.abs()?.max_all()?.to_scalar::<f32>()? <= bound);
//! # Ok::<(), gradus_core::Error>(())
//! ```
#![deny(missing_docs)]

mod common;
pub mod constant;
pub mod eye;
pub mod fan;
pub mod kaiming;
pub mod lecun;
pub mod linear_default;
pub mod normal;
pub mod orthogonal;
pub mod special;
pub mod trunc_normal;
pub mod uniform;
pub mod xavier;

pub use constant::{Constant, ConstantConfig, Ones, OnesConfig, Zeros, ZerosConfig};
pub use eye::{Eye, EyeConfig};
pub use fan::{calculate_gain, fan_in_and_fan_out, FanMode, Nonlinearity};
pub use kaiming::{KaimingConfig, KaimingNormal, KaimingUniform};
pub use lecun::{LecunConfig, LecunNormal, LecunUniform};
pub use linear_default::{linear_bias_bound, TorchLinearDefault, TorchLinearDefaultConfig};
pub use normal::{Normal, NormalConfig};
pub use orthogonal::{Orthogonal, OrthogonalConfig};
pub use trunc_normal::{TruncNormal, TruncNormalConfig};
pub use uniform::{Uniform, UniformConfig};
pub use xavier::{XavierConfig, XavierNormal, XavierUniform};

#[cfg(test)]
pub(crate) mod testing;

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
