//! `random_rotation`: rotate each sample by its own random angle
//! (torchvision.transforms.v2.RandomRotation, `expand=False`).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, map_samples};
use crate::functional::{rotate, Interpolation};
use crate::params::{at_path, check_range, uniform, Range};

/// Random rotation: each sample draws `angle ~ U[degrees[0], degrees[1])` and is rotated
/// counter-clockwise by `angle` degrees about `center` (default: the image centre) as
/// [`functional::rotate`](crate::functional::rotate); pixels from outside the image take
/// `fill`. The output keeps the input size.
#[derive(Debug, Clone)]
pub struct RandomRotation {
    degrees: [f64; 2],
    interpolation: Interpolation,
    center: Option<[f64; 2]>,
    fill: f32,
}

/// Config of [`RandomRotation`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomRotationConfig {
    /// Angle range in degrees: `d` means `[-d, d]`. Required (torchvision RandomRotation has no
    /// default).
    pub degrees: Option<Range>,
    /// `nearest` or `bilinear`. Default: `nearest` (torchvision RandomRotation).
    pub interpolation: Interpolation,
    /// Centre `[x, y]` in pixels. Default: image centre (torchvision RandomRotation).
    pub center: Option<[f64; 2]>,
    /// Value of pixels from outside the image. Default: `0` (torchvision RandomRotation).
    pub fill: f64,
}

impl Default for RandomRotationConfig {
    fn default() -> Self {
        RandomRotationConfig {
            degrees: None,
            interpolation: Interpolation::Nearest,
            center: None,
            fill: 0.0,
        }
    }
}

/// torchvision's `degrees` check: `d >= 0` means `[-d, d]`; a pair must have `min <= max`.
pub(crate) fn check_degrees(degrees: Option<Range>) -> Result<[f64; 2]> {
    let d = degrees.ok_or_else(|| {
        gradus_core::Error::InvalidHyperparameter("degrees is required".to_string())
    })?;
    check_range("degrees", d, 0.0, [f64::MIN, f64::MAX], false)
}

impl RandomRotation {
    /// Validates the config.
    pub fn new(config: RandomRotationConfig) -> Result<Self> {
        Ok(RandomRotation {
            degrees: check_degrees(config.degrees)?,
            interpolation: config.interpolation,
            center: config.center,
            fill: config.fill as f32,
        })
    }
}

impl ImageAugmentation for RandomRotation {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "random_rotation")?;
        let angles: Vec<f64> = (0..batch.n).map(|_| uniform(rng, self.degrees)).collect();
        map_samples(batch, dims, dims, &angles, |&angle, src, dst| {
            rotate(
                src,
                dims,
                angle,
                self.interpolation,
                self.fill,
                self.center,
                dst,
            );
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomRotation::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "random_rotation",
    "rotate each image by a random angle in `degrees` (nearest or bilinear, fill)",
    RandomRotationConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, sample};

    #[test]
    fn samples_draw_their_own_angles_and_zero_range_is_identity() {
        let orig = identical_batch(6, 3, 9, 9);
        let mut b = orig.clone();
        let op = RandomRotation::new(RandomRotationConfig {
            degrees: Some(Range::One(45.0)),
            interpolation: Interpolation::Bilinear,
            ..Default::default()
        })
        .unwrap();
        op.apply(&mut b, &mut SeededRng::new(2)).unwrap();
        assert!((1..6).any(|i| sample(&b, i) != sample(&b, 0)));
        let mut c = orig.clone();
        let zero = RandomRotation::new(RandomRotationConfig {
            degrees: Some(Range::One(0.0)),
            ..Default::default()
        })
        .unwrap();
        zero.apply(&mut c, &mut SeededRng::new(2)).unwrap();
        assert_eq!(c, orig);
        assert!(RandomRotation::new(RandomRotationConfig::default()).is_err());
    }
}
