//! `cargo xtask bench [--quick]`: runs the optimizer benchmarks (release profile) and prints
//! the summary they write to `target/gradus-bench/summary.md` and `summary.json`, then the
//! augmentation pipeline bench (images/s in criterion's throughput line).

use std::path::Path;

use xshell::{cmd, Shell};

/// Runs `benches/benches/alloc.rs` (mimalloc MLP step, allocation counts; writes
/// `alloc.json`) then `benches/benches/optim.rs` under criterion, which folds `alloc.json` into
/// the summary; `quick` shortens every measurement.
pub fn run(sh: &Shell, root: &Path, quick: bool) -> Result<(), String> {
    let _quick = quick.then(|| sh.push_env("GRADUS_BENCH_QUICK", "1"));
    cmd!(sh, "cargo bench -p gradus-benches --bench alloc")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo bench -p gradus-benches --bench optim")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "cargo bench -p gradus-benches --bench augment")
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
    Ok(())
}
