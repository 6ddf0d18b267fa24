//! Xavier/Glorot initialization (`torch.nn.init.xavier_uniform_` / `xavier_normal_`).
//!
//! Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward neural
//! networks": keep `Var[w] = 2 / (fan_in + fan_out)` (times `gain^2`), the compromise between
//! preserving activation variance forward and gradient variance backward.

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{centered_normal, non_negative, symmetric_uniform};
use crate::fan::fan_in_and_fan_out;

/// Config of [`XavierUniform`] and [`XavierNormal`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct XavierConfig {
    /// Scale factor `gain` (see [`calculate_gain`](crate::calculate_gain)), `>= 0`.
    /// Default: `1.0` (torch.nn.init.xavier_uniform_ / xavier_normal_).
    pub gain: f64,
}

impl Default for XavierConfig {
    fn default() -> Self {
        XavierConfig { gain: 1.0 }
    }
}

/// Xavier uniform: `w ~ U(-bound, bound)`, `bound = gain * sqrt(6 / (fan_in + fan_out))`
/// (variance `gain^2 * 2 / (fan_in + fan_out)`). Needs a shape with at least two dimensions.
#[derive(Debug, Clone, Copy)]
pub struct XavierUniform {
    gain: f64,
}

impl XavierUniform {
    /// A Xavier uniform initializer; `gain` finite and `>= 0`.
    pub fn new(config: XavierConfig) -> Result<Self> {
        Ok(XavierUniform {
            gain: non_negative("xavier_uniform", "gain", config.gain)?,
        })
    }

    /// The bound for a weight of `shape`.
    pub fn bound(&self, shape: &[usize]) -> Result<f64> {
        let (fan_in, fan_out) = fan_in_and_fan_out(shape)?;
        Ok(xavier_std(self.gain, fan_in, fan_out) * 3.0f64.sqrt())
    }
}

/// `gain * sqrt(2 / (fan_in + fan_out))`, as PyTorch computes it (0 for an empty tensor).
fn xavier_std(gain: f64, fan_in: usize, fan_out: usize) -> f64 {
    let total = (fan_in + fan_out) as f64;
    if total == 0.0 {
        0.0
    } else {
        gain * (2.0 / total).sqrt()
    }
}

impl Initializer for XavierUniform {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        symmetric_uniform(shape, self.bound(shape)?, dtype, device, rng)
    }
}

fn build_uniform(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(XavierUniform::new(
        gradus_core::config::parse_config(config, path)?,
    )?))
}

gradus_core::register_initializer!(
    "xavier_uniform",
    "Glorot uniform: U(-b, b), b = gain*sqrt(6/(fan_in+fan_out)) (torch.nn.init.xavier_uniform_)",
    XavierConfig,
    build_uniform
);

/// Xavier normal: `w ~ N(0, std^2)`, `std = gain * sqrt(2 / (fan_in + fan_out))`.
/// Needs a shape with at least two dimensions.
#[derive(Debug, Clone, Copy)]
pub struct XavierNormal {
    gain: f64,
}

impl XavierNormal {
    /// A Xavier normal initializer; `gain` finite and `>= 0`.
    pub fn new(config: XavierConfig) -> Result<Self> {
        Ok(XavierNormal {
            gain: non_negative("xavier_normal", "gain", config.gain)?,
        })
    }

    /// The standard deviation for a weight of `shape`.
    pub fn std(&self, shape: &[usize]) -> Result<f64> {
        let (fan_in, fan_out) = fan_in_and_fan_out(shape)?;
        Ok(xavier_std(self.gain, fan_in, fan_out))
    }
}

impl Initializer for XavierNormal {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        centered_normal(shape, self.std(shape)?, dtype, device, rng)
    }
}

fn build_normal(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(XavierNormal::new(
        gradus_core::config::parse_config(config, path)?,
    )?))
}

gradus_core::register_initializer!(
    "xavier_normal",
    "Glorot normal: N(0, gain^2*2/(fan_in+fan_out)) (torch.nn.init.xavier_normal_)",
    XavierConfig,
    build_normal
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bits_f32, check_normal, check_uniform, draw, weight_shape};
    use proptest::prelude::*;

    #[test]
    fn bound_matches_the_formula_and_needs_two_dims() {
        let x = XavierUniform::new(XavierConfig { gain: 2.0 }).unwrap();
        let expected = 2.0 * (6.0f64 / 30.0).sqrt();
        assert!((x.bound(&[10, 20]).unwrap() - expected).abs() < 1e-15);
        assert!(x.bound(&[5]).is_err());
        let mut rng = SeededRng::new(0);
        assert!(x.init(&[5], DType::F32, &Device::Cpu, &mut rng).is_err());
        assert!(XavierNormal::new(XavierConfig { gain: -1.0 }).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn uniform_in_bounds_with_the_formula_variance(shape in weight_shape(), gain in 0.1f64..3.0, seed in any::<u64>()) {
            let x = XavierUniform::new(XavierConfig { gain }).unwrap();
            let values = draw(&x, &shape, seed);
            check_uniform(&values, x.bound(&shape).unwrap()).map_err(TestCaseError::fail)?;
            prop_assert_eq!(bits_f32(&x, &shape, seed), bits_f32(&x, &shape, seed));
        }

        #[test]
        fn normal_has_the_formula_variance(shape in weight_shape(), gain in 0.1f64..3.0, seed in any::<u64>()) {
            let x = XavierNormal::new(XavierConfig { gain }).unwrap();
            let (fan_in, fan_out) = fan_in_and_fan_out(&shape).unwrap();
            let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
            check_normal(&draw(&x, &shape, seed), std).map_err(TestCaseError::fail)?;
        }
    }
}
