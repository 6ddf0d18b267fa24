//! `random_affine`: rotation, translation, scale and shear with per-sample random parameters
//! (torchvision.transforms.v2.RandomAffine).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::random_rotation::check_degrees;
use crate::batch::{dims_of, map_samples};
use crate::functional::{affine, AffineParams, Interpolation};
use crate::params::{at_path, check_range, round_half_even, uniform, Range};

/// Random affine map. Each sample draws, in this order, `angle ~ U[degrees]`;
/// `tx = round(U[-a W, a W])`, `ty = round(U[-b H, b H])` for `translate = [a, b]`;
/// `scale ~ U[scale]`; `shear_x ~ U[shear[0..2]]` and, with four shear values,
/// `shear_y ~ U[shear[2..4]]`. The image is then warped by
/// [`functional::affine`](crate::functional::affine) (same size, `fill` outside).
#[derive(Debug, Clone)]
pub struct RandomAffine {
    degrees: [f64; 2],
    translate: Option<[f64; 2]>,
    scale: Option<[f64; 2]>,
    shear: Option<[f64; 4]>,
    interpolation: Interpolation,
    fill: f32,
    center: Option<[f64; 2]>,
}

/// Shear range: `s` (x in `[-s, s]`), `[min, max]` (x), or `[x_min, x_max, y_min, y_max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "a number, [min, max] or [x_min, x_max, y_min, y_max]"
)]
pub enum Shear {
    /// x shear in `[-s, s]`.
    One(f64),
    /// x shear range.
    Two([f64; 2]),
    /// x and y shear ranges.
    Four([f64; 4]),
}

/// Config of [`RandomAffine`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomAffineConfig {
    /// Rotation range in degrees; `d` means `[-d, d]`; `0` disables rotation. Required
    /// (torchvision RandomAffine has no default).
    pub degrees: Option<Range>,
    /// Largest translation as fractions `[a, b]` of width and height. Default: none
    /// (torchvision RandomAffine).
    pub translate: Option<[f64; 2]>,
    /// Scale range `[min, max]`. Default: none, i.e. 1 (torchvision RandomAffine).
    pub scale: Option<[f64; 2]>,
    /// Shear range in degrees. Default: none (torchvision RandomAffine).
    pub shear: Option<Shear>,
    /// `nearest` or `bilinear`. Default: `nearest` (torchvision RandomAffine).
    pub interpolation: Interpolation,
    /// Value of pixels from outside the image. Default: `0` (torchvision RandomAffine).
    pub fill: f64,
    /// Centre `[x, y]` in pixels. Default: image centre (torchvision RandomAffine).
    pub center: Option<[f64; 2]>,
}

impl Default for RandomAffineConfig {
    fn default() -> Self {
        RandomAffineConfig {
            degrees: None,
            translate: None,
            scale: None,
            shear: None,
            interpolation: Interpolation::Nearest,
            fill: 0.0,
            center: None,
        }
    }
}

fn invalid(message: &str) -> Error {
    Error::InvalidHyperparameter(message.to_string())
}

impl RandomAffine {
    /// Validates the config (torchvision's messages).
    pub fn new(config: RandomAffineConfig) -> Result<Self> {
        if let Some(t) = config.translate {
            if !t.iter().all(|v| (0.0..=1.0).contains(v)) {
                return Err(invalid("translation values should be between 0 and 1"));
            }
        }
        if let Some(s) = config.scale {
            if !(s.iter().all(|v| *v > 0.0 && v.is_finite()) && s[0] <= s[1]) {
                return Err(invalid("scale values should be positive, as [min, max]"));
            }
        }
        let any = [f64::MIN, f64::MAX];
        let shear = match config.shear {
            None => None,
            Some(Shear::One(s)) => {
                let [a, b] = check_range("shear", Range::One(s), 0.0, any, false)?;
                Some([a, b, 0.0, 0.0])
            }
            Some(Shear::Two(x)) => {
                let [a, b] = check_range("shear", Range::Two(x), 0.0, any, false)?;
                Some([a, b, 0.0, 0.0])
            }
            Some(Shear::Four([a, b, c, d])) => {
                check_range("shear", Range::Two([a, b]), 0.0, any, false)?;
                check_range("shear", Range::Two([c, d]), 0.0, any, false)?;
                Some([a, b, c, d])
            }
        };
        Ok(RandomAffine {
            degrees: check_degrees(config.degrees)?,
            translate: config.translate,
            scale: config.scale,
            shear,
            interpolation: config.interpolation,
            fill: config.fill as f32,
            center: config.center,
        })
    }

    fn draw(&self, rng: &mut SeededRng, h: usize, w: usize) -> AffineParams {
        let angle = uniform(rng, self.degrees);
        let translate = match self.translate {
            Some([a, b]) => {
                let (dx, dy) = (a * w as f64, b * h as f64);
                let tx = round_half_even(uniform(rng, [-dx, dx]));
                let ty = round_half_even(uniform(rng, [-dy, dy]));
                [tx as f64, ty as f64]
            }
            None => [0.0, 0.0],
        };
        let scale = self.scale.map_or(1.0, |s| uniform(rng, s));
        let shear = match self.shear {
            Some([a, b, c, d]) => {
                let sx = uniform(rng, [a, b]);
                // torchvision draws shear_y only when four values are given.
                let sy = if c == 0.0 && d == 0.0 {
                    0.0
                } else {
                    uniform(rng, [c, d])
                };
                [sx, sy]
            }
            None => [0.0, 0.0],
        };
        AffineParams {
            angle,
            translate,
            scale,
            shear,
            center: self.center,
        }
    }
}

impl ImageAugmentation for RandomAffine {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "random_affine")?;
        let params: Vec<AffineParams> = (0..batch.n)
            .map(|_| self.draw(rng, dims.h, dims.w))
            .collect();
        map_samples(batch, dims, dims, &params, |p, src, dst| {
            affine(src, dims, p, self.interpolation, self.fill, dst);
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomAffine::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "random_affine",
    "random rotation, translation, scale and shear per image",
    RandomAffineConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, sample};

    fn op(json: Value) -> Result<RandomAffine> {
        RandomAffine::new(parse_config(&json, "t")?)
    }

    #[test]
    fn samples_differ_and_identity_settings_keep_the_image() {
        let orig = identical_batch(6, 1, 10, 10);
        let mut b = orig.clone();
        let full = op(serde_json::json!({"degrees": 20, "translate": [0.2, 0.2],
            "scale": [0.8, 1.2], "shear": [-10, 10, -5, 5], "interpolation": "bilinear"}))
        .unwrap();
        full.apply(&mut b, &mut SeededRng::new(4)).unwrap();
        assert!((1..6).any(|i| sample(&b, i) != sample(&b, 0)));
        let mut c = orig.clone();
        op(serde_json::json!({"degrees": 0}))
            .unwrap()
            .apply(&mut c, &mut SeededRng::new(4))
            .unwrap();
        assert_eq!(c, orig);
    }

    #[test]
    fn invalid_ranges_are_errors() {
        assert!(op(serde_json::json!({"degrees": 5, "translate": [1.5, 0]})).is_err());
        assert!(op(serde_json::json!({"degrees": 5, "scale": [0, 1]})).is_err());
        assert!(op(serde_json::json!({"degrees": 5, "shear": -3})).is_err());
        assert!(op(serde_json::json!({})).is_err());
    }
}
