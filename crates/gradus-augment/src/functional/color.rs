//! Photometric adjustments as torchvision.transforms.v2.functional, in f32 like torchvision's
//! float path, for images in `[0, 1]`:
//!
//! - brightness: `clamp(x * f, 0, 1)`;
//! - contrast: `clamp(f x + (1 - f) m, 0, 1)` with `m` the mean of the grayscale image
//!   (`0.2989 r + 0.587 g + 0.114 b` for 3 channels, the mean of all values otherwise);
//! - saturation: `clamp(f x + (1 - f) gray(x), 0, 1)` per pixel, 3 channels only;
//! - hue: RGB -> HSV (Pillow's formulas), `h <- (h + f) mod 1`, HSV -> RGB, 3 channels only.

use gradus_core::{Error, Result};

use super::Chw;

/// ITU-R 601-2 luma, in torchvision's order of f32 operations.
fn gray(r: f32, g: f32, b: f32) -> f32 {
    r * 0.2989 + g * 0.587 + b * 0.114
}

/// `_blend`: `clamp(x * ratio + other * (1 - ratio), 0, 1)`.
fn blend(x: f32, other: f32, ratio: f64) -> f32 {
    (x * ratio as f32 + other * (1.0 - ratio) as f32).clamp(0.0, 1.0)
}

fn need_rgb(dims: Chw, op: &str) -> Result<()> {
    if dims.c == 3 {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "{op} needs 3-channel (RGB) images, got {} channels",
            dims.c
        )))
    }
}

/// `F.adjust_brightness(img, factor)` in place, any number of channels.
pub fn adjust_brightness(img: &mut [f32], factor: f64) {
    let f = factor as f32;
    for v in img {
        *v = (*v * f).clamp(0.0, 1.0);
    }
}

/// `F.adjust_contrast(img, factor)` in place; blends with the mean grayscale level.
pub fn adjust_contrast(img: &mut [f32], dims: Chw, factor: f64) {
    let img = &mut img[..dims.len()];
    if img.is_empty() {
        return;
    }
    let mean = if dims.c == 3 {
        let p = dims.plane();
        let sum: f64 = (0..p)
            .map(|i| gray(img[i], img[p + i], img[2 * p + i]) as f64)
            .sum();
        (sum / p as f64) as f32
    } else {
        (img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64) as f32
    };
    for v in img {
        *v = blend(*v, mean, factor);
    }
}

/// `F.adjust_saturation(img, factor)` in place; an error unless the image has 3 channels.
pub fn adjust_saturation(img: &mut [f32], dims: Chw, factor: f64) -> Result<()> {
    need_rgb(dims, "adjust_saturation")?;
    let p = dims.plane();
    let (r, gb) = img[..dims.len()].split_at_mut(p);
    let (g, b) = gb.split_at_mut(p);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let l = gray(*r, *g, *b);
        *r = blend(*r, l, factor);
        *g = blend(*g, l, factor);
        *b = blend(*b, l, factor);
    }
    Ok(())
}

/// `F.adjust_hue(img, factor)` in place, `factor` in `[-0.5, 0.5]`; 3 channels only.
pub fn adjust_hue(img: &mut [f32], dims: Chw, factor: f64) -> Result<()> {
    if !(-0.5..=0.5).contains(&factor) {
        return Err(Error::InvalidHyperparameter(format!(
            "hue_factor ({factor}) is not in [-0.5, 0.5]."
        )));
    }
    need_rgb(dims, "adjust_hue")?;
    let p = dims.plane();
    let (r, gb) = img[..dims.len()].split_at_mut(p);
    let (g, b) = gb.split_at_mut(p);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = rgb_to_hsv(*r, *g, *b);
        let mut h = (h + factor as f32) % 1.0;
        if h < 0.0 {
            h += 1.0;
        }
        [*r, *g, *b] = hsv_to_rgb(h, s, v);
    }
    Ok(())
}

/// torchvision's `_rgb_to_hsv` for one pixel (f32, same operation order).
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let range = maxc - minc;
    let s = range / if eqc { 1.0 } else { maxc };
    let div = if eqc { 1.0 } else { range };
    let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
    let hr = if maxc == r { bc - gc } else { 0.0 };
    let hg = if maxc == g && maxc != r {
        (rc + 2.0) - bc
    } else {
        0.0
    };
    let hb = if maxc != g && maxc != r {
        (gc + 4.0) - rc
    } else {
        0.0
    };
    let h = ((hr + hg + hb) * (1.0f64 / 6.0) as f32 + 1.0) % 1.0;
    (h, s, maxc)
}

/// torchvision's `_hsv_to_rgb` for one pixel.
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let sxf = s * f;
    let one_minus_s = 1.0 - s;
    let q = ((1.0 - sxf) * v).clamp(0.0, 1.0);
    let t = ((sxf + one_minus_s) * v).clamp(0.0, 1.0);
    let p = (one_minus_s * v).clamp(0.0, 1.0);
    match (i as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn saturation_and_hue_need_three_channels() {
        let mut img = vec![0.5; 4];
        let gray = Chw::new(1, 2, 2);
        assert!(matches!(
            adjust_saturation(&mut img, gray, 1.5),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            adjust_hue(&mut img, gray, 0.1),
            Err(Error::Unsupported(_))
        ));
        let mut rgb = vec![0.5; 12];
        let err = adjust_hue(&mut rgb, Chw::new(3, 2, 2), 0.6).unwrap_err();
        assert_eq!(err.to_string(), "hue_factor (0.6) is not in [-0.5, 0.5].");
    }

    proptest! {
        #[test]
        fn hsv_round_trip_and_identity_factors(r in 0.0f32..1.0, g in 0.0f32..1.0, b in 0.0f32..1.0) {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let back = hsv_to_rgb(h, s, v);
            for (x, y) in back.iter().zip([r, g, b]) {
                prop_assert!((x - y).abs() < 1e-5, "{:?} vs {:?}", back, (r, g, b));
            }
            let dims = Chw::new(3, 1, 1);
            let mut img = vec![r, g, b];
            adjust_saturation(&mut img, dims, 1.0).unwrap();
            adjust_contrast(&mut img, dims, 1.0);
            adjust_brightness(&mut img, 1.0);
            prop_assert_eq!(img, vec![r, g, b]);
        }
    }
}
