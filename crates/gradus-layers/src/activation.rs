//! Element-wise activations: `relu`, `leaky_relu`, `elu`, `selu`, `gelu`, `tanh`, `sigmoid`,
//! `softplus` (`torch.nn.ReLU`, ...), one config type and one registration line each.

use candle_core::Tensor;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `alpha` of SELU (Klambauer et al. 2017), as `torch.nn.SELU`.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// `scale` of SELU (Klambauer et al. 2017), as `torch.nn.SELU`.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// An element-wise function, with its PyTorch formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActivationFn {
    /// `max(0, x)` (torch.nn.ReLU).
    Relu,
    /// `x` if `x > 0`, else `negative_slope * x` (torch.nn.LeakyReLU).
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f64,
    },
    /// `x` if `x > 0`, else `alpha * (exp(x) - 1)` (torch.nn.ELU).
    Elu {
        /// Value approached for large negative inputs (negated).
        alpha: f64,
    },
    /// `scale * elu(x, alpha)` with [`SELU_SCALE`] and [`SELU_ALPHA`] (torch.nn.SELU).
    Selu,
    /// `x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))` (torch.nn.GELU, `approximate="none"`).
    GeluErf,
    /// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (torch.nn.GELU, `approximate="tanh"`).
    GeluTanh,
    /// `tanh(x)` (torch.nn.Tanh).
    Tanh,
    /// `1 / (1 + exp(-x))` (torch.nn.Sigmoid).
    Sigmoid,
    /// `log(1 + exp(beta x)) / beta`, or `x` where `beta x > threshold` (torch.nn.Softplus).
    Softplus {
        /// Sharpness.
        beta: f64,
        /// Above `beta x > threshold` the function is the identity.
        threshold: f64,
    },
}

impl ActivationFn {
    /// The function applied element-wise to `x` (differentiable through Candle's autograd).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match *self {
            ActivationFn::Relu => x.relu()?,
            ActivationFn::LeakyRelu { negative_slope } => {
                // relu(x) + slope * min(x, 0): the right gradient on both sides for any slope.
                let pos = x.relu()?;
                (&pos + ((x - &pos)? * negative_slope)?)?
            }
            ActivationFn::Elu { alpha } => x.elu(alpha)?,
            ActivationFn::Selu => (x.elu(SELU_ALPHA)? * SELU_SCALE)?,
            ActivationFn::GeluErf => x.gelu_erf()?,
            ActivationFn::GeluTanh => x.gelu()?,
            ActivationFn::Tanh => x.tanh()?,
            ActivationFn::Sigmoid => candle_nn::ops::sigmoid(x)?,
            ActivationFn::Softplus { beta, threshold } => {
                // Stable form: log(1 + e^z) = max(z, 0) + log(1 + e^-|z|), z = beta x.
                let z = (x * beta)?;
                let soft = ((z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)? / beta)?;
                z.gt(threshold)?.where_cond(x, &soft)?
            }
        })
    }
}

/// An activation as a model layer: the output shape is the input shape.
#[derive(Debug)]
pub struct Activation {
    function: ActivationFn,
    output_shape: Vec<usize>,
}

impl Activation {
    /// `function` over samples of `shape`.
    pub fn new(function: ActivationFn, shape: &[usize]) -> Self {
        Activation {
            function,
            output_shape: shape.to_vec(),
        }
    }

    /// The function.
    pub fn function(&self) -> ActivationFn {
        self.function
    }
}

impl Layer for Activation {
    fn output_shape(&self) -> Vec<usize> {
        self.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardContext) -> Result<Tensor> {
        self.function.apply(x)
    }
}

/// Configuration of the parameter-free activations (`relu`, `selu`, `tanh`, `sigmoid`): none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Configuration of `leaky_relu`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LeakyReluConfig {
    /// Slope for negative inputs. Default: `0.01` (torch.nn.LeakyReLU).
    pub negative_slope: f64,
}

impl Default for LeakyReluConfig {
    fn default() -> Self {
        LeakyReluConfig {
            negative_slope: 0.01,
        }
    }
}

/// Configuration of `elu`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EluConfig {
    /// `alpha` of `alpha * (exp(x) - 1)`. Default: `1.0` (torch.nn.ELU).
    pub alpha: f64,
}

impl Default for EluConfig {
    fn default() -> Self {
        EluConfig { alpha: 1.0 }
    }
}

/// Which GELU formula (PyTorch's `approximate` argument).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GeluApproximate {
    /// The exact form with `erf`.
    #[default]
    None,
    /// The `tanh` approximation.
    Tanh,
}

/// Configuration of `gelu`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GeluConfig {
    /// `"none"` (erf) or `"tanh"`. Default: `"none"` (torch.nn.GELU).
    pub approximate: GeluApproximate,
}

/// Configuration of `softplus`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SoftplusConfig {
    /// Sharpness `beta`. Default: `1.0` (torch.nn.Softplus).
    pub beta: f64,
    /// Identity above `beta x > threshold`. Default: `20.0` (torch.nn.Softplus).
    pub threshold: f64,
}

impl Default for SoftplusConfig {
    fn default() -> Self {
        SoftplusConfig {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}

fn finite(value: f64, path: &str, field: &str) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::config(
            gradus_core::config::join_path(path, field),
            format!("{field} must be finite, got {value}"),
        ))
    }
}

fn layer(function: ActivationFn, ctx: &LayerContext) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Activation::new(function, &ctx.input_shape)))
}

fn plain(
    config: &Value,
    path: &str,
    function: ActivationFn,
    ctx: &LayerContext,
) -> Result<Box<dyn Layer>> {
    let _: NoConfig = gradus_core::config::parse_config(config, path)?;
    layer(function, ctx)
}

fn build_relu(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    plain(config, path, ActivationFn::Relu, ctx)
}

fn build_selu(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    plain(config, path, ActivationFn::Selu, ctx)
}

fn build_tanh(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    plain(config, path, ActivationFn::Tanh, ctx)
}

fn build_sigmoid(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    plain(config, path, ActivationFn::Sigmoid, ctx)
}

fn build_leaky_relu(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let c: LeakyReluConfig = gradus_core::config::parse_config(config, path)?;
    let negative_slope = finite(c.negative_slope, path, "negative_slope")?;
    layer(ActivationFn::LeakyRelu { negative_slope }, ctx)
}

fn build_elu(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let c: EluConfig = gradus_core::config::parse_config(config, path)?;
    let alpha = finite(c.alpha, path, "alpha")?;
    layer(ActivationFn::Elu { alpha }, ctx)
}

fn build_gelu(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let c: GeluConfig = gradus_core::config::parse_config(config, path)?;
    let function = match c.approximate {
        GeluApproximate::None => ActivationFn::GeluErf,
        GeluApproximate::Tanh => ActivationFn::GeluTanh,
    };
    layer(function, ctx)
}

fn build_softplus(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let c: SoftplusConfig = gradus_core::config::parse_config(config, path)?;
    let beta = finite(c.beta, path, "beta")?;
    if beta == 0.0 {
        return Err(Error::config(
            gradus_core::config::join_path(path, "beta"),
            "beta must be non-zero",
        ));
    }
    let threshold = finite(c.threshold, path, "threshold")?;
    layer(ActivationFn::Softplus { beta, threshold }, ctx)
}

gradus_core::register_layer!("relu", "max(0, x) (torch.nn.ReLU)", NoConfig, build_relu);
gradus_core::register_layer!(
    "leaky_relu",
    "x, or negative_slope * x below 0 (torch.nn.LeakyReLU)",
    LeakyReluConfig,
    build_leaky_relu
);
gradus_core::register_layer!(
    "elu",
    "x, or alpha (e^x - 1) below 0 (torch.nn.ELU)",
    EluConfig,
    build_elu
);
gradus_core::register_layer!(
    "selu",
    "scale * elu(x, alpha), self-normalizing constants (torch.nn.SELU)",
    NoConfig,
    build_selu
);
gradus_core::register_layer!(
    "gelu",
    "x * Phi(x), exact (erf) or tanh approximation (torch.nn.GELU)",
    GeluConfig,
    build_gelu
);
gradus_core::register_layer!(
    "tanh",
    "hyperbolic tangent (torch.nn.Tanh)",
    NoConfig,
    build_tanh
);
gradus_core::register_layer!(
    "sigmoid",
    "logistic 1 / (1 + e^-x) (torch.nn.Sigmoid)",
    NoConfig,
    build_sigmoid
);
gradus_core::register_layer!(
    "softplus",
    "log(1 + e^(beta x)) / beta, linear above threshold (torch.nn.Softplus)",
    SoftplusConfig,
    build_softplus
);

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;
