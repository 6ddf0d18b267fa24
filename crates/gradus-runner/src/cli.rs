//! The `gradus` command line: argument parsing and dispatch.
//!
//! Exit codes: 0 success, 2 bad input (pipeline, data, case file, arguments), 1 failure while
//! running. Errors print their whole cause chain.
//!
//! Log records (`log::warn!` of an initializer, ...) go to stderr through `env_logger`: warnings
//! and errors by default, `-v` adds info, `-vv` debug, `-vvv` trace, `-q` keeps errors only and
//! `-qq` none; `RUST_LOG` (env_logger's syntax, e.g. `RUST_LOG=gradus_init=debug`) is applied on
//! top of that level.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::DType;
use clap::{ArgAction, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::device::DeviceSpec;
use crate::overrides::Override;
use crate::replay::{replay_file, UpdatePath};
use crate::run::Failure;

/// Gradus: optimizers, regularizers, initializers and training pipelines for Candle.
#[derive(Parser)]
#[command(name = "gradus", version, about, long_about = None)]
struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG applies on top).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output: log errors only (-qq: nothing), and `run`/`resume` print one line per
    /// epoch instead of a progress bar.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    quiet: u8,
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
        /// Change a field of the pipeline: dotted path, JSON value (a string if not JSON), e.g.
        /// `--set optimizer.lr=0.01 --set model.layers.0.out=64`; recorded in pipeline.json.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<Override>,
        /// Where to train: cpu, cuda, cuda:N, metal (overrides the pipeline's `device`; a GPU
        /// needs gradus built with the `cuda` or `metal` feature).
        #[arg(long, value_name = "DEVICE")]
        device: Option<DeviceSpec>,
        /// One JSON object per line on stdout (epoch events, the final report, errors as
        /// {"error": {"path", "message"}}) instead of text; see docs/pipeline.md.
        #[arg(long)]
        json: bool,
    },
    /// Continue an interrupted run from its last checkpoint.
    Resume {
        /// The run folder.
        run_dir: PathBuf,
        /// Where to train: cpu, cuda, cuda:N, metal (default: the run's `device`; a GPU
        /// needs gradus built with the `cuda` or `metal` feature).
        #[arg(long, value_name = "DEVICE")]
        device: Option<DeviceSpec>,
        /// One JSON object per line on stdout (epoch events, the final report, errors as
        /// {"error": {"path", "message"}}) instead of text; see docs/pipeline.md.
        #[arg(long)]
        json: bool,
    },
    /// Parse and build everything (data, model shapes, optimizer, ...) without training.
    Validate {
        /// The pipeline JSON file.
        pipeline: PathBuf,
        /// Change a field of the pipeline before validating it, as `run --set` does.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<Override>,
        /// Where to train: cpu, cuda, cuda:N, metal (overrides the pipeline's `device`; a GPU
        /// needs gradus built with the `cuda` or `metal` feature).
        #[arg(long, value_name = "DEVICE")]
        device: Option<DeviceSpec>,
        /// One JSON object per line on stdout (a `valid` event, or an error as
        /// {"error": {"path", "message"}}) instead of text.
        #[arg(long)]
        json: bool,
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
        /// The comparison as one JSON object on stdout (`runs`, `files`) instead of the table.
        #[arg(long)]
        json: bool,
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
    /// Print a completion script for SHELL (bash, zsh, fish, powershell, elvish) to stdout,
    /// e.g. `gradus completions bash > ~/.local/share/bash-completion/completions/gradus`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages of gradus (gradus.1 and one per subcommand, gradus-run.1, ...) into
    /// a folder (what `cargo xtask man` runs).
    Man {
        /// The folder.
        out: PathBuf,
    },
}

/// The command line's definition (for completion scripts and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Installs the logger of the `gradus` binary on stderr: warnings by default, each `-v` one
/// level more, each `-q` one less (`-q`: errors only, `-qq`: off), then `RUST_LOG`'s
/// directives on top. A second call (or a logger installed by an embedding binary) is ignored.
pub fn init_logger(verbose: u8, quiet: u8) {
    use log::LevelFilter;
    let level = match i16::from(verbose) - i16::from(quiet) {
        ..=-2 => LevelFilter::Off,
        -1 => LevelFilter::Error,
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level)
        .format_timestamp(None)
        .parse_env(
            env_logger::Env::new()
                .filter("RUST_LOG")
                .write_style("RUST_LOG_STYLE"),
        );
    let _ = builder.try_init();
}

#[derive(Clone, Copy, ValueEnum)]
enum Precision {
    F32,
    F64,
}

fn console(quiet: bool, json: bool) -> crate::train::Console {
    crate::train::Console { quiet, json }
}

fn interrupt_flag() -> crate::signals::Interrupt {
    crate::signals::Interrupt::from_signals()
}

/// The results of a run (text, or with `json` the `report` event: `report.json`'s fields and
/// `run_dir`), or the exit-code-3 failure of one stopped at a non-finite loss.
fn outcome(dir: PathBuf, report: &crate::train::Report, json: bool) -> Result<String, Failure> {
    let text = if json {
        let mut fields = serde_json::to_value(report).unwrap_or_default();
        fields["run_dir"] = serde_json::Value::String(dir.display().to_string());
        crate::train::console::event_line("report", fields)
    } else {
        finished(dir, report)
    };
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

/// The `--set` overrides with `--device` as the last one, so that the flag wins.
fn with_device(mut overrides: Vec<Override>, device: Option<DeviceSpec>) -> Vec<Override> {
    if let Some(device) = device {
        overrides.push(Override {
            path: "device".into(),
            value: serde_json::Value::String(device.to_string()),
        });
    }
    overrides
}

fn run(cli: Cli) -> Result<String, Failure> {
    let bad = Failure::BadInput;
    let quiet = cli.quiet > 0;
    match cli.command {
        Command::Run {
            pipeline,
            out,
            seed,
            set,
            device,
            json,
        } => {
            let (dir, report) = crate::run::run(
                pipeline.as_deref(),
                &with_device(set, device),
                out,
                seed,
                console(quiet, json),
                interrupt_flag(),
            )?;
            outcome(dir, &report, json)
        }
        Command::Resume {
            run_dir,
            device,
            json,
        } => {
            let (dir, report) = crate::run::resume_with(
                &run_dir,
                &with_device(Vec::new(), device),
                console(quiet, json),
                interrupt_flag(),
            )?;
            outcome(dir, &report, json)
        }
        Command::Validate {
            pipeline,
            set,
            device,
            json,
        } => {
            let summary = crate::run::validate(&pipeline, &with_device(set, device))?;
            Ok(if json {
                let fields = serde_json::json!({
                    "pipeline": pipeline.display().to_string(),
                    "model": summary.lines().skip(1).map(str::trim).collect::<Vec<_>>(),
                });
                crate::train::console::event_line("valid", fields)
            } else {
                summary
            })
        }
        Command::Schema => crate::schema::pipeline_schema()
            .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
            .map_err(Failure::Runtime),
        Command::Compare { runs, out, json } => {
            let mut folders = Vec::with_capacity(runs.len());
            for path in runs {
                if path.is_file() {
                    let (dir, _) = crate::run::run(
                        Some(&path),
                        &[],
                        None,
                        None,
                        console(true, false),
                        interrupt_flag(),
                    )?;
                    folders.push(dir);
                } else {
                    folders.push(path);
                }
            }
            let report = crate::compare::compare(&folders, &out).map_err(bad)?;
            Ok(if json {
                let rows = serde_json::to_value(&report.rows).unwrap_or_default();
                let files = serde_json::to_value(&report.files).unwrap_or_default();
                crate::train::console::event_line(
                    "compare",
                    serde_json::json!({"runs": rows, "files": files}),
                )
            } else {
                report.table
            })
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
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "gradus", &mut script);
            Ok(String::from_utf8_lossy(&script).trim_end().to_string())
        }
        Command::Man { out } => {
            std::fs::create_dir_all(&out)
                .and_then(|()| clap_mangen::generate_to(command(), &out))
                .map_err(|e| Failure::Runtime(gradus_core::Error::io(&out, e)))?;
            Ok(format!("man pages written to {}", out.display()))
        }
    }
}

impl Command {
    /// The command was asked for JSON output.
    fn json(&self) -> bool {
        match self {
            Command::Run { json, .. }
            | Command::Resume { json, .. }
            | Command::Validate { json, .. }
            | Command::Compare { json, .. }
            | Command::List { json, .. } => *json,
            _ => false,
        }
    }
}

/// Prints a command's result on stdout; a closed stdout (`gradus list | head`) is not an error
/// worth a panic, the reader has what it wanted.
fn print_result(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Parses the process arguments, runs the command, prints its output or the whole error
/// chain, and returns the exit code. A binary that links plugin crates calls this from `main`.
pub fn main() -> ExitCode {
    crate::threads::quiet_candle_workers();
    let cli = Cli::parse();
    init_logger(cli.verbose, cli.quiet);
    let json = cli.command.json();
    match run(cli) {
        Ok(text) => {
            print_result(&text);
            ExitCode::SUCCESS
        }
        Err(Failure::Interrupted { message, code }) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
        Err(Failure::NonFiniteLoss(text)) => {
            print_result(&text);
            eprintln!(
                "error: the run stopped at a non-finite loss (train.terminate_on_non_finite)"
            );
            ExitCode::from(3)
        }
        Err(failure) => {
            if let (true, Some(err)) = (json, failure.error()) {
                print_result(&crate::train::console::error_json(err).to_string());
            }
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
