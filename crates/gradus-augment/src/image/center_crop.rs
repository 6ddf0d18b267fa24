//! `center_crop`: the central `size` window of every sample, zero-padded when larger than
//! the image (torchvision.transforms.v2.CenterCrop). Deterministic.

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, map_samples};
use crate::functional::{center_crop_anchor, pad_crop, Chw};
use crate::params::{at_path, check_size, Size};

/// Center crop: `top = round((H - h) / 2)`, `left = round((W - w) / 2)` (half to even, as
/// Python's `round`), after zero padding `[(w - W) / 2, (h - H) / 2, (w - W + 1) / 2,
/// (h - H + 1) / 2]` (integer division) of any side shorter than the crop.
#[derive(Debug, Clone)]
pub struct CenterCrop {
    size: [usize; 2],
}

/// Config of [`CenterCrop`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CenterCropConfig {
    /// Output size `s` or `[h, w]`. Required (torchvision CenterCrop has no default).
    pub size: Option<Size>,
}

impl CenterCrop {
    /// Validates the config.
    pub fn new(config: CenterCropConfig) -> Result<Self> {
        Ok(CenterCrop {
            size: check_size("size", config.size)?,
        })
    }
}

impl ImageAugmentation for CenterCrop {
    fn apply(&self, batch: &mut ImageBatch, _rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "center_crop")?;
        let [h, w] = self.size;
        let op = center_crop_anchor(dims, h, w);
        let ops = vec![op; batch.n];
        map_samples(batch, dims, Chw::new(dims.c, h, w), &ops, |op, src, dst| {
            pad_crop(src, dims, op, dst);
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = CenterCrop::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "center_crop",
    "crop the central `size` window (zero-padded if the image is smaller)",
    CenterCropConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::random_batch;

    #[test]
    fn crops_the_middle_and_pads_small_images() {
        let mut b = random_batch(1, 1, 4, 4, 0);
        let orig = b.clone();
        let op = CenterCrop::new(CenterCropConfig {
            size: Some(Size::One(2)),
        })
        .unwrap();
        op.apply(&mut b, &mut SeededRng::new(0)).unwrap();
        let p = &orig.pixels;
        assert_eq!(b.pixels, vec![p[5], p[6], p[9], p[10]]);
        let big = CenterCrop::new(CenterCropConfig {
            size: Some(Size::Two([4, 6])),
        })
        .unwrap();
        big.apply(&mut b, &mut SeededRng::new(0)).unwrap();
        assert_eq!((b.h, b.w), (4, 6));
        assert_eq!(b.pixels.iter().filter(|v| **v == 0.0).count(), 20);
    }
}
