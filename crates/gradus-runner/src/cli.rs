//! The `gradus` command line: argument parsing and dispatch.
//!
//! Exit codes: 0 success, 2 bad input (pipeline, data, case file, arguments), 1 failure while
//! running. Errors print their whole cause chain.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::DType;
use clap::{Parser, Subcommand, ValueEnum};

use crate::replay::{replay_file, UpdatePath};
use crate::run::Failure;

/// Gradus: optimizers, regularizers, initializers and training pipelines for Candle.
#[derive(Parser)]
#[command(name = "gradus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a pipeline (without one: the built-in digits MLP) into a run folder.
    Run {
        /// The pipeline JSON file.
        pipeline: Option<PathBuf>,
        /// Run folder (default: output.dir, else runs/<name>-<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the pipeline's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// One line per epoch instead of a progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Continue an interrupted run from its last checkpoint.
    Resume {
        /// The run folder.
        run_dir: PathBuf,
        /// One line per epoch instead of a progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Parse and build everything (data, model shapes, optimizer, ...) without training.
    Validate {
        /// The pipeline JSON file.
        pipeline: PathBuf,
    },
    /// Print a JSON Schema of the pipeline, generated from the registered components.
    Schema,
    /// Overlay the curves of several runs and tabulate their final metrics. A pipeline file
    /// given instead of a run folder is trained first (quietly, into its default run folder).
    Compare {
        /// Run folders or pipeline files.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to write compare_*.svg/png, compare.md and compare.json (default: the current folder).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// List every registered component with its summary and default configuration. KIND:
    /// optimizer, schedule, regularizer, initializer, layer, normalization, preprocessor,
    /// augmentation (image_augmentation, text_augmentation), data (data_source, batching).
    List {
        /// Only this kind.
        kind: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay an optimizer over a recorded gradient sequence (the golden-case format) and print
    /// {"params": [...per step...], "lr": [...]} as JSON.
    Replay {
        /// The case file: `optimizer`, optional `schedule` and `clip`, `params`, `grads`.
        case: PathBuf,
        /// Parameter dtype.
        #[arg(long, value_enum, default_value_t = Precision::F64)]
        dtype: Precision,
        /// Update implementation of the optimizer and the clipping (default: the `path` of the case's optimizer and clip configs, `auto` if absent).
        #[arg(long, value_enum)]
        path: Option<UpdatePath>,
    },
    /// Run optimizers on a small 2-D problem and draw them (paths, loss, steps, traces.json,
    /// summary.md): an experiment file, or a preset of the lecture's figures (`--preset all`:
    /// every preset, one subfolder each). See docs/lab.md.
    Lab {
        /// The experiment JSON file.
        experiment: Option<PathBuf>,
        /// A preset instead of a file: ill-conditioning, saddle, cliff, adaptive, batching,
        /// modern, or all.
        #[arg(long)]
        preset: Option<String>,
        /// Output folder (default: runs/lab/<experiment or preset>; runs/lab for `all`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// List the registered problems and the presets.
        #[arg(long)]
        list: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Precision {
    F32,
    F64,
}

fn console(quiet: bool) -> crate::train::Console {
    crate::train::Console { quiet, json: false }
}

fn interrupt_flag() -> crate::signals::Interrupt {
    crate::signals::Interrupt::from_signals()
}

/// The results of a run, or the exit-code-3 failure of one stopped at a non-finite loss.
fn outcome(dir: PathBuf, report: &crate::train::Report) -> Result<String, Failure> {
    let text = finished(dir, report);
    if report.terminated_on_non_finite {
        return Err(Failure::NonFiniteLoss(text));
    }
    Ok(text)
}

fn finished(dir: PathBuf, report: &crate::train::Report) -> String {
    let mut lines = Vec::new();
    if let Some(acc) = report.test_accuracy {
        lines.push(format!("test accuracy {acc:.4}"));
    }
    if let Some(loss) = report.test_loss {
        lines.push(format!("test loss {loss:.4}"));
    }
    lines.push(format!(
        "{} epochs ({}), {:.1} s, {:.0} samples/s",
        report.epochs_run, report.stopped_because, report.wall_seconds, report.samples_per_second
    ));
    lines.push(format!("run folder: {}", dir.display()));
    lines.join("\n")
}

fn run(cli: Cli) -> Result<String, Failure> {
    let bad = Failure::BadInput;
    match cli.command {
        Command::Run {
            pipeline,
            out,
            seed,
            quiet,
        } => {
            let (dir, report) = crate::run::run(
                pipeline.as_deref(),
                out,
                seed,
                console(quiet),
                interrupt_flag(),
            )?;
            outcome(dir, &report)
        }
        Command::Resume { run_dir, quiet } => {
            let (dir, report) = crate::run::resume(&run_dir, console(quiet), interrupt_flag())?;
            outcome(dir, &report)
        }
        Command::Validate { pipeline } => crate::run::validate(&pipeline),
        Command::Schema => crate::schema::pipeline_schema()
            .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
            .map_err(Failure::Runtime),
        Command::Compare { runs, out } => {
            let mut folders = Vec::with_capacity(runs.len());
            for path in runs {
                if path.is_file() {
                    let (dir, _) =
                        crate::run::run(Some(&path), None, None, console(true), interrupt_flag())?;
                    folders.push(dir);
                } else {
                    folders.push(path);
                }
            }
            crate::compare::compare(&folders, &out)
                .map(|report| report.table)
                .map_err(bad)
        }
        Command::List { kind, json } => {
            if json {
                crate::list::render_json(kind.as_deref()).map_err(bad)
            } else {
                crate::list::render_table(kind.as_deref()).map_err(bad)
            }
        }
        Command::Replay { case, dtype, path } => {
            let dtype = match dtype {
                Precision::F32 => DType::F32,
                Precision::F64 => DType::F64,
            };
            let trajectory = replay_file(&case, dtype, path).map_err(bad)?;
            Ok(serde_json::to_string(&trajectory).unwrap_or_default())
        }
        Command::Lab {
            experiment,
            preset,
            out,
            list,
        } => crate::lab::lab(crate::lab::LabArgs {
            experiment,
            preset,
            out,
            list,
        }),
    }
}

/// Parses the process arguments, runs the command, prints its output or the whole error
/// chain, and returns the exit code. A binary that links plugin crates calls this from `main`.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(Failure::Interrupted { message, code }) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
        Err(Failure::NonFiniteLoss(text)) => {
            println!("{text}");
            eprintln!(
                "error: the run stopped at a non-finite loss (train.terminate_on_non_finite)"
            );
            ExitCode::from(3)
        }
        Err(failure) => {
            if let Some(err) = failure.error() {
                eprintln!("error: {err}");
                let mut source = std::error::Error::source(err);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
            }
            ExitCode::from(failure.exit_code())
        }
    }
}
