//! The `gradus` binary end to end: `list`, `replay` on the golden trajectories, and errors.

use std::process::Command;

fn gradus(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../gradus-optim/tests/data/optim"
);

#[test]
fn list_shows_every_optimizer_with_defaults() {
    let (ok, stdout, stderr) = gradus(&["list", "optimizer", "--json"]);
    assert!(ok, "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "adabelief",
            "adadelta",
            "adafactor",
            "adagrad",
            "adam",
            "adamax",
            "adamw",
            "adan",
            "ademamix",
            "adopt",
            "asgd",
            "lamb",
            "lars",
            "lbfgs",
            "lion",
            "muon",
            "nadam",
            "radam",
            "rmsprop",
            "rprop",
            "sgd",
        ]
    );
    let adamw = &list[names.iter().position(|n| *n == "adamw").unwrap()];
    assert_eq!(adamw["defaults"]["weight_decay"], 0.01);
    let (ok, table, _) = gradus(&["list"]);
    assert!(ok);
    assert!(table.contains("optimizer (21)"), "{table}");
}

#[test]
fn list_rejects_an_unknown_kind_with_a_suggestion() {
    let (ok, _, stderr) = gradus(&["list", "optimiser"]);
    assert!(!ok);
    assert!(stderr.contains("did you mean `optimizer`?"), "{stderr}");
}

#[test]
fn replay_reproduces_every_golden_case_with_schedules_and_clipping() {
    let mut count = 0;
    for entry in std::fs::read_dir(GOLDEN).unwrap() {
        let path = entry.unwrap().path();
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for update_path in ["reference", "fused"] {
            let (ok, stdout, stderr) = gradus(&[
                "replay",
                path.to_str().unwrap(),
                "--dtype",
                "f64",
                "--path",
                update_path,
            ]);
            assert!(ok, "{}: {stderr}", path.display());
            let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            let got: Vec<Vec<Vec<f64>>> = serde_json::from_value(out["params"].clone()).unwrap();
            let expected: Vec<Vec<Vec<f64>>> =
                serde_json::from_value(raw["expected"].clone()).unwrap();
            let flat = |v: &Vec<Vec<Vec<f64>>>| {
                v.iter().flatten().flatten().copied().collect::<Vec<f64>>()
            };
            let mut worst = 0.0f64;
            for (a, e) in flat(&got).iter().zip(flat(&expected)) {
                worst = worst.max((a - e).abs() / e.abs().max(1e-3));
                assert!(
                    (a - e).abs() <= 1e-10 * e.abs().max(1e-3),
                    "{}: {a} vs {e}",
                    path.display()
                );
            }
            let lr: Vec<f64> = serde_json::from_value(out["lr"].clone()).unwrap();
            let lr_used: Vec<f64> = serde_json::from_value(raw["lr_used"].clone()).unwrap();
            for (a, e) in lr.iter().zip(&lr_used) {
                assert!(
                    (a - e).abs() <= 1e-12 * e.abs().max(1e-3),
                    "{}: lr {a} vs {e}",
                    path.display()
                );
            }
            eprintln!(
                "replay {} ({update_path}): max relative error {worst:.3e}",
                path.display()
            );
        }
        count += 1;
    }
    assert_eq!(count, 27);
}

#[test]
fn replay_errors_are_clear() {
    let (ok, _, stderr) = gradus(&["replay", "/no/such/case.json"]);
    assert!(!ok);
    assert!(stderr.contains("/no/such/case.json"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"optimizer": {"type": "adam"}, "params": [{"shape": [2], "data": [1.0, 2.0]}], "grads": [[[1.0]]]}"#).unwrap();
    let (ok, _, stderr) = gradus(&["replay", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("grads[0][0] for params[0]: expected [2], got [1]"),
        "{stderr}"
    );
}

const MODERN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../gradus-optim/tests/data/optim-modern"
);

#[test]
fn replay_reproduces_the_modern_golden_cases_on_each_path() {
    let mut count = 0;
    for entry in std::fs::read_dir(MODERN).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let expected: Vec<f64> =
            serde_json::from_value::<Vec<Vec<Vec<f64>>>>(raw["expected"].clone())
                .unwrap()
                .into_iter()
                .flatten()
                .flatten()
                .collect();
        // `fused` is refused by optimizers without a kernel: then only the reference path runs.
        for update_path in ["reference", "fused"] {
            let (ok, stdout, stderr) = gradus(&[
                "replay",
                path.to_str().unwrap(),
                "--dtype",
                "f64",
                "--path",
                update_path,
            ]);
            if !ok && update_path == "fused" && stderr.contains("no fused kernel") {
                continue;
            }
            assert!(ok, "{} ({update_path}): {stderr}", path.display());
            let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            let got: Vec<f64> = serde_json::from_value::<Vec<Vec<Vec<f64>>>>(out["params"].clone())
                .unwrap()
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            assert_eq!(got.len(), expected.len(), "{}", path.display());
            for (a, e) in got.iter().zip(&expected) {
                assert!(
                    (a - e).abs() <= 1e-9 * e.abs().max(1e-3),
                    "{} ({update_path}): {a} vs {e}",
                    path.display()
                );
            }
        }
        count += 1;
    }
    assert!(count >= 22, "only {count} modern cases");
}
