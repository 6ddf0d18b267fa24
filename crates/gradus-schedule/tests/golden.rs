//! Every case of `data/schedules.json` (PyTorch 2.15.0, float64; see `data/README.md`): the lr
//! (and momentum) in force at each of 40 optimizer steps within 1e-12, and
//! `reduce_on_plateau`'s lr after each metric.

#[path = "../src/testing.rs"]
#[allow(dead_code)]
mod testing;

use std::collections::BTreeMap;

pub(crate) use gradus_schedule::build_schedule;
use serde_json::Value;
use testing::FakeOptimizer;

const TOLERANCE: f64 = 1e-12;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schedules.json");
    let text = std::fs::read_to_string(path).expect("golden file");
    serde_json::from_str(&text).expect("golden json")
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

/// Largest absolute difference, failing on any difference above the tolerance.
fn compare(what: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}");
    let mut worst: f64 = 0.0;
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= TOLERANCE,
            "{what} step {k}: got {g}, want {w} (error {err:e})"
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn every_golden_case_matches_pytorch() {
    let golden = golden();
    let base_lr = golden["base_lr"].as_f64().expect("base_lr");
    let steps = golden["steps"].as_u64().expect("steps") as usize;
    let mut worst: BTreeMap<String, f64> = BTreeMap::new();
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 14);
    for (i, case) in cases.iter().enumerate() {
        let config = &case["schedule"];
        let kind = config["type"].as_str().expect("type").to_string();
        let what = format!("case {i} ({kind})");
        let mut opt = FakeOptimizer::sgd(&[base_lr]);
        let mut schedule = build_schedule(config, "schedule", &mut opt).expect(&what);
        let error = if let Some(metrics) = case.get("metrics") {
            let mut lrs = Vec::new();
            for m in floats(metrics) {
                schedule.step(&mut opt, Some(m)).expect(&what);
                lrs.push(opt.get(0, "lr"));
            }
            compare(&what, &lrs, &floats(&case["lr_after_each_metric"]))
        } else {
            let (mut lrs, mut momenta) = (Vec::new(), Vec::new());
            for _ in 0..steps {
                lrs.push(opt.get(0, "lr"));
                momenta.push(opt.get(0, "momentum"));
                schedule.step(&mut opt, None).expect(&what);
            }
            let mut e = compare(&what, &lrs, &floats(&case["lr"]));
            if let Some(m) = case.get("momentum").filter(|m| !m.is_null()) {
                e = e.max(compare(&format!("{what} momentum"), &momenta, &floats(m)));
            }
            e
        };
        let entry = worst.entry(kind).or_insert(0.0);
        *entry = entry.max(error);
    }
    for (kind, error) in &worst {
        println!("largest error vs PyTorch: {kind:<22} {error:e}");
    }
}

#[test]
fn golden_cases_drive_every_group_and_any_hyperparameter() {
    // The same sequences on `weight_decay` instead of `lr`, in both groups of an optimizer
    // whose groups have different learning rates (which must stay untouched).
    let golden = golden();
    let steps = golden["steps"].as_u64().expect("steps") as usize;
    for case in golden["cases"].as_array().expect("cases") {
        let config = &case["schedule"];
        if case.get("metrics").is_some()
            || config["type"] == "one_cycle"
            || config["type"] == "cyclic"
        {
            continue; // these set absolute values, not multiples of the initial one
        }
        let want = floats(&case["lr"]);
        let mut opt = FakeOptimizer::sgd(&[0.1, 0.2]);
        for g in 0..2 {
            opt.set_hyperparameter_for_test(g, "weight_decay", 0.1);
        }
        let mut config = config.clone();
        if config["type"] == "sequential" {
            for child in config["schedules"].as_array_mut().expect("children") {
                child["hyperparameter"] = "weight_decay".into();
            }
        } else {
            config["hyperparameter"] = "weight_decay".into();
        }
        let mut schedule = build_schedule(&config, "schedule", &mut opt).expect("build");
        for w in want.iter().take(steps) {
            assert!(
                (opt.get(0, "weight_decay") - w).abs() <= TOLERANCE,
                "{config}"
            );
            assert!(
                (opt.get(1, "weight_decay") - w).abs() <= TOLERANCE,
                "{config}"
            );
            assert_eq!((opt.get(0, "lr"), opt.get(1, "lr")), (0.1, 0.2));
            schedule.step(&mut opt, None).expect("step");
        }
    }
}
