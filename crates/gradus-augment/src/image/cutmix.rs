//! `cutmix`: paste a box of the neighbouring sample and mix the labels by area
//! (torchvision.transforms.v2.CutMix; Yun et al. 2019).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Result, SeededRng};
use rand_distr::Beta;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mixing::{check_alpha, draw_lambda, mix_targets, partner, require_targets};
use crate::batch::dims_of;
use crate::functional::Chw;
use crate::params::at_path;

/// CutMix: with `lam ~ Beta(alpha, alpha)`, a centre `r_x ~ U{0..W-1}`, `r_y ~ U{0..H-1}` and
/// half-sides `floor(r W)`, `floor(r H)`, `r = sqrt(1 - lam) / 2`, the box (clipped to the
/// image) of sample `i - 1` is pasted into sample `i`, and the targets are mixed with the
/// area-corrected `lam' = 1 - box area / (H W)`. Each sample draws its own box
/// (`per_sample`, the default); torchvision draws one per batch (`per_sample: false`).
#[derive(Debug, Clone)]
pub struct CutMix {
    beta: Beta<f64>,
    per_sample: bool,
}

/// Config of [`CutMix`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CutMixConfig {
    /// Beta parameter. Default: `1.0` (torchvision CutMix).
    pub alpha: f64,
    /// One box per sample (`true`) or per batch as torchvision (`false`). Default: `true`.
    pub per_sample: bool,
}

impl Default for CutMixConfig {
    fn default() -> Self {
        CutMixConfig {
            alpha: 1.0,
            per_sample: true,
        }
    }
}

impl CutMix {
    /// Validates the config.
    pub fn new(config: CutMixConfig) -> Result<Self> {
        Ok(CutMix {
            beta: check_alpha(config.alpha)?,
            per_sample: config.per_sample,
        })
    }

    /// One box `[x1, y1, x2, y2]` and its corrected `lam`.
    fn draw(&self, rng: &mut SeededRng, dims: Chw) -> ([usize; 4], f64) {
        let lam = draw_lambda(&self.beta, rng);
        let (h, w) = (dims.h, dims.w);
        let (rx, ry) = (rng.below(w) as isize, rng.below(h) as isize);
        let r = 0.5 * (1.0 - lam).sqrt();
        let (rw, rh) = ((r * w as f64) as isize, (r * h as f64) as isize);
        let x1 = (rx - rw).max(0) as usize;
        let y1 = (ry - rh).max(0) as usize;
        let x2 = ((rx + rw) as usize).min(w);
        let y2 = ((ry + rh) as usize).min(h);
        let lam = 1.0 - ((x2 - x1) * (y2 - y1)) as f64 / (w * h) as f64;
        ([x1, y1, x2, y2], lam)
    }
}

impl ImageAugmentation for CutMix {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "cutmix")?;
        require_targets(batch, "cutmix")?;
        let n = batch.n;
        if dims.is_empty() {
            return Ok(());
        }
        let draws: Vec<([usize; 4], f64)> = if self.per_sample {
            (0..n).map(|_| self.draw(rng, dims)).collect()
        } else {
            vec![self.draw(rng, dims); n]
        };
        let len = dims.len();
        let orig = batch.pixels.clone();
        batch
            .pixels
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, out)| {
                let [x1, y1, x2, y2] = draws[i].0;
                let other = &orig[partner(i, n) * len..(partner(i, n) + 1) * len];
                for ch in 0..dims.c {
                    for y in y1..y2 {
                        let at = ch * dims.plane() + y * dims.w;
                        out[at + x1..at + x2].copy_from_slice(&other[at + x1..at + x2]);
                    }
                }
            });
        let lams: Vec<f64> = draws.iter().map(|d| d.1).collect();
        mix_targets(batch, &lams);
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = CutMix::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "cutmix",
    "paste a random box from the neighbouring image, mixing soft targets by area",
    CutMixConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::random_batch;
    use proptest::prelude::*;

    #[test]
    fn missing_targets_are_an_error() {
        let mut b = random_batch(2, 1, 4, 4, 0);
        b.targets = None;
        let op = CutMix::new(CutMixConfig::default()).unwrap();
        assert!(op.apply(&mut b, &mut SeededRng::new(0)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn label_weight_matches_the_pasted_area(n in 2usize..6, seed in any::<u64>()) {
            let orig = random_batch(n, 1, 6, 7, seed);
            let mut b = orig.clone();
            CutMix::new(CutMixConfig::default()).unwrap()
                .apply(&mut b, &mut SeededRng::new(seed)).unwrap();
            let t = b.targets.as_ref().unwrap();
            for i in 0..n {
                let row = &t[i * 4..(i + 1) * 4];
                prop_assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                let own = &orig.pixels[i * 42..(i + 1) * 42];
                let kept = b.pixels[i * 42..(i + 1) * 42].iter().zip(own).filter(|(a, o)| a == o).count();
                // Sample i keeps at least the share of its own label (more where pixels coincide).
                let own_class = i % 4;
                let other_class = (i + n - 1) % n % 4;
                if own_class != other_class {
                    prop_assert!(kept as f32 / 42.0 + 1e-6 >= row[own_class]);
                }
            }
        }
    }
}
