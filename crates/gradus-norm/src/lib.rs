//! Gradus normalization: batch, layer, group and instance normalization, PyTorch-exact in
//! forward and backward, usable directly as Candle modules and from JSON as
//! [`NormalizationKind`](gradus_core::registry::NormalizationKind) plugins; and input
//! preprocessing (`center`, `standardize`, `min_max`, `pca_whiten`) fitted on the training split
//! only.
//!
//! Running statistics are **buffers**, not trainable variables: they live in the layer (behind
//! a lock, so that `forward_t(&self, ..)` can update them), are saved through
//! [`Layer::buffers`](gradus_core::plugin::layer::Layer::buffers) and never appear in the
//! [`VarMap`](candle_nn::VarMap) an optimizer sees. Only the affine `weight` and `bias` are
//! trainable.
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use gradus_norm::{BatchNorm, BatchNormConfig};
//!
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let bn = BatchNorm::new(3, BatchNormConfig::default(), vb.pp("bn1"))?;
//! let x = Tensor::arange(0f32, 24.0, &Device::Cpu)?.reshape((4, 3, 2))?;
//! let y = bn.forward_t(&x, true)?; // batch statistics; running statistics updated
//! assert_eq!(y.dims(), &[4, 3, 2]);
//! assert_eq!(vars.all_vars().len(), 2); // weight and bias only
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod affine;
pub mod batch_norm;
mod batch_norm_kernel;
pub mod group_norm;
pub mod instance_norm;
pub mod layer_norm;
mod moments;
pub mod preprocess;
mod running;
#[cfg(test)]
mod testing;

pub use batch_norm::{BatchNorm, BatchNormConfig, BatchNormPath};
pub use group_norm::{GroupNorm, GroupNormConfig};
pub use instance_norm::{InstanceNorm, InstanceNormConfig};
pub use layer_norm::{LayerNorm, LayerNormConfig};

pub use preprocess::{
    Center, CenterConfig, MinMax, MinMaxConfig, PcaWhiten, PcaWhitenConfig, Standardize,
    StandardizeConfig,
};

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
