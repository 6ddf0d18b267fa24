//! One `register_*!` macro per plugin kind: the single line a component needs.
//!
//! Each takes `("name", "one-line summary", ConfigType, build_fn)`, where `ConfigType` is
//! `Default + Serialize` (its default JSON is what `gradus list` shows) and
//! [`JsonSchema`](schemars::JsonSchema) (its schema is part of `gradus schema`, see
//! [`crate::schema`]), and `build_fn` has the kind's constructor signature.

/// Registers an optimizer: `register_optimizer!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_optimizer {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::OptimizerKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a schedule: `register_schedule!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_schedule {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::ScheduleKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a regularizer: `register_regularizer!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_regularizer {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::RegularizerKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers an initializer: `register_initializer!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_initializer {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::InitializerKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a model layer: `register_layer!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_layer {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::LayerKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a normalization layer: `register_normalization!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_normalization {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::NormalizationKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers an input preprocessor: `register_preprocessor!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_preprocessor {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::PreprocessorKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers an image augmentation: `register_image_augmentation!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_image_augmentation {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::ImageAugmentationKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a text augmentation: `register_text_augmentation!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_text_augmentation {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::TextAugmentationKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a data source: `register_data_source!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_data_source {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::DataSourceKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a batching strategy: `register_batching!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_batching {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!(
            $crate::registry::BatchingKind,
            $name,
            $summary,
            $config,
            $build
        );
    };
}

/// Registers a loss: `register_loss!("name", "summary", Config, build_fn);`.
#[macro_export]
macro_rules! register_loss {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::register_component!($crate::registry::LossKind, $name, $summary, $config, $build);
    };
}
