//! The plugin is registered, listed, replayable, and passes the same conformance suite as the
//! built-in optimizers.

use std::process::Command;

fn gradus_lion(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradus-lion"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lion_is_listed_next_to_the_builtins() {
    let (ok, stdout, stderr) = gradus_lion(&["list", "optimizer", "--json"]);
    assert!(ok, "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let lion = list
        .iter()
        .find(|e| e["name"] == "lion")
        .expect("lion listed");
    assert_eq!(lion["defaults"]["lr"], 1e-4);
    assert!(lion["origin"]
        .as_str()
        .unwrap()
        .starts_with("custom_optimizer"));
    assert!(list.iter().any(|e| e["name"] == "adam"));
}

#[test]
fn lion_replays_a_trajectory_matching_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("lion.json");
    let text = r#"{"optimizer": {"type": "lion", "lr": 0.1, "weight_decay": 0.5},
        "params": [{"shape": [2], "data": [1.0, -2.0]}],
        "grads": [[[0.5, -0.25]], [[-1.0, 0.1]]]}"#;
    std::fs::write(&case, text).unwrap();
    let (ok, stdout, stderr) = gradus_lion(&["replay", case.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // Step 1: m = 0, c = 0.1 g, θ ← θ (1 − 0.05) − 0.1 sign(g); m ← 0.01 g.
    let p1 = [1.0 * 0.95 - 0.1, -2.0 * 0.95 + 0.1];
    // Step 2: c = 0.9 (0.01 g₁) + 0.1 g₂ = (0.0045 − 0.1, −0.00225 + 0.01).
    let p2 = [p1[0] * 0.95 + 0.1, p1[1] * 0.95 - 0.1];
    let got: Vec<Vec<f64>> = out["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s[0].clone()).unwrap())
        .collect();
    for (g, e) in got.iter().zip([p1, p2]) {
        for (a, b) in g.iter().zip(e) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
    assert_eq!(out["lr"], serde_json::json!([0.1, 0.1]));
}

#[test]
fn lion_passes_the_optimizer_conformance_suite_on_both_paths() {
    // Linking the crate is what registers it: this is the `use my_plugin as _;` line at work.
    use custom_optimizer as _;
    let names = gradus_optim::conformance::registered().unwrap();
    assert!(names.contains(&"lion"), "{names:?}");
    // The plugin's kernel is found through the trait: the fused path is open to it.
    assert!(gradus_optim::conformance::has_fused_path("lion").unwrap());
    let dir = tempfile::tempdir().unwrap();
    gradus_optim::conformance::check_all("lion", dir.path()).unwrap();
}

/// Relative error with a floor, so values near zero are compared absolutely at 1e-3.
fn rel_err(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(1e-3)
}

#[test]
fn lion_matches_pytorch_optimizer_on_both_paths_in_f64_and_f32() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut cases = 0;
    for name in ["lion-0", "lion-1"] {
        let case = format!("{dir}/{name}.json");
        let golden: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&case).unwrap()).unwrap();
        let expected: Vec<Vec<Vec<f64>>> =
            serde_json::from_value(golden["expected"].clone()).unwrap();
        for path in ["fused", "reference"] {
            for (dtype, tol) in [("f64", 1e-9), ("f32", 2e-5)] {
                let (ok, stdout, stderr) =
                    gradus_lion(&["replay", &case, "--path", path, "--dtype", dtype]);
                assert!(ok, "{name} {path} {dtype}: {stderr}");
                let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
                let got: Vec<Vec<Vec<f64>>> =
                    serde_json::from_value(out["params"].clone()).unwrap();
                assert_eq!(got.len(), expected.len(), "{name}");
                for (step, (g, e)) in got.iter().zip(&expected).enumerate() {
                    for (a, b) in g.iter().flatten().zip(e.iter().flatten()) {
                        let err = rel_err(*a, *b);
                        assert!(
                            err <= tol,
                            "{name} {path} {dtype} step {step}: {a} vs {b} (rel err {err:e})"
                        );
                    }
                }
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 2);
}

#[test]
fn the_fused_lion_is_bit_identical_to_its_reference_path_in_f32() {
    // Same operations in the same order on both paths: not only close, equal.
    let case = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lion-1.json");
    let run = |path: &str| {
        let (ok, stdout, stderr) = gradus_lion(&["replay", case, "--path", path, "--dtype", "f32"]);
        assert!(ok, "{stderr}");
        let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        out["params"].clone()
    };
    assert_eq!(run("fused"), run("reference"));
}

#[test]
fn a_pipeline_using_the_plugin_validates_and_trains() {
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/digits-lion.json");
    let (ok, stdout, stderr) = gradus_lion(&["validate", pipeline]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (ok, _, stderr) =
        gradus_lion(&["run", pipeline, "--out", run.to_str().unwrap(), "--quiet"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert!(report["test_accuracy"].as_f64().unwrap() > 0.9, "{report}");
}
