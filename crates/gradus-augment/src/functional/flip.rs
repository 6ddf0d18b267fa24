//! Flips: `F.horizontal_flip` (mirror columns) and `F.vertical_flip` (mirror rows).

use super::Chw;

/// Mirrors every row in place: `out[.., y, x] = in[.., y, w - 1 - x]`.
pub fn horizontal_flip(img: &mut [f32], dims: Chw) {
    if dims.w == 0 {
        return;
    }
    for row in img[..dims.len()].chunks_exact_mut(dims.w) {
        row.reverse();
    }
}

/// Mirrors the rows of every channel in place: `out[.., y, x] = in[.., h - 1 - y, x]`.
pub fn vertical_flip(img: &mut [f32], dims: Chw) {
    let (h, w) = (dims.h, dims.w);
    if dims.plane() == 0 {
        return;
    }
    for plane in img[..dims.len()].chunks_exact_mut(dims.plane()) {
        for y in 0..h / 2 {
            let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flips_a_small_image() {
        let dims = Chw::new(1, 2, 3);
        let mut img = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        horizontal_flip(&mut img, dims);
        assert_eq!(img, vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        vertical_flip(&mut img, dims);
        assert_eq!(img, vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
    }

    proptest! {
        #[test]
        fn a_flip_applied_twice_is_the_identity(
            c in 1usize..4, h in 1usize..7, w in 1usize..7, seed in any::<u64>()
        ) {
            let dims = Chw::new(c, h, w);
            let mut rng = gradus_core::SeededRng::new(seed);
            let img: Vec<f32> = (0..dims.len()).map(|_| rng.unit_f64() as f32).collect();
            let mut out = img.clone();
            horizontal_flip(&mut out, dims);
            horizontal_flip(&mut out, dims);
            prop_assert_eq!(&out, &img);
            vertical_flip(&mut out, dims);
            vertical_flip(&mut out, dims);
            prop_assert_eq!(&out, &img);
        }
    }
}
