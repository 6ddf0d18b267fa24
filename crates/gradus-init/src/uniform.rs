//! Uniform initializer (`torch.nn.init.uniform_`).

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::finite;

/// Draws each entry from `U(a, b)`: `w = a + (b - a) * u`, `u` uniform in `[0, 1)` from the
/// seeded generator (drawn in f64, then cast to the requested dtype).
#[derive(Debug, Clone, Copy)]
pub struct Uniform {
    a: f64,
    b: f64,
}

/// Config of [`Uniform`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UniformConfig {
    /// Lower bound `a`. Default: `0.0` (torch.nn.init.uniform_).
    pub a: f64,
    /// Upper bound `b`. Default: `1.0` (torch.nn.init.uniform_).
    pub b: f64,
}

impl Default for UniformConfig {
    fn default() -> Self {
        UniformConfig { a: 0.0, b: 1.0 }
    }
}

impl Uniform {
    /// A uniform initializer; the bounds must be finite with `a <= b`.
    pub fn new(config: UniformConfig) -> Result<Self> {
        let (a, b) = (
            finite("uniform", "a", config.a)?,
            finite("uniform", "b", config.b)?,
        );
        if a > b {
            return Err(Error::InvalidHyperparameter(format!(
                "uniform_ expects to return a [from, to) range, but found from={a} > to={b}"
            )));
        }
        Ok(Uniform { a, b })
    }
}

impl Initializer for Uniform {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        rng.uniform_tensor(shape, self.a, self.b, dtype, device)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(Uniform::new(gradus_core::config::parse_config(
        config, path,
    )?)?))
}

gradus_core::register_initializer!(
    "uniform",
    "U(a, b) (torch.nn.init.uniform_)",
    UniformConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bits_f32, draw};
    use serde_json::json;

    #[test]
    fn draws_in_range_and_repeats_with_the_seed() {
        let u = build(&json!({"a": -3.0, "b": -1.0}), "init").unwrap();
        assert!(draw(u.as_ref(), &[50], 1)
            .iter()
            .all(|v| (-3.0..-1.0).contains(v)));
        assert_eq!(
            bits_f32(u.as_ref(), &[7, 3], 9),
            bits_f32(u.as_ref(), &[7, 3], 9)
        );
        assert_ne!(
            bits_f32(u.as_ref(), &[7, 3], 9),
            bits_f32(u.as_ref(), &[7, 3], 10)
        );
    }

    #[test]
    fn reversed_bounds_are_an_error() {
        let err = build(&json!({"a": 1.0, "b": 0.0}), "init").err().unwrap();
        assert!(err.to_string().contains("from=1 > to=0"), "{err}");
    }
}
