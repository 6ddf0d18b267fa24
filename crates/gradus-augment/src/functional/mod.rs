//! Deterministic pixel cores: each op of torchvision.transforms.v2.functional that the random
//! augmentations use, on one image `(c, h, w)` stored row-major as `&[f32]`, with fixed
//! parameters.
//!
//! The random plugins of this crate draw parameters and then call these functions once per
//! sample; they are public so that tests and benches (and users who need a fixed transform) can
//! call them directly. Each matches torchvision 0.29 within 1e-5 on the golden file
//! `tests/data/torchvision.json` (see `docs/augmentation.md`). None of them allocates per pixel.

mod blur;
mod color;
mod crop;
mod erase;
mod flip;
mod resize;
mod warp;

pub use blur::{gaussian_blur, gaussian_kernel1d};
pub use color::{adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
pub use crop::{center_crop_anchor, center_crop_padding, pad_crop, PadCrop, PaddingMode};
pub use erase::erase;
pub use flip::{horizontal_flip, vertical_flip};
pub use resize::resized_crop;
pub use warp::{affine, inverse_affine_matrix, rotate, warp_affine, AffineParams, Interpolation};

/// The shape `(c, h, w)` of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chw {
    /// Channels.
    pub c: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
}

impl Chw {
    /// A shape of `c` channels of `h` rows and `w` columns.
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Chw { c, h, w }
    }

    /// Pixels of one channel, `h * w`.
    pub fn plane(&self) -> usize {
        self.h * self.w
    }

    /// Values of the whole image, `c * h * w`.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Whether the image holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
