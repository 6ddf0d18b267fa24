//! Tests of [`EarlyStopping`](super::EarlyStopping).

use super::*;
use candle_core::{DType, Tensor, Var};
use gradus_core::SeededRng;
use proptest::prelude::*;

fn stopper(patience: usize, min_delta: f64, mode: Mode) -> EarlyStopping {
    EarlyStopping::new(EarlyStoppingConfig {
        patience,
        min_delta,
        mode,
        restore_best_weights: true,
        ..EarlyStoppingConfig::default()
    })
    .unwrap()
}

fn bits(v: &Var) -> Vec<u32> {
    v.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn random_params(rng: &mut SeededRng) -> Tensor {
    let mut values: Vec<f32> = (0..6).map(|_| rng.standard_normal() as f32).collect();
    values[0] = -0.0;
    values[1] = f32::MIN_POSITIVE / 8.0; // subnormal
    Tensor::from_vec(values, (2, 3), &Device::Cpu).unwrap()
}

#[test]
fn stops_after_patience_flat_epochs_and_reports_why() {
    let mut es = stopper(3, 0.1, Mode::Min);
    // Improvements at epochs 0..=2, then changes smaller than min_delta.
    let values = [1.0, 0.8, 0.6, 0.55, 0.52, 0.58, 0.3];
    let mut stopped_at = None;
    for (epoch, v) in values.iter().enumerate() {
        if let Decision::Stop(reason) = es.observe(epoch, *v, None).unwrap() {
            stopped_at = Some(reason);
            break;
        }
    }
    let reason = stopped_at.unwrap();
    assert_eq!(reason.epoch(), 5);
    assert_eq!(
        reason.to_string(),
        "early stopping at epoch 5: val_loss did not improve by more than 0.1 for 3 epochs (best 0.6 at epoch 2)"
    );
    assert_eq!(es.best(), Some((0.6, 2)));
    // Later calls keep answering stop.
    assert!(matches!(
        es.observe(6, 0.0, None).unwrap(),
        Decision::Stop(_)
    ));
}

#[test]
fn auto_mode_maximizes_accuracy_and_warmup_is_ignored() {
    let mut es = EarlyStopping::new(EarlyStoppingConfig {
        monitor: "val_accuracy".into(),
        patience: 1,
        start_from_epoch: 2,
        ..EarlyStoppingConfig::default()
    })
    .unwrap();
    // Epochs 0 and 1 are ignored even though they are the worst values.
    assert_eq!(
        es.observe(0, 0.1, None).unwrap(),
        Decision::Continue { improved: false }
    );
    assert_eq!(
        es.observe(1, 0.0, None).unwrap(),
        Decision::Continue { improved: false }
    );
    assert_eq!(
        es.observe(2, 0.5, None).unwrap(),
        Decision::Continue { improved: true }
    );
    assert_eq!(
        es.observe(3, 0.7, None).unwrap(),
        Decision::Continue { improved: true }
    );
    assert!(matches!(
        es.observe(4, 0.6, None).unwrap(),
        Decision::Stop(_)
    ));
}

#[test]
fn baseline_not_reached_is_its_own_reason() {
    let mut es = EarlyStopping::new(EarlyStoppingConfig {
        patience: 2,
        baseline: Some(0.5),
        mode: Mode::Min,
        ..EarlyStoppingConfig::default()
    })
    .unwrap();
    assert_eq!(
        es.observe(0, 0.9, None).unwrap(),
        Decision::Continue { improved: true }
    );
    assert_eq!(
        es.observe(1, 0.8, None).unwrap(),
        Decision::Continue { improved: true }
    );
    match es.observe(2, 0.85, None).unwrap() {
        Decision::Stop(StopReason::BaselineNotReached { epoch, best, .. }) => {
            assert_eq!(epoch, 2);
            assert_eq!(best, Some((0.8, 1)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn nan_never_improves_and_bad_config_is_rejected() {
    let mut es = stopper(1, 0.0, Mode::Min);
    assert_eq!(
        es.observe(0, 1.0, None).unwrap(),
        Decision::Continue { improved: true }
    );
    assert!(matches!(
        es.observe(1, f64::NAN, None).unwrap(),
        Decision::Stop(_)
    ));
    let err = EarlyStopping::from_json(&serde_json::json!({"min_delta": -1.0}), "early_stopping")
        .unwrap_err();
    assert!(err.to_string().contains("early_stopping"), "{err}");
    let err = EarlyStopping::from_json(&serde_json::json!({"patiense": 3}), "early_stopping")
        .unwrap_err();
    assert!(err.to_string().contains("did you mean `patience`"), "{err}");
    let err = EarlyStopping::from_json(&serde_json::json!({"mode": "down"}), "early_stopping")
        .unwrap_err();
    assert!(err.to_string().contains("early_stopping.mode"), "{err}");
}

#[test]
fn restores_from_a_checkpoint_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.safetensors");
    let mut rng = SeededRng::new(1);
    let var = Var::from_tensor(&random_params(&mut rng)).unwrap();
    let params = [NamedVar::new("fc.weight", var.clone())];
    let mut es = stopper(1, 0.0, Mode::Min);
    es.observe(0, 1.0, None).unwrap();
    let mut sd = StateDict::new();
    sd.insert("fc.weight", var.as_tensor().copy().unwrap());
    sd.save(&path).unwrap();
    es.record_best_checkpoint(&path);
    let best_bits = bits(&var);
    var.set(&random_params(&mut rng)).unwrap();
    assert!(matches!(
        es.observe(1, 2.0, None).unwrap(),
        Decision::Stop(_)
    ));
    assert!(es.restore_best(&params).unwrap());
    assert_eq!(bits(&var), best_bits);
    assert_eq!(es.best_checkpoint(), Some(path.as_path()));
    // A parameter the checkpoint lacks is an error naming it.
    let other = [NamedVar::new(
        "other.weight",
        Var::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
    )];
    assert!(es
        .restore_best(&other)
        .unwrap_err()
        .to_string()
        .contains("other.weight"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Training stops exactly `patience` epochs after the last improvement larger than
    /// `min_delta`, and the best weights come back bit-exactly.
    #[test]
    fn stops_exactly_after_patience_and_restores_bit_exactly(
        seed in any::<u64>(),
        patience in 0usize..5,
        min_delta in prop_oneof![Just(0.0f64), 0.0f64..0.2],
        maximize in any::<bool>(),
        steps in prop::collection::vec(-0.3f64..0.3, 1..30),
    ) {
        let mode = if maximize { Mode::Max } else { Mode::Min };
        let mut es = stopper(patience, min_delta, mode);
        let mut rng = SeededRng::new(seed);
        let var = Var::from_tensor(&random_params(&mut rng)).unwrap();
        let params = [NamedVar::new("fc.weight", var.clone())];
        // An independent model of the rule: last improvement epoch and best value.
        let mut best: Option<f64> = None;
        let mut last_improvement = 0usize;
        let mut best_bits = Vec::new();
        let mut value = 0.0;
        let mut expected_stop = None;
        for (epoch, step) in steps.iter().enumerate() {
            value += step;
            var.set(&random_params(&mut rng)).unwrap();
            let better = match best {
                None => true,
                Some(b) if maximize => value > b + min_delta,
                Some(b) => value < b - min_delta,
            };
            if better {
                best = Some(value);
                last_improvement = epoch;
                best_bits = bits(&var);
            }
            let decision = es.observe(epoch, value, Some(&params)).unwrap();
            let should_stop = !better && epoch > 0 && epoch - last_improvement >= patience;
            match decision {
                Decision::Stop(reason) => {
                    prop_assert!(should_stop, "stopped early at {}", epoch);
                    prop_assert_eq!(reason.epoch(), epoch);
                    expected_stop = Some(epoch);
                    break;
                }
                Decision::Continue { improved } => {
                    prop_assert!(!should_stop, "missed the stop at {}", epoch);
                    prop_assert_eq!(improved, better);
                }
            }
        }
        if let Some(e) = expected_stop {
            prop_assert_eq!(e - last_improvement, patience.max(1));
        }
        var.set(&random_params(&mut rng)).unwrap();
        prop_assert!(es.restore_best(&params).unwrap());
        prop_assert_eq!(bits(&var), best_bits);
    }
}
