//! `gaussian_blur`: blur each sample with its own random sigma
//! (torchvision.transforms.v2.GaussianBlur).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, map_samples};
use crate::functional::gaussian_blur;
use crate::params::{at_path, uniform, Range, Size};

/// Gaussian blur. Each sample draws `sigma ~ U[sigma[0], sigma[1])` (one value for both axes)
/// and is blurred by [`functional::gaussian_blur`](crate::functional::gaussian_blur) with
/// kernel `[kx, ky]` and reflect padding (each half-kernel must be smaller than the image).
#[derive(Debug, Clone)]
pub struct GaussianBlur {
    kernel_size: [usize; 2],
    sigma: [f64; 2],
}

/// Config of [`GaussianBlur`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianBlurConfig {
    /// Kernel size `k` or `[kx, ky]` (width first, as torchvision), odd and positive.
    /// Required (torchvision GaussianBlur has no default).
    pub kernel_size: Option<Size>,
    /// Sigma: a fixed `s > 0` or a `[min, max]` range to draw from. Default: `[0.1, 2.0]`
    /// (torchvision GaussianBlur).
    pub sigma: Range,
}

impl Default for GaussianBlurConfig {
    fn default() -> Self {
        GaussianBlurConfig {
            kernel_size: None,
            sigma: Range::Two([0.1, 2.0]),
        }
    }
}

impl GaussianBlur {
    /// Validates the config (torchvision's messages).
    pub fn new(config: GaussianBlurConfig) -> Result<Self> {
        let invalid = |m: &str| Error::InvalidHyperparameter(m.to_string());
        let kernel_size = match config.kernel_size {
            None => return Err(invalid("kernel_size is required")),
            Some(Size::One(k)) => [k, k],
            Some(Size::Two(k)) => k,
        };
        if kernel_size.iter().any(|k| k % 2 == 0) {
            return Err(invalid(
                "Kernel size value should be an odd and positive number.",
            ));
        }
        let sigma = match config.sigma {
            Range::One(s) if s > 0.0 => [s, s],
            Range::One(_) => {
                return Err(invalid("If sigma is a single number, it must be positive."))
            }
            Range::Two([a, b]) if 0.0 < a && a <= b && b.is_finite() => [a, b],
            Range::Two(_) => {
                return Err(invalid(
                    "sigma values should be positive and of the form (min, max).",
                ))
            }
        };
        Ok(GaussianBlur { kernel_size, sigma })
    }
}

impl ImageAugmentation for GaussianBlur {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "gaussian_blur")?;
        let sigmas: Vec<f64> = (0..batch.n).map(|_| uniform(rng, self.sigma)).collect();
        map_samples(batch, dims, dims, &sigmas, |&s, src, dst| {
            let mut scratch = vec![0.0f32; dims.len()];
            gaussian_blur(src, dims, self.kernel_size, [s, s], dst, &mut scratch)
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = GaussianBlur::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "gaussian_blur",
    "Gaussian blur with a random sigma per image (reflect padding)",
    GaussianBlurConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, sample};

    fn op(json: Value) -> Result<GaussianBlur> {
        GaussianBlur::new(parse_config(&json, "t")?)
    }

    #[test]
    fn samples_draw_their_own_sigma_and_bad_configs_are_errors() {
        let mut b = identical_batch(4, 2, 8, 8);
        op(serde_json::json!({"kernel_size": [5, 3]}))
            .unwrap()
            .apply(&mut b, &mut SeededRng::new(0))
            .unwrap();
        assert!((1..4).any(|i| sample(&b, i) != sample(&b, 0)));
        assert!(op(serde_json::json!({"kernel_size": 4})).is_err());
        assert!(op(serde_json::json!({"kernel_size": 3, "sigma": 0})).is_err());
        assert!(op(serde_json::json!({})).is_err());
        let mut tiny = identical_batch(1, 1, 2, 2);
        let big = op(serde_json::json!({"kernel_size": 5})).unwrap();
        assert!(big.apply(&mut tiny, &mut SeededRng::new(0)).is_err());
    }
}
