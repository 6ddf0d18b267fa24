//! LeCun initialization: `Var[w] = 1 / fan_in`.
//!
//! LeCun et al. (1998), "Efficient BackProp"; the initializer SELU networks assume (Klambauer
//! et al. 2017). PyTorch has no `lecun_*` function: these equal `kaiming_uniform_` /
//! `kaiming_normal_` with `nonlinearity="linear"` and `mode="fan_in"`, which is what they
//! compute. Note: Keras' and JAX's `lecun_normal` draw from a *truncated* normal rescaled to the
//! same variance; this `lecun_normal` is an untruncated normal, as the PyTorch equivalent.

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{centered_normal, symmetric_uniform};
use crate::fan::fan_in_and_fan_out;

/// Config of [`LecunUniform`] and [`LecunNormal`]: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LecunConfig {}

/// `1 / sqrt(fan_in)` for a weight of `shape` (two dimensions or more).
fn lecun_std(shape: &[usize]) -> Result<f64> {
    let (fan_in, _) = fan_in_and_fan_out(shape)?;
    Ok(1.0 / (fan_in as f64).sqrt())
}

/// LeCun uniform: `w ~ U(-bound, bound)`, `bound = sqrt(3 / fan_in)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LecunUniform;

impl LecunUniform {
    /// The bound for a weight of `shape`.
    pub fn bound(&self, shape: &[usize]) -> Result<f64> {
        Ok(3.0f64.sqrt() * lecun_std(shape)?)
    }
}

impl Initializer for LecunUniform {
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
    let _: LecunConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(LecunUniform))
}

gradus_core::register_initializer!(
    "lecun_uniform",
    "LeCun uniform: U(-b, b), b = sqrt(3/fan_in) (kaiming_uniform_ with the linear gain)",
    LecunConfig,
    build_uniform
);

/// LeCun normal: `w ~ N(0, 1 / fan_in)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LecunNormal;

impl LecunNormal {
    /// The standard deviation for a weight of `shape`.
    pub fn std(&self, shape: &[usize]) -> Result<f64> {
        lecun_std(shape)
    }
}

impl Initializer for LecunNormal {
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
    let _: LecunConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(LecunNormal))
}

gradus_core::register_initializer!(
    "lecun_normal",
    "LeCun normal: N(0, 1/fan_in) (kaiming_normal_ with the linear gain; untruncated)",
    LecunConfig,
    build_normal
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bits_f32, check_normal, check_uniform, draw, weight_shape};
    use proptest::prelude::*;

    #[test]
    fn needs_two_dimensions() {
        let mut rng = SeededRng::new(0);
        assert!(LecunNormal
            .init(&[4], DType::F32, &Device::Cpu, &mut rng)
            .is_err());
        assert!(build_uniform(&serde_json::json!({"gain": 1}), "init").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn samples_match_bounds_and_variance(shape in weight_shape(), seed in any::<u64>()) {
            let (fan_in, _) = fan_in_and_fan_out(&shape).unwrap();
            let std = 1.0 / (fan_in as f64).sqrt();
            check_uniform(&draw(&LecunUniform, &shape, seed), 3f64.sqrt() * std).map_err(TestCaseError::fail)?;
            check_normal(&draw(&LecunNormal, &shape, seed), std).map_err(TestCaseError::fail)?;
            prop_assert_eq!(bits_f32(&LecunNormal, &shape, seed), bits_f32(&LecunNormal, &shape, seed));
        }
    }
}
