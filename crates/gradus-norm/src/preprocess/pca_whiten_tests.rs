//! `pca_whiten` against scikit-learn (`tests/data/pca_whiten/`), its invariants, and its errors.

use super::*;
use candle_core::{DType, Device};
use gradus_core::SeededRng;
use proptest::prelude::*;
use serde_json::json;

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (n, f) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (n, f), &Device::Cpu).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

/// Largest absolute difference, relative to max(1, |expected|).
fn max_rel_err(actual: &Tensor, expected: &Value) -> f64 {
    let expected: Vec<Vec<f64>> = serde_json::from_value(expected.clone()).unwrap();
    rows(actual)
        .iter()
        .flatten()
        .zip(expected.iter().flatten())
        .map(|(a, e)| (a - e).abs() / e.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn golden() -> Value {
    let text = include_str!("../../tests/data/pca_whiten/pca_whiten.json");
    serde_json::from_str(text).unwrap()
}

fn fitted(config: Value, train: &Tensor) -> PcaWhiten {
    let mut p = PcaWhiten::at(serde_json::from_value(config).unwrap(), "p").unwrap();
    p.fit(train).unwrap();
    p
}

/// Matches `sklearn.decomposition.PCA(whiten=True)` (statistics, transform of both splits,
/// inverse) and the numpy ZCA case within 1e-10 relative (f64).
#[test]
fn matches_scikit_learn() {
    for case in golden()["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (train, test) = (matrix(&case["train"]), matrix(&case["test"]));
        let zca = case.get("zca").is_some();
        let config = json!({
            "n_components": case.get("n_components").cloned().unwrap_or(Value::Null),
            "eps": case.get("eps").cloned().unwrap_or(json!(0.0)),
            "zca": zca,
        });
        let p = fitted(config, &train);
        let state = p.state();
        let mean = state.get("mean").unwrap().unsqueeze(0).unwrap();
        assert!(
            max_rel_err(&mean, &json!([case["mean"]])) < 1e-10,
            "{name}: mean"
        );
        let out = p.transform(&test).unwrap();
        let err = max_rel_err(&out, &case["test_out"]);
        assert!(err < 1e-10, "{name}: test transform off by {err:e}");
        if zca {
            continue;
        }
        let components = state.get("components").unwrap();
        assert!(
            max_rel_err(components, &case["components"]) < 1e-10,
            "{name}: signs"
        );
        let variance = state
            .get("scale")
            .unwrap()
            .sqr()
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let expected = json!([case["explained_variance"]]);
        assert!(
            max_rel_err(&variance, &expected) < 1e-10,
            "{name}: variance"
        );
        let err = max_rel_err(&p.transform(&train).unwrap(), &case["train_out"]);
        assert!(err < 1e-10, "{name}: train transform off by {err:e}");
        let err = max_rel_err(&p.inverse(&out).unwrap(), &case["inverse_of_test_out"]);
        assert!(err < 1e-10, "{name}: inverse off by {err:e}");
    }
}

/// Constant features and more features than samples give finite outputs (zero-variance
/// directions keep scale 1), and ZCA keeps an image's shape.
#[test]
fn zero_variance_directions_stay_finite_and_zca_keeps_the_shape() {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(3);
    // 6 samples of 1x3x3 images whose first pixel is constant: rank-deficient covariance.
    let x = rng
        .normal_tensor(&[6, 1, 3, 3], 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    let mask = Tensor::from_vec(
        (0..9)
            .map(|i| if i == 0 { 0.0 } else { 1.0 })
            .collect::<Vec<f64>>(),
        (1, 1, 3, 3),
        &dev,
    )
    .unwrap();
    let x = x.broadcast_mul(&mask).unwrap();
    for zca in [false, true] {
        let p = fitted(json!({ "zca": zca }), &x);
        let y = p.transform(&x).unwrap();
        let expected: &[usize] = if zca { &[6, 1, 3, 3] } else { &[6, 9] };
        assert_eq!(y.dims(), expected);
        let values = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "zca {zca}: {values:?}"
        );
        let scale = p.state().get("scale").unwrap().to_vec1::<f64>().unwrap();
        assert!(
            scale.iter().filter(|&&s| s == 1.0).count() >= 4,
            "{scale:?}"
        );
    }
}

#[test]
fn bad_configs_and_inputs_are_clear_errors() {
    let err = PcaWhiten::at(
        serde_json::from_value(json!({"eps": -1.0})).unwrap(),
        "data.preprocess[1]",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config at data.preprocess[1].eps: must be finite and >= 0, got -1"
    );
    let dev = Device::Cpu;
    let train = Tensor::new(
        &[[1.0f64, 2.0, 3.0], [2.0, 0.0, 1.0], [0.0, 1.0, 5.0]],
        &dev,
    )
    .unwrap();
    let mut p =
        PcaWhiten::new(serde_json::from_value(json!({"n_components": 4})).unwrap()).unwrap();
    let err = p.fit(&train).unwrap_err().to_string();
    assert!(
        err.contains("n_components = 4 exceeds the 3 features"),
        "{err}"
    );
    let mut p =
        PcaWhiten::new(serde_json::from_value(json!({"n_components": 2, "zca": true})).unwrap())
            .unwrap();
    assert!(p.fit(&train).unwrap_err().to_string().contains("ZCA"));
    // One sample: no spread, every direction keeps scale 1 (the transform is a rotation).
    let one = Tensor::new(&[[1.0f64, 2.0, 3.0]], &dev).unwrap();
    let p = fitted(json!({}), &one);
    let scale = p.state().get("scale").unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(scale, vec![1.0; 3]);
    let p = fitted(json!({"n_components": 2}), &train);
    let err = p
        .transform(&Tensor::zeros((2, 4), DType::F64, &dev).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = p
        .inverse(&Tensor::zeros((2, 3), DType::F64, &dev).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = PcaWhiten::new(PcaWhitenConfig::default())
        .unwrap()
        .transform(&train)
        .unwrap_err();
    assert!(err.to_string().contains("not fitted"), "{err}");
}

#[test]
fn state_round_trips_through_load_state() {
    let mut rng = SeededRng::new(9);
    let x = rng
        .normal_tensor(&[20, 4], 1.0, 3.0, DType::F64, &Device::Cpu)
        .unwrap();
    for zca in [false, true] {
        let a = fitted(json!({ "zca": zca, "eps": 0.01 }), &x);
        let mut b =
            PcaWhiten::new(serde_json::from_value(json!({ "zca": zca, "eps": 0.01 })).unwrap())
                .unwrap();
        b.load_state(&a.state()).unwrap();
        assert_eq!(
            rows(&a.transform(&x).unwrap()),
            rows(&b.transform(&x).unwrap())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whitened training data has zero mean and identity covariance (PCA and ZCA, full rank),
    /// and `inverse` undoes the transform; f32 inputs stay f32.
    #[test]
    fn whitened_covariance_is_the_identity_and_inverse_undoes_it(
        seed in any::<u64>(), n in 12usize..40, f in 1usize..6, zca in any::<bool>(),
    ) {
        let mut rng = SeededRng::new(seed);
        let z = rng.normal_tensor(&[n, f], 0.0, 1.0, DType::F64, &Device::Cpu).unwrap();
        let mix = rng.normal_tensor(&[f, f], 0.0, 2.0, DType::F64, &Device::Cpu).unwrap();
        let x = (z.matmul(&mix).unwrap() + 5.0).unwrap();
        let p = fitted(json!({ "zca": zca }), &x);
        let y = p.transform(&x).unwrap();
        let mean = y.mean_keepdim(0).unwrap();
        let centered = y.broadcast_sub(&mean).unwrap();
        let cov = (centered.t().unwrap().matmul(&centered).unwrap() / (n as f64 - 1.0)).unwrap();
        // Random mixing is full rank almost surely; a (near-)singular draw keeps scale 1 in
        // some direction, which is then not whitened by design.
        let scale = p.state().get("scale").unwrap().to_vec1::<f64>().unwrap();
        prop_assume!(scale.iter().all(|&s| s != 1.0));
        for (i, row) in rows(&cov).iter().enumerate() {
            for (j, c) in row.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                prop_assert!((c - want).abs() < 1e-8, "cov[{}][{}] = {}", i, j, c);
            }
        }
        for m in rows(&mean).iter().flatten() {
            prop_assert!(m.abs() < 1e-9, "mean {}", m);
        }
        let back = rows(&p.inverse(&y).unwrap());
        for (a, b) in back.iter().flatten().zip(rows(&x).iter().flatten()) {
            prop_assert!((a - b).abs() <= 1e-8 * b.abs().max(1.0), "{} vs {}", a, b);
        }
        let y32 = p.transform(&x.to_dtype(DType::F32).unwrap()).unwrap();
        prop_assert_eq!(y32.dtype(), DType::F32);
    }
}
