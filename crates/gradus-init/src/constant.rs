//! Constant initializers: `zeros`, `ones`, `constant` (`torch.nn.init.zeros_` / `ones_` /
//! `constant_`).
//!
//! A constant weight matrix keeps its units symmetric: every unit of a layer computes the same
//! output and receives the same gradient, so gradient descent can never tell them apart. They
//! are right for biases and normalization parameters; on a tensor with two or more dimensions
//! they log a `log::warn!` saying so.

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{filled, finite};

/// Warns when a constant fills a weight with two or more dimensions (the symmetry trap).
fn warn_if_symmetric(name: &str, value: f64, shape: &[usize]) {
    if shape.len() >= 2 {
        log::warn!(
            "initializer `{name}` fills a {shape:?} weight with the constant {value}: this keeps \
             its units symmetric (each computes the same output and gets the same gradient, so \
             they never differentiate); use a random initializer such as `xavier_uniform` or \
             `kaiming_uniform` for weights"
        );
    }
}

/// Fills with `0` (`torch.nn.init.zeros_`): the usual bias initializer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Zeros;

/// Config of [`Zeros`]: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ZerosConfig {}

impl Initializer for Zeros {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        _: &mut SeededRng,
    ) -> Result<Tensor> {
        warn_if_symmetric("zeros", 0.0, shape);
        filled(shape, 0.0, dtype, device)
    }
}

fn build_zeros(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    let _: ZerosConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Zeros))
}

gradus_core::register_initializer!(
    "zeros",
    "all zeros (torch.nn.init.zeros_); for biases",
    ZerosConfig,
    build_zeros
);

/// Fills with `1` (`torch.nn.init.ones_`): the usual scale initializer of normalization layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ones;

/// Config of [`Ones`]: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OnesConfig {}

impl Initializer for Ones {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        _: &mut SeededRng,
    ) -> Result<Tensor> {
        warn_if_symmetric("ones", 1.0, shape);
        filled(shape, 1.0, dtype, device)
    }
}

fn build_ones(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    let _: OnesConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Ones))
}

gradus_core::register_initializer!(
    "ones",
    "all ones (torch.nn.init.ones_); for norm scales",
    OnesConfig,
    build_ones
);

/// Fills with `value` (`torch.nn.init.constant_(tensor, val)`).
#[derive(Debug, Clone, Copy)]
pub struct Constant {
    value: f64,
}

/// Config of [`Constant`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConstantConfig {
    /// The fill value `val`. Required: `torch.nn.init.constant_` has no default.
    pub value: Option<f64>,
}

impl Constant {
    /// A constant initializer; `value` must be given and finite.
    pub fn new(config: ConstantConfig) -> Result<Self> {
        let value = config.value.ok_or_else(|| {
            Error::InvalidHyperparameter(
                "constant: `value` is required (torch.nn.init.constant_ has no default)".into(),
            )
        })?;
        Ok(Constant {
            value: finite("constant", "value", value)?,
        })
    }
}

impl Initializer for Constant {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        _: &mut SeededRng,
    ) -> Result<Tensor> {
        warn_if_symmetric("constant", self.value, shape);
        filled(shape, self.value, dtype, device)
    }
}

fn build_constant(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(Constant::new(gradus_core::config::parse_config(
        config, path,
    )?)?))
}

gradus_core::register_initializer!(
    "constant",
    "every entry `value` (torch.nn.init.constant_)",
    ConstantConfig,
    build_constant
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::draw;
    use serde_json::json;

    #[test]
    fn fills_with_the_value() {
        assert_eq!(draw(&Zeros, &[2, 3], 0), vec![0.0; 6]);
        assert_eq!(draw(&Ones, &[4], 0), vec![1.0; 4]);
        let c = build_constant(&json!({"value": -2.5}), "init").unwrap();
        assert_eq!(draw(c.as_ref(), &[3, 1, 2], 0), vec![-2.5; 6]);
    }

    #[test]
    fn constant_needs_a_finite_value() {
        let err = build_constant(&json!({}), "init").err().unwrap();
        assert!(err.to_string().contains("`value` is required"), "{err}");
        assert!(Constant::new(ConstantConfig {
            value: Some(f64::INFINITY)
        })
        .is_err());
        let err = build_zeros(&json!({"value": 1}), "init").err().unwrap();
        assert!(matches!(err, Error::UnknownField { .. }), "{err}");
    }
}
