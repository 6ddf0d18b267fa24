//! The `gradus` command line: argument parsing and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::replay::{replay_file, UpdatePath};
use candle_core::DType;
use clap::{Parser, Subcommand, ValueEnum};

/// Gradus: optimizers, regularizers, initializers and training pipelines for Candle.
#[derive(Parser)]
#[command(name = "gradus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every registered component (optimizers, schedules, initializers, ...) with its
    /// summary and default configuration.
    List {
        /// Only this kind: optimizer, schedule, regularizer, initializer, layer, normalization,
        /// preprocessor, image_augmentation, text_augmentation, data_source, batching.
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
        /// Update implementation.
        #[arg(long, value_enum, default_value_t = UpdatePath::Auto)]
        path: UpdatePath,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Precision {
    F32,
    F64,
}

fn run(cli: Cli) -> gradus_core::Result<String> {
    match cli.command {
        Command::List { kind, json } => {
            if json {
                crate::list::render_json(kind.as_deref())
            } else {
                crate::list::render_table(kind.as_deref())
            }
        }
        Command::Replay { case, dtype, path } => {
            let dtype = match dtype {
                Precision::F32 => DType::F32,
                Precision::F64 => DType::F64,
            };
            let trajectory = replay_file(&case, dtype, path)?;
            Ok(serde_json::to_string(&trajectory).unwrap_or_default())
        }
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
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
