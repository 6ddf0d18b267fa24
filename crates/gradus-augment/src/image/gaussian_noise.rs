//! `gaussian_noise`: add independent Gaussian noise to every value
//! (torchvision.transforms.v2.GaussianNoise).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, for_each_sample, sample_rng};
use crate::params::at_path;

/// Gaussian noise: `x <- x + mean + sigma z`, `z ~ N(0, 1)` per value, then
/// `clamp(x, 0, 1)` when `clip`. Each sample draws one seed from the caller's generator in
/// sample order and expands it into its noise, so the result does not depend on threads.
#[derive(Debug, Clone)]
pub struct GaussianNoise {
    mean: f64,
    sigma: f64,
    clip: bool,
}

/// Config of [`GaussianNoise`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianNoiseConfig {
    /// Mean of the noise. Default: `0.0` (torchvision GaussianNoise).
    pub mean: f64,
    /// Standard deviation of the noise (alias `std`). Default: `0.1` (torchvision
    /// GaussianNoise).
    #[serde(alias = "std")]
    #[schemars(extend("x-aliases" = ["std"]))]
    pub sigma: f64,
    /// Clamp the result to `[0, 1]`. Default: `true` (torchvision GaussianNoise).
    pub clip: bool,
}

impl Default for GaussianNoiseConfig {
    fn default() -> Self {
        GaussianNoiseConfig {
            mean: 0.0,
            sigma: 0.1,
            clip: true,
        }
    }
}

impl GaussianNoise {
    /// Validates the config.
    pub fn new(config: GaussianNoiseConfig) -> Result<Self> {
        if !(config.sigma >= 0.0 && config.sigma.is_finite() && config.mean.is_finite()) {
            return Err(Error::InvalidHyperparameter(format!(
                "sigma shouldn't be negative (and mean and sigma finite), got mean {}, sigma {}",
                config.mean, config.sigma
            )));
        }
        Ok(GaussianNoise {
            mean: config.mean,
            sigma: config.sigma,
            clip: config.clip,
        })
    }
}

impl ImageAugmentation for GaussianNoise {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "gaussian_noise")?;
        let seeds: Vec<SeededRng> = (0..batch.n).map(|_| sample_rng(rng)).collect();
        for_each_sample(batch, dims, &seeds, |seed, img| {
            let mut rng = seed.clone();
            for v in img.iter_mut() {
                let x = *v as f64 + self.mean + self.sigma * rng.standard_normal();
                *v = if self.clip { x.clamp(0.0, 1.0) } else { x } as f32;
            }
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = GaussianNoise::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "gaussian_noise",
    "add N(mean, sigma^2) noise to every value, optionally clamped to [0, 1]",
    GaussianNoiseConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, sample};

    #[test]
    fn noise_has_the_configured_moments_and_differs_per_sample() {
        let mut b = identical_batch(4, 1, 50, 50);
        let orig = b.clone();
        let op = GaussianNoise::new(
            parse_config(
                &serde_json::json!({"mean": 0.1, "std": 0.2, "clip": false}),
                "t",
            )
            .unwrap(),
        )
        .unwrap();
        op.apply(&mut b, &mut SeededRng::new(3)).unwrap();
        assert_ne!(sample(&b, 0), sample(&b, 1));
        let d: Vec<f64> = b
            .pixels
            .iter()
            .zip(&orig.pixels)
            .map(|(a, o)| (a - o) as f64)
            .collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64;
        assert!((mean - 0.1).abs() < 0.01, "{mean}");
        assert!((var.sqrt() - 0.2).abs() < 0.01, "{}", var.sqrt());
        assert!(GaussianNoise::new(GaussianNoiseConfig {
            sigma: -1.0,
            ..Default::default()
        })
        .is_err());
    }
}
