//! `color_jitter`: random brightness, contrast, saturation and hue in a random order per
//! sample (torchvision.transforms.v2.ColorJitter).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, for_each_sample};
use crate::functional::{adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
use crate::params::{at_path, check_range, uniform, Range};

/// Color jitter. Each sample draws a random order of the four adjustments, then a factor for
/// each enabled one: `b ~ U[brightness]`, `c ~ U[contrast]`, `s ~ U[saturation]`,
/// `h ~ U[hue]`, and applies them in that order with
/// [`functional`](crate::functional)'s `adjust_*` (each clamps to `[0, 1]`). A number `v`
/// means `[max(0, 1 - v), 1 + v]` (`[-v, v]` for hue). Brightness and contrast work on any
/// number of channels; saturation and hue need 3 (an error otherwise).
#[derive(Debug, Clone)]
pub struct ColorJitter {
    /// Factor ranges of brightness, contrast, saturation, hue; `None` = not applied.
    ranges: [Option<[f64; 2]>; 4],
}

/// Config of [`ColorJitter`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitterConfig {
    /// Brightness factor range; `v` = `[max(0, 1 - v), 1 + v]`. Default: `0` (off;
    /// torchvision ColorJitter).
    pub brightness: Range,
    /// Contrast factor range, as brightness. Default: `0` (off; torchvision ColorJitter).
    pub contrast: Range,
    /// Saturation factor range, as brightness; 3 channels only. Default: `0` (off;
    /// torchvision ColorJitter).
    pub saturation: Range,
    /// Hue shift range within `[-0.5, 0.5]`; `v` = `[-v, v]`; 3 channels only. Default: `0`
    /// (off; torchvision ColorJitter).
    pub hue: Range,
}

impl Default for ColorJitterConfig {
    fn default() -> Self {
        ColorJitterConfig {
            brightness: Range::One(0.0),
            contrast: Range::One(0.0),
            saturation: Range::One(0.0),
            hue: Range::One(0.0),
        }
    }
}

/// A range equal to `[center, center]` turns the adjustment off, as torchvision's `None`.
fn enabled(r: [f64; 2], center: f64) -> Option<[f64; 2]> {
    (r != [center, center]).then_some(r)
}

impl ColorJitter {
    /// Validates the config (torchvision's `_check_input`).
    pub fn new(config: ColorJitterConfig) -> Result<Self> {
        let factor = |name, v| check_range(name, v, 1.0, [0.0, f64::INFINITY], true);
        Ok(ColorJitter {
            ranges: [
                enabled(factor("brightness", config.brightness)?, 1.0),
                enabled(factor("contrast", config.contrast)?, 1.0),
                enabled(factor("saturation", config.saturation)?, 1.0),
                enabled(
                    check_range("hue", config.hue, 0.0, [-0.5, 0.5], false)?,
                    0.0,
                ),
            ],
        })
    }
}

/// One sample's draw: the order of the adjustments and their factors.
struct Jitter {
    order: Vec<u32>,
    factors: [Option<f64>; 4],
}

impl ImageAugmentation for ColorJitter {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "color_jitter")?;
        if dims.c != 3 && (self.ranges[2].is_some() || self.ranges[3].is_some()) {
            return Err(Error::Unsupported(format!(
                "color_jitter: saturation and hue need 3-channel (RGB) images, got {} channels",
                dims.c
            )));
        }
        let draws: Vec<Jitter> = (0..batch.n)
            .map(|_| Jitter {
                order: rng.permutation(4),
                factors: self.ranges.map(|r| r.map(|r| uniform(rng, r))),
            })
            .collect();
        for_each_sample(batch, dims, &draws, |j, img| {
            for &k in &j.order {
                match (k, j.factors[k as usize]) {
                    (_, None) => {}
                    (0, Some(f)) => adjust_brightness(img, f),
                    (1, Some(f)) => adjust_contrast(img, dims, f),
                    (2, Some(f)) => adjust_saturation(img, dims, f)?,
                    (_, Some(f)) => adjust_hue(img, dims, f)?,
                }
            }
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = ColorJitter::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "color_jitter",
    "random brightness/contrast/saturation/hue in random order per image",
    ColorJitterConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, random_batch, sample};

    fn op(json: Value) -> Result<ColorJitter> {
        ColorJitter::new(parse_config(&json, "t")?)
    }

    #[test]
    fn saturation_or_hue_on_one_channel_is_an_error() {
        let mut gray = random_batch(2, 1, 4, 4, 0);
        let sat = op(serde_json::json!({"saturation": 0.4})).unwrap();
        let err = sat.apply(&mut gray, &mut SeededRng::new(0)).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        let hue = op(serde_json::json!({"hue": 0.1})).unwrap();
        assert!(hue.apply(&mut gray, &mut SeededRng::new(0)).is_err());
        let bc = op(serde_json::json!({"brightness": 0.4, "contrast": 0.4})).unwrap();
        bc.apply(&mut gray, &mut SeededRng::new(0)).unwrap();
    }

    #[test]
    fn samples_draw_their_own_factors_and_stay_in_range() {
        let mut b = identical_batch(6, 3, 5, 5);
        let all = op(
            serde_json::json!({"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}),
        )
        .unwrap();
        all.apply(&mut b, &mut SeededRng::new(1)).unwrap();
        assert!((1..6).any(|i| sample(&b, i) != sample(&b, 0)));
        assert!(b.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn defaults_are_the_identity_and_bad_ranges_are_errors() {
        let orig = random_batch(2, 3, 3, 3, 2);
        let mut b = orig.clone();
        op(serde_json::json!({}))
            .unwrap()
            .apply(&mut b, &mut SeededRng::new(0))
            .unwrap();
        assert_eq!(b, orig);
        assert!(op(serde_json::json!({"hue": 0.7})).is_err());
        assert!(op(serde_json::json!({"brightness": -0.1})).is_err());
        assert!(op(serde_json::json!({"contrast": [1.2, 0.8]})).is_err());
    }
}
