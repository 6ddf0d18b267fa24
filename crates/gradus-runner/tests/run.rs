//! End-to-end runs of small pipelines: outputs, determinism, resume after a kill, validation of
//! every example, exit codes and messages for bad pipelines, and no panic on mutated input.

mod common;
use common::{gradus, metrics_without_time, run_and_kill_after_first_checkpoint, write};

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");

fn small_pipeline(epochs: usize, batching: Value) -> Value {
    json!({
        "name": "small",
        "seed": 5,
        "data": {"source": {"type": "digits", "layout": "flat"},
                 "split": {"val": 0.2, "test": 0.2, "stratify": true},
                 "preprocess": [{"type": "standardize"}]},
        "model": {"layers": [{"type": "linear", "out": 32}, {"type": "batch_norm"}, {"type": "relu"},
                             {"type": "dropout", "p": 0.1}, {"type": "linear", "out": 10}]},
        "loss": {"type": "cross_entropy", "label_smoothing": 0.05},
        "optimizer": {"type": "adam", "lr": 0.003, "groups": [{"params": "*.bias", "weight_decay": 0.0}]},
        "schedule": {"type": "cosine", "t_max": epochs, "per": "epoch"},
        "clip": {"max_norm": 5.0},
        "regularizers": [{"type": "l2", "lambda": 0.0001}],
        "batching": batching,
        "train": {"epochs": epochs, "early_stopping": {"monitor": "val_loss", "patience": 50, "restore_best_weights": true}},
        "output": {"checkpoint_every": 1, "plots": true}
    })
}

/// Trains the 3-epoch small pipeline (mini-batches of 64) into `dir/run`, quietly.
fn small_run(dir: &Path) -> (PathBuf, std::process::Output) {
    let pipeline = write(
        dir,
        "p.json",
        &small_pipeline(3, json!({"type": "mini_batch", "batch_size": 64})),
    );
    let run = dir.join("run");
    let out = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    (run, out)
}

#[test]
fn a_small_run_writes_the_whole_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (run, out) = small_run(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("run folder: {}", run.display())
    );
    for file in [
        "pipeline.json",
        "metrics.csv",
        "metrics.jsonl",
        "loss.svg",
        "loss.png",
        "accuracy.svg",
        "accuracy.png",
        "report.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    for cp in ["last", "best"] {
        for file in [
            "model.safetensors",
            "optimizer.safetensors",
            "preprocess.safetensors",
            "state.json",
        ] {
            assert!(
                run.join("checkpoints").join(cp).join(file).is_file(),
                "{cp}/{file} missing"
            );
        }
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    for key in [
        "test_accuracy",
        "test_loss",
        "best_epoch",
        "epochs_run",
        "stopped_because",
        "wall_seconds",
        "samples_per_second",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(report["epochs_run"], 3);
    assert!(report["test_accuracy"].as_f64().unwrap() > 0.8, "{report}");
    let resolved: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pipeline.json")).unwrap()).unwrap();
    assert_eq!(resolved["train"]["accumulate"], 1, "defaults are filled in");
    assert_eq!(metrics_without_time(&run).len(), 4);
    // A second run into the same folder is refused rather than mixing two runs.
    let pipeline = dir.path().join("p.json");
    let again = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn same_seed_gives_bit_identical_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "p.json",
        &small_pipeline(2, json!({"type": "mini_batch", "batch_size": 32})),
    );
    let runs: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("run{i}"))).collect();
    for run in &runs {
        let out = gradus(&[
            "run",
            pipeline.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        metrics_without_time(&runs[0]),
        metrics_without_time(&runs[1])
    );
    let model = |r: &Path| std::fs::read(r.join("checkpoints/last/model.safetensors")).unwrap();
    assert_eq!(model(&runs[0]), model(&runs[1]));
    let other = dir.path().join("other-seed");
    let out = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "--quiet",
        "--seed",
        "6",
    ]);
    assert!(out.status.success());
    assert_ne!(metrics_without_time(&runs[0]), metrics_without_time(&other));
}

#[test]
fn a_run_killed_mid_way_resumes_to_bit_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    // Small batches make epochs long enough to kill the process between two of them.
    let pipeline = write(
        dir.path(),
        "p.json",
        &small_pipeline(
            6,
            json!({"type": "mini_batch", "batch_size": 4, "drop_last": true}),
        ),
    );
    let whole = dir.path().join("whole");
    let out = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        whole.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let killed = dir.path().join("killed");
    run_and_kill_after_first_checkpoint(&pipeline, &killed);

    let out = gradus(&["resume", killed.to_str().unwrap(), "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(metrics_without_time(&whole), metrics_without_time(&killed));
    for file in [
        "checkpoints/last/model.safetensors",
        "checkpoints/last/optimizer.safetensors",
        "checkpoints/best/model.safetensors",
    ] {
        let load = |r: &Path| {
            gradus_core::StateDict::load(r.join(file), &candle_core::Device::Cpu).unwrap()
        };
        let (a, b) = (load(&whole), load(&killed));
        let differing: Vec<&str> = a
            .iter()
            .filter(|(name, t)| {
                let other = b.get(name).unwrap();
                let bytes = |t: &candle_core::Tensor| {
                    t.flatten_all()
                        .unwrap()
                        .to_dtype(candle_core::DType::F64)
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                };
                bytes(t)
                    .iter()
                    .map(|v| v.to_bits())
                    .ne(bytes(other).iter().map(|v| v.to_bits()))
            })
            .map(|(name, _)| name)
            .collect();
        assert!(differing.is_empty(), "{file}: {differing:?}");
    }
    let test_acc = |r: &Path| -> Value {
        serde_json::from_str::<Value>(&std::fs::read_to_string(r.join("report.json")).unwrap())
            .unwrap()["test_accuracy"]
            .clone()
    };
    assert_eq!(test_acc(&whole), test_acc(&killed));
}

fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        PathBuf::from(EXAMPLES),
        PathBuf::from(EXAMPLES).join("optimizers"),
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_pipeline_validates() {
    let files = example_files();
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let out = gradus(&["validate", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_pipelines_exit_with_code_2_and_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let base = small_pipeline(1, json!({"type": "mini_batch", "batch_size": 32}));
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "unknown type",
            Box::new(|p| p["optimizer"]["type"] = json!("adamm")),
            "optimizer.type",
        ),
        (
            "unknown field",
            Box::new(|p| p["optimizer"]["lrr"] = json!(0.1)),
            "did you mean `lr`?",
        ),
        (
            "unknown top-level field",
            Box::new(|p| p["optimiser"] = json!({})),
            "did you mean `optimizer`?",
        ),
        (
            "wrong value type",
            Box::new(|p| p["train"]["epochs"] = json!("ten")),
            "train.epochs",
        ),
        (
            "wrong nested type",
            Box::new(|p| p["model"]["layers"][0]["out"] = json!("wide")),
            "model.layers[0]",
        ),
        (
            "shape mismatch",
            Box::new(|p| {
                p["model"]["layers"][0] =
                    json!({"type": "conv2d", "out_channels": 4, "kernel_size": 3})
            }),
            "model.layers[0]",
        ),
        (
            "model input mismatch",
            Box::new(|p| p["model"]["input"] = json!([1, 8, 8])),
            "model.input",
        ),
        (
            "empty split",
            Box::new(|p| p["data"]["split"] = json!({"val": 0.6, "test": 0.5})),
            "data.split",
        ),
        (
            "missing data file",
            Box::new(|p| p["data"]["source"] = json!({"type": "csv", "path": "/no/such/data.csv"})),
            "/no/such/data.csv",
        ),
        (
            "bad schedule step",
            Box::new(|p| p["schedule"]["per"] = json!("batch")),
            "schedule.per",
        ),
        (
            "unknown metric",
            Box::new(|p| p["train"]["early_stopping"]["monitor"] = json!("val_los")),
            "did you mean `val_loss`?",
        ),
    ];
    for (what, mutate, needle) in cases {
        let mut p = base.clone();
        mutate(&mut p);
        let path = write(dir.path(), "bad.json", &p);
        for command in ["validate", "run"] {
            let mut args = vec![command, path.to_str().unwrap()];
            let out_dir = dir.path().join(format!("out-{}", what.replace(' ', "-")));
            if command == "run" {
                args.extend(["--out", out_dir.to_str().unwrap(), "--quiet"]);
            }
            let out = gradus(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} ({command}): {stderr}");
            assert!(
                stderr.contains(needle),
                "{what} ({command}): `{needle}` not in {stderr}"
            );
            assert!(
                !out_dir.join("pipeline.json").exists(),
                "{what}: a bad pipeline must not create a run"
            );
        }
    }
    std::fs::write(dir.path().join("broken.json"), "{\"seed\": 1,").unwrap();
    let out = gradus(&["validate", dir.path().join("broken.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}

#[test]
fn schema_lists_registered_components() {
    let out = gradus(&["schema"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |def: &str| -> Vec<String> {
        schema["$defs"][def]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["properties"]["type"]["const"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert!(names("optimizer").contains(&"nadam".to_string()));
    assert!(names("layer").contains(&"batch_norm".to_string()));
    assert!(names("layer").contains(&"conv2d".to_string()));
    assert!(names("schedule").contains(&"one_cycle".to_string()));
    // Losses come from the registry too, with their typed defaults.
    assert_eq!(names("loss"), ["bce_with_logits", "cross_entropy", "mse"]);
    assert_eq!(schema["properties"]["loss"]["$ref"], "#/$defs/loss");
    assert_eq!(
        schema["$defs"]["loss"]["oneOf"][1]["properties"]["label_smoothing"]["default"],
        0.0
    );
    assert_eq!(
        schema["$defs"]["optimizer"]["oneOf"][0]["additionalProperties"],
        false
    );
}

#[test]
fn compare_overlays_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for optimizer in ["sgd", "adam"] {
        let mut p = small_pipeline(2, json!({"type": "mini_batch", "batch_size": 64}));
        p["optimizer"] = json!({"type": optimizer, "lr": 0.01});
        let path = write(dir.path(), &format!("{optimizer}.json"), &p);
        let run = dir.path().join(optimizer);
        assert!(gradus(&[
            "run",
            path.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet"
        ])
        .status
        .success());
        runs.push(run);
    }
    let out_dir = dir.path().join("cmp");
    let out = gradus(&[
        "compare",
        runs[0].to_str().unwrap(),
        runs[1].to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("sgd") && table.contains("adam"), "{table}");
    assert!(out_dir.join("compare_loss.png").is_file());

    // Pipelines instead of run folders are trained first.
    let mut p = small_pipeline(1, json!({"type": "mini_batch", "batch_size": 64}));
    p["optimizer"] = json!({"type": "rmsprop", "lr": 0.001});
    p["output"]["dir"] = json!(dir.path().join("rmsprop-run").to_str().unwrap());
    let pipeline = write(dir.path(), "rmsprop.json", &p);
    let out = gradus(&[
        "compare",
        runs[0].to_str().unwrap(),
        pipeline.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rmsprop"));
    assert!(dir.path().join("rmsprop-run/report.json").is_file());
}

#[test]
fn the_run_report_page_is_self_contained_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (run, out) = small_run(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // Every plot inline, nothing fetched: no scripts, no external references.
    for stem in ["loss", "accuracy", "lr", "grad_norm"] {
        assert!(html.contains(&format!("id=\"plot-{stem}\"><svg")), "{stem}");
        assert!(run.join(format!("{stem}.png")).exists(), "{stem}.png");
    }
    for forbidden in ["<script", " src=", " href=", "<link"] {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    // One table row per epoch (plus the header), the model summary and the resolved pipeline.
    let table = &html[html.find("id=\"epochs\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), 4);
    assert!(html.contains("trainable parameters"));
    assert!(html.contains("&quot;optimizer&quot;") || html.contains("\"optimizer\""));
    assert!(html.contains("test_accuracy"));

    let compared = dir.path().join("cmp");
    let out = gradus(&[
        "compare",
        run.to_str().unwrap(),
        "--out",
        compared.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(compared.join("compare.html")).unwrap();
    assert!(page.contains("id=\"plot-compare_loss\"><svg"));
    assert!(page.contains("id=\"runs\""));
    assert!(!page.contains("<script") && !page.contains(" src="));
}
