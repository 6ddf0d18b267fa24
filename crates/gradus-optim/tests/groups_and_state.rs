//! Parameter groups from JSON, frozen groups, run-time hyperparameters, state mismatches, and
//! the candle_nn::Optimizer drop-in.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::{Error, NamedVar, StateDict};
use gradus_optim::build_optimizer;
use serde_json::json;

fn params() -> Vec<NamedVar> {
    let dev = Device::Cpu;
    vec![
        NamedVar::new(
            "fc1.weight",
            Var::new(&[[1.0f64, 2.0], [3.0, 4.0]], &dev).unwrap(),
        ),
        NamedVar::new("fc1.bias", Var::new(&[0.5f64, -0.5], &dev).unwrap()),
        NamedVar::new("fc2.weight", Var::new(&[[1.0f64, -1.0]], &dev).unwrap()),
    ]
}

fn ones_grads(params: &[NamedVar]) -> GradStore {
    let mut g = GradStore::default();
    for p in params {
        g.insert(p.var.as_tensor(), p.var.as_tensor().ones_like().unwrap());
    }
    g
}

fn flat(p: &NamedVar) -> Vec<f64> {
    p.var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn groups_select_by_pattern_and_override_hyperparameters() {
    let ps = params();
    let config = json!({"type": "sgd", "lr": 0.1, "weight_decay": 0.5,
        "groups": [{"params": "*.bias", "weight_decay": 0.0}, {"params": ["fc2.*"], "frozen": true}]});
    let mut opt = build_optimizer(&config, "optimizer", &ps).unwrap();
    assert_eq!(opt.group_count(), 3);
    assert_eq!(opt.hyperparameter(1, "weight_decay").unwrap(), 0.0);
    assert_eq!(opt.hyperparameter(1, "lr").unwrap(), 0.1);
    opt.step(&ones_grads(&ps)).unwrap();
    // fc1.weight: θ − 0.1 (1 + 0.5 θ); fc1.bias: θ − 0.1; fc2 frozen.
    assert_eq!(
        flat(&ps[0]),
        vec![
            1.0 - 0.1 * 1.5,
            2.0 - 0.1 * 2.0,
            3.0 - 0.1 * 2.5,
            4.0 - 0.1 * 3.0
        ]
    );
    assert_eq!(flat(&ps[1]), vec![0.4, -0.6]);
    assert_eq!(flat(&ps[2]), vec![1.0, -1.0]);
    let state = opt.state_dict().unwrap();
    assert_eq!(
        state
            .get("fc2.weight.step")
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        0.0
    );
}

#[test]
fn a_group_with_lr_zero_still_keeps_state() {
    let ps = params();
    let config = json!({"type": "adam", "groups": [{"params": "fc1.bias", "lr": 0.0}]});
    let mut opt = build_optimizer(&config, "optimizer", &ps).unwrap();
    opt.step(&ones_grads(&ps)).unwrap();
    assert_eq!(flat(&ps[1]), vec![0.5, -0.5]);
    let state = opt.state_dict().unwrap();
    for m in state
        .get("fc1.bias.exp_avg")
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
    {
        assert!((m - 0.1).abs() < 1e-15, "{m}");
    }
}

#[test]
fn misspelled_group_key_names_its_path_and_suggests() {
    let config = json!({"type": "adam", "groups": [{"params": "*.bias", "weight_decy": 0.0}]});
    let err = build_optimizer(&config, "optimizer", &params())
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.starts_with("unknown field `weight_decy` at optimizer.groups[0]"),
        "{text}"
    );
    assert!(text.ends_with("did you mean `weight_decay`?"), "{text}");
}

#[test]
fn unknown_optimizer_and_unknown_field_are_clear_errors() {
    let err = build_optimizer(&json!({"type": "adamm"}), "optimizer", &params())
        .err()
        .unwrap();
    assert!(err.to_string().contains("did you mean `adam`?"), "{err}");
    let err = build_optimizer(
        &json!({"type": "adam", "beta": [0.9, 0.9]}),
        "optimizer",
        &params(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("unknown field `beta` at optimizer, expected one of lr, betas"),
        "{err}"
    );
    let err = build_optimizer(
        &json!({"type": "rmsprop", "lr": -0.1}),
        "optimizer",
        &params(),
    )
    .err()
    .unwrap();
    // PyTorch's wording, at the config's JSON path.
    assert_eq!(
        err.to_string(),
        "invalid config at optimizer: Invalid learning rate: -0.1"
    );
}

#[test]
fn hyperparameters_are_read_and_set_per_group_and_validated() {
    let ps = params();
    let mut opt = build_optimizer(
        &json!({"type": "adam", "groups": [{"params": "*.bias"}]}),
        "optimizer",
        &ps,
    )
    .unwrap();
    opt.set_hyperparameter(1, "beta1", 0.5).unwrap();
    assert_eq!(opt.hyperparameter(1, "beta1").unwrap(), 0.5);
    assert_eq!(opt.hyperparameter(0, "beta1").unwrap(), 0.9);
    assert!(opt.set_hyperparameter(0, "beta2", 1.5).is_err());
    let err = opt.set_hyperparameter(0, "momentum", 0.9).unwrap_err();
    assert!(matches!(err, Error::UnknownName { .. }), "{err}");
    assert!(opt.hyperparameter(7, "lr").is_err());
    opt.set_learning_rate(0.5).unwrap();
    assert_eq!(opt.hyperparameter(1, "lr").unwrap(), 0.5);
}

#[test]
fn loading_mismatched_state_is_an_error_naming_both() {
    let ps = params();
    let mut opt = build_optimizer(&json!({"type": "adam"}), "optimizer", &ps).unwrap();
    opt.step(&ones_grads(&ps)).unwrap();
    let good = opt.state_dict().unwrap();

    let mut wrong_shape = good.clone();
    wrong_shape.insert(
        "fc1.bias.exp_avg",
        Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(),
    );
    let err = opt.load_state_dict(&wrong_shape).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shape mismatch in saved state `fc1.bias.exp_avg`: expected [2], got [3]"
    );

    let mut missing = StateDict::new();
    for (k, v) in good.iter().filter(|(k, _)| !k.starts_with("fc2.weight")) {
        missing.insert(k, v.clone());
    }
    let err = opt.load_state_dict(&missing).unwrap_err();
    assert!(
        err.to_string().contains("missing `fc2.weight.step`"),
        "{err}"
    );

    let mut extra = good.clone();
    extra.insert(
        "fc3.weight.step",
        Tensor::new(1.0f64, &Device::Cpu).unwrap(),
    );
    let err = opt.load_state_dict(&extra).unwrap_err();
    assert!(err.to_string().contains("`fc3.weight.step`"), "{err}");

    // A failed load leaves the optimizer as it was.
    let before = opt.state_dict().unwrap();
    assert_eq!(before.len(), good.len());
    opt.load_state_dict(&good).unwrap();
}

#[test]
fn drop_in_for_candle_nn_trains_a_model_like_candle_does() {
    use candle_nn::{Linear, Module, Optimizer as _, VarBuilder, VarMap};
    let dev = Device::Cpu;
    let x = Tensor::new(&[[1f32, 2.], [3., -1.], [0.5, 0.5], [-2., 1.]], &dev).unwrap();
    let y = Tensor::new(&[[1f32], [-1.], [0.25], [2.]], &dev).unwrap();
    let train = |use_gradus: bool| -> Vec<f32> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let init_w = Tensor::new(&[[0.1f32, -0.2]], &dev).unwrap();
        let init_b = Tensor::new(&[0.05f32], &dev).unwrap();
        let w = vb
            .get_with_hints((1, 2), "w", candle_nn::Init::Const(0.))
            .unwrap();
        let b = vb
            .get_with_hints(1, "b", candle_nn::Init::Const(0.))
            .unwrap();
        for (name, t) in [("w", &init_w), ("b", &init_b)] {
            varmap.data().lock().unwrap()[name].set(t).unwrap();
        }
        let model = Linear::new(w, Some(b));
        let mut losses = Vec::new();
        if use_gradus {
            let mut opt = gradus_optim::Sgd::new(
                varmap.all_vars(),
                gradus_optim::SgdConfig {
                    lr: 0.05,
                    ..Default::default()
                },
            )
            .unwrap();
            for _ in 0..30 {
                let loss = model
                    .forward(&x)
                    .unwrap()
                    .sub(&y)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .mean_all()
                    .unwrap();
                losses.push(loss.to_scalar::<f32>().unwrap());
                opt.backward_step(&loss).unwrap();
            }
        } else {
            let mut opt = candle_nn::SGD::new(varmap.all_vars(), 0.05).unwrap();
            for _ in 0..30 {
                let loss = model
                    .forward(&x)
                    .unwrap()
                    .sub(&y)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .mean_all()
                    .unwrap();
                losses.push(loss.to_scalar::<f32>().unwrap());
                opt.backward_step(&loss).unwrap();
            }
        }
        losses
    };
    let ours = train(true);
    let theirs = train(false);
    assert!(ours.last().unwrap() < &(ours[0] * 0.5), "{ours:?}");
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// A gradient of the wrong shape fails the step before any parameter or state changes, on the
/// serial path (a small model) and on the parallel one (over 64 Ki elements), when the bad
/// gradient belongs to a later batch of parameters than the first ones stepped.
#[test]
fn a_wrong_gradient_shape_fails_the_step_before_anything_changes() {
    for len in [3usize, 2_000] {
        let dev = Device::Cpu;
        let params: Vec<NamedVar> = (0..40)
            .map(|i| {
                let init = Tensor::arange(0f32, len as f32, &dev)
                    .unwrap()
                    .affine(1e-3, i as f64)
                    .unwrap();
                NamedVar::new(format!("p{i}"), Var::from_tensor(&init).unwrap())
            })
            .collect();
        let mut opt = build_optimizer(&json!({"type": "adam", "lr": 0.1}), "o", &params).unwrap();
        let grads = {
            let mut g = GradStore::default();
            for p in &params {
                g.insert(p.var.as_tensor(), p.var.as_tensor().ones_like().unwrap());
            }
            g
        };
        opt.step(&grads).unwrap();
        let before_state = opt.state_dict().unwrap().to_bytes().unwrap();
        let before: Vec<Vec<f32>> = params
            .iter()
            .map(|p| p.var.as_tensor().to_vec1::<f32>().unwrap())
            .collect();
        let mut bad = GradStore::default();
        for (i, p) in params.iter().enumerate() {
            let g = if i == 37 {
                Tensor::ones(len + 1, DType::F32, &dev).unwrap()
            } else {
                p.var.as_tensor().ones_like().unwrap()
            };
            bad.insert(p.var.as_tensor(), g);
        }
        let err = opt.step(&bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "shape mismatch in gradient of `p37`: expected [{len}], got [{}]",
                len + 1
            )
        );
        let after: Vec<Vec<f32>> = params
            .iter()
            .map(|p| p.var.as_tensor().to_vec1::<f32>().unwrap())
            .collect();
        assert_eq!(before, after, "len {len}: parameters changed");
        assert_eq!(
            before_state,
            opt.state_dict().unwrap().to_bytes().unwrap(),
            "len {len}: state changed"
        );
    }
}
