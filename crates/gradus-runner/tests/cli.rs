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
            "adamw_schedule_free",
            "adan",
            "ademamix",
            "adopt",
            "asgd",
            "lamb",
            "lars",
            "lbfgs",
            "lion",
            "lookahead",
            "muon",
            "nadam",
            "prodigy",
            "radam",
            "rmsprop",
            "rprop",
            "sgd",
            "sgd_schedule_free",
        ]
    );
    let adamw = &list[names.iter().position(|n| *n == "adamw").unwrap()];
    assert_eq!(adamw["defaults"]["weight_decay"], 0.01);
    let (ok, table, _) = gradus(&["list"]);
    assert!(ok);
    assert!(table.contains("optimizer (25)"), "{table}");
}

#[test]
fn list_shows_the_losses_from_the_registry() {
    let (ok, stdout, stderr) = gradus(&["list", "loss", "--json"]);
    assert!(ok, "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bce_with_logits", "cross_entropy", "mse"]);
    assert_eq!(list[1]["defaults"]["label_smoothing"], 0.0);
    assert!(list
        .iter()
        .all(|e| e["origin"].as_str().unwrap().starts_with("gradus_loss")));
    let (ok, table, _) = gradus(&["list"]);
    assert!(ok);
    assert!(table.contains("loss (3)"), "{table}");
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
            // Schedule-free cases: `params_eval` (after eval() following each step) as well.
            match raw.get("expected_eval") {
                Some(expected_eval) => {
                    let flat = |v: &serde_json::Value| -> Vec<f64> {
                        serde_json::from_value::<Vec<Vec<Vec<f64>>>>(v.clone())
                            .unwrap()
                            .into_iter()
                            .flatten()
                            .flatten()
                            .collect()
                    };
                    let (got, want) = (flat(&out["params_eval"]), flat(expected_eval));
                    assert_eq!(got.len(), want.len(), "{}", path.display());
                    for (a, e) in got.iter().zip(&want) {
                        assert!(
                            (a - e).abs() <= 1e-9 * e.abs().max(1e-3),
                            "{} ({update_path}) eval: {a} vs {e}",
                            path.display()
                        );
                    }
                }
                None => assert!(out.get("params_eval").is_none(), "{}", path.display()),
            }
        }
        count += 1;
    }
    assert!(count >= 30, "only {count} modern cases");
}

/// A small digits MLP that trains in well under a second.
fn small_pipeline(dir: &std::path::Path) -> std::path::PathBuf {
    let pipeline = serde_json::json!({
        "name": "small",
        "data": {"source": {"type": "digits", "layout": "flat"},
                 "split": {"val": 0.2, "test": 0.2, "stratify": true}},
        "model": {"layers": [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 10}]},
        "optimizer": {"type": "adam"},
        "batching": {"type": "mini_batch", "batch_size": 128},
        "train": {"epochs": 1},
        "output": {"checkpoint_every": 0, "plots": false}
    });
    let path = dir.join("small.json");
    std::fs::write(&path, serde_json::to_string_pretty(&pipeline).unwrap()).unwrap();
    path
}

#[test]
fn set_overrides_change_the_run_and_are_recorded_in_its_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_pipeline(dir.path());
    let out = dir.path().join("run");
    let (ok, _, stderr) = gradus(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--set",
        "optimizer.lr=0.01",
        "--set",
        "train.epochs=2",
        "--set",
        "model.layers.0.out=8",
        "--set",
        "model.dtype=f64",
        "--set",
        "optimizer.betas=[0.8, 0.99]",
    ]);
    assert!(ok, "{stderr}");
    let resolved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("pipeline.json")).unwrap()).unwrap();
    assert_eq!(resolved["optimizer"]["lr"], 0.01);
    assert_eq!(
        resolved["optimizer"]["betas"],
        serde_json::json!([0.8, 0.99])
    );
    assert_eq!(resolved["train"]["epochs"], 2);
    assert_eq!(resolved["model"]["layers"][0]["out"], 8);
    assert_eq!(resolved["model"]["dtype"], "f64");
    let epochs = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(epochs.lines().count(), 2, "{epochs}");
    // The file itself is untouched.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["train"]["epochs"], 1);

    let (ok, stdout, stderr) = gradus(&[
        "validate",
        path.to_str().unwrap(),
        "--set",
        "model.layers.0.out=12",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("-> [12]"), "{stdout}");
}

#[test]
fn set_overrides_are_validated_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = small_pipeline(dir.path());
    let validate = |set: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gradus"))
            .args(["validate", path.to_str().unwrap(), "--set", set])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (set, expected) in [
        // A misspelled key: the strict parse names it and suggests the nearest, as for the file.
        ("train.epoch=5", "did you mean `epochs`?"),
        (
            "trian.epochs=5",
            "unknown field `trian` at <root>, expected one of name, seed",
        ),
        ("optimizer.lrr=0.1", "did you mean `lr`?"),
        ("model.layers.0.outt=4", "outt"),
        // Values are checked as the file's are.
        ("train.epochs=0", "train.epochs: must be at least 1"),
        ("train.epochs=\"five\"", "train.epochs"),
        ("optimizer.lr=-1", "-1"),
        ("model.dtype=f8", "model.dtype"),
        // Paths that cannot be followed.
        (
            "model.layers.7.out=4",
            "model.layers is a list of 3: `7` is not an index of it (0 to 2)",
        ),
        (
            "optimizer.type.x=1",
            "optimizer.type is a string, it has no field `x`",
        ),
    ] {
        let (code, stderr) = validate(set);
        assert_eq!(code, Some(2), "--set {set}: {stderr}");
        assert!(stderr.contains(expected), "--set {set}: {stderr}");
    }
    // Not PATH=VALUE at all: a usage error.
    let (code, stderr) = validate("optimizer.lr");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("expected PATH=VALUE"), "{stderr}");
}

#[test]
fn completions_are_printed_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (ok, stdout, stderr) = gradus(&["completions", shell]);
        assert!(ok, "{shell}: {stderr}");
        for word in [
            "gradus",
            "run",
            "validate",
            "resume",
            "compare",
            "completions",
            "verbose", // `--verbose` (fish: `-l verbose`)
        ] {
            assert!(stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let (ok, _, stderr) = gradus(&["completions", "tcsh"]);
    assert!(!ok);
    assert!(stderr.contains("possible values"), "{stderr}");
}

#[test]
fn man_pages_are_written_for_the_command_and_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let (ok, stdout, stderr) = gradus(&["man", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("man pages written to"), "{stdout}");
    let main = std::fs::read_to_string(out.join("gradus.1")).unwrap();
    assert!(main.contains(".TH gradus 1"), "{main}");
    assert!(main.contains("validate"), "{main}");
    let run = std::fs::read_to_string(out.join("gradus-run.1")).unwrap();
    assert!(run.contains("PATH=VALUE"), "{run}");
}

#[test]
fn log_warnings_reach_stderr_and_follow_quiet_and_rust_log() {
    // A constant weight matrix makes the initializer warn (the symmetry trap).
    let dir = tempfile::tempdir().unwrap();
    let path = small_pipeline(dir.path());
    let validate = |args: &[&str], rust_log: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradus"));
        cmd.args(args).args([
            "validate",
            path.to_str().unwrap(),
            "--set",
            "model.layers.0.init={\"type\": \"zeros\"}",
        ]);
        match rust_log {
            Some(spec) => cmd.env("RUST_LOG", spec),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warning = "initializer `zeros` fills a [16, 64] weight";
    let stderr = validate(&[], None);
    assert!(
        stderr.contains(warning) && stderr.contains("WARN"),
        "{stderr}"
    );
    assert!(!validate(&["-q"], None).contains(warning));
    assert!(!validate(&[], Some("off")).contains(warning));
    // RUST_LOG applies on top of the flags' level, module by module.
    assert!(validate(&["-q"], Some("gradus_init=warn")).contains(warning));
    assert!(validate(&["-v"], None).contains(warning));
}

#[test]
fn json_output_is_one_object_per_line_with_epochs_report_and_errors() {
    let dir = std::env::temp_dir().join(format!("gradus-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.display().to_string();
    let (ok, stdout, stderr) = gradus(&["run", "--out", &out, "--json", "--set", "train.epochs=2"]);
    assert!(ok, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["epoch", "epoch", "report"], "{stdout}");
    assert_eq!(events[1]["epoch"], 2);
    assert!(events[0]["train_loss"].is_number());
    assert_eq!(events[2]["run_dir"], out.as_str());
    assert!(events[2]["test_accuracy"].as_f64().unwrap() > 0.5);
    // Bad input: exit 2 and the error as JSON naming its path.
    let (ok, stdout, _) = gradus(&["validate", "/nonexistent/p.json", "--json"]);
    assert!(!ok);
    let error: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(error["error"]["path"], "/nonexistent/p.json");
    let _ = std::fs::remove_dir_all(&dir);
}
