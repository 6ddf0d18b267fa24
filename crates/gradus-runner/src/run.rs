//! `gradus run`, `gradus resume` and `gradus validate`: from a pipeline file to a run folder.

use std::path::{Path, PathBuf};

use gradus_core::{Error, Result};

use crate::experiment::{build, model_summary, Experiment};
use crate::overrides::{apply_all, Override};
use crate::pipeline::{Pipeline, DEFAULT_PIPELINE};
use crate::signals::Interrupt;
use crate::train::{fresh_state, train, Console, Ended, Report, RunOptions};

/// A failed command: bad input (exit code 2) or a failure while running (exit code 1).
#[derive(Debug)]
pub enum Failure {
    /// The pipeline, its data or a run folder is invalid.
    BadInput(Error),
    /// Something failed while training or writing outputs.
    Runtime(Error),
    /// The run was stopped by SIGINT or SIGTERM after a batch; the message says which
    /// checkpoint `resume` continues from. Exit code 128 + the signal's number (130, 143).
    Interrupted {
        /// What was kept, and how to continue.
        message: String,
        /// The exit code.
        code: u8,
    },
    /// The run stopped at a non-finite loss (`train.terminate_on_non_finite`); the run folder
    /// and its report are complete. Exit code 3. Holds the lines printed as a run's results.
    NonFiniteLoss(String),
}

impl Failure {
    /// The process exit code: 2 for bad input, 3 for a run stopped at a non-finite loss, 1
    /// otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::BadInput(_) => 2,
            Failure::Runtime(_) => 1,
            Failure::NonFiniteLoss(_) => 3,
            Failure::Interrupted { code, .. } => *code,
        }
    }

    /// The underlying error (`None` for a run stopped at a non-finite loss).
    pub fn error(&self) -> Option<&Error> {
        match self {
            Failure::BadInput(e) | Failure::Runtime(e) => Some(e),
            Failure::NonFiniteLoss(_) | Failure::Interrupted { .. } => None,
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

/// [`load_pipeline`], then the `--set` overrides applied to the resolved pipeline, which is
/// parsed strictly again (so an override is validated as the file would be).
pub fn load_pipeline_with(path: Option<&Path>, overrides: &[Override]) -> Result<Pipeline> {
    let pipeline = load_pipeline(path)?;
    if overrides.is_empty() {
        return Ok(pipeline);
    }
    let mut value = pipeline.resolved();
    apply_all(&mut value, overrides)?;
    Pipeline::from_value(&value)
}

/// Parses and builds everything (data, model shapes, optimizer, ...) without training, after
/// applying `overrides`; returns a summary of the model.
pub fn validate(path: &Path, overrides: &[Override]) -> std::result::Result<String, Failure> {
    let pipeline = load_pipeline_with(Some(path), overrides).map_err(Failure::BadInput)?;
    let mut exp = build(pipeline).map_err(Failure::BadInput)?;
    crate::train::dry_run(&mut exp).map_err(Failure::BadInput)?;
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

/// The exclusive lock a `run` or `resume` holds on its run folder while it writes it: an OS file
/// lock on `RUN/.lock` (released by the OS when the process ends, also on SIGKILL, so a stale
/// lock never blocks a later `resume`). The file holds the owner's process id, for messages.
pub struct RunLock {
    _file: std::fs::File,
}

/// Takes the run folder `dir` (created if missing) for this process, or fails with bad input
/// naming the process that holds it.
pub fn lock_run_folder(dir: &Path) -> Result<RunLock> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(".lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(pid.as_bytes()))
                .map_err(|e| Error::io(&path, e))?;
            Ok(RunLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "unknown" } else { holder };
            Err(Error::config(
                "output.dir",
                format!(
                    "{} is being written by another gradus process (pid {holder}); wait for it \
                     to end or choose another --out",
                    dir.display()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
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

/// `gradus run`: trains the pipeline, changed by `overrides`, into a run folder; returns the
/// folder and the report.
pub fn run(
    path: Option<&Path>,
    overrides: &[Override],
    out: Option<PathBuf>,
    seed: Option<u64>,
    console: Console,
    interrupt: Interrupt,
) -> std::result::Result<(PathBuf, Report), Failure> {
    let mut pipeline = load_pipeline_with(path, overrides).map_err(Failure::BadInput)?;
    if let Some(seed) = seed {
        pipeline.seed = seed;
    }
    let dir = run_folder(&pipeline, out);
    // What `validate` tries runs first, on an experiment of its own (the dry run changes what
    // it touches), so a pipeline that would fail on configuration never creates a run folder.
    let mut trial = build(pipeline.clone()).map_err(Failure::BadInput)?;
    crate::train::dry_run(&mut trial).map_err(Failure::BadInput)?;
    drop(trial);
    let mut exp = build(pipeline).map_err(Failure::BadInput)?;
    // Locked before the "already holds a run" check, so two runs started together cannot both
    // pass it.
    let _lock = lock_run_folder(&dir).map_err(Failure::BadInput)?;
    prepare_folder(&dir).map_err(Failure::BadInput)?;
    write_pipeline(&exp, &dir).map_err(Failure::Runtime)?;
    console.info(&format!("model:\n{}", model_summary(&exp).trim_end()));
    let state = fresh_state(exp.pipeline.seed);
    let opts = RunOptions {
        dir: dir.clone(),
        console,
        interrupt,
    };
    let report = finished(train(&mut exp, state, &opts), &opts)?;
    Ok((dir, report))
}

/// The report of a training that ended, or the failure of one that did not.
fn finished(ended: Result<Ended>, opts: &RunOptions) -> std::result::Result<Report, Failure> {
    match ended.map_err(Failure::Runtime)? {
        Ended::Finished(report) => Ok(report),
        Ended::Interrupted(message) => Err(Failure::Interrupted {
            message,
            code: opts.interrupt.exit_code(),
        }),
    }
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
    console: Console,
    interrupt: Interrupt,
) -> std::result::Result<(PathBuf, Report), Failure> {
    resume_with(dir, &[], console, interrupt)
}

/// [`resume`] with `overrides` applied to the run's pipeline first (`gradus resume --device`:
/// fields that do not change what the run computes; the run identity rejects any other).
pub fn resume_with(
    dir: &Path,
    overrides: &[Override],
    console: Console,
    interrupt: Interrupt,
) -> std::result::Result<(PathBuf, Report), Failure> {
    let pipeline_path = dir.join("pipeline.json");
    if !pipeline_path.exists() {
        return Err(Failure::BadInput(Error::config(
            "run_dir",
            format!("{} holds no run (no pipeline.json)", dir.display()),
        )));
    }
    let _lock = lock_run_folder(dir).map_err(Failure::BadInput)?;
    let pipeline =
        load_pipeline_with(Some(&pipeline_path), overrides).map_err(Failure::BadInput)?;
    let mut exp = build(pipeline).map_err(Failure::BadInput)?;
    let checkpoint = crate::checkpoint::locate_for_resume(&dir.join("checkpoints").join("last"))
        .map_err(Failure::BadInput)?;
    let state = match checkpoint {
        Some(cp) => crate::checkpoint::load(&mut exp, &cp).map_err(Failure::BadInput)?,
        None => {
            eprintln!(
                "{} has no checkpoint yet (stopped before its first): starting again at epoch 1",
                dir.display()
            );
            fresh_state(exp.pipeline.seed)
        }
    };
    console.info(&format!(
        "resuming {} after epoch {}",
        dir.display(),
        state.epochs_done
    ));
    let opts = RunOptions {
        dir: dir.to_path_buf(),
        console,
        interrupt,
    };
    let report = finished(train(&mut exp, state, &opts), &opts)?;
    Ok((dir.to_path_buf(), report))
}
