//! What the end-to-end tests of the `gradus` binary share: running it, writing a pipeline file,
//! reading its output as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
