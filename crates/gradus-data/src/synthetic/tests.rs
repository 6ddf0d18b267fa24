//! Synthetic generators: shapes, classes, determinism and the geometry of each kind.

use super::*;
use gradus_core::plugin::data::Task;
use proptest::prelude::*;
use serde_json::json;

fn load(config: Value, rng_seed: u64) -> Result<Dataset> {
    build(&config, "data")?.load(&mut SeededRng::new(rng_seed))
}

fn bits(data: &Dataset) -> (Vec<u32>, Vec<u32>) {
    let f = data
        .features
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let t = data.targets.flatten_all().unwrap();
    let t = match data.task {
        Task::Classification { .. } => t.to_vec1::<u32>().unwrap(),
        Task::Regression => t
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
    };
    (f.iter().map(|v| v.to_bits()).collect(), t)
}

fn class_counts(data: &Dataset) -> Vec<usize> {
    let Task::Classification { num_classes } = data.task else {
        panic!("not classification")
    };
    let mut counts = vec![0; num_classes];
    for y in data.targets.to_vec1::<u32>().unwrap() {
        counts[y as usize] += 1;
    }
    counts
}

#[test]
fn shapes_and_classes_of_every_kind() {
    let moons = load(json!({"n": 101}), 0).unwrap();
    assert_eq!(moons.features.dims(), [101, 2]);
    assert_eq!(class_counts(&moons), [50, 51]);
    let spirals = load(json!({"kind": "spirals", "n": 10, "classes": 3}), 0).unwrap();
    assert_eq!(class_counts(&spirals), [4, 3, 3]);
    let blobs = load(json!({"kind": "blobs", "n": 30, "features": 5}), 0).unwrap();
    assert_eq!(blobs.features.dims(), [30, 5]);
    assert_eq!(class_counts(&blobs), [10, 10, 10]);
    let linear = load(json!({"kind": "linear", "n": 7, "features": 3}), 0).unwrap();
    assert_eq!(
        (linear.features.dims(), linear.targets.dims()),
        (&[7, 3][..], &[7, 1][..])
    );
    assert_eq!(linear.task, Task::Regression);
    let poly = load(json!({"kind": "polynomial", "n": 9, "degree": 2}), 0).unwrap();
    assert_eq!(
        (poly.features.dims(), poly.targets.dims()),
        (&[9, 1][..], &[9, 1][..])
    );
}

#[test]
fn noiseless_moons_lie_on_their_circles() {
    let data = load(json!({"n": 40}), 3).unwrap();
    let x = data.features.to_vec2::<f32>().unwrap();
    for (p, y) in x.iter().zip(data.targets.to_vec1::<u32>().unwrap()) {
        let (cx, cy) = if y == 0 { (0.0, 0.0) } else { (1.0, 0.5) };
        let r = ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt();
        assert!((r - 1.0).abs() < 1e-6, "{p:?} class {y}");
    }
}

#[test]
fn noiseless_regression_is_exactly_linear() {
    // Four samples with one feature fix w and b; every other sample must fit them.
    let data = load(json!({"kind": "linear", "n": 50}), 5).unwrap();
    let x = data
        .features
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let y = data
        .targets
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let w = (y[1] - y[0]) / (x[1] - x[0]);
    let b = y[0] - w * x[0];
    for (xi, yi) in x.iter().zip(&y) {
        assert!(
            (w * xi + b - yi).abs() < 1e-4 * (1.0 + yi.abs()),
            "{xi} {yi}"
        );
    }
}

#[test]
fn seed_field_overrides_the_pipeline_generator() {
    let own = json!({"kind": "blobs", "n": 20, "seed": 9});
    assert_eq!(
        bits(&load(own.clone(), 1).unwrap()),
        bits(&load(own, 2).unwrap())
    );
    let shared = json!({"kind": "blobs", "n": 20});
    assert_eq!(
        bits(&load(shared.clone(), 1).unwrap()),
        bits(&load(shared.clone(), 1).unwrap())
    );
    assert_ne!(
        bits(&load(shared.clone(), 1).unwrap()),
        bits(&load(shared, 2).unwrap())
    );
}

#[test]
fn invalid_configs_name_the_field() {
    let err = |v: Value| build(&v, "data").err().unwrap().to_string();
    assert_eq!(
        err(json!({"degree": 2})),
        "invalid config at data.degree: `degree` applies only to kind polynomial, not TwoMoons"
    );
    assert!(err(json!({"kind": "blobs", "classes": 0})).contains("data.classes"));
    assert!(err(json!({"noise": -1.0})).contains("data.noise"));
    assert!(err(json!({"kind": "spirals", "n": 2, "classes": 3})).contains("data.n"));
    assert!(err(json!({"kind": "circles"})).contains("data.kind"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn same_seed_same_bits(
        seed in any::<u64>(),
        kind in prop::sample::select(vec!["two_moons", "spirals", "blobs", "linear", "polynomial"]),
        n in 3usize..60,
        noise in 0.0f64..0.5,
    ) {
        let config = json!({"kind": kind, "n": n, "noise": noise});
        let a = load(config.clone(), seed).unwrap();
        let b = load(config, seed).unwrap();
        prop_assert_eq!(a.features.dims()[0], n);
        prop_assert_eq!(bits(&a), bits(&b));
        let values = a.features.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        prop_assert!(values.iter().all(|v| v.is_finite()));
    }
}
