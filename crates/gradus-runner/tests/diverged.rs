//! A run whose loss becomes infinite or NaN stays readable: its metrics and checkpoints
//! round-trip every float, `compare` and `resume` work on its folder, and the report and the
//! terminal say that it diverged; with `terminate_on_non_finite` it stops there (exit code 3).

mod common;
use common::{gradus, text, write};

use serde_json::{json, Value};

/// The linear-regression example with a learning rate that makes SGD diverge.
fn diverging(non_finite: &str, terminate: bool, epochs: usize) -> Value {
    json!({
        "name": "diverging",
        "seed": 3,
        "data": {"source": {"type": "synthetic", "kind": "linear", "n": 400, "features": 5, "noise": 0.1, "seed": 3},
                 "split": {"val": 0.2, "test": 0.2}},
        "model": {"layers": [{"type": "linear", "out": 1}]},
        "loss": {"type": "mse"},
        "optimizer": {"type": "sgd", "lr": 5.0},
        "batching": {"type": "full"},
        "train": {"epochs": epochs, "non_finite": non_finite, "terminate_on_non_finite": terminate},
        "output": {"checkpoint_every": 5}
    })
}

#[test]
fn a_diverged_run_folder_is_readable_by_compare_and_resume() {
    for policy in ["skip", "rollback"] {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = write(dir.path(), "p.json", &diverging(policy, false, 40));
        let run = dir.path().join("run");
        let out = gradus(&[
            "run",
            pipeline.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(out.status.success(), "{policy}: {}", text(&out.stderr));
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap())
                .unwrap();
        let first = report["non_finite_loss_epoch"]
            .as_u64()
            .expect("divergence recorded");
        assert!(
            report["stopped_because"]
                .as_str()
                .unwrap()
                .contains("non-finite"),
            "{report}"
        );
        assert!(
            text(&out.stderr).contains("non-finite"),
            "{}",
            text(&out.stderr)
        );
        // The non-finite values are in the files, readable.
        let jsonl = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let line = jsonl.lines().nth(first as usize - 1).unwrap();
        let record: Value = serde_json::from_str(line).unwrap();
        assert!(
            ["inf", "nan"].contains(&record["train_loss"].as_str().unwrap_or("finite")),
            "{line}"
        );
        let cmp = dir.path().join("cmp");
        let out = gradus(&[
            "compare",
            run.to_str().unwrap(),
            "--out",
            cmp.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{policy}: compare: {}",
            text(&out.stderr)
        );
        // The run completed: resume reads the checkpoint and has nothing left to do.
        let out = gradus(&["resume", run.to_str().unwrap(), "--quiet"]);
        assert!(
            out.status.success(),
            "{policy}: resume: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn an_interrupted_diverged_run_resumes_from_its_checkpoint() {
    // 10 epochs with checkpoints every 5: state.json of epoch 5 (its best value non-finite or
    // not) and metrics with non-finite rows must load.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let pipeline = write(dir.path(), "p.json", &diverging("skip", false, 10));
    let out = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state = std::fs::read_to_string(run.join("checkpoints/last/state.json")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["state"]["epochs_done"], 10);
    assert_eq!(state["format"], "gradus-training-state-v1");
    let out = gradus(&["resume", run.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn terminate_on_non_finite_stops_at_the_first_non_finite_loss_with_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(dir.path(), "p.json", &diverging("skip", true, 200));
    let run = dir.path().join("run");
    let out = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("run folder:"),
        "{}",
        text(&out.stdout)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["terminated_on_non_finite"], true);
    let because = report["stopped_because"].as_str().unwrap();
    assert!(because.contains("non-finite loss"), "{because}");
    assert!(report["epochs_run"].as_u64().unwrap() < 200);
}
