//! `random_erasing` (cutout): overwrite a random rectangle of each sample with probability `p`
//! (torchvision.transforms.v2.RandomErasing).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, for_each_sample, sample_rng};
use crate::functional::{erase, Chw};
use crate::params::{at_path, check_pair, check_probability, round_half_even, uniform};

/// Random erasing (Zhong et al. 2017). A sample is erased when `u < p`; it then tries up to
/// 10 times `area = H W U[scale]`, `r = exp(U[ln ratio])`, `h = round(sqrt(area r))`,
/// `w = round(sqrt(area / r))` until `h < H` and `w < W`, and overwrites the window at
/// `top ~ U{0..=H - h}`, `left ~ U{0..=W - w}` with `value` (one number, one per channel, or
/// `"random"`: standard normal values). After 10 misses the sample is left unchanged.
#[derive(Debug, Clone)]
pub struct RandomErasing {
    p: f64,
    scale: [f64; 2],
    ratio: [f64; 2],
    value: EraseValue,
}

/// The erased pixels: a number, one number per channel, or `"random"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "a number, a list of per-channel numbers, or \"random\""
)]
pub enum EraseValue {
    /// One value for every channel.
    Number(f64),
    /// One value per channel.
    PerChannel(Vec<f64>),
    /// `"random"`: standard normal values per erased pixel.
    #[schemars(extend("const" = "random"))]
    Random(String),
}

/// Config of [`RandomErasing`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomErasingConfig {
    /// Probability of erasing each sample. Default: `0.5` (torchvision RandomErasing).
    pub p: f64,
    /// Range of the erased area as a fraction of the image. Default: `[0.02, 0.33]`
    /// (torchvision RandomErasing).
    pub scale: [f64; 2],
    /// Range of the aspect ratio `h / w` of the window. Default: `[0.3, 3.3]` (torchvision
    /// RandomErasing).
    pub ratio: [f64; 2],
    /// Erasing value. Default: `0` (torchvision RandomErasing).
    pub value: EraseValue,
}

impl Default for RandomErasingConfig {
    fn default() -> Self {
        RandomErasingConfig {
            p: 0.5,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            value: EraseValue::Number(0.0),
        }
    }
}

impl RandomErasing {
    /// Validates the config (torchvision's messages).
    pub fn new(config: RandomErasingConfig) -> Result<Self> {
        let invalid = |m: String| Error::InvalidHyperparameter(m);
        let scale = check_pair("scale", config.scale)?;
        let ratio = check_pair("ratio", config.ratio)?;
        if scale[0] < 0.0 || scale[1] > 1.0 {
            return Err(invalid(format!(
                "Scale should be between 0 and 1, got {scale:?}"
            )));
        }
        if ratio[0] <= 0.0 {
            return Err(invalid(format!("ratio should be positive, got {ratio:?}")));
        }
        if let EraseValue::Random(s) = &config.value {
            if s != "random" {
                return Err(invalid(format!(
                    "If value is str, it should be 'random', got {s:?}"
                )));
            }
        }
        Ok(RandomErasing {
            p: check_probability("p", config.p)?,
            scale,
            ratio,
            value: config.value,
        })
    }

    /// The window `[top, left, h, w]` of one erased sample, or `None` after 10 misses.
    fn window(&self, rng: &mut SeededRng, dims: Chw) -> Option<[usize; 4]> {
        let area = (dims.h * dims.w) as f64;
        let log_ratio = [self.ratio[0].ln(), self.ratio[1].ln()];
        for _ in 0..10 {
            let erase_area = area * uniform(rng, self.scale);
            let aspect = uniform(rng, log_ratio).exp();
            let h = round_half_even((erase_area * aspect).sqrt()) as usize;
            let w = round_half_even((erase_area / aspect).sqrt()) as usize;
            if h < dims.h && w < dims.w {
                return Some([rng.below(dims.h - h + 1), rng.below(dims.w - w + 1), h, w]);
            }
        }
        None
    }
}

/// One sample's draw: the window and, for random values, the seed of its noise.
struct Erasure {
    window: [usize; 4],
    noise: Option<SeededRng>,
}

impl ImageAugmentation for RandomErasing {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "random_erasing")?;
        let fixed: Vec<f32> = match &self.value {
            EraseValue::Number(v) => vec![*v as f32],
            EraseValue::PerChannel(v) if v.len() == 1 || v.len() == dims.c => {
                v.iter().map(|&x| x as f32).collect()
            }
            EraseValue::PerChannel(v) => {
                return Err(Error::ShapeMismatch {
                    context: "random_erasing: value needs 1 or one per channel".to_string(),
                    expected: vec![dims.c],
                    actual: vec![v.len()],
                })
            }
            EraseValue::Random(_) => Vec::new(),
        };
        let random = fixed.is_empty();
        let draws: Vec<Option<Erasure>> = (0..batch.n)
            .map(|_| {
                if rng.unit_f64() >= self.p {
                    return None;
                }
                let noise = random.then(|| sample_rng(rng));
                self.window(rng, dims)
                    .map(|window| Erasure { window, noise })
            })
            .collect();
        for_each_sample(batch, dims, &draws, |draw, img| {
            let Some(e) = draw else { return Ok(()) };
            match &e.noise {
                None => erase(img, dims, e.window, &fixed),
                Some(seed) => {
                    let mut rng = seed.clone();
                    let count = dims.c * e.window[2] * e.window[3];
                    let values: Vec<f32> =
                        (0..count).map(|_| rng.standard_normal() as f32).collect();
                    erase(img, dims, e.window, &values);
                }
            }
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomErasing::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "random_erasing",
    "erase (cutout) a random rectangle per image with probability p",
    RandomErasingConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, random_batch, sample};

    fn op(json: Value) -> Result<RandomErasing> {
        RandomErasing::new(parse_config(&json, "t")?)
    }

    #[test]
    fn erased_windows_differ_per_sample_and_hold_the_value() {
        let mut b = identical_batch(8, 3, 16, 16);
        let orig = b.clone();
        op(serde_json::json!({"p": 1.0, "value": [0.0, -1.0, -2.0]}))
            .unwrap()
            .apply(&mut b, &mut SeededRng::new(1))
            .unwrap();
        assert!((1..8).any(|i| sample(&b, i) != sample(&b, 0)));
        for (i, (new, old)) in b.pixels.iter().zip(&orig.pixels).enumerate() {
            let channel = (i / 256) % 3;
            assert!(new == old || *new == -(channel as f32), "{new} at {i}");
        }
        op(serde_json::json!({"p": 1.0, "value": "random"}))
            .unwrap()
            .apply(&mut b, &mut SeededRng::new(1))
            .unwrap();
    }

    #[test]
    fn bad_configs_and_value_lengths_are_errors() {
        assert!(op(serde_json::json!({"p": 2.0})).is_err());
        assert!(op(serde_json::json!({"scale": [0.5, 0.1]})).is_err());
        assert!(op(serde_json::json!({"value": "noise"})).is_err());
        let mut b = random_batch(2, 3, 4, 4, 0);
        let two = op(serde_json::json!({"value": [0.0, 1.0]})).unwrap();
        assert!(matches!(
            two.apply(&mut b, &mut SeededRng::new(0)),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
