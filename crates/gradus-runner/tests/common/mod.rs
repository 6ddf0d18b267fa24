//! What the end-to-end tests of the `gradus` binary share: running it, writing a pipeline file,
//! reading its output as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs the `gradus` binary with `args` and waits for it.
pub fn gradus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args(args)
        .output()
        .unwrap()
}

/// Writes `pipeline` as `dir/name` (pretty JSON) and returns its path.
pub fn write(dir: &Path, name: &str, pipeline: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(pipeline).unwrap()).unwrap();
    path
}

/// Process output as text.
#[allow(dead_code)] // not every test file reads output as text
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `gradus run PIPELINE --out RUN --quiet`, kills it (SIGKILL) as soon as its first
/// checkpoint is written, and checks that it had not finished: the run folder is then a
/// killed run for `gradus resume`.
#[allow(dead_code)] // not every test file kills a run
pub fn run_and_kill_after_first_checkpoint(pipeline: &Path, run: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = run.join("checkpoints/last/state.json");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !state.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );
    assert!(!run.join("report.json").exists());
}

/// The bits of every element of `t` (widened to f64, exact for every float dtype).
#[allow(dead_code)] // not every test file compares tensors
pub fn bits(t: &candle_core::Tensor) -> Vec<u64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .into_iter()
        .map(f64::to_bits)
        .collect()
}

/// A run's `metrics.csv` without its last column (the wall-clock seconds), line by line.
#[allow(dead_code)] // not every test file compares metrics
pub fn metrics_without_time(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}
