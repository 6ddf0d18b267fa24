//! `mixup`: convex combinations of sample pairs and of their labels
//! (torchvision.transforms.v2.MixUp; Zhang et al. 2018).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Result, SeededRng};
use rand_distr::Beta;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mixing::{check_alpha, draw_lambda, mix_targets, partner, require_targets};
use crate::batch::dims_of;
use crate::params::at_path;

/// MixUp: `x_i <- lam_i x_i + (1 - lam_i) x_{i-1}` and `t_i <- lam_i t_i + (1 - lam_i)
/// t_{i-1}` (indices cyclic, as torchvision's `roll(1, 0)`), `lam ~ Beta(alpha, alpha)`. Each
/// sample draws its own `lam` (`per_sample`, the default here); torchvision draws one per
/// batch (`per_sample: false`). Rows of soft targets that sum to 1 still do.
#[derive(Debug, Clone)]
pub struct MixUp {
    beta: Beta<f64>,
    per_sample: bool,
}

/// Config of [`MixUp`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MixUpConfig {
    /// Beta parameter. Default: `1.0` (torchvision MixUp).
    pub alpha: f64,
    /// One `lam` per sample (`true`) or per batch as torchvision (`false`). Default: `true`.
    pub per_sample: bool,
}

impl Default for MixUpConfig {
    fn default() -> Self {
        MixUpConfig {
            alpha: 1.0,
            per_sample: true,
        }
    }
}

impl MixUp {
    /// Validates the config.
    pub fn new(config: MixUpConfig) -> Result<Self> {
        Ok(MixUp {
            beta: check_alpha(config.alpha)?,
            per_sample: config.per_sample,
        })
    }
}

impl ImageAugmentation for MixUp {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "mixup")?;
        require_targets(batch, "mixup")?;
        let n = batch.n;
        let lams: Vec<f64> = if self.per_sample {
            (0..n).map(|_| draw_lambda(&self.beta, rng)).collect()
        } else {
            vec![draw_lambda(&self.beta, rng); n]
        };
        if !dims.is_empty() {
            let len = dims.len();
            let orig = batch.pixels.clone();
            batch
                .pixels
                .par_chunks_mut(len)
                .enumerate()
                .for_each(|(i, out)| {
                    let (lam, j) = (lams[i], partner(i, n));
                    let other = &orig[j * len..(j + 1) * len];
                    for (o, &b) in out.iter_mut().zip(other) {
                        *o = b * (1.0 - lam) as f32 + *o * lam as f32;
                    }
                });
        }
        mix_targets(batch, &lams);
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = MixUp::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "mixup",
    "blend each image and its soft targets with its neighbour, lam ~ Beta(alpha, alpha)",
    MixUpConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::random_batch;
    use gradus_core::Error;
    use proptest::prelude::*;

    #[test]
    fn missing_targets_are_an_error() {
        let mut b = random_batch(3, 1, 2, 2, 0);
        b.targets = None;
        let err = MixUp::new(MixUpConfig::default())
            .unwrap()
            .apply(&mut b, &mut SeededRng::new(0))
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
    }

    #[test]
    fn batch_mode_uses_one_lambda() {
        let mut b = random_batch(4, 1, 1, 1, 0);
        let op = MixUp::new(MixUpConfig {
            alpha: 0.4,
            per_sample: false,
        })
        .unwrap();
        op.apply(&mut b, &mut SeededRng::new(2)).unwrap();
        let t = b.targets.unwrap();
        // Sample i is one-hot i % 4 mixed with sample i - 1: its own class weight is lam.
        let lams: Vec<f32> = (0..4).map(|i| t[i * 4 + i]).collect();
        assert!(lams.iter().all(|l| (l - lams[0]).abs() < 1e-6), "{lams:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn mixed_targets_sum_to_one_per_row(n in 1usize..9, seed in any::<u64>(), alpha in 0.1f64..3.0) {
            let mut b = random_batch(n, 2, 3, 3, seed);
            MixUp::new(MixUpConfig { alpha, per_sample: true }).unwrap()
                .apply(&mut b, &mut SeededRng::new(seed)).unwrap();
            for row in b.targets.unwrap().chunks(4) {
                prop_assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                prop_assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
            }
            prop_assert!(b.pixels.iter().all(|v| (0.0..1.0).contains(v)));
        }
    }
}
