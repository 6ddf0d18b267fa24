//! Tests of [`AveragedModel`](super::AveragedModel) and [`AveragingConfig`](super::AveragingConfig):
//! strict configs with paths, the update protocol, bit-exact swaps and state round trips.

use super::*;
use candle_core::{Device, Var};
use gradus_core::SeededRng;
use serde_json::json;

fn parse(v: Value) -> Result<AveragingConfig> {
    AveragingConfig::parse(&v, "train.averaging")
}

fn params(seed: u64, dtype: DType) -> Vec<NamedVar> {
    let mut rng = SeededRng::new(seed);
    [("fc.bias", vec![3]), ("fc.weight", vec![3, 2])]
        .into_iter()
        .map(|(name, shape)| {
            let t = rng
                .normal_tensor(&shape, 0.0, 1.0, dtype, &Device::Cpu)
                .unwrap();
            NamedVar::new(name, Var::from_tensor(&t).unwrap())
        })
        .collect()
}

/// A "training step": every parameter moves by seeded noise.
fn drift(params: &[NamedVar], rng: &mut SeededRng) {
    for p in params {
        let noise = rng
            .normal_tensor(p.var.dims(), 0.0, 0.3, p.var.dtype(), &Device::Cpu)
            .unwrap();
        p.var.set(&(p.var.as_tensor() + noise).unwrap()).unwrap();
    }
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn all_bits(params: &[NamedVar]) -> Vec<Vec<u64>> {
    params.iter().map(|p| bits(p.var.as_tensor())).collect()
}

#[test]
fn configs_parse_with_defaults_and_cadences() {
    let ema = parse(json!({"type": "ema"})).unwrap();
    assert_eq!(ema, AveragingConfig::Ema(EmaConfig { decay: 0.999 }));
    assert_eq!(ema.cadence(), Cadence::EveryStep);
    let swa = parse(json!({"type": "swa", "start_epoch": 5, "swa_lr": 0.05,
        "anneal_strategy": "linear"}))
    .unwrap();
    let AveragingConfig::Swa(c) = &swa else {
        panic!("{swa:?}")
    };
    assert_eq!(
        (c.anneal_epochs, c.anneal_strategy),
        (10, AnnealStrategy::Linear)
    );
    assert_eq!(swa.cadence(), Cadence::EveryEpochFrom(5));
    assert_eq!((ema.name(), swa.name()), ("ema", "swa"));
}

#[test]
fn bad_configs_are_errors_naming_the_path() {
    let text = |v: Value| parse(v).unwrap_err().to_string();
    let err = parse(json!({"type": "emma"})).unwrap_err();
    match &err {
        Error::UnknownName {
            path,
            suggestion,
            valid,
            ..
        } => {
            assert_eq!(path, "train.averaging.type");
            assert_eq!(suggestion.as_deref(), Some("ema"));
            assert_eq!(valid, &["ema", "swa"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // PyTorch's `use_buffers` is not implemented: an unknown field, named.
    assert_eq!(
        text(json!({"type": "ema", "decay": 0.9, "use_buffers": true})),
        "unknown field `use_buffers` at train.averaging, expected one of decay"
    );
    assert!(text(json!({"type": "ema", "decy": 0.9})).ends_with("did you mean `decay`?"));
    assert!(text(json!({"type": "ema", "decay": 1.5}))
        .starts_with("invalid config at train.averaging.decay: Invalid decay value 1.5"));
    assert!(text(json!({"type": "swa", "swa_lr": 0.1}))
        .starts_with("invalid config at train.averaging.start_epoch: missing field"));
    assert!(text(json!({"type": "swa", "start_epoch": 2, "swa_lr": 0.1,
        "anneal_strategy": "cosine"}))
    .starts_with("invalid config at train.averaging.anneal_strategy: unknown variant `cosine`"));
    assert!(
        text(json!({"type": "swa", "start_epoch": 2, "swa_lr": 0.1, "anneal_epochs": -1}))
            .starts_with("invalid config at train.averaging.anneal_epochs")
    );
    assert!(text(json!({"decay": 0.9})).contains("missing field `type`"));
}

#[test]
fn the_first_update_copies_then_each_rule_averages() {
    for config in [
        AveragingConfig::Ema(EmaConfig { decay: 0.75 }),
        parse(json!({"type": "swa", "start_epoch": 1, "swa_lr": 0.1})).unwrap(),
    ] {
        let p = params(1, DType::F64);
        let mut avg = AveragedModel::new(&p, config.clone()).unwrap();
        let start = p[0].var.to_vec1::<f64>().unwrap();
        // Built from a copy: moving the parameter does not move the average.
        let mut rng = SeededRng::new(9);
        drift(&p, &mut rng);
        assert_eq!(avg.get("fc.bias").unwrap().to_vec1::<f64>().unwrap(), start);
        avg.update(&p).unwrap();
        let first = p[0].var.to_vec1::<f64>().unwrap();
        assert_eq!(avg.get("fc.bias").unwrap().to_vec1::<f64>().unwrap(), first);
        drift(&p, &mut rng);
        avg.update(&p).unwrap();
        let second = p[0].var.to_vec1::<f64>().unwrap();
        let got = avg.get("fc.bias").unwrap().to_vec1::<f64>().unwrap();
        for i in 0..3 {
            let want = match config {
                AveragingConfig::Ema(_) => 0.75 * first[i] + 0.25 * second[i],
                AveragingConfig::Swa(_) => (first[i] + second[i]) / 2.0,
            };
            assert!((got[i] - want).abs() < 1e-14, "{}: {got:?}", config.name());
        }
        assert_eq!(avg.n_averaged(), 2);
        assert!(avg.get("missing").is_none());
    }
}

#[test]
fn mismatched_parameters_are_errors_that_change_nothing() {
    let p = params(2, DType::F64);
    let mut avg = AveragedModel::new(&p, AveragingConfig::Ema(EmaConfig::default())).unwrap();
    avg.update(&p).unwrap();
    let before = avg.state_dict().unwrap();
    let err = avg.update(&p[..1]).unwrap_err().to_string();
    assert!(err.contains("holds 2 parameters, got 1"), "{err}");
    let renamed = vec![p[1].clone(), p[0].clone()];
    let err = avg.update(&renamed).unwrap_err().to_string();
    assert!(
        err.contains("expects parameter `fc.bias` here, got `fc.weight`"),
        "{err}"
    );
    let reshaped = vec![
        NamedVar::new("fc.bias", Var::zeros(4, DType::F64, &Device::Cpu).unwrap()),
        p[1].clone(),
    ];
    let err = avg.update(&reshaped).unwrap_err().to_string();
    assert!(err.contains("expected [3], got [4]"), "{err}");
    assert_eq!(avg.n_averaged(), 1);
    for (name, t) in before.iter() {
        assert_eq!(bits(t), bits(avg.state_dict().unwrap().get(name).unwrap()));
    }
    let ints = [NamedVar::new(
        "steps",
        Var::from_tensor(&Tensor::new(&[1u32], &Device::Cpu).unwrap()).unwrap(),
    )];
    let err = AveragedModel::new(&ints, AveragingConfig::Ema(EmaConfig::default())).unwrap_err();
    assert!(err.to_string().contains("floating-point"), "{err}");
    let twice = vec![p[0].clone(), p[0].clone()];
    assert!(AveragedModel::new(&twice, AveragingConfig::Ema(EmaConfig::default())).is_err());
}

#[test]
fn swapping_in_and_back_restores_the_training_weights_bit_for_bit() {
    for dtype in [DType::F64, DType::F32] {
        let p = params(3, dtype);
        let mut avg =
            AveragedModel::new(&p, AveragingConfig::Ema(EmaConfig { decay: 0.9 })).unwrap();
        let mut rng = SeededRng::new(4);
        for _ in 0..5 {
            drift(&p, &mut rng);
            avg.update(&p).unwrap();
        }
        let training = all_bits(&p);
        let averaged: Vec<Vec<u64>> = ["fc.bias", "fc.weight"]
            .iter()
            .map(|n| bits(avg.get(n).unwrap()))
            .collect();
        assert_ne!(training, averaged);
        let seen = avg.with_averaged(&p, || Ok(all_bits(&p))).unwrap();
        assert_eq!(seen, averaged);
        assert_eq!(all_bits(&p), training);
        // Also when the evaluation fails.
        let err = avg
            .with_averaged(&p, || -> Result<()> {
                Err(Error::Unsupported("boom".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(all_bits(&p), training);
        assert!(!avg.is_swapped_in());
        // The protocol: no update or second swap while swapped in, no swap back without one.
        avg.swap_in(&p).unwrap();
        assert!(avg
            .update(&p)
            .unwrap_err()
            .to_string()
            .contains("swap_back first"));
        assert!(avg.swap_in(&p).is_err());
        avg.swap_back(&p).unwrap();
        assert!(avg.swap_back(&p).is_err());
        assert_eq!(all_bits(&p), training);
        avg.copy_into(&p).unwrap();
        assert_eq!(all_bits(&p), averaged);
        assert_eq!(bits(avg.weights().get("fc.weight").unwrap()), averaged[1]);
    }
}

#[test]
fn state_round_trips_and_a_resumed_average_continues_bit_identically() {
    for config in [
        AveragingConfig::Ema(EmaConfig { decay: 0.8 }),
        parse(json!({"type": "swa", "start_epoch": 1, "swa_lr": 0.1})).unwrap(),
    ] {
        let p = params(5, DType::F32);
        let mut a = AveragedModel::new(&p, config.clone()).unwrap();
        let mut rng = SeededRng::new(6);
        for _ in 0..4 {
            drift(&p, &mut rng);
            a.update(&p).unwrap();
        }
        // Through safetensors bytes, as a checkpoint file.
        let saved = a.state_dict().unwrap();
        let mut names: Vec<&str> = saved.names().collect();
        names.sort();
        assert_eq!(names, ["module.fc.bias", "module.fc.weight", "n_averaged"]);
        let bytes = saved.to_bytes().unwrap();
        let loaded =
            StateDict::from_bytes(&bytes, &Device::Cpu, std::path::Path::new("averaged")).unwrap();
        let mut b = AveragedModel::new(&p, config.clone()).unwrap();
        b.load_state_dict(&loaded).unwrap();
        assert_eq!(b.n_averaged(), 4);
        for _ in 0..3 {
            drift(&p, &mut rng);
            a.update(&p).unwrap();
            b.update(&p).unwrap();
        }
        for name in ["fc.bias", "fc.weight"] {
            assert_eq!(
                bits(a.get(name).unwrap()),
                bits(b.get(name).unwrap()),
                "{name}"
            );
        }
        // A state with a stray entry, a wrong shape or a missing count is refused, unchanged.
        let mut stray = a.state_dict().unwrap();
        stray.insert(
            "module.fc.extra",
            Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = b.load_state_dict(&stray).unwrap_err().to_string();
        assert!(err.contains("module.fc.extra"), "{err}");
        let mut wrong = a.state_dict().unwrap();
        wrong.insert(
            "module.fc.bias",
            Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(b.load_state_dict(&wrong).is_err());
        let mut uncounted = a.state_dict().unwrap();
        uncounted.remove("n_averaged");
        assert!(b.load_state_dict(&uncounted).is_err());
        assert_eq!(b.n_averaged(), 7);
    }
}

#[test]
fn a_bf16_parameter_is_averaged_in_f32_and_swapped_in_rounded() {
    // EMA with decay 0.999 of a parameter that jumped from 1 to 2: each increment (≤ 0.001) is
    // below half a bf16 ulp of 1, so a bf16 average would stay at 1; the f32 one reaches
    // 2 − 0.999¹⁰⁰ ≈ 1.0952.
    let one = Tensor::ones(4, DType::BF16, &Device::Cpu).unwrap();
    let var = Var::from_tensor(&one).unwrap();
    let params = vec![NamedVar::new("w", var.clone())];
    let config = AveragingConfig::Ema(ema::EmaConfig { decay: 0.999 });
    let mut avg = AveragedModel::new(&params, config).unwrap();
    avg.update(&params).unwrap();
    var.set(&(&one * 2.0).unwrap()).unwrap();
    for _ in 0..100 {
        avg.update(&params).unwrap();
    }
    let average = avg.get("w").unwrap();
    assert_eq!(average.dtype(), DType::F32);
    let value = average.to_vec1::<f32>().unwrap()[0];
    let expected = 2.0 - 0.999f32.powi(100);
    assert!((value - expected).abs() < 1e-4, "{value} vs {expected}");
    avg.swap_in(&params).unwrap();
    assert_eq!(var.dtype(), DType::BF16);
    let swapped = var
        .as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(swapped[0], half::bf16::from_f32(value).to_f32());
    avg.swap_back(&params).unwrap();
    let back = var
        .as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        back,
        vec![2.0; 4],
        "the training weights come back bit for bit"
    );
}
