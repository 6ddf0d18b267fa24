//! Every trajectory of the modern-optimizer golden set present in `tests/data/optim-modern/`
//! (see its README: torch.optim 2.15, pytorch-optimizer 4.1.0, schedulefree 1.4.1), replayed
//! on each path its optimizer has, in f64 (within 1e-9 relative) and f32 (within 2e-5);
//! schedule-free cases also compare the parameters after `eval()` (`expected_eval`).

use std::collections::BTreeMap;

use candle_core::DType;
use gradus_optim::replay::{replay, Case, NoHooks};
use gradus_optim::UpdatePath;
use serde_json::Value;

/// Relative error with a floor: |a − e| / max(|e|, 1e-3).
fn rel_err(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(1e-3)
}

fn cases() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/optim-modern");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect()
}

/// The paths optimizer config `optimizer` has: reference, and fused when its rule has a kernel.
fn paths(optimizer: &Value) -> Vec<UpdatePath> {
    let vars = vec![gradus_core::NamedVar::new(
        "x",
        candle_core::Var::new(&[1.0f64], &candle_core::Device::Cpu).unwrap(),
    )];
    let mut opt = gradus_optim::build_optimizer(optimizer, "optimizer", &vars).unwrap();
    let mut paths = vec![UpdatePath::Reference];
    if opt.set_update_path(UpdatePath::Fused).is_ok() {
        paths.push(UpdatePath::Fused);
    }
    paths
}

#[test]
fn modern_optimizer_trajectories_match_their_references() {
    let mut worst: BTreeMap<(String, &str, UpdatePath), f64> = BTreeMap::new();
    let all = cases();
    for (name, raw) in &all {
        let case = Case::from_json(&raw.to_string(), name).unwrap();
        let expected: Vec<Vec<Vec<f64>>> = serde_json::from_value(raw["expected"].clone()).unwrap();
        for path in paths(&raw["optimizer"]) {
            for (dtype, label, tol) in [(DType::F64, "f64", 1e-9), (DType::F32, "f32", 2e-5)] {
                let got = replay(&case, dtype, Some(path), &mut NoHooks)
                    .unwrap_or_else(|e| panic!("{name} {label} {path}: {e}"));
                assert_eq!(got.params.len(), expected.len(), "{name}");
                let mut max = 0.0f64;
                for (step, (g, e)) in got.params.iter().zip(&expected).enumerate() {
                    for (a, b) in g.iter().flatten().zip(e.iter().flatten()) {
                        let err = rel_err(*a, *b);
                        assert!(
                            err <= tol,
                            "{name} {label} {path} step {step}: {a} vs {b} (rel err {err:e})"
                        );
                        max = max.max(err);
                    }
                }
                if let Some(expected_eval) = raw.get("expected_eval") {
                    let expected_eval: Vec<Vec<Vec<f64>>> =
                        serde_json::from_value(expected_eval.clone()).unwrap();
                    let got_eval = got
                        .params_eval
                        .as_ref()
                        .unwrap_or_else(|| panic!("{name}: no params_eval from the replay"));
                    assert_eq!(got_eval.len(), expected_eval.len(), "{name}");
                    for (step, (g, e)) in got_eval.iter().zip(&expected_eval).enumerate() {
                        for (a, b) in g.iter().flatten().zip(e.iter().flatten()) {
                            let err = rel_err(*a, *b);
                            assert!(
                                err <= tol,
                                "{name} {label} {path} eval step {step}: {a} vs {b} (rel err {err:e})"
                            );
                            max = max.max(err);
                        }
                    }
                }
                let algorithm = raw["optimizer"]["type"].as_str().unwrap().to_string();
                let entry = worst.entry((algorithm, label, path)).or_insert(0.0);
                *entry = entry.max(max);
            }
        }
    }
    for ((algorithm, dtype, path), err) in &worst {
        eprintln!("golden max relative error: {algorithm:>12} {dtype} {path:>9}: {err:.3e}");
    }
    eprintln!("{} modern golden cases replayed", all.len());
}
