//! `F.erase(img, i, j, h, w, v)`: overwrite a rectangle of every channel.

use super::Chw;

/// Writes `value` into rows `top..top + height` and columns `left..left + width` (clipped to
/// the image). `value` holds one value for all channels, one per channel, or one per erased
/// pixel (`c * height * width`, row-major, as torchvision's random-normal patches).
pub fn erase(img: &mut [f32], dims: Chw, window: [usize; 4], value: &[f32]) {
    let [top, left, height, width] = window;
    let (bottom, right) = ((top + height).min(dims.h), (left + width).min(dims.w));
    if value.is_empty() || bottom <= top || right <= left {
        return;
    }
    let plane = dims.plane();
    for ch in 0..dims.c {
        for y in top..bottom {
            let row = &mut img[ch * plane + y * dims.w..ch * plane + (y + 1) * dims.w];
            for (x, v) in row[left..right].iter_mut().enumerate() {
                *v = match value.len() {
                    1 => value[0],
                    n if n == dims.c => value[ch],
                    _ => value[(ch * height + (y - top)) * width + x],
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erases_only_the_window() {
        let dims = Chw::new(2, 3, 3);
        let mut img = vec![1.0; dims.len()];
        erase(&mut img, dims, [1, 1, 2, 1], &[0.0, 5.0]);
        let expect_c0 = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let expect_c1 = [1.0, 1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 5.0, 1.0];
        assert_eq!(&img[..9], &expect_c0);
        assert_eq!(&img[9..], &expect_c1);
    }
}
