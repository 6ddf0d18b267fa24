//! What a hostile or careless user does to a run folder and a pipeline: tampered, deleted or
//! mixed-in checkpoint files, duplicate keys, run names that leave `runs/`, two writers at once.

mod common;
use common::{gradus, text, write};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn pipeline(seed: u64, epochs: usize, batch_size: usize) -> Value {
    json!({
        "name": "hostile",
        "seed": seed,
        "data": {"source": {"type": "digits", "layout": "flat"},
                 "split": {"val": 0.2, "test": 0.2, "stratify": true},
                 "preprocess": [{"type": "standardize"}]},
        "model": {"layers": [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 10}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam", "lr": 0.003},
        "batching": {"type": "mini_batch", "batch_size": batch_size},
        "train": {"epochs": epochs},
        "output": {"checkpoint_every": 1, "plots": false}
    })
}

/// A finished 2-epoch run of `seed` at `dir/name`.
fn finished_run(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let p = write(dir, &format!("{name}.json"), &pipeline(seed, 2, 128));
    let run = dir.join(name);
    let out = gradus(&[
        "run",
        p.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    run
}

/// `gradus resume` on `run` must be refused as bad input with a message containing `needle`.
fn resume_refused(run: &Path, needle: &str) {
    let out = gradus(&["resume", run.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
}

#[test]
fn tampered_deleted_and_foreign_checkpoint_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path(), "a", 1);
    let last = run.join("checkpoints/last");
    let state_path = last.join("state.json");
    let original = std::fs::read_to_string(&state_path).unwrap();

    // An edited epoch count: the checksum no longer matches.
    let mut state: Value = serde_json::from_str(&original).unwrap();
    state["state"]["epochs_done"] = json!(1_000_000_000);
    std::fs::write(&state_path, serde_json::to_string(&state).unwrap()).unwrap();
    resume_refused(&run, "checksum mismatch");
    std::fs::write(&state_path, &original).unwrap();

    // A deleted state.json: an error, never a silent restart over the checkpoint.
    std::fs::remove_file(&state_path).unwrap();
    resume_refused(&run, "no state.json");
    std::fs::write(&state_path, &original).unwrap();

    // The safetensors metadata key renamed: the checksum is mandatory.
    let model = last.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    let key = b"\"gradus\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("metadata key");
    let mut renamed = bytes.clone();
    renamed[at + 6] = b'x'; // "gradux": same length, so the header stays valid
    std::fs::write(&model, &renamed).unwrap();
    resume_refused(&run, "no Gradus checksum");
    std::fs::write(&model, &bytes).unwrap();

    // Weights copied in from a run of another seed.
    let other = finished_run(dir.path(), "b", 2);
    std::fs::copy(other.join("checkpoints/last/model.safetensors"), &model).unwrap();
    resume_refused(&run, "another run");
    std::fs::write(&model, &bytes).unwrap();

    // Restored, it resumes (nothing left to train).
    let out = gradus(&["resume", run.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn duplicate_keys_and_run_names_outside_runs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&pipeline(1, 1, 64)).unwrap();
    let duplicated = good.replacen(
        "\"optimizer\":{",
        "\"optimizer\":{\"type\":\"nonexistent\",",
        1,
    );
    assert_ne!(duplicated, good);
    let path = dir.path().join("dup.json");
    std::fs::write(&path, duplicated).unwrap();
    let out = gradus(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("duplicate key `type` at `optimizer.type`"),
        "{}",
        text(&out.stderr)
    );
    for name in ["../../x", "a/b", "..", ""] {
        let mut p = pipeline(1, 1, 64);
        p["name"] = json!(name);
        let path = write(dir.path(), "named.json", &p);
        let out = gradus(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(text(&out.stderr).contains("name"), "{}", text(&out.stderr));
    }
    // A huge offending value is elided in the message.
    let mut p = pipeline(1, 1, 64);
    p["optimizer"]["lr"] = json!("x".repeat(100_000));
    let path = write(dir.path(), "long.json", &p);
    let out = gradus(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.len() < 2_000,
        "{} bytes of error",
        out.stderr.len()
    );
    assert!(
        text(&out.stderr).contains("more characters"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_run_folder_has_one_writer_and_a_killed_writer_leaves_no_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.json", &pipeline(1, 400, 8));
    let run = dir.path().join("run");
    let mut first = Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args([
            "run",
            p.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let lock = run.join(".lock");
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = first.id().to_string();
    for args in [
        vec![
            "run",
            p.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ],
        vec!["resume", run.to_str().unwrap(), "--quiet"],
    ] {
        // `resume` needs the pipeline.json the first run writes right after taking the lock.
        while !run.join("pipeline.json").exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = gradus(&args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("another gradus process") && err.contains(&pid),
            "{err}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // SIGKILL released the OS lock: the folder can be taken again at once.
    let taken = gradus_runner::run::lock_run_folder(&run).expect("no stale lock");
    drop(taken);
}

/// Starts a long run into `run`, waits until `ready(run)`, sends `signal` and returns the exit
/// code and stderr.
fn signalled(
    dir: &Path,
    checkpoint_every: usize,
    signal: &str,
    ready: impl Fn(&Path) -> bool,
) -> (Option<i32>, String) {
    let mut p = pipeline(1, 400, 8);
    p["output"]["checkpoint_every"] = json!(checkpoint_every);
    let path = write(dir, &format!("{signal}.json"), &p);
    let run = dir.join(format!("run-{signal}"));
    let child = Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready(&run) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[cfg(unix)]
#[test]
fn sigterm_and_sigint_stop_after_a_batch_and_say_which_checkpoint_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    // SIGTERM once an epoch is checkpointed: exit 143, the checkpoint named by its epoch.
    let (code, err) = signalled(dir.path(), 1, "TERM", |run| {
        run.join("checkpoints/last/state.json").exists()
    });
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("checkpoints/last holds epoch"), "{err}");
    // SIGINT before any checkpoint (only at the end): exit 130, and no checkpoint is claimed.
    let (code, err) = signalled(dir.path(), 1000, "INT", |run| {
        run.join("pipeline.json").exists()
    });
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("before the first checkpoint"), "{err}");
    assert!(!err.contains("holds epoch"), "{err}");
}

#[test]
fn sizes_from_the_pipeline_are_bounded_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for out in [json!(9223372036854775808u64), json!(4294967296u64)] {
        let mut p = pipeline(1, 1, 64);
        p["model"]["layers"][0]["out"] = out;
        cases.push((p, "model.layers[0]"));
    }
    let mut p = pipeline(1, 1, 64);
    p["model"]["layers"][0] = json!({"type": "drop_connect", "out_features": 100_000_000u64});
    cases.push((p, "model.layers[0]"));
    let mut p = pipeline(1, 1, 64);
    p["data"]["source"] = json!({"type": "synthetic", "kind": "blobs", "n": 10_000_000_000u64});
    p["data"].as_object_mut().unwrap().remove("preprocess");
    cases.push((p, "data.source.n"));
    for (i, (p, at)) in cases.into_iter().enumerate() {
        let path = write(dir.path(), &format!("big{i}.json"), &p);
        let started = Instant::now();
        let out = gradus(&["validate", path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(at) && err.contains("GRADUS_MAX_TENSOR_ELEMENTS"),
            "case {i}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "case {i} took {:?}",
            started.elapsed()
        );
    }
}

#[cfg(unix)]
#[test]
fn a_second_sigint_ends_the_run_at_once() {
    // One full batch through two wide layers takes seconds, so both signals land inside the first
    // batch: the first asks to stop after it, the second ends the process there and then
    // (exit 130, without the first signal's "stopped after a batch" report).
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(1, 50, 8);
    p["model"]["layers"] = json!([
        {"type": "linear", "out": 4096}, {"type": "relu"},
        {"type": "linear", "out": 4096}, {"type": "relu"},
        {"type": "linear", "out": 10}
    ]);
    p["batching"] = json!({"type": "full"});
    let path = write(dir.path(), "wide.json", &p);
    let run = dir.path().join("run-wide");
    let child = Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !run.join("pipeline.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let kill = || {
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success())
    };
    kill();
    // Two signals of one kind that are both pending are delivered as one: let the first land.
    std::thread::sleep(Duration::from_millis(300));
    kill();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        !err.contains("checkpoint"),
        "the run stopped gracefully: {err}"
    );
    assert!(!run.join("report.json").exists());
}
