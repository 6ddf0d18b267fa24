//! `random_resized_crop`: a random window of random area and aspect ratio, resized to `size`
//! (torchvision.transforms.v2.RandomResizedCrop, bilinear without antialias).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, map_samples};
use crate::functional::{resized_crop, Chw};
use crate::params::{at_path, check_pair, check_size, round_half_even, uniform, Size};

/// Random resized crop. Each sample tries up to 10 times: `area = H W U[scale]`,
/// `r = exp(U[ln ratio[0], ln ratio[1]])`, `w = round(sqrt(area r))`, `h = round(sqrt(area / r))`;
/// the first window that fits (`0 < w <= W`, `0 < h <= H`) is placed at
/// `top ~ U{0..=H - h}`, `left ~ U{0..=W - w}`. Otherwise the whole image is taken, cut to
/// the nearest allowed ratio and centred. The window is resized to `size` bilinearly
/// ([`functional::resized_crop`](crate::functional::resized_crop), no antialias).
#[derive(Debug, Clone)]
pub struct RandomResizedCrop {
    size: [usize; 2],
    scale: [f64; 2],
    ratio: [f64; 2],
}

/// Config of [`RandomResizedCrop`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomResizedCropConfig {
    /// Output size `s` or `[h, w]`. Required (torchvision RandomResizedCrop has no default).
    pub size: Option<Size>,
    /// Range of the window's area as a fraction of the image. Default: `[0.08, 1.0]`
    /// (torchvision RandomResizedCrop).
    pub scale: [f64; 2],
    /// Range of the window's aspect ratio `w / h`. Default: `[3/4, 4/3]` (torchvision
    /// RandomResizedCrop).
    pub ratio: [f64; 2],
}

impl Default for RandomResizedCropConfig {
    fn default() -> Self {
        RandomResizedCropConfig {
            size: None,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

impl RandomResizedCrop {
    /// Validates the config.
    pub fn new(config: RandomResizedCropConfig) -> Result<Self> {
        let scale = check_pair("scale", config.scale)?;
        let ratio = check_pair("ratio", config.ratio)?;
        if scale[0] < 0.0 || ratio[0] <= 0.0 {
            return Err(gradus_core::Error::InvalidHyperparameter(format!(
                "scale must be non-negative and ratio positive, got scale {scale:?}, ratio {ratio:?}"
            )));
        }
        Ok(RandomResizedCrop {
            size: check_size("size", config.size)?,
            scale,
            ratio,
        })
    }

    /// torchvision's `RandomResizedCrop._get_params`: `[top, left, height, width]`.
    fn window(&self, rng: &mut SeededRng, dims: Chw) -> [usize; 4] {
        let (height, width) = (dims.h as f64, dims.w as f64);
        let area = height * width;
        let log_ratio = [self.ratio[0].ln(), self.ratio[1].ln()];
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale);
            let aspect = uniform(rng, log_ratio).exp();
            let w = round_half_even((target * aspect).sqrt());
            let h = round_half_even((target / aspect).sqrt());
            if 0 < w && w as f64 <= width && 0 < h && h as f64 <= height {
                let (h, w) = (h as usize, w as usize);
                let top = rng.below(dims.h - h + 1);
                let left = rng.below(dims.w - w + 1);
                return [top, left, h, w];
            }
        }
        let in_ratio = width / height;
        let (h, w) = if in_ratio < self.ratio[0] {
            let h = round_half_even(width / self.ratio[0]) as usize;
            (h.clamp(1, dims.h), dims.w)
        } else if in_ratio > self.ratio[1] {
            let w = round_half_even(height * self.ratio[1]) as usize;
            (dims.h, w.clamp(1, dims.w))
        } else {
            (dims.h, dims.w)
        };
        [(dims.h - h) / 2, (dims.w - w) / 2, h, w]
    }
}

impl ImageAugmentation for RandomResizedCrop {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "random_resized_crop")?;
        let out = Chw::new(dims.c, self.size[0], self.size[1]);
        if dims.h == 0 || dims.w == 0 {
            return map_samples(batch, dims, out, &vec![(); batch.n], |_, _, _| Ok(()));
        }
        let windows: Vec<[usize; 4]> = (0..batch.n).map(|_| self.window(rng, dims)).collect();
        map_samples(batch, dims, out, &windows, |&window, src, dst| {
            resized_crop(src, dims, window, self.size, dst);
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomResizedCrop::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "random_resized_crop",
    "crop a random area/aspect-ratio window and resize it to `size` (bilinear)",
    RandomResizedCropConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, sample};
    use proptest::prelude::*;

    #[test]
    fn output_has_size_and_samples_differ() {
        let mut b = identical_batch(6, 3, 12, 10);
        let op = RandomResizedCrop::new(RandomResizedCropConfig {
            size: Some(Size::Two([8, 6])),
            ..Default::default()
        })
        .unwrap();
        op.apply(&mut b, &mut SeededRng::new(8)).unwrap();
        assert_eq!((b.n, b.c, b.h, b.w), (6, 3, 8, 6));
        assert!((1..6).any(|i| sample(&b, i) != sample(&b, 0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn windows_fit_the_image(h in 1usize..20, w in 1usize..20, seed in any::<u64>(),
                                 s0 in 0.01f64..1.0, r0 in 0.2f64..3.0) {
            let op = RandomResizedCrop::new(RandomResizedCropConfig {
                size: Some(Size::One(4)),
                scale: [s0, 1.0f64.max(s0)],
                ratio: [r0, r0 * 1.5],
            }).unwrap();
            let mut rng = SeededRng::new(seed);
            let [top, left, wh, ww] = op.window(&mut rng, Chw::new(1, h, w));
            prop_assert!(wh >= 1 && ww >= 1 && top + wh <= h && left + ww <= w);
        }
    }
}
