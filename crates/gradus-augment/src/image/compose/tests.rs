//! Tests of the composition operations.
use super::*;
use crate::batch::testing::{identical_batch, random_batch, sample};
use serde_json::json;

fn build(config: Value) -> Result<Box<dyn ImageAugmentation>> {
    let (entry, rest) = resolve::<ImageAugmentationKind>(&config, "augment")?;
    (entry.build)(&rest, "augment")
}

#[test]
fn sequence_builds_children_through_the_registry() {
    let op = build(json!({"type": "sequence", "transforms": [
        {"type": "random_crop", "size": 6, "padding": 1},
        {"type": "horizontal_flip", "p": 1.0}
    ]}))
    .unwrap();
    let mut b = random_batch(4, 3, 8, 8, 0);
    op.apply(&mut b, &mut SeededRng::new(0)).unwrap();
    assert_eq!((b.n, b.c, b.h, b.w), (4, 3, 6, 6));
    let err = build(json!({"type": "sequence", "transforms": [{"type": "horizontal_flap"}]}))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("augment.transforms[0].type"),
        "{err}"
    );
    assert!(
        err.to_string().contains("did you mean `horizontal_flip`?"),
        "{err}"
    );
}

#[test]
fn random_apply_touches_only_some_samples() {
    let orig = identical_batch(32, 1, 4, 4);
    let mut b = orig.clone();
    let op = build(json!({"type": "random_apply", "p": 0.5, "transforms": [
        {"type": "vertical_flip", "p": 1.0}]}))
    .unwrap();
    op.apply(&mut b, &mut SeededRng::new(1)).unwrap();
    let changed = (0..32)
        .filter(|&i| sample(&b, i) != sample(&orig, i))
        .count();
    assert!((4..28).contains(&changed), "{changed}");
    assert_eq!(b.targets, orig.targets);
}

#[test]
fn one_of_with_common_output_size_and_mismatched_sizes_error() {
    let mut b = random_batch(16, 1, 8, 8, 2);
    let op = build(json!({"type": "one_of", "transforms": [
        {"type": "center_crop", "size": 4},
        {"type": "random_crop", "size": 4}]}))
    .unwrap();
    op.apply(&mut b, &mut SeededRng::new(3)).unwrap();
    assert_eq!((b.n, b.h, b.w), (16, 4, 4));
    let bad = build(json!({"type": "random_apply", "p": 0.5, "transforms": [
        {"type": "center_crop", "size": 4}]}))
    .unwrap();
    let mut b = random_batch(16, 1, 8, 8, 2);
    assert!(matches!(
        bad.apply(&mut b, &mut SeededRng::new(3)),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(build(json!({"type": "one_of", "transforms": []})).is_err());
    assert!(build(json!({"type": "one_of", "p": [1.0],
        "transforms": [{"type": "mixup"}, {"type": "cutmix"}]}))
    .is_err());
}

#[test]
fn random_order_is_reproducible_and_varies_per_sample() {
    let op = build(json!({"type": "random_order", "transforms": [
        {"type": "color_jitter", "brightness": 0.5},
        {"type": "random_rotation", "degrees": 30, "interpolation": "bilinear"}]}))
    .unwrap();
    let run = |seed| {
        let mut b = identical_batch(8, 3, 6, 6);
        op.apply(&mut b, &mut SeededRng::new(seed)).unwrap();
        b
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert!((1..8).any(|i| sample(&a, i) != sample(&a, 0)));
}

#[test]
fn the_documented_cifar_pipeline_runs() {
    let op = build(json!({"type": "sequence", "transforms": [
        {"type": "random_crop", "size": 32, "padding": 4, "padding_mode": "reflect"},
        {"type": "horizontal_flip"},
        {"type": "color_jitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
        {"type": "random_erasing", "p": 0.25}
    ]}))
    .unwrap();
    let mut b = random_batch(8, 3, 32, 32, 4);
    op.apply(&mut b, &mut SeededRng::new(9)).unwrap();
    assert_eq!((b.n, b.c, b.h, b.w), (8, 3, 32, 32));
}
