//! Losses against values computed by hand from PyTorch's definitions (plain Python `math`,
//! f64, shown next to each case), built by name through the registry.

use candle_core::{DType, Device, Tensor, Var};
use gradus_core::Error;
use gradus_loss::build_loss;
use serde_json::json;

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn logits() -> Tensor {
    Tensor::new(&[[2.0f64, 0.5, -1.0], [0.1, 0.2, 0.3]], &Device::Cpu).unwrap()
}

#[test]
fn cross_entropy_with_indices_and_smoothing() {
    let targets = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
    // -log p: row 0 [0.241311296657157, 1.741311296657157, 3.241311296657157],
    //         row 1 [1.201942848229244, 1.101942848229244, 1.001942848229244].
    // No smoothing: (0.241311296657157 + 1.001942848229244) / 2.
    let plain = build_loss(&json!({"type": "cross_entropy"}), "loss").unwrap();
    close(
        scalar(&plain.compute(&logits(), &targets).unwrap()),
        0.6216270724432005,
        1e-12,
    );
    // eps = 0.1: mean_n(0.9 (-log p[n, y_n]) + 0.1 / 3 sum_c(-log p[n, c])).
    let smooth = build_loss(
        &json!({"type": "cross_entropy", "label_smoothing": 0.1}),
        "loss",
    )
    .unwrap();
    close(
        scalar(&smooth.compute(&logits(), &targets).unwrap()),
        0.7016270724432006,
        1e-12,
    );
    assert_eq!(smooth.name(), "cross_entropy");
}

#[test]
fn cross_entropy_with_soft_targets_equals_indices_for_one_hot() {
    let loss = build_loss(
        &json!({"type": "cross_entropy", "label_smoothing": 0.1}),
        "loss",
    )
    .unwrap();
    let one_hot = Tensor::new(&[[1.0f32, 0.0, 0.0], [0.0, 0.0, 1.0]], &Device::Cpu).unwrap();
    close(
        scalar(&loss.compute(&logits(), &one_hot).unwrap()),
        0.7016270724432006,
        1e-12,
    );
    // Mixup-style targets: row 0 = 0.7 class 0 + 0.3 class 1, no smoothing:
    // 0.7 * 0.241311296657157 + 0.3 * 1.741311296657157 = 0.691311296657157; row 1 as before.
    let plain = build_loss(&json!({"type": "cross_entropy"}), "loss").unwrap();
    let mixed = Tensor::new(&[[0.7f32, 0.3, 0.0], [0.0, 0.0, 1.0]], &Device::Cpu).unwrap();
    close(
        scalar(&plain.compute(&logits(), &mixed).unwrap()),
        (0.691311296657157 + 1.001942848229244) / 2.0,
        1e-7,
    );
}

#[test]
fn mse_by_hand() {
    let loss = build_loss(&json!({"type": "mse"}), "loss").unwrap();
    let out = Tensor::new(&[[1.0f64, 2.0], [3.0, -1.0]], &Device::Cpu).unwrap();
    let t = Tensor::new(&[[0.5f64, 2.0], [1.0, 1.0]], &Device::Cpu).unwrap();
    // (0.25 + 0 + 4 + 4) / 4
    close(scalar(&loss.compute(&out, &t).unwrap()), 2.0625, 1e-15);
    // (N) targets for an (N, 1) output, integers converted.
    let out = Tensor::new(&[[1.5f32], [0.0], [2.0]], &Device::Cpu).unwrap();
    let t = Tensor::new(&[1u32, 0, 4], &Device::Cpu).unwrap();
    close(
        scalar(&loss.compute(&out, &t).unwrap()),
        (0.25 + 0.0 + 4.0) / 3.0,
        1e-7,
    );
    let err = loss
        .compute(&out, &Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { ref expected, ref actual, .. } if expected == &vec![3, 1] && actual == &vec![2])
    );
}

#[test]
fn bce_with_logits_by_hand_and_stable() {
    let loss = build_loss(&json!({"type": "bce_with_logits"}), "loss").unwrap();
    // -[t log s(x) + (1 - t) log(1 - s(x))] for (x, t) = (0.8, 1), (-1.2, 0), (0.3, 0.25):
    // 0.37110066594777763, 0.2632824673380312, 0.7793552444685271 (Python math).
    let out = Tensor::new(&[0.8f64, -1.2, 0.3], &Device::Cpu).unwrap();
    let t = Tensor::new(&[1.0f64, 0.0, 0.25], &Device::Cpu).unwrap();
    let expected = (0.37110066594777763 + 0.2632824673380312 + 0.7793552444685271) / 3.0;
    close(scalar(&loss.compute(&out, &t).unwrap()), expected, 1e-12);
    // Huge logits stay finite: x = 200, t = 0 costs 200; x = -200, t = 0 costs ~0.
    let out = Tensor::new(&[[200.0f32], [-200.0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, 0], &Device::Cpu).unwrap();
    close(scalar(&loss.compute(&out, &labels).unwrap()), 100.0, 1e-6);
    let err = loss
        .compute(&out, &Tensor::new(&[2u32, 0], &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("not 0 or 1"), "{err}");
}

#[test]
fn gradients_flow_to_the_output() {
    // d mse / d out = 2 (out - t) / n; d bce / d x = (sigmoid(x) - t) / n.
    let out = Var::new(&[[0.5f64], [-1.0]], &Device::Cpu).unwrap();
    let t = Tensor::new(&[[1.0f64], [0.0]], &Device::Cpu).unwrap();
    let mse = build_loss(&json!({"type": "mse"}), "loss").unwrap();
    let g = mse
        .compute(out.as_tensor(), &t)
        .unwrap()
        .backward()
        .unwrap();
    let g = g
        .get(out.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    close(g[0], -0.5, 1e-12);
    close(g[1], -1.0, 1e-12);
    let bce = build_loss(&json!({"type": "bce_with_logits"}), "loss").unwrap();
    let g = bce
        .compute(out.as_tensor(), &t)
        .unwrap()
        .backward()
        .unwrap();
    let g = g
        .get(out.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    close(g[0], (s(0.5) - 1.0) / 2.0, 1e-12);
    close(g[1], s(-1.0) / 2.0, 1e-12);
}

#[test]
fn configs_are_strict() {
    let err = build_loss(
        &json!({"type": "cross_entropy", "label_smothing": 0.1}),
        "loss",
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "unknown field `label_smothing` at loss, expected one of label_smoothing; did you mean `label_smoothing`?"
    );
    let err = build_loss(
        &json!({"type": "cross_entropy", "label_smoothing": 1.5}),
        "loss",
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("invalid config at loss.label_smoothing"),
        "{err}"
    );
    let err = build_loss(&json!({"type": "mse", "reduction": "sum"}), "loss")
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("unknown field `reduction` at loss"),
        "{err}"
    );
    let err = build_loss(&json!({"type": "crossentropy"}), "loss")
        .err()
        .unwrap();
    match err {
        Error::UnknownName {
            path,
            suggestion,
            valid,
            ..
        } => {
            assert_eq!(path, "loss.type");
            assert_eq!(suggestion.as_deref(), Some("cross_entropy"));
            assert_eq!(valid.len(), 3);
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = build_loss(&json!({"label_smoothing": 0.1}), "loss")
        .err()
        .unwrap();
    assert!(err.to_string().contains("missing field `type`"), "{err}");
}

#[test]
fn the_built_in_losses_are_registered_with_their_defaults() {
    let list = gradus_core::registry::catalog(Some("loss")).unwrap();
    let names: Vec<&str> = list.iter().map(|e| e.name).collect();
    assert_eq!(names, ["bce_with_logits", "cross_entropy", "mse"]);
    let ce = list.iter().find(|e| e.name == "cross_entropy").unwrap();
    assert_eq!(ce.defaults, json!({"label_smoothing": 0.0}));
    assert!(ce.origin.starts_with("gradus_loss"), "{}", ce.origin);
    for entry in &list {
        // Each builds from its own defaults and reports its registered name.
        let mut config = entry.defaults.clone();
        config["type"] = json!(entry.name);
        let loss = build_loss(&config, "loss").unwrap();
        assert_eq!(loss.name(), entry.name);
    }
}

#[test]
fn typed_losses_equal_the_ones_built_by_name() {
    use gradus_loss::{BceWithLogits, Loss, Mse};
    let out = Tensor::new(&[[0.3f64], [-1.5], [2.0]], &Device::Cpu).unwrap();
    let t = Tensor::new(&[[1.0f64], [0.0], [1.0]], &Device::Cpu).unwrap();
    for (typed, name) in [
        (Box::new(Mse) as Box<dyn Loss>, "mse"),
        (Box::new(BceWithLogits), "bce_with_logits"),
    ] {
        let by_name = build_loss(&json!({ "type": name }), "loss").unwrap();
        assert_eq!(
            scalar(&typed.compute(&out, &t).unwrap()).to_bits(),
            scalar(&by_name.compute(&out, &t).unwrap()).to_bits(),
            "{name}"
        );
    }
}
