//! Every optimizer trajectory of the PyTorch golden set (see tests/data/README.md) without a
//! schedule or clipping, replayed in f64 (within 1e-10 relative) and f32 (within 1e-5), on the
//! reference path and on the fused CPU path.
//! Cases with a schedule or clipping are replayed by `gradus replay` (gradus-runner tests).

use std::collections::BTreeMap;

use candle_core::DType;
use gradus_optim::replay::{replay, Case, NoHooks};
use gradus_optim::UpdatePath;
use serde_json::Value;

/// Relative error with a floor: |a − e| / max(|e|, 1e-3), so values near zero are compared
/// absolutely at the 1e-3 scale.
fn rel_err(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(1e-3)
}

fn cases() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/optim");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
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

#[test]
fn plain_optimizer_trajectories_match_pytorch() {
    let mut worst: BTreeMap<(String, &str, &str), f64> = BTreeMap::new();
    let mut replayed = 0;
    for (name, raw) in cases() {
        if !raw["schedule"].is_null() || !raw["clip"].is_null() {
            continue;
        }
        let case = Case::from_json(&raw.to_string(), &name).unwrap();
        let expected: Vec<Vec<Vec<f64>>> = serde_json::from_value(raw["expected"].clone()).unwrap();
        let lr_used: Vec<f64> = serde_json::from_value(raw["lr_used"].clone()).unwrap();
        let runs = [
            (DType::F64, "f64", 1e-10, UpdatePath::Reference, "reference"),
            (DType::F32, "f32", 1e-5, UpdatePath::Reference, "reference"),
            (DType::F64, "f64", 1e-10, UpdatePath::Fused, "fused"),
            (DType::F32, "f32", 1e-5, UpdatePath::Fused, "fused"),
        ];
        for (dtype, label, tol, path, path_label) in runs {
            let got = replay(&case, dtype, Some(path), &mut NoHooks).unwrap();
            assert_eq!(got.params.len(), expected.len(), "{name}");
            let mut max = 0.0f64;
            for (step, (g, e)) in got.params.iter().zip(&expected).enumerate() {
                for (pi, (gp, ep)) in g.iter().zip(e).enumerate() {
                    for (k, (a, b)) in gp.iter().zip(ep).enumerate() {
                        let err = rel_err(*a, *b);
                        assert!(err <= tol, "{name} {label} step {step} param {pi}[{k}]: {a} vs {b} (rel err {err:e})");
                        max = max.max(err);
                    }
                }
            }
            for (a, b) in got.lr.iter().zip(&lr_used) {
                assert!(
                    (a - b).abs() <= 1e-15 * b.abs().max(1.0),
                    "{name}: lr {a} vs {b}"
                );
            }
            let algorithm = raw["optimizer"]["type"].as_str().unwrap().to_string();
            let entry = worst.entry((algorithm, label, path_label)).or_insert(0.0);
            *entry = entry.max(max);
        }
        replayed += 1;
    }
    assert!(replayed >= 18, "only {replayed} plain cases found");
    for ((algorithm, dtype, path), err) in &worst {
        eprintln!("golden max relative error: {algorithm:>9} {dtype} {path:>9}: {err:.3e}");
    }
}
