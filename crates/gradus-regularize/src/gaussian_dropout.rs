//! `gaussian_dropout`: multiplicative Gaussian noise with dropout's variance.

use std::sync::Mutex;

use candle_core::Tensor;
use gradus_core::plugin::layer::{Layer, LayerContext};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer_util::{at_field, check_p, impl_module_t, Shaped, Stochastic};

/// Gaussian dropout (Srivastava et al. 2014, section 10), as Keras' `GaussianDropout(rate)`.
///
/// In training each element is multiplied by independent noise of mean 1 and the variance of
/// inverted Bernoulli dropout with the same `p`:
///
/// ```text
/// y_i = x_i * e_i,    e_i ~ N(1, p / (1 - p))
/// ```
///
/// so `E[y] = x`; evaluation is the identity. Symbols: `p` = `p`. PyTorch has no such layer;
/// default `p = 0.5` follows torch.nn.Dropout. The noise is continuous, so unlike the binary
/// masks it is a float tensor of the input's shape and dtype.
#[derive(Debug)]
pub struct GaussianDropout {
    p: f64,
    rng: Mutex<SeededRng>,
}

/// Configuration of [`GaussianDropout`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianDropoutConfig {
    /// Equivalent drop probability, in `[0, 1)`; the noise variance is `p / (1 - p)`.
    /// Default: `0.5` (as torch.nn.Dropout).
    pub p: f64,
}

impl Default for GaussianDropoutConfig {
    fn default() -> Self {
        GaussianDropoutConfig { p: 0.5 }
    }
}

impl GaussianDropout {
    /// Gaussian dropout with equivalent probability `p`; `seed` seeds the `ModuleT` generator.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        check_p(p)?;
        Ok(GaussianDropout {
            p,
            rng: Mutex::new(SeededRng::new(seed)),
        })
    }

    /// The output for `x`, drawing the noise from `rng` when `train` is true.
    pub fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let std = (self.p / (1.0 - self.p)).sqrt();
        let noise = rng.normal_tensor(x.dims(), 1.0, std, x.dtype(), x.device())?;
        Ok(x.mul(&noise)?)
    }
}

impl Stochastic for GaussianDropout {
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        GaussianDropout::forward_with(self, x, train, rng)
    }
}

impl_module_t!(GaussianDropout);

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: GaussianDropoutConfig = gradus_core::config::parse_config(config, path)?;
    let module = GaussianDropout::new(config.p, 0).map_err(|e| at_field(e, path, "p"))?;
    Ok(Box::new(Shaped {
        module,
        output_shape: ctx.input_shape.clone(),
    }))
}

gradus_core::register_layer!(
    "gaussian_dropout",
    "multiplicative N(1, p/(1-p)) noise (keras GaussianDropout)",
    GaussianDropoutConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{f32s, tiled};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Mean over many draws ~ input; per-draw relative variance ~ p/(1-p); eval identity;
        /// same seed, same noise.
        #[test]
        fn unbiased_with_dropout_variance(seed in any::<u64>(), p in 0.05f64..0.9) {
            let n = 16;
            let draws = 800;
            let mut rng = SeededRng::new(seed);
            let x: Vec<f32> = (0..n).map(|_| 0.5 + rng.unit_f64() as f32).collect();
            let big = tiled(&x, draws, &[n]);
            let layer = GaussianDropout::new(p, 0).unwrap();
            let y = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            crate::testing::assert_unbiased(&y, &x, draws, p / (1.0 - p));
            let values = f32s(&y);
            let rel: Vec<f64> = values.iter().enumerate().map(|(k, v)| *v as f64 / x[k % n] as f64).collect();
            let m = rel.iter().sum::<f64>() / rel.len() as f64;
            let var = rel.iter().map(|r| (r - m).powi(2)).sum::<f64>() / rel.len() as f64;
            let want = p / (1.0 - p);
            prop_assert!((var - want).abs() <= 0.1 * want, "variance {} vs {}", var, want);
            let again = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(f32s(&again), values);
            let eval = layer.forward_with(&big, false, &mut rng).unwrap();
            prop_assert_eq!(f32s(&eval), f32s(&big));
        }
    }
}
