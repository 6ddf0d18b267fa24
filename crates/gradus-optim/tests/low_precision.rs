//! bf16 and f16 parameters: f32 state by default (the EMA that bf16 state rounds away keeps
//! moving), f32 master weights that follow the f32 trajectory to the bit, the fused and the
//! reference path agreeing to the bit under every precision setting, outside writes taken as
//! the new master value, and state that saves and resumes bit for bit.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::{NamedVar, Optimizer, Result, StateDict};
use gradus_optim::{build_optimizer, conformance, UpdatePath};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Parameter `w` of `values`, in `dtype`.
fn param(values: &[f32], dtype: DType) -> Vec<NamedVar> {
    let t = Tensor::new(values, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    vec![NamedVar::new("w", Var::from_tensor(&t).unwrap())]
}

/// Parameter `w`, the 2 x 3 matrix of `values`, in `dtype`.
fn matrix(values: &[f32], dtype: DType) -> Vec<NamedVar> {
    let t = Tensor::new(values, &Device::Cpu)
        .unwrap()
        .reshape((2, 3))
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    vec![NamedVar::new("w", Var::from_tensor(&t).unwrap())]
}

/// The gradients of Σ c ⊙ θ for each parameter: exactly `c` (in the parameter's dtype).
fn grads(params: &[NamedVar], coefficients: &[f32]) -> GradStore {
    let mut loss: Option<Tensor> = None;
    for p in params {
        let t = p.var.as_tensor();
        let c = Tensor::new(coefficients, &Device::Cpu)
            .unwrap()
            .to_dtype(t.dtype())
            .unwrap()
            .reshape(t.dims())
            .unwrap();
        let term = (t * c).unwrap().sum_all().unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => (l + term).unwrap(),
        });
    }
    loss.unwrap().backward().unwrap()
}

/// A bf16-representable value per element and step (so the f32 twin sees the same gradient).
fn coefficients(len: usize, step: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let x = ((i * 7 + step * 13) as f32 * 0.37).sin() * 0.8;
            half::bf16::from_f32(x).to_f32()
        })
        .collect()
}

fn start(len: usize) -> Vec<f32> {
    coefficients(len, 1000)
}

fn build(config: &Value, path: UpdatePath, params: &[NamedVar]) -> Box<dyn Optimizer> {
    let mut opt = build_optimizer(config, "optimizer", params).unwrap();
    opt.set_update_path(path).unwrap();
    if opt.learning_rate().is_ok_and(|lr| lr > 0.01) {
        opt.set_learning_rate(0.01).unwrap();
    }
    opt
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn state_bits(sd: &StateDict) -> Vec<(String, Vec<u32>)> {
    sd.names()
        .map(|n| (n.to_string(), bits(sd.get(n).unwrap())))
        .collect()
}

fn with(config: &Value, extra: Value) -> Value {
    let mut config = config.clone();
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

/// The registered optimizers stepped by plain gradients (L-BFGS needs a closure).
fn stepped_by_gradients() -> Vec<&'static str> {
    conformance::registered()
        .unwrap()
        .into_iter()
        .filter(|n| !conformance::needs_closure(n).unwrap())
        .collect()
}

fn second_moment_after_100_steps(state_dtype: &str, path: UpdatePath) -> (f32, DType) {
    let params = param(&[0.5; 8], DType::BF16);
    let config = json!({"type": "adam", "state_dtype": state_dtype});
    let mut opt = build(&config, path, &params);
    let g = vec![std::f32::consts::SQRT_2; 8]; // bf16: 1.4140625, g² = 1.99957
    opt.step(&grads(&params, &g)).unwrap();
    let mut sd = opt.state_dict().unwrap();
    let v = sd.get("w.exp_avg_sq").unwrap();
    sd.insert("w.exp_avg_sq", v.ones_like().unwrap());
    opt.load_state_dict(&sd).unwrap();
    for _ in 0..100 {
        opt.step(&grads(&params, &g)).unwrap();
    }
    let v = opt
        .state_dict()
        .unwrap()
        .get("w.exp_avg_sq")
        .unwrap()
        .clone();
    let dtype = v.dtype();
    let v = v.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|x| *x == v[0]), "{v:?}");
    (v[0], dtype)
}

#[test]
fn f32_state_keeps_an_ema_moving_that_bf16_state_rounds_away() {
    // v ← β₂ v + (1 − β₂) g² from v = 1 with β₂ = 0.999, g² ≈ 2: 2 − 0.999¹⁰⁰ ≈ 1.0952 in f32;
    // each increment (≈ 0.001) is below half a bf16 ulp of 1 (2⁻⁸), so bf16 state stays 1.
    for path in [UpdatePath::Reference, UpdatePath::Fused] {
        let (v, dtype) = second_moment_after_100_steps("f32", path);
        assert_eq!(dtype, DType::F32);
        let expected = 1.999_570_3 - 0.999_570_3 * 0.999f32.powi(100);
        assert!((v - expected).abs() < 1e-4, "{path}: {v} vs {expected}");
        let (v, dtype) = second_moment_after_100_steps("param", path);
        assert_eq!(dtype, DType::BF16);
        assert_eq!(v, 1.0, "{path}");
    }
}

/// Runs `config` with master weights over bf16 parameters and without over their f32 twin, on
/// `path`, with the same gradients; returns a description of the first difference.
fn master_against_twin(name: &str, path: UpdatePath) -> Option<String> {
    // A 2 x 3 matrix, so that Muon orthogonalizes it (a vector goes to its AdamW half).
    let len = 6;
    let config = json!({"type": name});
    let low = matrix(&start(len), DType::BF16);
    let twin = matrix(&start(len), DType::F32);
    let mut low_opt = build(&with(&config, json!({"master_weights": true})), path, &low);
    let mut twin_opt = build(&config, path, &twin);
    for step in 0..30 {
        let c = coefficients(len, step);
        low_opt.step(&grads(&low, &c)).unwrap();
        twin_opt.step(&grads(&twin, &c)).unwrap();
    }
    let state = low_opt.state_dict().unwrap();
    // A wrapper (Muon's halves) prefixes its inner optimizers' keys.
    let key = state
        .names()
        .find(|n| *n == "w.master_weight" || n.ends_with(".w.master_weight"));
    let Some(master) = key.and_then(|k| state.get(k)) else {
        return Some(format!(
            "{name} ({path}): no master copy in {:?}",
            state.names().collect::<Vec<_>>()
        ));
    };
    let expected = twin[0].var.as_tensor();
    if bits(master) != bits(expected) {
        return Some(format!(
            "{name} ({path}): master {master} vs f32 {expected}"
        ));
    }
    let rounded = expected.to_dtype(DType::BF16).unwrap();
    if bits(low[0].var.as_tensor()) != bits(&rounded) {
        return Some(format!(
            "{name} ({path}): parameter is not the master's rounding"
        ));
    }
    None
}

#[test]
fn master_weights_follow_the_f32_trajectory_bit_for_bit() {
    let mut failures = Vec::new();
    for name in stepped_by_gradients() {
        // Lookahead's sync reads the parameter, which holds the rounded value, not the master.
        if name == "lookahead" {
            continue;
        }
        let mut paths = vec![UpdatePath::Reference];
        if conformance::has_fused_path(name).unwrap() {
            paths.push(UpdatePath::Fused);
        }
        for path in paths {
            failures.extend(master_against_twin(name, path));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Steps `config` over one parameter of `len` elements in `dtype` on `path`; the parameter's
/// bits and the state's after `steps` steps.
type Run = (Vec<u32>, Vec<(String, Vec<u32>)>);

fn run(config: &Value, dtype: DType, path: UpdatePath, len: usize, steps: usize) -> Run {
    let params = param(&start(len), dtype);
    let mut opt = build(config, path, &params);
    for step in 0..steps {
        opt.step(&grads(&params, &coefficients(len, step))).unwrap();
    }
    (
        bits(params[0].var.as_tensor()),
        state_bits(&opt.state_dict().unwrap()),
    )
}

fn precision_settings() -> Vec<Value> {
    let mut settings = Vec::new();
    for master in [false, true] {
        for state in ["f32", "param"] {
            settings.push(json!({"master_weights": master, "state_dtype": state}));
            settings.push(json!({"master_weights": master, "state_dtype": state,
                                 "rounding": "stochastic", "rounding_seed": 7}));
        }
    }
    settings
}

#[test]
fn fused_and_reference_paths_agree_bit_for_bit_in_low_precision() {
    // 1,500 elements: several tiles of the widening loop, so stochastic draws are checked to
    // follow the element, not the tile.
    let len = 1500;
    let mut failures = Vec::new();
    for name in ["sgd", "adam", "adamw", "rmsprop", "adagrad", "lion", "adan"] {
        let base = match name {
            "sgd" => json!({"type": name, "momentum": 0.9, "lr": 0.01}),
            _ => json!({"type": name}),
        };
        for dtype in [DType::BF16, DType::F16] {
            for setting in precision_settings() {
                let config = with(&base, setting.clone());
                let fused = run(&config, dtype, UpdatePath::Fused, len, 12);
                let reference = run(&config, dtype, UpdatePath::Reference, len, 12);
                if fused != reference {
                    failures.push(format!("{name} {dtype:?} {setting}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "paths differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn stochastic_rounding_is_seeded_and_leaves_the_nearest_value_on_average() {
    let config = json!({"type": "sgd", "lr": 1e-3, "master_weights": true,
                        "rounding": "stochastic", "rounding_seed": 3});
    let a = run(&config, DType::BF16, UpdatePath::Fused, 4096, 3);
    let b = run(&config, DType::BF16, UpdatePath::Fused, 4096, 3);
    assert_eq!(a, b, "same seed, same draws");
    let other = with(&config, json!({"rounding_seed": 4}));
    let c = run(&other, DType::BF16, UpdatePath::Fused, 4096, 3);
    assert_ne!(a.0, c.0, "another seed draws differently");
    // Unbiased: the mean rounding error over 4,096 elements is far below the mean gap.
    let params = param(&start(4096), DType::BF16);
    let mut opt = build(&config, UpdatePath::Fused, &params);
    opt.step(&grads(&params, &coefficients(4096, 0))).unwrap();
    let master = opt.state_dict().unwrap();
    let master = master
        .get("w.master_weight")
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let low = params[0]
        .var
        .as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mean_error: f64 = low
        .iter()
        .zip(&master)
        .map(|(l, m)| (l - m) as f64)
        .sum::<f64>()
        / 4096.0;
    let mean_gap: f64 = master
        .iter()
        .map(|m| (m.abs() as f64) * 2f64.powi(-8))
        .sum::<f64>()
        / 4096.0;
    assert!(
        mean_error.abs() < 0.1 * mean_gap,
        "{mean_error} vs {mean_gap}"
    );
}

#[test]
fn a_value_written_from_outside_becomes_the_master_value() {
    for path in [UpdatePath::Reference, UpdatePath::Fused] {
        let len = 5;
        let config = json!({"type": "sgd", "lr": 0.1});
        let low = param(&start(len), DType::BF16);
        let twin = param(&start(len), DType::F32);
        let mut low_opt = build(&with(&config, json!({"master_weights": true})), path, &low);
        let mut twin_opt = build(&config, path, &twin);
        for step in 0..3 {
            let c = coefficients(len, step);
            low_opt.step(&grads(&low, &c)).unwrap();
            twin_opt.step(&grads(&twin, &c)).unwrap();
        }
        // Elements 1 and 3 are overwritten (weights loaded, averaging): the next step starts
        // there, the others from the master copy.
        let written = Tensor::new(&[0.0f32, 0.25, 0.0, -0.75, 0.0], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[0u8, 1, 0, 1, 0], &Device::Cpu).unwrap();
        let twin_now = mask.where_cond(&written, twin[0].var.as_tensor()).unwrap();
        twin[0].var.set(&twin_now).unwrap();
        let low_now = twin_now.to_dtype(DType::BF16).unwrap();
        low[0].var.set(&low_now).unwrap();
        let c = coefficients(len, 3);
        low_opt.step(&grads(&low, &c)).unwrap();
        twin_opt.step(&grads(&twin, &c)).unwrap();
        let master = low_opt.state_dict().unwrap();
        let master = master.get("w.master_weight").unwrap();
        let master = master.to_vec1::<f32>().unwrap();
        let expected = twin[0].var.as_tensor().to_vec1::<f32>().unwrap();
        for i in [1, 3] {
            assert_eq!(master[i], expected[i], "{path}: element {i}");
        }
        // The untouched elements kept their f32 precision (the twin's unrounded values).
        for i in [0, 2, 4] {
            assert_eq!(master[i], expected[i], "{path}: element {i}");
        }
    }
}

#[test]
fn low_precision_state_saves_and_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for path in [UpdatePath::Reference, UpdatePath::Fused] {
        let config = json!({"type": "adam", "master_weights": true,
                            "rounding": "stochastic", "rounding_seed": 5});
        let len = 700;
        let params = param(&start(len), DType::F16);
        let mut opt = build(&config, path, &params);
        for step in 0..4 {
            opt.step(&grads(&params, &coefficients(len, step))).unwrap();
        }
        let file = dir.path().join(format!("adam-{path}.safetensors"));
        opt.state_dict().unwrap().save(&file).unwrap();
        let copies = param(&[0.0; 700], DType::F16);
        copies[0].var.set(params[0].var.as_tensor()).unwrap();
        let mut resumed = build(&config, path, &copies);
        resumed
            .load_state_dict(&StateDict::load(&file, &Device::Cpu).unwrap())
            .unwrap();
        for step in 4..8 {
            let c = coefficients(len, step);
            opt.step(&grads(&params, &c)).unwrap();
            resumed.step(&grads(&copies, &c)).unwrap();
            assert_eq!(
                bits(params[0].var.as_tensor()),
                bits(copies[0].var.as_tensor()),
                "{path}: step {step}"
            );
        }
        assert_eq!(
            state_bits(&opt.state_dict().unwrap()),
            state_bits(&resumed.state_dict().unwrap())
        );
    }
}

#[test]
fn state_saved_without_master_weights_loads_into_an_optimizer_with_them() {
    let len = 10;
    let params = param(&start(len), DType::BF16);
    let mut plain = build(&json!({"type": "adam"}), UpdatePath::Auto, &params);
    plain.step(&grads(&params, &coefficients(len, 0))).unwrap();
    let saved = plain.state_dict().unwrap();
    let config = json!({"type": "adam", "master_weights": true});
    let mut master = build(&config, UpdatePath::Auto, &params);
    master.load_state_dict(&saved).unwrap();
    master.step(&grads(&params, &coefficients(len, 1))).unwrap();
    assert!(master
        .state_dict()
        .unwrap()
        .get("w.master_weight")
        .is_some());
}

fn build_error(config: Value) -> String {
    let params = param(&[1.0, 2.0], DType::BF16);
    match build_optimizer(&config, "optimizer", &params) {
        Ok(_) => panic!("{config} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_precision_settings_name_their_field() {
    let e = build_error(json!({"type": "adam", "state_dtype": "f16"}));
    assert!(e.contains("optimizer.state_dtype"), "{e}");
    let e = build_error(json!({"type": "adam", "rounding": "up"}));
    assert!(e.contains("optimizer.rounding"), "{e}");
    let e = build_error(json!({"type": "adam", "rounding_seed": 3}));
    assert!(
        e.contains("optimizer.rounding_seed") && e.contains("stochastic"),
        "{e}"
    );
    let e = build_error(json!({"type": "adam", "master_weights": "yes"}));
    assert!(e.contains("optimizer.master_weights"), "{e}");
}

#[test]
fn forcing_the_fused_path_on_a_two_pass_kernel_with_narrow_state_is_refused_clearly() {
    let params = param(&[1.0, 2.0, 3.0], DType::BF16);
    let config = json!({"type": "lamb", "state_dtype": "param", "path": "fused"});
    let mut opt = build_optimizer(&config, "optimizer", &params).unwrap();
    let before = bits(params[0].var.as_tensor());
    let e = opt
        .step(&grads(&params, &[0.5, 0.5, 0.5]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("state_dtype") && e.contains("`w`"), "{e}");
    assert_eq!(bits(params[0].var.as_tensor()), before, "nothing moved");
    // The auto path takes the reference path for it, and steps.
    let config = json!({"type": "lamb", "state_dtype": "param"});
    let mut opt = build_optimizer(&config, "optimizer", &params).unwrap();
    opt.step(&grads(&params, &[0.5, 0.5, 0.5])).unwrap();
    assert_ne!(bits(params[0].var.as_tensor()), before);
}

#[test]
fn precision_changes_only_before_the_first_step() -> Result<()> {
    let params = param(&[1.0, 2.0], DType::BF16);
    let mut opt = gradus_optim::GroupedOptimizer::from_named(
        params.clone(),
        gradus_optim::AdamConfig::default(),
    )?;
    let precision = gradus_optim::Precision {
        master_weights: true,
        ..Default::default()
    };
    opt.set_precision(precision)?;
    opt.apply(&grads(&params, &[0.5, 0.5]))?;
    assert!(opt
        .set_precision(gradus_optim::Precision::default())
        .is_err());
    assert_eq!(opt.precision(), precision);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// SGD with momentum over random bf16 values: both paths give the same bits, and a
    /// stochastically rounded parameter is one of the two bf16 neighbours of its master value.
    #[test]
    fn stochastic_steps_agree_across_paths_and_round_to_a_neighbour(
        values in proptest::collection::vec(-4.0f32..4.0, 1..600),
        seed in 0u64..1000,
    ) {
        let len = values.len();
        let config = json!({"type": "sgd", "lr": 0.05, "momentum": 0.9, "master_weights": true,
                            "rounding": "stochastic", "rounding_seed": seed});
        let mut results = Vec::new();
        for path in [UpdatePath::Fused, UpdatePath::Reference] {
            let params = param(&values, DType::BF16);
            let mut opt = build(&config, path, &params);
            for step in 0..3 {
                opt.step(&grads(&params, &coefficients(len, step))).unwrap();
            }
            let master = opt.state_dict().unwrap();
            let master = master.get("w.master_weight").unwrap().to_vec1::<f32>().unwrap();
            let low: Vec<half::bf16> = params[0].var.as_tensor().to_vec1().unwrap();
            for (m, l) in master.iter().zip(&low) {
                // Both neighbours of m lie within one bf16 ulp of it, at most |m| · 2⁻⁷.
                let l = l.to_f32();
                let ulp = m.abs() * 2f32.powi(-7) * 1.001 + f32::MIN_POSITIVE;
                prop_assert!((l - m).abs() <= ulp, "{} is not a neighbour of {}", l, m);
            }
            results.push((bits(params[0].var.as_tensor()), master));
        }
        prop_assert_eq!(&results[0].0, &results[1].0);
        prop_assert_eq!(&results[0].1, &results[1].1);
    }
}
