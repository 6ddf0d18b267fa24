//! The train/eval split of the schedule-free optimizers: stepping in eval mode is refused, the
//! mode travels in the state dict, and a checkpoint written in eval mode (parameters at the
//! averaged point) resumes onto the uninterrupted trajectory.

use candle_core::backprop::GradStore;
use candle_core::{Device, Var};
use gradus_core::NamedVar;
use gradus_optim::build_optimizer;
use serde_json::{json, Value};

fn params(values: &[Vec<f64>]) -> Vec<NamedVar> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            NamedVar::new(
                format!("p{i}"),
                Var::new(v.as_slice(), &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

fn initial() -> Vec<Vec<f64>> {
    vec![vec![0.5, -1.0, 2.0, 0.25], vec![1.5, -0.75]]
}

/// Gradient of Σ (θ − 0.3)² + 0.1 θ³ at the current parameters.
fn grads(params: &[NamedVar]) -> GradStore {
    let mut g = GradStore::default();
    for p in params {
        let t = p.var.as_tensor();
        let grad = ((((t - 0.3).unwrap() * 2.0).unwrap() + (t.sqr().unwrap() * 0.3).unwrap())
            .unwrap())
        .detach();
        g.insert(t, grad);
    }
    g
}

fn values(params: &[NamedVar]) -> Vec<Vec<f64>> {
    params
        .iter()
        .map(|p| p.var.as_tensor().to_vec1::<f64>().unwrap())
        .collect()
}

fn configs() -> Vec<Value> {
    let mut out = Vec::new();
    for path in ["reference", "fused"] {
        out.push(json!({"type": "adamw_schedule_free", "lr": 0.05, "warmup_steps": 2, "weight_decay": 0.01, "path": path}));
        out.push(json!({"type": "sgd_schedule_free", "lr": 0.1, "momentum": 0.8, "path": path}));
    }
    out
}

#[test]
fn a_checkpoint_written_in_eval_mode_resumes_onto_the_uninterrupted_trajectory() {
    let (n, m) = (5, 4);
    for config in configs() {
        // Uninterrupted: n + m steps, eval() between them as a user evaluating would.
        let ps = params(&initial());
        let mut opt = build_optimizer(&config, "optimizer", &ps).unwrap();
        assert!(opt.has_eval_point());
        for _ in 0..n {
            opt.step(&grads(&ps)).unwrap();
        }
        opt.eval().unwrap();
        let eval_point = values(&ps);
        let state = opt.state_dict().unwrap();
        opt.train().unwrap();
        for _ in 0..m {
            opt.step(&grads(&ps)).unwrap();
        }
        opt.eval().unwrap();
        let expected = values(&ps);

        // Resumed: a fresh optimizer over the eval-point parameters, the saved state, train().
        let resumed = params(&eval_point);
        let mut opt2 = build_optimizer(&config, "optimizer", &resumed).unwrap();
        opt2.load_state_dict(&state).unwrap();
        assert!(
            opt2.step(&grads(&resumed)).is_err(),
            "{config}: the loaded optimizer is in eval mode"
        );
        opt2.train().unwrap();
        for _ in 0..m {
            opt2.step(&grads(&resumed)).unwrap();
        }
        opt2.eval().unwrap();
        assert_eq!(values(&resumed), expected, "{config}");
    }
}

#[test]
fn stepping_in_eval_mode_is_an_error_that_says_to_call_train() {
    for config in configs() {
        let ps = params(&initial());
        let mut opt = build_optimizer(&config, "optimizer", &ps).unwrap();
        opt.step(&grads(&ps)).unwrap();
        opt.eval().unwrap();
        let before = values(&ps);
        let err = opt.step(&grads(&ps)).unwrap_err().to_string();
        assert!(
            err.contains("not in train mode") && err.contains("train()"),
            "{err}"
        );
        assert_eq!(values(&ps), before, "a refused step changes nothing");
    }
}

#[test]
fn eval_then_train_returns_to_the_training_point_and_repeats_are_no_ops() {
    for config in configs() {
        let ps = params(&initial());
        let mut opt = build_optimizer(&config, "optimizer", &ps).unwrap();
        // Before any step there is no z: eval() leaves the parameters alone.
        opt.eval().unwrap();
        assert_eq!(values(&ps), initial());
        opt.train().unwrap();
        for _ in 0..3 {
            opt.step(&grads(&ps)).unwrap();
        }
        let y = values(&ps);
        opt.eval().unwrap();
        let x = values(&ps);
        assert_ne!(x, y, "{config}: the averaged point differs from y");
        opt.eval().unwrap();
        assert_eq!(values(&ps), x, "a second eval() is a no-op");
        opt.train().unwrap();
        opt.train().unwrap();
        for (a, b) in values(&ps).iter().flatten().zip(y.iter().flatten()) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn the_mode_is_in_the_state_dict_and_required_on_load() {
    let config = json!({"type": "sgd_schedule_free"});
    let ps = params(&initial());
    let mut opt = build_optimizer(&config, "optimizer", &ps).unwrap();
    opt.step(&grads(&ps)).unwrap();
    let mode = |sd: &gradus_core::StateDict| {
        sd.get("schedule_free.train_mode")
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert_eq!(mode(&opt.state_dict().unwrap()), 1.0);
    opt.eval().unwrap();
    let mut sd = opt.state_dict().unwrap();
    assert_eq!(mode(&sd), 0.0);
    assert!(sd.get("p0.z").is_some() && sd.get("p0.weight_sum").is_some());
    sd.remove("schedule_free.train_mode");
    let err = opt.load_state_dict(&sd).unwrap_err().to_string();
    assert!(err.contains("schedule_free.train_mode"), "{err}");
}

#[test]
fn unknown_options_and_bad_momentum_are_config_errors() {
    let ps = params(&initial());
    let err = build_optimizer(
        &json!({"type": "adamw_schedule_free", "warmup_step": 3}),
        "optimizer",
        &ps,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("warmup_step") && err.contains("warmup_steps"),
        "{err}"
    );
    let err = build_optimizer(
        &json!({"type": "sgd_schedule_free", "momentum": 1.0}),
        "optimizer",
        &ps,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("Momentum must be between 0 and 1"), "{err}");
}
