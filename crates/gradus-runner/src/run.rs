//! `gradus run`, `gradus resume` and `gradus validate`: from a pipeline file to a run folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gradus_core::{Error, Result};

use crate::experiment::{build, model_summary, Experiment};
use crate::pipeline::{Pipeline, DEFAULT_PIPELINE};
use crate::train::{fresh_state, train, Report, RunOptions};

/// A failed command: bad input (exit code 2) or a failure while running (exit code 1).
#[derive(Debug)]
pub enum Failure {
    /// The pipeline, its data or a run folder is invalid.
    BadInput(Error),
    /// Something failed while training or writing outputs.
    Runtime(Error),
}

impl Failure {
    /// The process exit code: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::BadInput(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }

    /// The underlying error.
    pub fn error(&self) -> &Error {
        match self {
            Failure::BadInput(e) | Failure::Runtime(e) => e,
        }
    }
}

/// Reads a pipeline file (or the built-in digits pipeline when `path` is `None`); the name
/// defaults to the file's stem.
pub fn load_pipeline(path: Option<&Path>) -> Result<Pipeline> {
    let (text, origin, stem) = match path {
        None => (
            DEFAULT_PIPELINE.to_string(),
            "<built-in digits pipeline>".to_string(),
            "digits-mlp".to_string(),
        ),
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?,
            p.display().to_string(),
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into()),
        ),
    };
    let mut pipeline = Pipeline::from_json(&text, &origin)?;
    if pipeline.name.is_none() {
        pipeline.name = Some(stem);
    }
    Ok(pipeline)
}

/// Parses and builds everything (data, model shapes, optimizer, ...) without training; returns
/// a summary of the model.
pub fn validate(path: &Path) -> std::result::Result<String, Failure> {
    let pipeline = load_pipeline(Some(path)).map_err(Failure::BadInput)?;
    let exp = build(pipeline).map_err(Failure::BadInput)?;
    Ok(format!(
        "{} is valid\n{}",
        path.display(),
        model_summary(&exp)
    ))
}

fn run_folder(pipeline: &Pipeline, out: Option<PathBuf>) -> PathBuf {
    out.or_else(|| pipeline.output.dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| {
            let name = pipeline.name.clone().unwrap_or_else(|| "run".into());
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            PathBuf::from("runs").join(format!("{name}-{stamp}"))
        })
}

fn prepare_folder(dir: &Path) -> Result<()> {
    if dir.join("pipeline.json").exists() {
        return Err(Error::config(
            "output.dir",
            format!("{} already holds a run; continue it with `gradus resume {}` or choose another --out", dir.display(), dir.display()),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// `gradus run`: trains the pipeline into a run folder; returns the folder and the report.
pub fn run(
    path: Option<&Path>,
    out: Option<PathBuf>,
    seed: Option<u64>,
    quiet: bool,
    interrupt: Arc<AtomicBool>,
) -> std::result::Result<(PathBuf, Report), Failure> {
    let mut pipeline = load_pipeline(path).map_err(Failure::BadInput)?;
    if let Some(seed) = seed {
        pipeline.seed = seed;
    }
    let dir = run_folder(&pipeline, out);
    let mut exp = build(pipeline).map_err(Failure::BadInput)?;
    prepare_folder(&dir).map_err(Failure::BadInput)?;
    write_pipeline(&exp, &dir).map_err(Failure::Runtime)?;
    if !quiet {
        println!("model:\n{}", model_summary(&exp).trim_end());
    }
    let state = fresh_state(exp.pipeline.seed);
    let opts = RunOptions {
        dir: dir.clone(),
        quiet,
        interrupt,
    };
    let report = train(&mut exp, state, &opts).map_err(Failure::Runtime)?;
    Ok((dir, report))
}

fn write_pipeline(exp: &Experiment, dir: &Path) -> Result<()> {
    let mut resolved = exp.pipeline.resolved();
    resolved["output"]["dir"] = serde_json::Value::String(dir.display().to_string());
    let text =
        serde_json::to_vec_pretty(&resolved).map_err(|e| Error::Unsupported(e.to_string()))?;
    gradus_core::state_dict::write_atomically(&dir.join("pipeline.json"), &text)
}

/// `gradus resume RUN_DIR`: rebuilds the run's pipeline and continues from its last checkpoint.
pub fn resume(
    dir: &Path,
    quiet: bool,
    interrupt: Arc<AtomicBool>,
) -> std::result::Result<(PathBuf, Report), Failure> {
    let pipeline_path = dir.join("pipeline.json");
    let pipeline = load_pipeline(Some(&pipeline_path)).map_err(Failure::BadInput)?;
    let mut exp = build(pipeline).map_err(Failure::BadInput)?;
    let checkpoint = crate::checkpoint::locate(&dir.join("checkpoints").join("last"));
    let state = match checkpoint {
        Some(cp) => crate::checkpoint::load(&mut exp, &cp).map_err(Failure::BadInput)?,
        None => fresh_state(exp.pipeline.seed),
    };
    if !quiet {
        println!(
            "resuming {} after epoch {}",
            dir.display(),
            state.epochs_done
        );
    }
    let opts = RunOptions {
        dir: dir.to_path_buf(),
        quiet,
        interrupt,
    };
    let report = train(&mut exp, state, &opts).map_err(Failure::Runtime)?;
    Ok((dir.to_path_buf(), report))
}
