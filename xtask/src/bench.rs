//! `cargo xtask bench [--quick]`: runs the optimizer benchmarks (release profile) and prints
//! the summary they write to `target/gradus-bench/summary.md` and `summary.json`, then the
//! augmentation pipeline bench (images/s in criterion's throughput line), then the training
//! bench (`train.md`: samples/s of the digits MLP and CNN pipelines' epochs, per-layer forward
//! and backward times of the CNN).

use std::path::Path;

use xshell::{cmd, Shell};

/// What `cargo xtask bench` was asked for.
#[derive(Debug, Default)]
pub struct Options {
    /// `--quick`: shorter measurements.
    pub quick: bool,
    /// `--against-torch PYTHON`: an interpreter with PyTorch for the twins in `benches/torch/`.
    pub against_torch: Option<String>,
}

impl Options {
    /// From the process arguments.
    pub fn from_args() -> Options {
        let args: Vec<String> = std::env::args().collect();
        let against_torch = args
            .iter()
            .position(|a| a == "--against-torch")
            .and_then(|i| args.get(i + 1).cloned());
        Options {
            quick: args.iter().any(|a| a == "--quick"),
            against_torch,
        }
    }
}

/// Runs `benches/benches/alloc.rs` (mimalloc MLP step, allocation counts; writes
/// `alloc.json`) then `benches/benches/optim.rs` under criterion, which folds `alloc.json` into
/// the summary, the augmentation and training benches, and with `--against-torch` the PyTorch
/// twins of the training bench's pipelines; `--quick` shortens every measurement.
pub fn run(sh: &Shell, root: &Path, options: &Options) -> Result<(), String> {
    let _quick = options
        .quick
        .then(|| sh.push_env("GRADUS_BENCH_QUICK", "1"));
    cmd!(sh, "cargo bench -p gradus-benches --bench alloc")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo bench -p gradus-benches --bench optim")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo bench -p gradus-benches --bench augment")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo bench -p gradus-benches --bench matrix")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo bench -p gradus-benches --bench train")
        .run()
        .map_err(|e| e.to_string())?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let summary = target.join("gradus-bench").join("summary.md");
    let text = std::fs::read_to_string(&summary)
        .map_err(|e| format!("the benchmarks wrote no {}: {e}", summary.display()))?;
    println!("{text}");
    println!("written: {} and summary.json", summary.display());
    let training = target.join("gradus-bench").join("train.md");
    let text = std::fs::read_to_string(&training)
        .map_err(|e| format!("the training bench wrote no {}: {e}", training.display()))?;
    println!("{text}");
    println!("written: {} and train.json", training.display());
    if let Some(python) = &options.against_torch {
        let table = against_torch(
            sh,
            root,
            &target.join("gradus-bench"),
            python,
            options.quick,
        )?;
        println!("{table}");
    }
    Ok(())
}

/// Runs `benches/torch/digits_twins.py` with `python` right after the training bench and writes
/// `train-vs-torch.md`: each pipeline's samples/s in gradus (train.json) and in PyTorch.
fn against_torch(
    sh: &Shell,
    root: &Path,
    out: &Path,
    python: &str,
    quick: bool,
) -> Result<String, String> {
    let script = root.join("benches/torch/digits_twins.py");
    let epochs = if quick { "5" } else { "20" };
    let output = cmd!(sh, "{python} {script} --epochs {epochs}")
        .read()
        .map_err(|e| format!("the PyTorch twins failed ({python} needs torch): {e}"))?;
    let gradus: serde_json::Value = std::fs::read_to_string(out.join("train.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or("the training bench wrote no train.json")?;
    let mut table = String::from(
        "| pipeline | gradus samples/s | PyTorch samples/s | gradus / PyTorch | PyTorch test accuracy |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for line in output.lines().filter(|l| l.starts_with('{')) {
        let torch: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let name = torch["pipeline"].as_str().unwrap_or("?");
        let ours = gradus["pipelines"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["pipeline"] == name))
            .and_then(|r| r["samples_per_second"].as_f64())
            .unwrap_or(f64::NAN);
        let theirs = torch["samples_per_second"].as_f64().unwrap_or(f64::NAN);
        table.push_str(&format!(
            "| {name} | {ours:.0} | {theirs:.0} | {:.2}x | {:.3} |\n",
            ours / theirs,
            torch["test_accuracy"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    std::fs::write(out.join("train-vs-torch.md"), &table).map_err(|e| e.to_string())?;
    Ok(table)
}
