//! Normal initializer (`torch.nn.init.normal_`).

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{finite, non_negative};

/// Draws each entry from `N(mean, std^2)`: `w = mean + std * z`, `z` standard normal from the
/// seeded generator (drawn in f64, then cast).
#[derive(Debug, Clone, Copy)]
pub struct Normal {
    mean: f64,
    std: f64,
}

/// Config of [`Normal`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NormalConfig {
    /// Mean. Default: `0.0` (torch.nn.init.normal_).
    pub mean: f64,
    /// Standard deviation, `>= 0`. Default: `1.0` (torch.nn.init.normal_).
    pub std: f64,
}

impl Default for NormalConfig {
    fn default() -> Self {
        NormalConfig {
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl Normal {
    /// A normal initializer; `mean` finite, `std` finite and `>= 0`.
    pub fn new(config: NormalConfig) -> Result<Self> {
        Ok(Normal {
            mean: finite("normal", "mean", config.mean)?,
            std: non_negative("normal", "std", config.std)?,
        })
    }
}

impl Initializer for Normal {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        rng.normal_tensor(shape, self.mean, self.std, dtype, device)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(Normal::new(gradus_core::config::parse_config(
        config, path,
    )?)?))
}

gradus_core::register_initializer!(
    "normal",
    "N(mean, std^2) (torch.nn.init.normal_)",
    NormalConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{draw, mean_var, variance_close};
    use serde_json::json;

    #[test]
    fn moments_match() {
        let n = build(&json!({"mean": 2.0, "std": 0.5}), "init").unwrap();
        let values = draw(n.as_ref(), &[20_000], 4);
        let (mean, var) = mean_var(&values);
        assert!(
            (mean - 2.0).abs() < 5.0 * 0.5 / (20_000f64).sqrt(),
            "{mean}"
        );
        assert!(variance_close(var, 0.25, values.len(), 3.0, 5.0), "{var}");
    }

    #[test]
    fn negative_std_is_an_error() {
        let err = build(&json!({"std": -1.0}), "init").err().unwrap();
        assert!(err.to_string().contains("`std` must be >= 0"), "{err}");
    }
}
