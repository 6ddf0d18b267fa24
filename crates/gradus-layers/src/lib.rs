//! Gradus layers: the model layers a pipeline's `model.layers` list is built from.
//!
//! - Registered layers (kind `layer`): `linear`, `conv2d`, `max_pool2d`, `avg_pool2d`,
//!   `flatten`, the activations `relu`, `leaky_relu`, `elu`, `selu`, `gelu`, `tanh`, `sigmoid`,
//!   `softplus`, and `residual` blocks. Semantics, parameter layouts and defaults follow
//!   `torch.nn`; weights are drawn by initializers resolved through the registry
//!   ([`LayerContext::initializer`](gradus_core::plugin::layer::LayerContext::initializer)),
//!   so this crate needs no other Gradus crate.
//! - [`build_layer`]: one layer from JSON, its `type` looked up among the model layers and
//!   then the normalization layers.
//! - [`Sequential`]: a list of layers with shapes inferred one after another, buffers for
//!   checkpoints and a summary.
//!
//! A binary that only names these layers through JSON must still link the crate:
//! `use gradus_layers as _;`. The default weight initializer (`torch_linear_default`) lives in
//! `gradus-init`, which such a binary links as well.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::VarMap;
//! use gradus_core::plugin::layer::ForwardContext;
//! use gradus_core::SeededRng;
//! use gradus_layers::Sequential;
//!
//! # fn main() -> gradus_core::Result<()> {
//! let layers = serde_json::json!([{"type": "flatten"}, {"type": "relu"}]);
//! let vars = VarMap::new();
//! let mut rng = SeededRng::new(0);
//! let layers = layers.as_array().expect("a list");
//! let mut model = Sequential::build(layers, "model.layers", &[2, 3], &vars, &mut rng, DType::F32, &Device::Cpu)?;
//! assert_eq!(model.output_shape(), vec![6]);
//! let x = Tensor::full(-1f32, (4, 2, 3), &Device::Cpu)?;
//! let y = model.forward(&x, &mut ForwardContext { train: false, rng: &mut rng })?;
//! assert_eq!(y.dims(), &[4, 6]);
//! assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 0.0);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod activation;
mod avg_pool2d;
mod build;
mod conv2d;
mod conv2d_kernel;
mod flatten;
mod im2col;
mod linear;
mod linear_kernel;
mod matmul;
mod max_pool2d;
mod max_pool_blocks;
mod pool;
mod residual;
mod sequential;
mod slices;
mod util;

#[cfg(test)]
mod testing;

pub use activation::{
    Activation, ActivationFn, EluConfig, GeluApproximate, GeluConfig, LeakyReluConfig, NoConfig,
    SoftplusConfig, SELU_ALPHA, SELU_SCALE,
};
pub use avg_pool2d::{AvgPool2d, AvgPool2dConfig};
pub use build::build_layer;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use flatten::{Flatten, FlattenConfig};
pub use linear::{Linear, LinearConfig};
pub use max_pool2d::{MaxPool2d, MaxPool2dConfig};
pub use residual::{Residual, ResidualConfig};
pub use sequential::Sequential;
pub use util::Size2;

// The README's example is compiled and run as a doctest, so the one crates.io shows works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
