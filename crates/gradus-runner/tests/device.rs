//! `--device` and the pipeline's `"device"`: the CPU trains as before, a GPU this binary was not
//! built for is exit code 2 naming the cargo feature (and leaves no run folder), the flag wins
//! over the field, and a run resumes on the device the flag names.

mod common;
use common::{gradus, metrics_without_time, text, write};

use serde_json::{json, Value};

fn tiny(device: Option<&str>) -> Value {
    let mut p = json!({
        "name": "tiny",
        "seed": 3,
        "data": {"source": {"type": "digits", "layout": "flat"},
                 "split": {"val": 0.2, "test": 0.2},
                 "preprocess": [{"type": "standardize"}]},
        "model": {"layers": [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "batching": {"type": "mini_batch", "batch_size": 128},
        "train": {"epochs": 2},
        "output": {"plots": false}
    });
    if let Some(device) = device {
        p["device"] = json!(device);
    }
    p
}

#[test]
fn a_gpu_the_binary_lacks_is_exit_2_naming_the_feature_and_creates_nothing() {
    if cfg!(feature = "cuda") {
        return; // a CUDA build opens the GPU instead: nothing to check here
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", &tiny(Some("cuda:0")));
    let run = dir.path().join("run");
    for args in [
        vec!["validate", file.to_str().unwrap()],
        vec![
            "run",
            file.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
    ] {
        let out = gradus(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("at device:"), "{err}");
        assert!(err.contains("`cuda` feature"), "{err}");
        assert!(err.contains("--features cuda"), "{err}");
    }
    assert!(!run.exists(), "run created its folder before failing");
}

#[test]
fn the_flag_wins_over_the_field_and_bad_names_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    // The field asks for a GPU; `--device cpu` wins, so it validates.
    let file = write(dir.path(), "p.json", &tiny(Some("cuda")));
    let out = gradus(&["validate", file.to_str().unwrap(), "--device", "cpu"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A misspelt field names its path and the nearest device.
    let file = write(dir.path(), "q.json", &tiny(Some("cuba")));
    let out = gradus(&["validate", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["error"]["path"], "device");
    let message = line["error"]["message"].as_str().unwrap();
    assert!(message.contains("did you mean `cuda`"), "{message}");
    // A misspelt flag is clap's usage error, also exit 2.
    let out = gradus(&["validate", file.to_str().unwrap(), "--device", "gpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected cpu, cuda"));
}

#[test]
fn the_cpu_field_and_flag_train_the_same_run_and_resume_takes_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain.json", &tiny(None));
    let cpu = write(dir.path(), "cpu.json", &tiny(Some("cpu")));
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let out = gradus(&[
        "run",
        plain.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gradus(&[
        "run",
        cpu.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gradus(&[
        "run",
        plain.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
        "--device",
        "cpu",
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(metrics_without_time(&a), metrics_without_time(&b));
    assert_eq!(metrics_without_time(&a), metrics_without_time(&c));
    let resolved: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("pipeline.json")).unwrap()).unwrap();
    assert_eq!(resolved["device"], "cpu");
    // A finished run resumed with `--device cpu` keeps its identity: nothing is rejected.
    let out = gradus(&["resume", a.to_str().unwrap(), "--device", "cpu", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // And one asked to move to a GPU this binary lacks is bad input.
    if !cfg!(feature = "cuda") {
        let out = gradus(&["resume", a.to_str().unwrap(), "--device", "cuda"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    }
}
