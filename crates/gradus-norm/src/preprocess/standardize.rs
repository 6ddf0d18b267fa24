//! Standardization: per-feature zero mean and unit variance.

use candle_core::Tensor;
use gradus_core::plugin::preprocessor::Preprocessor;
use gradus_core::{Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::features::{fitted, like, load, mean, Features};

/// `y = (x - mean) / scale`, `inverse`: `x = y * scale + mean`, per feature, with `mean` and
/// `scale` = the *biased* (ddof 0) standard deviation of the training split, as
/// `sklearn.preprocessing.StandardScaler` (PyTorch has no fitted scaler; torchvision's
/// `Normalize` takes the same two statistics as arguments).
///
/// **Constant features.** A feature whose training variance is zero up to rounding
/// (`var <= n * eps * var + (n * mean * eps)^2`, sklearn's test, `eps` = f64 machine epsilon)
/// gets `scale = 1`: it maps to `x - mean` (0 on the training data) instead of `0 / 0 = NaN`,
/// and `inverse` still restores it exactly.
///
/// State: `mean` (zeros when `with_mean` is false) and `scale` (ones when `with_std` is false),
/// f64 tensors of the feature shape: exactly the shift and scale applied.
#[derive(Debug, Clone)]
pub struct Standardize {
    config: StandardizeConfig,
    mean: Option<Tensor>,
    scale: Option<Tensor>,
}

/// Config of [`Standardize`] (sklearn's keyword names).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StandardizeConfig {
    /// Subtract the mean. Default: `true` (sklearn StandardScaler).
    pub with_mean: bool,
    /// Divide by the standard deviation. Default: `true` (sklearn StandardScaler).
    pub with_std: bool,
}

impl Default for StandardizeConfig {
    fn default() -> Self {
        StandardizeConfig {
            with_mean: true,
            with_std: true,
        }
    }
}

impl Standardize {
    /// An unfitted standardization.
    pub fn new(config: StandardizeConfig) -> Self {
        Standardize {
            config,
            mean: None,
            scale: None,
        }
    }

    fn stats(&self) -> Result<(&Tensor, &Tensor)> {
        Ok((
            fitted(&self.mean, "standardize")?,
            fitted(&self.scale, "standardize")?,
        ))
    }
}

/// Mean and scale of one feature's training values.
fn shift_and_scale(values: &[f64], config: &StandardizeConfig) -> (f64, f64) {
    let n = values.len() as f64;
    let m = mean(values);
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
    let eps = f64::EPSILON;
    let constant = var <= n * eps * var + (n * m * eps).powi(2);
    let scale = if !config.with_std || constant {
        1.0
    } else {
        var.sqrt()
    };
    (if config.with_mean { m } else { 0.0 }, scale)
}

impl Preprocessor for Standardize {
    fn fit(&mut self, train: &Tensor) -> Result<()> {
        let features = Features::read(train, "standardize")?;
        let means = features.per_feature(|v| shift_and_scale(v, &self.config).0);
        let scales = features.per_feature(|v| shift_and_scale(v, &self.config).1);
        self.mean = Some(features.tensor(means)?);
        self.scale = Some(features.tensor(scales)?);
        Ok(())
    }

    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let (mean, scale) = self.stats()?;
        let centered = x.broadcast_sub(&like(mean, x, "standardize")?)?;
        Ok(centered.broadcast_div(&like(scale, x, "standardize")?)?)
    }

    fn inverse(&self, x: &Tensor) -> Result<Tensor> {
        let (mean, scale) = self.stats()?;
        let scaled = x.broadcast_mul(&like(scale, x, "standardize")?)?;
        Ok(scaled.broadcast_add(&like(mean, x, "standardize")?)?)
    }

    fn state(&self) -> StateDict {
        let mut sd = StateDict::new();
        if let (Some(mean), Some(scale)) = (&self.mean, &self.scale) {
            sd.insert("mean", mean.clone());
            sd.insert("scale", scale.clone());
        }
        sd
    }

    fn load_state(&mut self, state: &StateDict) -> Result<()> {
        let mut loaded = load(state, &["mean", "scale"], "standardize")?.into_iter();
        (self.mean, self.scale) = (loaded.next(), loaded.next());
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Preprocessor>> {
    Ok(Box::new(Standardize::new(
        gradus_core::config::parse_config(config, path)?,
    )))
}

gradus_core::register_preprocessor!(
    "standardize",
    "per-feature (x - mean) / std from the training split; constant features get std 1",
    StandardizeConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use gradus_core::SeededRng;
    use proptest::prelude::*;

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
    }

    #[test]
    fn constant_feature_maps_to_zero_without_nan() {
        let dev = Device::Cpu;
        let train = Tensor::new(&[[0.1f64, 1.0], [0.1, 3.0], [0.1, 5.0]], &dev).unwrap();
        let mut s = Standardize::new(StandardizeConfig::default());
        s.fit(&train).unwrap();
        let y = rows(&s.transform(&train).unwrap());
        assert!(y.iter().all(|r| r[0] == 0.0 || r[0].abs() < 1e-15), "{y:?}");
        let sd = (8.0f64 / 3.0).sqrt();
        assert!((y[2][1] - 2.0 / sd).abs() < 1e-12);
        let scale = s.state().get("scale").unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(scale[0], 1.0);
        let back = rows(&s.inverse(&s.transform(&train).unwrap()).unwrap());
        for (a, b) in back.iter().zip(rows(&train)) {
            assert_eq!(a[0], b[0]);
            assert!((a[1] - b[1]).abs() < 1e-14);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn transform_then_inverse_is_the_identity(
            seed in any::<u64>(), n in 1usize..12, f in 1usize..6, loc in -100.0f64..100.0, spread in 0.0f64..50.0,
        ) {
            let mut rng = SeededRng::new(seed);
            let x = rng.normal_tensor(&[n, f], loc, spread, DType::F64, &Device::Cpu).unwrap();
            let mut s = Standardize::new(StandardizeConfig::default());
            s.fit(&x).unwrap();
            let y = s.transform(&x).unwrap();
            let back = rows(&s.inverse(&y).unwrap());
            for (a, b) in back.iter().flatten().zip(rows(&x).iter().flatten()) {
                prop_assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{} vs {}", a, b);
            }
            prop_assert!(rows(&y).iter().flatten().all(|v| v.is_finite()));
        }
    }
}
