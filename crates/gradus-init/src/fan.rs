//! Fan-in / fan-out and the recommended gain of each nonlinearity, exactly as `torch.nn.init`.

use std::fmt;
use std::str::FromStr;

use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The message of PyTorch's `ValueError` for a shape with fewer than two dimensions.
const FEWER_THAN_TWO: &str =
    "fan in and fan out can not be computed for tensor with fewer than 2 dimensions";

/// `(fan_in, fan_out)` of a weight of `shape` in PyTorch layout `(out, in, k...)`:
/// `fan_in = shape[1] * prod(shape[2..])`, `fan_out = shape[0] * prod(shape[2..])`
/// (`torch.nn.init._calculate_fan_in_and_fan_out`).
///
/// A shape with fewer than two dimensions is an [`Error::Unsupported`] (PyTorch's `ValueError`).
pub fn fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::Unsupported(format!(
            "{FEWER_THAN_TWO}, got shape {shape:?}"
        )));
    }
    let receptive_field: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive_field, shape[0] * receptive_field))
}

/// Which fan a Kaiming initializer preserves the variance of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    /// Preserve the variance of activations in the forward pass (`fan_in`).
    FanIn,
    /// Preserve the variance of gradients in the backward pass (`fan_out`).
    FanOut,
}

impl FanMode {
    /// The fan of `shape` this mode selects.
    pub fn fan(self, shape: &[usize]) -> Result<usize> {
        let (fan_in, fan_out) = fan_in_and_fan_out(shape)?;
        Ok(match self {
            FanMode::FanIn => fan_in,
            FanMode::FanOut => fan_out,
        })
    }
}

/// A nonlinearity known to [`calculate_gain`] (PyTorch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Nonlinearity {
    /// Identity: gain 1.
    Linear,
    /// Convolution (no activation): gain 1.
    Conv1d,
    /// Convolution (no activation): gain 1.
    Conv2d,
    /// Convolution (no activation): gain 1.
    Conv3d,
    /// Transposed convolution: gain 1.
    ConvTranspose1d,
    /// Transposed convolution: gain 1.
    ConvTranspose2d,
    /// Transposed convolution: gain 1.
    ConvTranspose3d,
    /// Logistic sigmoid: gain 1.
    Sigmoid,
    /// Hyperbolic tangent: gain 5/3.
    Tanh,
    /// Rectifier: gain sqrt(2).
    Relu,
    /// Leaky rectifier of negative slope `param` (default 0.01): gain sqrt(2 / (1 + slope^2)).
    LeakyRelu,
    /// SELU: gain 3/4 (self-normalizing networks).
    Selu,
}

const NAMES: &[(&str, Nonlinearity)] = &[
    ("linear", Nonlinearity::Linear),
    ("conv1d", Nonlinearity::Conv1d),
    ("conv2d", Nonlinearity::Conv2d),
    ("conv3d", Nonlinearity::Conv3d),
    ("conv_transpose1d", Nonlinearity::ConvTranspose1d),
    ("conv_transpose2d", Nonlinearity::ConvTranspose2d),
    ("conv_transpose3d", Nonlinearity::ConvTranspose3d),
    ("sigmoid", Nonlinearity::Sigmoid),
    ("tanh", Nonlinearity::Tanh),
    ("relu", Nonlinearity::Relu),
    ("leaky_relu", Nonlinearity::LeakyRelu),
    ("selu", Nonlinearity::Selu),
];

impl Nonlinearity {
    /// PyTorch's name of the nonlinearity.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, n)| *n == self)
            .map_or("linear", |(name, _)| name)
    }

    /// The recommended gain (`torch.nn.init.calculate_gain`); `param` is the negative slope of
    /// `leaky_relu` (default 0.01) and is ignored by every other nonlinearity.
    pub fn gain(self, param: Option<f64>) -> Result<f64> {
        Ok(match self {
            Nonlinearity::Linear
            | Nonlinearity::Conv1d
            | Nonlinearity::Conv2d
            | Nonlinearity::Conv3d
            | Nonlinearity::ConvTranspose1d
            | Nonlinearity::ConvTranspose2d
            | Nonlinearity::ConvTranspose3d
            | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2.0f64.sqrt(),
            Nonlinearity::LeakyRelu => {
                let slope = param.unwrap_or(0.01);
                if !slope.is_finite() {
                    return Err(Error::InvalidHyperparameter(format!(
                        "negative_slope {slope} not a valid number"
                    )));
                }
                (2.0 / (1.0 + slope.powi(2))).sqrt()
            }
            Nonlinearity::Selu => 3.0 / 4.0,
        })
    }
}

impl FromStr for Nonlinearity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                let valid: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
                Error::InvalidHyperparameter(format!(
                    "Unsupported nonlinearity {s} (expected one of {})",
                    valid.join(", ")
                ))
            })
    }
}

impl fmt::Display for Nonlinearity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `torch.nn.init.calculate_gain(nonlinearity, param)`: 1 for linear, convolutions and sigmoid,
/// 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + param^2)) for leaky_relu (param default 0.01),
/// 3/4 for selu. An unknown name is an error listing the valid ones.
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> Result<f64> {
    nonlinearity.parse::<Nonlinearity>()?.gain(param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_of_linear_and_conv_shapes() {
        assert_eq!(fan_in_and_fan_out(&[10, 20]).unwrap(), (20, 10));
        assert_eq!(fan_in_and_fan_out(&[64, 3, 3, 3]).unwrap(), (27, 576));
        assert_eq!(FanMode::FanOut.fan(&[16, 8, 5]).unwrap(), 80);
    }

    #[test]
    fn one_dimensional_shapes_have_no_fans() {
        for shape in [&[][..], &[7][..]] {
            let err = fan_in_and_fan_out(shape).unwrap_err();
            assert!(err.to_string().contains(FEWER_THAN_TWO), "{err}");
        }
    }

    #[test]
    fn gains_and_names_round_trip() {
        for (name, n) in NAMES {
            assert_eq!(name.parse::<Nonlinearity>().unwrap(), *n);
            assert_eq!(n.to_string(), *name);
            let json = serde_json::to_value(n).unwrap();
            assert_eq!(json, serde_json::json!(name));
        }
        assert_eq!(calculate_gain("relu", Some(123.0)).unwrap(), 2f64.sqrt());
        assert_eq!(
            calculate_gain("leaky_relu", Some(0.0)).unwrap(),
            2f64.sqrt()
        );
    }

    #[test]
    fn bad_nonlinearity_or_slope_is_an_error() {
        let err = calculate_gain("gelu", None).unwrap_err();
        assert!(
            err.to_string().contains("Unsupported nonlinearity gelu"),
            "{err}"
        );
        assert!(err.to_string().contains("leaky_relu"), "{err}");
        let err = calculate_gain("leaky_relu", Some(f64::NAN)).unwrap_err();
        assert!(err.to_string().contains("not a valid number"), "{err}");
    }
}
