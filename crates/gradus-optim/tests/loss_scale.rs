//! `GradScaler` against torch.amp.GradScaler traces (`tests/data/loss_scale/`, PyTorch 2.15 CPU).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_optim::loss_scale::{GradScaler, LossScaleConfig};
use gradus_optim::{NamedVar, Sgd, SgdConfig, StateDict};
use serde_json::Value;

fn case(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/loss_scale/gradscaler-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        v => v.as_f64().unwrap(),
    }
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| num(x) as f32)
        .collect()
}

/// Replays one trace: scale, scaled gradient, step, update; every value is compared exactly
/// (scale, tracker, skip) or bit for bit (f32 parameters: SGD's `θ − lr·g` is one rounding in
/// both).
fn replay(name: &str) -> (GradScaler, Sgd) {
    let c = case(name);
    let config = LossScaleConfig::parse(&c["config"], "loss_scale").unwrap();
    let mut scaler = GradScaler::new(&config).unwrap();
    let w = Var::new(f32s(&c["param0"]).as_slice(), &Device::Cpu).unwrap();
    let sgd = SgdConfig {
        lr: c["lr"].as_f64().unwrap(),
        ..Default::default()
    };
    let mut opt = Sgd::from_named(vec![NamedVar::new("w", w.clone())], sgd).unwrap();
    for (k, s) in c["steps"].as_array().unwrap().iter().enumerate() {
        let loss = Tensor::new(1.5f32, &Device::Cpu).unwrap();
        let scaled = scaler.scale(&loss).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(
            f64::from(scaled),
            num(&s["scaled_loss"]),
            "{name} step {k}: scale(loss)"
        );
        let mut grads = GradStore::default();
        let g = Tensor::new(f32s(&s["scaled_grad"]).as_slice(), &Device::Cpu).unwrap();
        grads.insert(w.as_tensor(), g);
        let stepped = scaler.step(&mut opt, &mut grads).unwrap();
        assert_eq!(
            !stepped,
            s["found_inf"].as_bool().unwrap(),
            "{name} step {k}: found_inf"
        );
        scaler.update().unwrap();
        assert_eq!(
            f64::from(scaler.current_scale()),
            num(&s["scale"]),
            "{name} step {k}: scale"
        );
        assert_eq!(
            u64::from(scaler.growth_tracker()),
            s["growth_tracker"].as_u64().unwrap(),
            "{name} step {k}: growth tracker"
        );
        let got = w.as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!(got, f32s(&s["param"]), "{name} step {k}: parameter");
    }
    let sd = &c["state_dict"];
    assert_eq!(f64::from(scaler.current_scale()), num(&sd["scale"]));
    assert_eq!(
        u64::from(scaler.growth_tracker()),
        sd["_growth_tracker"].as_u64().unwrap()
    );
    (scaler, opt)
}

#[test]
fn small_interval_trace_matches_torch() {
    replay("small-interval");
}

#[test]
fn default_trace_matches_torch() {
    let (scaler, _) = replay("defaults");
    assert_eq!(scaler.skipped(), 1);
}

#[test]
fn custom_factor_trace_matches_torch() {
    replay("custom-factors");
}

#[test]
fn state_round_trips_through_safetensors_bit_exactly_and_resumes() {
    let (scaler, _) = replay("small-interval");
    let bytes = scaler.state_dict().unwrap().to_bytes().unwrap();
    let loaded = StateDict::from_bytes(&bytes, &Device::Cpu, std::path::Path::new("mem")).unwrap();
    let c = case("small-interval");
    let mut resumed = GradScaler::new(&LossScaleConfig::parse(&c["config"], "x").unwrap()).unwrap();
    resumed.load_state_dict(&loaded).unwrap();
    assert_eq!(
        resumed.current_scale().to_bits(),
        scaler.current_scale().to_bits()
    );
    assert_eq!(resumed.growth_tracker(), scaler.growth_tracker());
    // One more good step grows both identically (tracker was 2 of interval 3).
    {
        let s = &mut resumed;
        let w = Var::new(&[1f32], &Device::Cpu).unwrap();
        let mut opt =
            Sgd::from_named(vec![NamedVar::new("w", w.clone())], SgdConfig::default()).unwrap();
        let mut grads = GradStore::default();
        grads.insert(w.as_tensor(), Tensor::new(&[1f32], &Device::Cpu).unwrap());
        assert!(s.step(&mut opt, &mut grads).unwrap());
        s.update().unwrap();
    }
    assert_eq!(resumed.current_scale(), 2.0 * scaler.current_scale());
    assert_eq!(resumed.growth_tracker(), 0);
    // A fixed scaler refuses a different saved scale.
    let mut fixed = GradScaler::new(&LossScaleConfig::Fixed(8.0)).unwrap();
    assert!(fixed.load_state_dict(&loaded).is_err());
}

#[test]
fn fixed_scale_never_changes_and_still_skips_non_finite_steps() {
    let mut scaler =
        GradScaler::new(&LossScaleConfig::parse(&serde_json::json!(128), "x").unwrap()).unwrap();
    let w = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
    let mut opt = Sgd::from_named(
        vec![NamedVar::new("w", w.clone())],
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    for (g, expect_step) in [
        ([128f32, 256.0], true),
        ([f32::NAN, 1.0], false),
        ([64.0, 0.0], true),
    ] {
        let mut grads = GradStore::default();
        grads.insert(w.as_tensor(), Tensor::new(&g, &Device::Cpu).unwrap());
        assert_eq!(scaler.step(&mut opt, &mut grads).unwrap(), expect_step);
        scaler.update().unwrap();
        assert_eq!(scaler.current_scale(), 128.0);
        assert_eq!(scaler.growth_tracker(), 0);
    }
    assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![-0.5, 0.0]);
}

#[test]
fn f16_gradients_unscale_in_f32_and_a_real_backward_pass_is_unscaled() {
    // f16: 65504 is the largest finite value; 2^16 · 1.0 overflows to inf and is caught.
    let mut scaler = GradScaler::dynamic();
    let w = Var::new(&[1f32, -2.0], &Device::Cpu).unwrap();
    let w16 = Var::from_tensor(&w.as_tensor().to_dtype(DType::F16).unwrap()).unwrap();
    let opt16 =
        Sgd::from_named(vec![NamedVar::new("w", w16.clone())], SgdConfig::default()).unwrap();
    let mut grads = GradStore::default();
    grads.insert(
        w16.as_tensor(),
        Tensor::new(&[65504f32, 1.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap(),
    );
    assert!(!scaler.unscale(&opt16, &mut grads).unwrap());
    let g = grads.get(w16.as_tensor()).unwrap();
    assert_eq!(g.dtype(), DType::F16);
    let g = g.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        g,
        vec![half_round(65504.0 / 65536.0), half_round(1.0 / 65536.0)]
    );
    scaler.update().unwrap();
    // A real backward pass: d/dw sum(w²)·S = 2w·S, unscaled back to 2w.
    let mut opt = Sgd::from_named(
        vec![NamedVar::new("w", w.clone())],
        SgdConfig {
            lr: 0.25,
            ..Default::default()
        },
    )
    .unwrap();
    let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
    let mut grads = scaler.scale(&loss).unwrap().backward().unwrap();
    assert!(scaler.step(&mut opt, &mut grads).unwrap());
    assert_eq!(
        grads.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
        vec![2.0, -4.0]
    );
    assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![0.5, -1.0]);
    assert!(
        scaler.step(&mut opt, &mut grads).is_err(),
        "second step before update"
    );
}

fn half_round(x: f32) -> f32 {
    Tensor::new(&[x], &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0]
}
