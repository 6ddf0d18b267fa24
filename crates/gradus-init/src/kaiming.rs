//! He/Kaiming initialization (`torch.nn.init.kaiming_uniform_` / `kaiming_normal_`).
//!
//! He et al. (2015), "Delving deep into rectifiers": for a rectifier network keep
//! `Var[w] = gain^2 / fan`, where `fan` is `fan_in` (preserves activation variance forward) or
//! `fan_out` (preserves gradient variance backward).

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{centered_normal, finite, symmetric_uniform};
use crate::fan::{FanMode, Nonlinearity};

/// Config of [`KaimingUniform`] and [`KaimingNormal`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KaimingConfig {
    /// Negative slope of the rectifier after this layer, passed to
    /// [`calculate_gain`](crate::calculate_gain) as `param` (only `leaky_relu` uses it).
    /// Default: `0.0` (torch.nn.init.kaiming_uniform_).
    pub a: f64,
    /// `fan_in` or `fan_out`. Default: `"fan_in"` (torch.nn.init.kaiming_uniform_).
    pub mode: FanMode,
    /// The nonlinearity after this layer (PyTorch's names: `relu`, `leaky_relu`, `tanh`, ...).
    /// Default: `"leaky_relu"` (torch.nn.init.kaiming_uniform_), which with `a = 0` gives the
    /// relu gain sqrt(2).
    pub nonlinearity: Nonlinearity,
}

impl Default for KaimingConfig {
    fn default() -> Self {
        KaimingConfig {
            a: 0.0,
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::LeakyRelu,
        }
    }
}

/// The validated config: its gain, computed once.
#[derive(Debug, Clone, Copy)]
struct Kaiming {
    gain: f64,
    mode: FanMode,
}

impl Kaiming {
    fn new(config: &KaimingConfig, what: &str) -> Result<Self> {
        let a = finite(what, "a", config.a)?;
        Ok(Kaiming {
            gain: config.nonlinearity.gain(Some(a))?,
            mode: config.mode,
        })
    }

    /// `gain / sqrt(fan)`, as PyTorch.
    fn std(&self, shape: &[usize]) -> Result<f64> {
        let fan = self.mode.fan(shape)? as f64;
        Ok(self.gain / fan.sqrt())
    }
}

/// Kaiming uniform: `w ~ U(-bound, bound)`, `bound = sqrt(3) * gain / sqrt(fan)`, with
/// `gain = calculate_gain(nonlinearity, a)` and `fan` chosen by `mode`. Needs two dimensions.
#[derive(Debug, Clone, Copy)]
pub struct KaimingUniform(Kaiming);

impl KaimingUniform {
    /// A Kaiming uniform initializer; `a` finite.
    pub fn new(config: KaimingConfig) -> Result<Self> {
        Ok(KaimingUniform(Kaiming::new(&config, "kaiming_uniform")?))
    }

    /// The bound for a weight of `shape`.
    pub fn bound(&self, shape: &[usize]) -> Result<f64> {
        Ok(3.0f64.sqrt() * self.0.std(shape)?)
    }
}

impl Initializer for KaimingUniform {
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
    Ok(Box::new(KaimingUniform::new(
        gradus_core::config::parse_config(config, path)?,
    )?))
}

gradus_core::register_initializer!(
    "kaiming_uniform",
    "He uniform: U(-b, b), b = gain*sqrt(3/fan) (torch.nn.init.kaiming_uniform_)",
    KaimingConfig,
    build_uniform
);

/// Kaiming normal: `w ~ N(0, std^2)`, `std = gain / sqrt(fan)`. Needs two dimensions.
#[derive(Debug, Clone, Copy)]
pub struct KaimingNormal(Kaiming);

impl KaimingNormal {
    /// A Kaiming normal initializer; `a` finite.
    pub fn new(config: KaimingConfig) -> Result<Self> {
        Ok(KaimingNormal(Kaiming::new(&config, "kaiming_normal")?))
    }

    /// The standard deviation for a weight of `shape`.
    pub fn std(&self, shape: &[usize]) -> Result<f64> {
        self.0.std(shape)
    }
}

impl Initializer for KaimingNormal {
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
    Ok(Box::new(KaimingNormal::new(
        gradus_core::config::parse_config(config, path)?,
    )?))
}

gradus_core::register_initializer!(
    "kaiming_normal",
    "He normal: N(0, gain^2/fan) (torch.nn.init.kaiming_normal_)",
    KaimingConfig,
    build_normal
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fan::fan_in_and_fan_out;
    use crate::testing::{bits_f32, check_normal, check_uniform, draw, weight_shape};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn defaults_give_the_relu_gain_on_fan_in() {
        let k = KaimingNormal::new(KaimingConfig::default()).unwrap();
        assert!((k.std(&[10, 50]).unwrap() - (2.0f64 / 50.0).sqrt()).abs() < 1e-15);
        let k = build_uniform(&json!({"mode": "fan_out", "nonlinearity": "tanh"}), "init").unwrap();
        let values = draw(k.as_ref(), &[4, 9], 1);
        let bound = 3f64.sqrt() * (5.0 / 3.0) / 2.0;
        assert!(values.iter().all(|v| v.abs() <= bound));
        assert!(draw(k.as_ref(), &[0, 9], 1).is_empty());
    }

    #[test]
    fn bad_mode_or_nonlinearity_is_a_config_error() {
        let err = build_uniform(&json!({"mode": "fan_avg"}), "layers[0].init")
            .err()
            .unwrap();
        assert!(err.to_string().contains("layers[0].init.mode"), "{err}");
        let err = build_normal(&json!({"nonlinearity": "gelu"}), "init")
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown variant `gelu`"), "{err}");
        let mut rng = SeededRng::new(0);
        let k = KaimingNormal::new(KaimingConfig::default()).unwrap();
        assert!(k.init(&[3], DType::F32, &Device::Cpu, &mut rng).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn uniform_in_bounds_with_the_formula_variance(
            shape in weight_shape(), a in 0.0f64..1.0, fan_out in any::<bool>(), seed in any::<u64>(),
        ) {
            let mode = if fan_out { FanMode::FanOut } else { FanMode::FanIn };
            let cfg = KaimingConfig { a, mode, nonlinearity: Nonlinearity::LeakyRelu };
            let k = KaimingUniform::new(cfg).unwrap();
            let fan = mode.fan(&shape).unwrap() as f64;
            let bound = (6.0 / ((1.0 + a * a) * fan)).sqrt();
            prop_assert!((k.bound(&shape).unwrap() - bound).abs() <= 1e-12 * bound);
            check_uniform(&draw(&k, &shape, seed), bound).map_err(TestCaseError::fail)?;
            prop_assert_eq!(bits_f32(&k, &shape, seed), bits_f32(&k, &shape, seed));
        }

        #[test]
        fn normal_has_the_formula_variance(shape in weight_shape(), seed in any::<u64>()) {
            let k = KaimingNormal::new(KaimingConfig { nonlinearity: Nonlinearity::Relu, ..Default::default() }).unwrap();
            let (fan_in, _) = fan_in_and_fan_out(&shape).unwrap();
            check_normal(&draw(&k, &shape, seed), (2.0 / fan_in as f64).sqrt()).map_err(TestCaseError::fail)?;
        }
    }
}
