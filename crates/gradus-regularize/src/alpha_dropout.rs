//! `alpha_dropout`: dropout that keeps SELU's zero mean and unit variance.

use std::sync::Mutex;

use candle_core::Tensor;
use gradus_core::plugin::layer::{Layer, LayerContext};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer_util::{at_field, check_p, impl_module_t, Shaped, Stochastic};
use crate::mask::{apply, KeepMask, MaskMap};

/// `-SELU_scale * SELU_alpha`'s magnitude, PyTorch's `alpha` in `ATen/native/Dropout.cpp`.
pub(crate) const SELU_ALPHA_PRIME: f64 = 1.7580993408473766;

/// Alpha dropout (Klambauer et al. 2017, "Self-Normalizing Neural Networks"), exactly
/// `torch.nn.AlphaDropout`.
///
/// Dropped activations are set to SELU's negative saturation `-alpha'` instead of 0, then an
/// affine map restores mean 0 and variance 1 for standardized inputs. With keep mask
/// `m ~ Bernoulli(1 - p)`, `alpha' = 1.7580993408473766` and
///
/// ```text
/// a = 1 / sqrt((alpha'^2 * p + 1) * (1 - p))
/// y = a * x + a * alpha' * p          where m = 1
/// y = -a * alpha' * (1 - p)           where m = 0
/// ```
///
/// (PyTorch's `input * (m * a) + ((m - 1) * alpha' * a + alpha' * a * p)`). Evaluation is the
/// identity. Symbols: `p` = `p`. Default `p = 0.5` (torch.nn.AlphaDropout).
#[derive(Debug)]
pub struct AlphaDropout {
    p: f64,
    rng: Mutex<SeededRng>,
}

/// Configuration of [`AlphaDropout`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlphaDropoutConfig {
    /// Probability of dropping an element, in `[0, 1)`. Default: `0.5` (torch.nn.AlphaDropout).
    pub p: f64,
}

impl Default for AlphaDropoutConfig {
    fn default() -> Self {
        AlphaDropoutConfig { p: 0.5 }
    }
}

impl AlphaDropout {
    /// Alpha dropout with probability `p`; `seed` seeds the generator used through `ModuleT`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        check_p(p)?;
        Ok(AlphaDropout {
            p,
            rng: Mutex::new(SeededRng::new(seed)),
        })
    }

    /// The affine map applied to kept and dropped elements.
    pub(crate) fn map(p: f64) -> MaskMap {
        let alpha = SELU_ALPHA_PRIME;
        let a = 1.0 / ((alpha * alpha * p + 1.0) * (1.0 - p)).sqrt();
        MaskMap {
            kept_scale: a,
            kept_shift: alpha * a * p,
            dropped_value: -alpha * a * (1.0 - p),
        }
    }

    /// The output for `x`, drawing the mask from `rng` when `train` is true.
    pub fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mask = KeepMask::draw(x.elem_count(), self.p, rng);
        apply(x, mask, 1, Self::map(self.p))
    }
}

impl Stochastic for AlphaDropout {
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        AlphaDropout::forward_with(self, x, train, rng)
    }
}

impl_module_t!(AlphaDropout);

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: AlphaDropoutConfig = gradus_core::config::parse_config(config, path)?;
    let module = AlphaDropout::new(config.p, 0).map_err(|e| at_field(e, path, "p"))?;
    Ok(Box::new(Shaped {
        module,
        output_shape: ctx.input_shape.clone(),
    }))
}

gradus_core::register_layer!(
    "alpha_dropout",
    "SELU-preserving alpha dropout (torch.nn.AlphaDropout)",
    AlphaDropoutConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::f32s;
    use candle_core::{DType, Device};
    use proptest::prelude::*;

    #[test]
    fn matches_pytorch_formula_elementwise() {
        // For p = 0.2: a = 1/sqrt((alpha^2*0.2 + 1)*0.8); kept -> a*x + alpha*a*0.2,
        // dropped -> alpha*a*(0.2 - 1), computed here as PyTorch writes it.
        let p = 0.2f64;
        let alpha = SELU_ALPHA_PRIME;
        let a = 1.0 / ((alpha * alpha * p + 1.0) * (1.0 - p)).sqrt();
        let x: Vec<f64> = (0..64).map(|i| i as f64 / 10.0 - 3.0).collect();
        let xt = Tensor::new(x.as_slice(), &Device::Cpu).unwrap();
        let layer = AlphaDropout::new(p, 0).unwrap();
        let y = layer
            .forward_with(&xt, true, &mut SeededRng::new(5))
            .unwrap();
        let mask = KeepMask::draw(64, p, &mut SeededRng::new(5));
        for (i, (yi, xi)) in y.to_vec1::<f64>().unwrap().iter().zip(&x).enumerate() {
            let m = f64::from(u8::from(mask.is_kept(i)));
            let want = xi * (m * a) + ((m - 1.0) * alpha * a + alpha * a * p);
            assert!((yi - want).abs() < 1e-12, "{i}: {yi} vs {want}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// On standard normal inputs the output keeps mean 0 and variance 1; the dropped
        /// fraction is p; eval is the identity; same seed, same output.
        #[test]
        fn keeps_zero_mean_unit_variance(seed in any::<u64>(), p in 0.05f64..0.8) {
            let n = 20_000;
            let mut rng = SeededRng::new(seed);
            let x = rng.normal_tensor(&[n], 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
            let layer = AlphaDropout::new(p, 0).unwrap();
            let y = layer.forward_with(&x, true, &mut SeededRng::new(seed)).unwrap();
            let v: Vec<f64> = f32s(&y).iter().map(|&v| v as f64).collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n as f64;
            prop_assert!(mean.abs() < 0.05, "mean {}", mean);
            prop_assert!((var - 1.0).abs() < 0.08, "variance {}", var);
            let dropped_value = AlphaDropout::map(p).dropped_value as f32;
            let dropped = f32s(&y).iter().filter(|&&t| t == dropped_value).count() as f64 / n as f64;
            prop_assert!((dropped - p).abs() <= 6.0 * (p * (1.0 - p) / n as f64).sqrt());
            let again = layer.forward_with(&x, true, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(f32s(&again), f32s(&y));
            prop_assert_eq!(f32s(&layer.forward_with(&x, false, &mut rng).unwrap()), f32s(&x));
        }
    }
}
