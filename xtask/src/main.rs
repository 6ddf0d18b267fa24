//! `cargo xtask`: the project's own automation (ci, tidy, bench, package, man), echoing every
//! command it runs.

mod bench;
mod package;
mod pages;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xshell::{cmd, Shell};

/// The test command README.md gives; CI runs exactly this.
const TEST_COMMAND: &[&str] = &["test", "--workspace", "--locked"];

fn usage() -> &'static str {
    "usage: cargo xtask <ci | tidy | bench [--quick] [--against-torch PYTHON] | package | man [DIR] | msrv | fuzz N [--seed S] | pages>
  ci      fmt check, clippy -D warnings, package (no verify), tidy, the README test command
  tidy    dependency direction, `//!` headers, crate metadata, includes, locked MSRV
  bench   optimizer benchmarks -> target/gradus-bench/summary.{md,json}, training speed ->
          train.{md,json} (--quick: short run; --against-torch PYTHON: the PyTorch twins of
          benches/torch/ too, ratios -> train-vs-torch.md)
  package every publishable crate packaged and verified (built from its .crate), then
          `cargo publish --dry-run`
  man     man pages of `gradus` (gradus.1, gradus-run.1, ...) -> DIR (default target/man)
  fuzz    N mutated pipelines through the release `gradus validate` (and `run` on what it
          accepts) -> target/gradus-fuzz/report.json; fails on any panic, abort or timeout
  msrv    `cargo check` of the workspace with the declared minimum toolchain (rustup)
  pages   report.html and compare.html checked in headless Chromium, screenshots -> docs/images/"
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn ci(sh: &Shell) -> Result<(), String> {
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --locked -- -D warnings"
    )
    .run()
    .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo package --workspace --no-verify --locked")
        .run()
        .map_err(|e| e.to_string())?;
    tidy_report()?;
    // The seed `.ci/run` pins, unless one is set: CI's property-test cases are reproducible.
    let seed = std::env::var("PROPTEST_RNG_SEED").unwrap_or_else(|_| "11".to_string());
    let _seed = sh.push_env("PROPTEST_RNG_SEED", seed);
    let args = TEST_COMMAND;
    cmd!(sh, "cargo {args...}").run().map_err(|e| e.to_string())
}

/// `cargo xtask fuzz N [--seed S]`: the pipeline fuzzer (`crates/gradus-runner/examples/fuzz.rs`)
/// on the release binary, N cases, also training what validate accepts.
fn fuzz(sh: &Shell, args: &[String]) -> Result<(), String> {
    let cases = args
        .first()
        .filter(|n| n.parse::<usize>().is_ok())
        .ok_or_else(|| format!("fuzz needs a case count\n{}", usage()))?;
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "1".to_string());
    cmd!(
        sh,
        "cargo build --release --locked -p gradus-runner --bin gradus --example fuzz"
    )
    .run()
    .map_err(|e| e.to_string())?;
    cmd!(
        sh,
        "target/release/examples/fuzz {cases} --seed {seed} --run --exe target/release/gradus"
    )
    .run()
    .map_err(|e| e.to_string())
}

fn tidy_report() -> Result<(), String> {
    let problems = tidy::check_all(&root());
    if problems.is_empty() {
        println!("tidy: ok");
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        ))
    }
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = Shell::new().map_err(|e| e.to_string()).and_then(|sh| {
        sh.change_dir(root());
        match task.as_deref() {
            Some("ci") => ci(&sh),
            Some("tidy") => tidy_report(),
            Some("pages") => pages::run(&sh, &root()),
            Some("fuzz") => fuzz(&sh, &std::env::args().skip(2).collect::<Vec<_>>()),
            Some("bench") => bench::run(&sh, &root(), &bench::Options::from_args()),
            Some("package") => package::package(&sh, &root()),
            Some("man") => package::man(&sh, &root(), std::env::args().nth(2)),
            Some("msrv") => package::msrv(&sh, &root()),
            _ => Err(usage().to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
