//! `F.resized_crop(img, top, left, height, width, size, interpolation=BILINEAR,
//! antialias=False)`: crop a window and resize it bilinearly in one pass.
//!
//! As `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`: along an axis
//! of `n_in` source and `n_out` output samples, output index `o` reads source coordinate
//! `s = max((o + 0.5) * n_in / n_out - 0.5, 0)`, between `i0 = floor(s)` and
//! `i1 = min(i0 + 1, n_in - 1)` with weight `s - i0` on `i1`. No antialiasing filter is
//! applied when shrinking (torchvision's `RandomResizedCrop` defaults to `antialias=True`; see
//! `docs/augmentation.md`).

use super::Chw;

/// Source taps `(i0, i1, weight of i1)` of each output index along one axis.
fn axis_taps(n_in: usize, n_out: usize, o: usize) -> (usize, usize, f64) {
    let scale = n_in as f64 / n_out as f64;
    let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, s - i0 as f64)
}

/// Resizes the window `[top, left, height, width]` of `src` to `size = [out_h, out_w]` into
/// `dst` (`c * out_h * out_w` values). The window must lie inside the image.
pub fn resized_crop(src: &[f32], dims: Chw, window: [usize; 4], size: [usize; 2], dst: &mut [f32]) {
    let [top, left, height, width] = window;
    let [out_h, out_w] = size;
    if height == 0 || width == 0 {
        return;
    }
    let plane = dims.plane();
    let out_plane = out_h * out_w;
    for y in 0..out_h {
        let (y0, y1, ly) = axis_taps(height, out_h, y);
        let (r0, r1) = ((top + y0) * dims.w + left, (top + y1) * dims.w + left);
        for x in 0..out_w {
            let (x0, x1, lx) = axis_taps(width, out_w, x);
            for ch in 0..dims.c {
                let s = &src[ch * plane..(ch + 1) * plane];
                let v0 = (1.0 - lx) * s[r0 + x0] as f64 + lx * s[r0 + x1] as f64;
                let v1 = (1.0 - lx) * s[r1 + x0] as f64 + lx * s[r1 + x1] as f64;
                dst[ch * out_plane + y * out_w + x] = ((1.0 - ly) * v0 + ly * v1) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_window_is_a_plain_crop() {
        let dims = Chw::new(1, 3, 4);
        let img: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        resized_crop(&img, dims, [1, 1, 2, 2], [2, 2], &mut out);
        assert_eq!(out, vec![5.0, 6.0, 9.0, 10.0]);
    }

    #[test]
    fn upsampling_interpolates_between_neighbours() {
        let dims = Chw::new(1, 1, 2);
        let mut out = vec![0.0; 4];
        resized_crop(&[0.0, 1.0], dims, [0, 0, 1, 2], [1, 4], &mut out);
        // Source coordinates max(-0.25, 0), 0.25, 0.75, 1.25 (clamped to the last pixel).
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
    }
}
