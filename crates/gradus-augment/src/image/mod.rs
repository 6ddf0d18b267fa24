//! Random image augmentations over [`ImageBatch`](gradus_core::plugin::augment::ImageBatch)es,
//! one registered plugin per file.

mod mixing;

pub mod center_crop;
pub mod color_jitter;
pub mod compose;
pub mod cutmix;
pub mod flip;
pub mod gaussian_blur;
pub mod gaussian_noise;
pub mod mixup;
pub mod random_affine;
pub mod random_crop;
pub mod random_erasing;
pub mod random_resized_crop;
pub mod random_rotation;

pub use center_crop::{CenterCrop, CenterCropConfig};
pub use color_jitter::{ColorJitter, ColorJitterConfig};
pub use compose::{OneOf, RandomApply, RandomOrder, Sequence};
pub use cutmix::{CutMix, CutMixConfig};
pub use flip::{FlipConfig, RandomFlip};
pub use gaussian_blur::{GaussianBlur, GaussianBlurConfig};
pub use gaussian_noise::{GaussianNoise, GaussianNoiseConfig};
pub use mixup::{MixUp, MixUpConfig};
pub use random_affine::{RandomAffine, RandomAffineConfig};
pub use random_crop::{RandomCrop, RandomCropConfig};
pub use random_erasing::{RandomErasing, RandomErasingConfig};
pub use random_resized_crop::{RandomResizedCrop, RandomResizedCropConfig};
pub use random_rotation::{RandomRotation, RandomRotationConfig};
