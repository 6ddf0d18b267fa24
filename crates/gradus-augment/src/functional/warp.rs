//! Affine warps: `F.rotate` and `F.affine` (no `expand`), sampled as torchvision does with
//! `grid_sample(align_corners=False, padding_mode="zeros")` plus its fill mask.
//!
//! For an output pixel `(y, x)` with centred coordinates `xc = x - (w - 1) / 2`,
//! `yc = y - (h - 1) / 2`, the source point is `(m0 xc + m1 yc + m2 + (w - 1) / 2,
//! m3 xc + m4 yc + m5 + (h - 1) / 2)` where `m` is the inverse affine matrix of
//! [`inverse_affine_matrix`]. Bilinear sampling reads the four neighbours with zero outside the
//! image; torchvision then samples a ones-mask the same way and returns
//! `mask * (sampled - fill) + fill` (bilinear) or `fill where mask < 0.5` (nearest). Nearest
//! rounds half to even (`nearbyint`), as ATen does.

use serde::{Deserialize, Serialize};

use super::Chw;

/// Interpolation of a warp, as `torchvision.transforms.InterpolationMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Nearest neighbour (torchvision's default for rotations and affine maps).
    Nearest,
    /// Bilinear.
    Bilinear,
}

/// The inverse affine matrix `[m0, m1, m2, m3, m4, m5]` mapping output to input coordinates,
/// as torchvision's `_get_inverse_affine_matrix` (angles in degrees, clockwise-positive as in
/// `F.affine`; `center` relative to the image centre; `shear = [sx, sy]` in degrees).
///
/// With `R = rot - sy`: `a = cos R / cos sy`, `b = -(a tan sx + sin rot)`,
/// `c = sin R / cos sy`, `d = cos rot - c tan sx`; the inverse is
/// `[d, -b; -c, a] / scale`, composed with the inverse translation and the centre shift.
pub fn inverse_affine_matrix(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    scale: f64,
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear[0].to_radians(), shear[1].to_radians());
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let cos_sy = sy.cos();
    let tan_sx = sx.tan();
    let a = (rot - sy).cos() / cos_sy;
    let b = -(a * tan_sx + rot.sin());
    let c = (rot - sy).sin() / cos_sy;
    let d = rot.cos() - c * tan_sx;
    let mut m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0];
    m[2] -= m[0] * (cx + tx) + m[1] * (cy + ty);
    m[5] -= m[3] * (cx + tx) + m[4] * (cy + ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// Warps `src` into `dst` (same shape) through the inverse matrix `m`; see the module docs.
pub fn warp_affine(
    src: &[f32],
    dims: Chw,
    m: &[f64; 6],
    interpolation: Interpolation,
    fill: f32,
    dst: &mut [f32],
) {
    let Chw { c, h, w } = dims;
    let plane = dims.plane();
    let (ox, oy) = ((w as f64 - 1.0) * 0.5, (h as f64 - 1.0) * 0.5);
    for y in 0..h {
        let yc = y as f64 - oy;
        for x in 0..w {
            let xc = x as f64 - ox;
            let sx = m[0] * xc + m[1] * yc + m[2] + ox;
            let sy = m[3] * xc + m[4] * yc + m[5] + oy;
            let at = y * w + x;
            match interpolation {
                Interpolation::Nearest => {
                    let (ix, iy) = (sx.round_ties_even(), sy.round_ties_even());
                    let inside = ix >= 0.0 && iy >= 0.0 && ix < w as f64 && iy < h as f64;
                    let from = iy as usize * w + ix as usize;
                    for ch in 0..c {
                        dst[ch * plane + at] = if inside { src[ch * plane + from] } else { fill };
                    }
                }
                Interpolation::Bilinear => {
                    let taps = bilinear_taps(sx, sy, w, h);
                    let mask: f64 = taps.iter().map(|t| t.1).sum();
                    for ch in 0..c {
                        let base = &src[ch * plane..(ch + 1) * plane];
                        let v: f64 = taps.iter().map(|&(i, wt)| wt * base[i] as f64).sum();
                        dst[ch * plane + at] = (mask * (v - fill as f64) + fill as f64) as f32;
                    }
                }
            }
        }
    }
}

/// The four bilinear taps `(index, weight)` of source point `(sx, sy)`; taps outside the
/// image get weight 0 (zero padding) and index 0.
fn bilinear_taps(sx: f64, sy: f64, w: usize, h: usize) -> [(usize, f64); 4] {
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0, sy - y0);
    let mut taps = [(0usize, 0.0f64); 4];
    let corners = [
        (x0, y0, (1.0 - fx) * (1.0 - fy)),
        (x0 + 1.0, y0, fx * (1.0 - fy)),
        (x0, y0 + 1.0, (1.0 - fx) * fy),
        (x0 + 1.0, y0 + 1.0, fx * fy),
    ];
    for (tap, (cx, cy, wt)) in taps.iter_mut().zip(corners) {
        if cx >= 0.0 && cy >= 0.0 && cx < w as f64 && cy < h as f64 {
            *tap = (cy as usize * w + cx as usize, wt);
        }
    }
    taps
}

/// `F.rotate(img, angle, interpolation, expand=False, center, fill)`: counter-clockwise by
/// `angle` degrees about `center` (pixel coordinates; `None` = image centre).
pub fn rotate(
    src: &[f32],
    dims: Chw,
    angle: f64,
    interpolation: Interpolation,
    fill: f32,
    center: Option<[f64; 2]>,
    dst: &mut [f32],
) {
    let m = inverse_affine_matrix(centred(center, dims), -angle, [0.0; 2], 1.0, [0.0; 2]);
    warp_affine(src, dims, &m, interpolation, fill, dst);
}

/// The parameters of [`affine`], as `F.affine`'s keyword arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// Rotation in degrees (clockwise in torchvision's image convention, as `F.affine`).
    pub angle: f64,
    /// Translation `[tx, ty]` in pixels.
    pub translate: [f64; 2],
    /// Isotropic scale.
    pub scale: f64,
    /// Shear `[sx, sy]` in degrees.
    pub shear: [f64; 2],
    /// Centre in pixel coordinates; `None` = image centre.
    pub center: Option<[f64; 2]>,
}

/// `F.affine(img, angle, translate, scale, shear, interpolation, fill, center)`.
pub fn affine(
    src: &[f32],
    dims: Chw,
    params: &AffineParams,
    interpolation: Interpolation,
    fill: f32,
    dst: &mut [f32],
) {
    let m = inverse_affine_matrix(
        centred(params.center, dims),
        params.angle,
        params.translate,
        params.scale,
        params.shear,
    );
    warp_affine(src, dims, &m, interpolation, fill, dst);
}

fn centred(center: Option<[f64; 2]>, dims: Chw) -> [f64; 2] {
    match center {
        Some([x, y]) => [x - dims.w as f64 * 0.5, y - dims.h as f64 * 0.5],
        None => [0.0, 0.0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rotation_by_zero_is_the_identity(
            c in 1usize..4, h in 1usize..9, w in 1usize..9, seed in any::<u64>(), nearest in any::<bool>()
        ) {
            let dims = Chw::new(c, h, w);
            let mut rng = gradus_core::SeededRng::new(seed);
            let img: Vec<f32> = (0..dims.len()).map(|_| rng.unit_f64() as f32).collect();
            let mode = if nearest { Interpolation::Nearest } else { Interpolation::Bilinear };
            let mut out = vec![0.0; dims.len()];
            rotate(&img, dims, 0.0, mode, 0.5, None, &mut out);
            prop_assert_eq!(out, img);
        }

        #[test]
        fn warps_stay_within_input_range_with_in_range_fill(
            h in 2usize..9, w in 2usize..9, seed in any::<u64>(), angle in -180.0f64..180.0,
            scale in 0.5f64..2.0, shear in -30.0f64..30.0, nearest in any::<bool>()
        ) {
            let dims = Chw::new(2, h, w);
            let mut rng = gradus_core::SeededRng::new(seed);
            let img: Vec<f32> = (0..dims.len()).map(|_| 0.2 + 0.5 * rng.unit_f64() as f32).collect();
            let mode = if nearest { Interpolation::Nearest } else { Interpolation::Bilinear };
            let p = AffineParams { angle, translate: [1.0, -1.0], scale, shear: [shear, 0.0], center: None };
            let mut out = vec![0.0; dims.len()];
            affine(&img, dims, &p, mode, 0.3, &mut out);
            // Nearest copies input or fill; bilinear blends them but, as torchvision, scales
            // the zero-padded border sample by the mask once more, so only [0, max] holds there.
            let low = if nearest { 0.2 } else { 0.0 };
            for v in out {
                prop_assert!((low - 1e-6..=0.7 + 1e-6).contains(&v), "{}", v);
            }
        }
    }
}
