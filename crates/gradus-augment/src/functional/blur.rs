//! `F.gaussian_blur(img, kernel_size=[kx, ky], sigma=[sx, sy])`: a separable Gaussian with
//! reflect padding.
//!
//! torchvision's 1-D kernel of odd size `k` and deviation `sigma` is
//! `softmax(-(x_i / sigma)^2)` with `x_i = linspace(-lim, lim, k)`, `lim = (k - 1) / (2 sqrt 2)`,
//! i.e. `exp(-(i - r)^2 / (2 sigma^2))` normalised to sum 1, `r = k / 2`. The 2-D kernel is the
//! outer product and the image is padded by `r` with `reflect` on each side; the convolution
//! here runs as a horizontal then a vertical pass (the same sum, ordered differently).

use gradus_core::{Error, Result};

use super::Chw;

/// torchvision's normalised 1-D Gaussian kernel of odd `size` and deviation `sigma`.
pub fn gaussian_kernel1d(size: usize, sigma: f64) -> Vec<f32> {
    let r = (size / 2) as f64;
    let e: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - r) / sigma).powi(2) / 2.0).exp())
        .collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| (v / total) as f32).collect()
}

/// Mirrors index `i` into `[0, n)` without repeating the edge (`|overflow| < n`).
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let i = if i < 0 { -i } else { i };
    (if i >= n { 2 * (n - 1) - i } else { i }) as usize
}

/// Blurs `src` into `dst` with kernel sizes `[kx, ky]` (odd) and deviations `[sx, sy]`;
/// `scratch` holds the horizontal pass (`dims.len()` values). Each half-kernel must be smaller
/// than the image side it pads (reflect padding), else an error.
pub fn gaussian_blur(
    src: &[f32],
    dims: Chw,
    kernel_size: [usize; 2],
    sigma: [f64; 2],
    dst: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    let [kx, ky] = kernel_size;
    if kx % 2 == 0 || ky % 2 == 0 {
        return Err(Error::InvalidHyperparameter(format!(
            "Kernel size value should be an odd and positive number, got {kernel_size:?}"
        )));
    }
    if kx / 2 >= dims.w.max(1) || ky / 2 >= dims.h.max(1) {
        return Err(Error::InvalidHyperparameter(format!(
            "gaussian_blur: padding {:?} (half the kernel size) must be smaller than the image \
             size {:?} for reflect padding",
            [kx / 2, ky / 2],
            [dims.w, dims.h]
        )));
    }
    let (kernel_x, kernel_y) = (
        gaussian_kernel1d(kx, sigma[0]),
        gaussian_kernel1d(ky, sigma[1]),
    );
    let (rx, ry) = ((kx / 2) as isize, (ky / 2) as isize);
    let (w, plane) = (dims.w, dims.plane());
    for ch in 0..dims.c {
        let s = &src[ch * plane..(ch + 1) * plane];
        let t = &mut scratch[ch * plane..(ch + 1) * plane];
        for y in 0..dims.h {
            let row = &s[y * w..(y + 1) * w];
            for x in 0..w {
                let acc: f64 = kernel_x
                    .iter()
                    .enumerate()
                    .map(|(k, &kv)| {
                        kv as f64 * row[reflect(x as isize + k as isize - rx, w)] as f64
                    })
                    .sum();
                t[y * w + x] = acc as f32;
            }
        }
        let d = &mut dst[ch * plane..(ch + 1) * plane];
        for y in 0..dims.h {
            for x in 0..w {
                let acc: f64 = kernel_y
                    .iter()
                    .enumerate()
                    .map(|(k, &kv)| {
                        let sy = reflect(y as isize + k as isize - ry, dims.h);
                        kv as f64 * t[sy * w + x] as f64
                    })
                    .sum();
                d[y * w + x] = acc as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = gaussian_kernel1d(5, 1.2);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[4]);
        assert!(k[2] > k[1] && k[1] > k[0]);
    }

    #[test]
    fn constant_image_stays_constant_and_bad_sizes_are_errors() {
        let dims = Chw::new(2, 4, 5);
        let img = vec![0.25; dims.len()];
        let (mut out, mut scratch) = (vec![0.0; dims.len()], vec![0.0; dims.len()]);
        gaussian_blur(&img, dims, [3, 5], [0.8, 2.0], &mut out, &mut scratch).unwrap();
        assert!(out.iter().all(|v| (v - 0.25).abs() < 1e-6));
        assert!(gaussian_blur(&img, dims, [4, 3], [1.0, 1.0], &mut out, &mut scratch).is_err());
        assert!(gaussian_blur(&img, dims, [3, 9], [1.0, 1.0], &mut out, &mut scratch).is_err());
    }
}
