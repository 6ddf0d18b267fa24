//! The pipeline fuzzer's command line (`cargo xtask fuzz N` builds and runs it): mutated
//! example pipelines through a `gradus` binary, the counts of panics, aborts and timeouts as a
//! table and as JSON. See `gradus_runner::fuzz`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gradus_runner::fuzz::{load_bases, run, Campaign};

/// Fuzz `gradus validate` (and `gradus run` on what it accepts) with mutated pipelines.
#[derive(Parser)]
struct Args {
    /// Mutated pipelines to try.
    cases: usize,
    /// Seed of the mutations (a case depends on the seed and its number only).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The `gradus` binary under test.
    #[arg(long)]
    exe: PathBuf,
    /// Folder of the pipelines to mutate.
    #[arg(long, default_value = "examples/pipelines")]
    bases: PathBuf,
    /// Child processes at a time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Seconds one child may run.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Address-space limit of one child, in GiB.
    #[arg(long, default_value_t = 4)]
    memory_gib: u64,
    /// Also train (at most 2 epochs) what validate accepts.
    #[arg(long)]
    run: bool,
    /// Where to write the JSON report (default: target/gradus-fuzz/report.json).
    #[arg(long, default_value = "target/gradus-fuzz/report.json")]
    report: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bases = match load_bases(&args.bases) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return fail(format!("no pipeline under {}", args.bases.display())),
        Err(e) => return fail(format!("{}: {e}", args.bases.display())),
    };
    let work_dir = args
        .report
        .parent()
        .map(|p| p.join("cases"))
        .unwrap_or_else(|| PathBuf::from("fuzz-cases"));
    let campaign = Campaign {
        exe: args.exe,
        bases,
        cases: args.cases,
        seed: args.seed,
        timeout: Duration::from_secs(args.timeout),
        memory_limit: args.memory_gib << 30,
        jobs: args.jobs,
        run_valid: args.run,
        run_epochs: 2,
        work_dir,
    };
    let tally = match run(&campaign) {
        Ok(t) => t,
        Err(e) => return fail(format!("fuzzing failed: {e}")),
    };
    println!(
        "{} cases in {:.0} s (seed {}): {} valid, {} rejected, {} trained; panics {}, aborts {}, \
         timeouts {}, unexpected exits {}, run disagrees {} (runs at the time limit: {})",
        tally.cases,
        tally.seconds,
        args.seed,
        tally.valid,
        tally.rejected,
        tally.runs,
        tally.panics,
        tally.aborts,
        tally.timeouts,
        tally.unexpected_exits,
        tally.run_disagrees,
        tally.run_timeouts
    );
    for f in &tally.failures {
        println!(
            "case {} {:?}: {} ({})\n  {}",
            f.case,
            f.outcome,
            f.mutations.join("; "),
            f.file.display(),
            f.stderr_tail.trim().lines().last().unwrap_or("")
        );
    }
    if let Some(parent) = args.report.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let json = serde_json::to_string_pretty(&tally).unwrap_or_default();
    if let Err(e) = std::fs::write(&args.report, json) {
        return fail(format!("{}: {e}", args.report.display()));
    }
    println!("report: {}", args.report.display());
    if tally.failure_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}
