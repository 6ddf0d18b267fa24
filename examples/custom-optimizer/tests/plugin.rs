//! The Signum plugin (not a built-in) is registered, listed, replayable on both paths against its
//! hand-computed formula, bit-identical between them, and passes the same conformance suite as
//! the built-in optimizers.

use std::process::Command;

fn gradus_signum(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradus-signum"))
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
fn signum_is_listed_next_to_the_builtins() {
    let (ok, stdout, stderr) = gradus_signum(&["list", "optimizer", "--json"]);
    assert!(ok, "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let signum = list
        .iter()
        .find(|e| e["name"] == "signum")
        .expect("signum listed");
    assert_eq!(signum["defaults"]["lr"], 1e-3);
    assert_eq!(signum["defaults"]["beta"], 0.9);
    assert!(signum["origin"]
        .as_str()
        .unwrap()
        .starts_with("custom_optimizer"));
    // The built-ins, Lion among them, are there too: the plugin adds, it does not replace.
    assert!(list.iter().any(|e| e["name"] == "adam"));
    let lion = list.iter().find(|e| e["name"] == "lion").expect("lion");
    assert!(lion["origin"].as_str().unwrap().starts_with("gradus_optim"));
}

/// A three-step trajectory, computed by hand from the rule (lr 0.1, β 0.9, λ 0.5).
const HAND_CASE: &str = r#"{"optimizer": {"type": "signum", "lr": 0.1, "beta": 0.9, "weight_decay": 0.5},
    "params": [{"shape": [2], "data": [1.0, -2.0]}],
    "grads": [[[0.5, -0.25]], [[-1.0, 0.1]], [[0.2, 0.3]]]}"#;

fn replay_params(case: &std::path::Path, path: &str, dtype: &str) -> Vec<Vec<Vec<f64>>> {
    let (ok, stdout, stderr) = gradus_signum(&[
        "replay",
        case.to_str().unwrap(),
        "--path",
        path,
        "--dtype",
        dtype,
    ]);
    assert!(ok, "{path} {dtype}: {stderr}");
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    serde_json::from_value(out["params"].clone()).unwrap()
}

#[test]
fn signum_replays_a_hand_computed_trajectory_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("signum.json");
    std::fs::write(&case, HAND_CASE).unwrap();
    // Step 1: m = 0.1 g₁ = (0.05, −0.025); θ ← 0.95 θ − 0.1 sign(m) = (0.85, −1.8).
    // Step 2: m = 0.9 m + 0.1 g₂ = (−0.055, −0.0125); θ ← 0.95 θ − 0.1 sign(m) = (0.9075, −1.61).
    // Step 3: m = (−0.0295, 0.01875): the first coordinate's gradient is positive, its
    // momentum still negative, so θ₀ keeps rising: θ = (0.962125, −1.6295).
    let expected = [[0.85, -1.8], [0.9075, -1.61], [0.962125, -1.6295]];
    for path in ["fused", "reference"] {
        for (dtype, tol) in [("f64", 1e-12), ("f32", 1e-6)] {
            let got = replay_params(&case, path, dtype);
            assert_eq!(got.len(), 3);
            for (g, e) in got.iter().zip(expected) {
                for (a, b) in g[0].iter().zip(e) {
                    assert!((a - b).abs() < tol, "{path} {dtype}: {a} vs {b}");
                }
            }
        }
    }
}

/// Signum in plain f64, straight from the formula: the golden values of the longer test.
fn formula(params: &[f64], grads: &[Vec<f64>], lr: f64, beta: f64, wd: f64) -> Vec<Vec<f64>> {
    let mut theta = params.to_vec();
    let mut m = vec![0.0; params.len()];
    let mut out = Vec::new();
    for g in grads {
        for i in 0..theta.len() {
            m[i] = beta * m[i] + (1.0 - beta) * g[i];
            let s = if m[i] > 0.0 {
                1.0
            } else if m[i] < 0.0 {
                -1.0
            } else {
                0.0
            };
            theta[i] = theta[i] * (1.0 - lr * wd) - lr * s;
        }
        out.push(theta.clone());
    }
    out
}

#[test]
fn signum_follows_its_formula_over_many_steps_and_both_paths_agree_to_the_bit() {
    // Deterministic values in [−1, 1).
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 2_000_001) as f64 / 1_000_000.0 - 1.0
    };
    let n = 37;
    let params: Vec<f64> = (0..n).map(|_| next()).collect();
    let grads: Vec<Vec<f64>> = (0..12).map(|_| (0..n).map(|_| next()).collect()).collect();
    let (lr, beta, wd) = (0.01, 0.8, 0.1);
    let case = serde_json::json!({
        "optimizer": {"type": "signum", "lr": lr, "beta": beta, "weight_decay": wd},
        "params": [{"shape": [n], "data": params}],
        "grads": grads.iter().map(|g| vec![g.clone()]).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signum-long.json");
    std::fs::write(&file, case.to_string()).unwrap();
    let expected = formula(&params, &grads, lr, beta, wd);
    for dtype in ["f64", "f32"] {
        let fused = replay_params(&file, "fused", dtype);
        let reference = replay_params(&file, "reference", dtype);
        // Same operations in the same order on both paths: not only close, equal.
        assert_eq!(fused, reference, "{dtype}");
        if dtype == "f64" {
            for (step, (g, e)) in fused.iter().zip(&expected).enumerate() {
                for (a, b) in g[0].iter().zip(e) {
                    assert!((a - b).abs() <= 1e-12, "step {step}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn signum_passes_the_optimizer_conformance_suite_on_both_paths() {
    // Linking the crate is what registers it: this is the `use my_plugin as _;` line at work.
    use custom_optimizer as _;
    let names = gradus_optim::conformance::registered().unwrap();
    assert!(names.contains(&"signum"), "{names:?}");
    // The plugin's kernel is found through the trait: the fused path is open to it.
    assert!(gradus_optim::conformance::has_fused_path("signum").unwrap());
    let dir = tempfile::tempdir().unwrap();
    gradus_optim::conformance::check_all("signum", dir.path()).unwrap();
}

#[test]
fn a_pipeline_using_the_plugin_validates_and_trains() {
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/digits-signum.json");
    let (ok, stdout, stderr) = gradus_signum(&["validate", pipeline]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (ok, _, stderr) =
        gradus_signum(&["run", pipeline, "--out", run.to_str().unwrap(), "--quiet"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert!(report["test_accuracy"].as_f64().unwrap() > 0.9, "{report}");
}

#[test]
fn the_huber_loss_plugin_is_listed_in_the_schema_and_usable_by_name_from_a_pipeline() {
    let (ok, stdout, stderr) = gradus_signum(&["list", "loss", "--json"]);
    assert!(ok, "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bce_with_logits", "cross_entropy", "huber", "mse"]);
    let huber = &list[2];
    assert_eq!(huber["defaults"], serde_json::json!({"delta": 1.0}));
    assert!(huber["origin"]
        .as_str()
        .unwrap()
        .starts_with("custom_optimizer"));
    // `gradus schema` takes the loss variants from the registry: the plugin's is there.
    let (ok, stdout, stderr) = gradus_signum(&["schema"]);
    assert!(ok, "{stderr}");
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let variants = schema["$defs"]["loss"]["oneOf"].as_array().unwrap();
    let plugin = variants
        .iter()
        .find(|v| v["properties"]["type"]["const"] == "huber")
        .expect("huber in the schema");
    assert_eq!(plugin["properties"]["delta"]["default"], 1.0);
    assert_eq!(plugin["properties"]["delta"]["type"], "number");
    assert_eq!(plugin["additionalProperties"], false);
    // The plugin optimizer's schema is exact too (its derive, through `gradus_core::schemars`),
    // with the `groups` and `path` every grouped optimizer takes.
    let signum = schema["$defs"]["optimizer"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["properties"]["type"]["const"] == "signum")
        .expect("signum in the schema");
    assert_eq!(signum["properties"]["beta"]["type"], "number");
    assert_eq!(signum["additionalProperties"], false);
    assert!(signum["properties"]["groups"].is_object(), "{signum}");
    assert!(signum["properties"]["path"].is_object(), "{signum}");

    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/regression-huber.json");
    let (ok, stdout, stderr) = gradus_signum(&["validate", pipeline]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (ok, _, stderr) =
        gradus_signum(&["run", pipeline, "--out", run.to_str().unwrap(), "--quiet"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    // Noise 0.1 around a linear target: the Huber loss (delta 0.5, quadratic there) ends near
    // half the noise variance, far below its starting value.
    let test_loss = report["test_loss"].as_f64().unwrap();
    assert!(test_loss < 0.05, "{report}");

    // A bad delta is a build error naming its JSON path, before any run folder exists.
    let bad = dir.path().join("bad.json");
    let text = std::fs::read_to_string(pipeline)
        .unwrap()
        .replace("\"delta\": 0.5", "\"delta\": -1");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, stderr) = gradus_signum(&["validate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("loss.delta"), "{stderr}");
}
