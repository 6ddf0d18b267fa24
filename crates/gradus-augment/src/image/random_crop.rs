//! `random_crop`: pad, then cut a window of `size` at a random place of each sample
//! (torchvision.transforms.v2.RandomCrop).

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{dims_of, map_samples};
use crate::functional::{pad_crop, Chw, PadCrop, PaddingMode};
use crate::params::{at_path, check_size, Padding, Size};

/// Random crop. The image is padded by `padding` `[l, t, r, b]` (mode `padding_mode`, value
/// `fill`); with `pad_if_needed`, a side still shorter than the crop gets `crop - side` more on
/// both ends. Each sample then draws `top ~ U{0..=H_p - h}`, `left ~ U{0..=W_p - w}` and keeps
/// `padded[top..top + h, left..left + w]`. Output: `(n, c, h, w)`.
#[derive(Debug, Clone)]
pub struct RandomCrop {
    size: [usize; 2],
    padding: [usize; 4],
    pad_if_needed: bool,
    fill: f32,
    padding_mode: PaddingMode,
}

/// Config of [`RandomCrop`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomCropConfig {
    /// Output size `s` or `[h, w]`. Required (torchvision RandomCrop has no default).
    pub size: Option<Size>,
    /// Padding: `p`, `[lr, tb]` or `[l, t, r, b]`. Default: none (torchvision RandomCrop).
    pub padding: Option<Padding>,
    /// Pad sides shorter than the crop. Default: `false` (torchvision RandomCrop).
    pub pad_if_needed: bool,
    /// Value of constant padding. Default: `0` (torchvision RandomCrop).
    pub fill: f64,
    /// `constant`, `reflect` or `edge`. Default: `constant` (torchvision RandomCrop).
    pub padding_mode: PaddingMode,
}

impl RandomCrop {
    /// Validates the config.
    pub fn new(config: RandomCropConfig) -> Result<Self> {
        Ok(RandomCrop {
            size: check_size("size", config.size)?,
            padding: config.padding.map_or([0; 4], Padding::ltrb),
            pad_if_needed: config.pad_if_needed,
            fill: config.fill as f32,
            padding_mode: config.padding_mode,
        })
    }

    /// The padding actually applied to images of `dims` and the padded size `[H_p, W_p]`.
    fn plan(&self, dims: Chw) -> Result<([usize; 4], [usize; 2])> {
        let [l, t, r, b] = self.padding;
        let mut pad = [l, t, r, b];
        let [ch, cw] = self.size;
        let mut ph = dims.h + t + b;
        let mut pw = dims.w + l + r;
        if self.pad_if_needed {
            if ph < ch {
                let d = ch - ph;
                (pad[1], pad[3], ph) = (pad[1] + d, pad[3] + d, ph + 2 * d);
            }
            if pw < cw {
                let d = cw - pw;
                (pad[0], pad[2], pw) = (pad[0] + d, pad[2] + d, pw + 2 * d);
            }
        }
        if ph < ch || pw < cw {
            return Err(Error::ShapeMismatch {
                context: "random_crop: required crop size is larger than the (padded) input \
                          image size"
                    .to_string(),
                expected: vec![ch, cw],
                actual: vec![ph, pw],
            });
        }
        Ok((pad, [ph, pw]))
    }
}

impl ImageAugmentation for RandomCrop {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let dims = dims_of(batch, "random_crop")?;
        let (padding, [ph, pw]) = self.plan(dims)?;
        let [height, width] = self.size;
        let ops: Vec<PadCrop> = (0..batch.n)
            .map(|_| PadCrop {
                padding,
                mode: self.padding_mode,
                fill: self.fill,
                top: rng.below(ph - height + 1),
                left: rng.below(pw - width + 1),
                height,
                width,
            })
            .collect();
        let out = Chw::new(dims.c, height, width);
        map_samples(batch, dims, out, &ops, |op, src, dst| {
            pad_crop(src, dims, op, dst);
            Ok(())
        })
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let op = RandomCrop::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_image_augmentation!(
    "random_crop",
    "pad (constant/reflect/edge) then crop `size` at a random position per image",
    RandomCropConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{identical_batch, random_batch, sample};
    use proptest::prelude::*;

    fn crop(json: Value) -> RandomCrop {
        RandomCrop::new(parse_config(&json, "t").unwrap()).unwrap()
    }

    #[test]
    fn each_sample_draws_its_own_window() {
        let mut b = identical_batch(8, 3, 8, 8);
        let op = crop(serde_json::json!({"size": 8, "padding": 4, "padding_mode": "reflect"}));
        op.apply(&mut b, &mut SeededRng::new(1)).unwrap();
        assert_eq!((b.n, b.c, b.h, b.w), (8, 3, 8, 8));
        assert!((1..8).any(|i| sample(&b, i) != sample(&b, 0)));
    }

    #[test]
    fn too_large_crops_are_errors_unless_padded_if_needed() {
        let mut b = random_batch(2, 1, 4, 4, 0);
        let err = crop(serde_json::json!({"size": [5, 3]}))
            .apply(&mut b.clone(), &mut SeededRng::new(0))
            .unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        crop(serde_json::json!({"size": [5, 3], "pad_if_needed": true}))
            .apply(&mut b, &mut SeededRng::new(0))
            .unwrap();
        assert_eq!((b.h, b.w), (5, 3));
        assert!(RandomCrop::new(RandomCropConfig::default()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn output_shape_is_size_and_values_come_from_input_or_fill(
            h in 2usize..10, w in 2usize..10, pad in 0usize..3, seed in any::<u64>(), mode in 0usize..3
        ) {
            let mode = ["constant", "reflect", "edge"][mode];
            let op = crop(serde_json::json!({"size": [h, w], "padding": pad, "padding_mode": mode, "fill": 0.5}));
            let orig = random_batch(3, 2, h, w, seed);
            let mut b = orig.clone();
            op.apply(&mut b, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!((b.n, b.c, b.h, b.w), (3, 2, h, w));
            for v in &b.pixels {
                prop_assert!(*v == 0.5 || orig.pixels.contains(v));
            }
        }
    }
}
