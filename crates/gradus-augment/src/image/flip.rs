//! `horizontal_flip` / `vertical_flip`: each sample is mirrored with probability `p`
//! (torchvision.transforms.v2.RandomHorizontalFlip / RandomVerticalFlip).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, for_each_sample};
use crate::functional::{horizontal_flip, vertical_flip};
use crate::params::{at_path, check_probability};

/// Random flip: sample `i` is mirrored when `u_i < p`, `u_i ~ U[0, 1)` drawn per sample.
#[derive(Debug, Clone)]
pub struct RandomFlip {
    p: f64,
    vertical: bool,
}

/// Config of `horizontal_flip` and `vertical_flip`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FlipConfig {
    /// Probability of flipping each sample. Default: `0.5` (torchvision RandomHorizontalFlip).
    pub p: f64,
}

impl Default for FlipConfig {
    fn default() -> Self {
        FlipConfig { p: 0.5 }
    }
}

impl RandomFlip {
    /// A left-right (`vertical = false`) or top-bottom flip.
    pub fn new(config: FlipConfig, vertical: bool) -> Result<Self> {
        Ok(RandomFlip {
            p: check_probability("p", config.p)?,
            vertical,
        })
    }
}

impl ImageAugmentation for RandomFlip {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "flip")?;
        let flip: Vec<bool> = (0..batch.n).map(|_| rng.unit_f64() < self.p).collect();
        for_each_sample(batch, dims, &flip, |&yes, img| {
            match (yes, self.vertical) {
                (false, _) => {}
                (true, false) => horizontal_flip(img, dims),
                (true, true) => vertical_flip(img, dims),
            }
            Ok(())
        })
    }
}

fn build_horizontal(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomFlip::new(parse_config(config, path)?, false);
    Ok(Box::new(at_path(path, op)?))
}

fn build_vertical(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomFlip::new(parse_config(config, path)?, true);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "horizontal_flip",
    "mirror each image left-right with probability p",
    FlipConfig,
    build_horizontal
);
gradus_core::register_image_augmentation!(
    "vertical_flip",
    "mirror each image top-bottom with probability p",
    FlipConfig,
    build_vertical
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{random_batch, sample};

    #[test]
    fn p_one_flips_every_sample_twice_back_and_p_zero_keeps_it() {
        let orig = random_batch(3, 2, 4, 5, 1);
        let always = RandomFlip::new(FlipConfig { p: 1.0 }, false).unwrap();
        let mut b = orig.clone();
        let mut rng = SeededRng::new(0);
        always.apply(&mut b, &mut rng).unwrap();
        assert_ne!(b.pixels, orig.pixels);
        always.apply(&mut b, &mut rng).unwrap();
        assert_eq!(b, orig);
        let never = RandomFlip::new(FlipConfig { p: 0.0 }, true).unwrap();
        never.apply(&mut b, &mut rng).unwrap();
        assert_eq!(b, orig);
    }

    #[test]
    fn samples_decide_independently() {
        let orig = random_batch(64, 1, 2, 2, 3);
        let mut b = orig.clone();
        let flip = RandomFlip::new(FlipConfig::default(), true).unwrap();
        flip.apply(&mut b, &mut SeededRng::new(5)).unwrap();
        let changed = (0..64)
            .filter(|&i| sample(&b, i) != sample(&orig, i))
            .count();
        assert!((10..54).contains(&changed), "{changed} of 64 flipped");
    }

    #[test]
    fn invalid_p_is_a_config_error_at_the_path() {
        let err = build_horizontal(&serde_json::json!({"p": 1.5}), "augment[0]")
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("invalid config at augment[0]"),
            "{err}"
        );
    }
}
