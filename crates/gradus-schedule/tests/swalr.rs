//! `swalr` against `torch.optim.swa_utils.SWALR` of PyTorch 2.15.0 (`data/swalr.json`, float64,
//! generator `data/swalr.py`): the learning rate of every group after construction and after
//! each of 30 steps, within 1e-12, also when it takes over from another schedule.

#[path = "../src/testing.rs"]
#[allow(dead_code)]
mod testing;

pub(crate) use gradus_schedule::build_schedule;
use serde_json::{json, Value};
use testing::FakeOptimizer;

const TOLERANCE: f64 = 1e-12;

#[test]
fn every_swalr_case_matches_pytorch() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/swalr.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    let mut worst: f64 = 0.0;
    for (i, case) in cases.iter().enumerate() {
        let base: Vec<f64> = serde_json::from_value(case["base_lrs"].clone()).unwrap();
        let want: Vec<Vec<f64>> = serde_json::from_value(case["lr"].clone()).unwrap();
        let mut opt = FakeOptimizer::sgd(&base);
        // The schedule SWA takes over from (PyTorch's ExponentialLR(gamma=0.9)).
        let before = case["before"].as_u64().unwrap();
        if before > 0 {
            let mut pre = build_schedule(
                &json!({"type": "exponential", "gamma": 0.9}),
                "schedule",
                &mut opt,
            )
            .unwrap();
            for _ in 0..before {
                pre.step(&mut opt, None).unwrap();
            }
        }
        let mut config = case["kwargs"].clone();
        config["type"] = json!("swalr");
        let mut schedule = build_schedule(&config, "schedule", &mut opt).unwrap();
        for (k, lrs) in want.iter().enumerate() {
            if k > 0 {
                schedule.step(&mut opt, None).unwrap();
            }
            for (g, w) in lrs.iter().enumerate() {
                let got = opt.get(g, "lr");
                let err = (got - w).abs();
                assert!(
                    err <= TOLERANCE,
                    "case {i} {config} step {k} group {g}: {got} vs {w}"
                );
                worst = worst.max(err);
            }
        }
    }
    println!("largest error vs PyTorch: swalr {worst:e}");
}

#[test]
fn the_schedule_of_an_swa_averaging_config_builds_and_anneals() {
    use gradus_optim::averaging::AveragingConfig;
    for strategy in ["cos", "linear"] {
        let averaging = json!({"type": "swa", "start_epoch": 3, "swa_lr": 0.02,
            "anneal_epochs": 4, "anneal_strategy": strategy});
        let AveragingConfig::Swa(swa) =
            AveragingConfig::parse(&averaging, "train.averaging").unwrap()
        else {
            panic!("an swa config")
        };
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let mut schedule = build_schedule(&swa.schedule(), "train.averaging", &mut opt).unwrap();
        assert_eq!(opt.get(0, "lr"), 0.1);
        let mut direct = FakeOptimizer::sgd(&[0.1]);
        let config = json!({"type": "swalr", "swa_lr": 0.02, "anneal_epochs": 4,
            "anneal_strategy": strategy});
        let mut reference = build_schedule(&config, "schedule", &mut direct).unwrap();
        for _ in 0..6 {
            schedule.step(&mut opt, None).unwrap();
            reference.step(&mut direct, None).unwrap();
            assert_eq!(opt.get(0, "lr").to_bits(), direct.get(0, "lr").to_bits());
        }
        assert!((opt.get(0, "lr") - 0.02).abs() < 1e-15);
    }
}
