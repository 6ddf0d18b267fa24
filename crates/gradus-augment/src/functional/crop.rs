//! Padding and cropping in one pass: `F.crop(F.pad(img, padding, fill, padding_mode), top,
//! left, height, width)` without building the padded image, and `F.center_crop`'s anchor.
//!
//! A padded coordinate `p` (along an axis of length `n`, padded by `before`) reads source
//! index `i = p - before`: `constant` gives `fill` when `i` is outside `[0, n)`, `edge` clamps
//! `i`, and `reflect` mirrors about the border pixels without repeating them
//! (`-1 -> 1`, `n -> n - 2`), as `torch.nn.functional.pad(mode="reflect")`.

use serde::{Deserialize, Serialize};

use super::Chw;

/// How `pad` fills the border, as torchvision's `padding_mode`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    /// A constant `fill` value (torchvision's default).
    #[default]
    Constant,
    /// Mirror without repeating the edge pixel; padding must be smaller than the image side.
    Reflect,
    /// Repeat the edge pixel.
    Edge,
}

/// One pad-then-crop: the padding `[left, top, right, bottom]` and the crop window given in
/// padded coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PadCrop {
    /// Padding `[left, top, right, bottom]` in pixels (the right and bottom sides only matter
    /// through the window, which must fit in the padded image).
    pub padding: [usize; 4],
    /// Border mode.
    pub mode: PaddingMode,
    /// Value of `constant` padding.
    pub fill: f32,
    /// Top row of the window in the padded image.
    pub top: usize,
    /// Left column of the window in the padded image.
    pub left: usize,
    /// Window height (output rows).
    pub height: usize,
    /// Window width (output columns).
    pub width: usize,
}

/// Source index of padded coordinate `p` along an axis of length `n` padded by `before`, or
/// `None` for constant padding.
fn source_index(p: usize, before: usize, n: usize, mode: PaddingMode) -> Option<usize> {
    let i = p as isize - before as isize;
    let n = n as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PaddingMode::Constant => None,
        PaddingMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PaddingMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            // Fold onto a period of 2(n - 1), which also covers padding wider than the image.
            let period = 2 * (n - 1);
            let r = i.rem_euclid(period);
            Some(if r < n { r } else { period - r } as usize)
        }
    }
}

/// Writes the window of the padded `src` into `dst` (`c * height * width` values).
pub fn pad_crop(src: &[f32], dims: Chw, op: &PadCrop, dst: &mut [f32]) {
    let plane = dims.plane();
    let out_plane = op.height * op.width;
    for ch in 0..dims.c {
        let s = &src[ch * plane..(ch + 1) * plane];
        let d = &mut dst[ch * out_plane..(ch + 1) * out_plane];
        for y in 0..op.height {
            let row = source_index(op.top + y, op.padding[1], dims.h, op.mode);
            let out = &mut d[y * op.width..(y + 1) * op.width];
            let Some(sy) = row else {
                out.fill(op.fill);
                continue;
            };
            let src_row = &s[sy * dims.w..(sy + 1) * dims.w];
            for (x, o) in out.iter_mut().enumerate() {
                *o = match source_index(op.left + x, op.padding[0], dims.w, op.mode) {
                    Some(sx) => src_row[sx],
                    None => op.fill,
                };
            }
        }
    }
}

/// `F.center_crop`'s zero padding `[left, top, right, bottom]` when the crop is larger than
/// the image (none otherwise).
pub fn center_crop_padding(dims: Chw, height: usize, width: usize) -> [usize; 4] {
    let before = |crop: usize, n: usize| crop.saturating_sub(n) / 2;
    let after = |crop: usize, n: usize| crop.saturating_sub(n).div_ceil(2);
    [
        before(width, dims.w),
        before(height, dims.h),
        after(width, dims.w),
        after(height, dims.h),
    ]
}

/// `F.center_crop(img, [height, width])` as a [`PadCrop`]: the anchor is
/// `round((n - crop) / 2)` (half to even, as Python's `round`) after any zero padding.
pub fn center_crop_anchor(dims: Chw, height: usize, width: usize) -> PadCrop {
    let padding = center_crop_padding(dims, height, width);
    let (ph, pw) = (
        dims.h + padding[1] + padding[3],
        dims.w + padding[0] + padding[2],
    );
    let anchor = |n: usize, crop: usize| ((n - crop) as f64 / 2.0).round_ties_even() as usize;
    PadCrop {
        padding,
        mode: PaddingMode::Constant,
        fill: 0.0,
        top: anchor(ph, height),
        left: anchor(pw, width),
        height,
        width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reflect_and_edge_index_like_torch_pad() {
        let refl: Vec<usize> = (0..9)
            .map(|p| source_index(p, 2, 5, PaddingMode::Reflect).unwrap())
            .collect();
        assert_eq!(refl, vec![2, 1, 0, 1, 2, 3, 4, 3, 2]);
        let edge: Vec<usize> = (0..9)
            .map(|p| source_index(p, 2, 5, PaddingMode::Edge).unwrap())
            .collect();
        assert_eq!(edge, vec![0, 0, 0, 1, 2, 3, 4, 4, 4]);
        assert_eq!(source_index(0, 2, 5, PaddingMode::Constant), None);
    }

    #[test]
    fn center_crop_anchor_rounds_half_to_even_and_pads() {
        let a = center_crop_anchor(Chw::new(1, 9, 11), 5, 7);
        assert_eq!((a.top, a.left), (2, 2));
        // (6 - 3) / 2 = 1.5 rounds to 2, (5 - 2) / 2 = 1.5 rounds to 2; (4 - 3) / 2 = 0.5 to 0.
        let b = center_crop_anchor(Chw::new(1, 6, 4), 3, 3);
        assert_eq!((b.top, b.left), (2, 0));
        let c = center_crop_anchor(Chw::new(1, 2, 2), 5, 4);
        assert_eq!(c.padding, [1, 1, 1, 2]);
        assert_eq!((c.top, c.left), (0, 0));
    }

    proptest! {
        #[test]
        fn full_size_crop_without_padding_is_the_identity(
            c in 1usize..4, h in 1usize..9, w in 1usize..9, seed in any::<u64>()
        ) {
            let dims = Chw::new(c, h, w);
            let mut rng = gradus_core::SeededRng::new(seed);
            let img: Vec<f32> = (0..dims.len()).map(|_| rng.unit_f64() as f32).collect();
            let op = PadCrop { padding: [0; 4], mode: PaddingMode::Constant, fill: 0.0,
                top: 0, left: 0, height: h, width: w };
            let mut out = vec![0.0; dims.len()];
            pad_crop(&img, dims, &op, &mut out);
            prop_assert_eq!(out, img);
        }
    }
}
