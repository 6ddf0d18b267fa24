//! Checkpoints: model weights and buffers, optimizer state, schedule and RNG state,
//! preprocessing statistics, and the metrics so far. Each checkpoint is a folder
//! (`checkpoints/last`, `checkpoints/best`) replaced as a whole: it is written beside the old one
//! and swapped in by renames, every file itself written atomically, so an interrupted save
//! never leaves a mix of two epochs.

use std::path::{Path, PathBuf};

use gradus_core::{Error, Result, SeededRng, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::experiment::Experiment;
use crate::metrics::EpochMetrics;

/// The JSON part of a checkpoint (`state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Metrics of every completed epoch.
    pub metrics: Vec<EpochMetrics>,
    /// Generator of stochastic layers (dropout) at the end of the last epoch.
    pub layer_rng: SeededRng,
    /// Generator of augmentations at the end of the last epoch.
    pub augment_rng: SeededRng,
    /// The schedule's state.
    pub schedule: Option<Value>,
    /// Best epoch so far (1-based) and its monitored value.
    pub best: Option<(usize, f64)>,
    /// Steps skipped by the non-finite guard so far.
    pub skipped_steps: usize,
}

const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const PREPROCESS: &str = "preprocess.safetensors";
const STATE: &str = "state.json";

/// Weights (by parameter name) and buffers (`buffers.<layer>.<name>`) of the model; the weights
/// share storage with the parameters, so write the state out before the next optimizer step.
pub fn model_state(exp: &Experiment) -> Result<StateDict> {
    let mut sd = StateDict::new();
    for p in &exp.params {
        // Shares storage with the parameter: a state dict is written out before the next step.
        sd.insert(p.name.clone(), p.var.as_tensor().clone());
    }
    sd.extend_prefixed("buffers", &exp.model.buffers());
    Ok(sd)
}

/// Writes the model weights and buffers from `sd` into the experiment.
pub fn load_model_state(exp: &mut Experiment, sd: &StateDict) -> Result<()> {
    for p in &exp.params {
        let saved = sd.require(&p.name, p.var.dims())?;
        p.var.set(&saved.to_dtype(p.var.dtype())?)?;
    }
    exp.model.load_buffers(&sd.sub("buffers"))
}

fn preprocess_state(exp: &Experiment) -> StateDict {
    let mut sd = StateDict::new();
    for (i, p) in exp.preprocessors.iter().enumerate() {
        sd.extend_prefixed(&i.to_string(), &p.state());
    }
    sd
}

/// Saves a checkpoint folder at `dir` (replacing any previous one there).
pub fn save(exp: &Experiment, state: &TrainingState, dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".{name}.new"));
    let retired = parent.join(format!(".{name}.old"));
    for leftover in [&staging, &retired] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(|e| Error::io(leftover, e))?;
        }
    }
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    model_state(exp)?.save(staging.join(MODEL))?;
    exp.optimizer.state_dict()?.save(staging.join(OPTIMIZER))?;
    preprocess_state(exp).save(staging.join(PREPROCESS))?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::Unsupported(format!("cannot encode training state: {e}")))?;
    gradus_core::state_dict::write_atomically(&staging.join(STATE), &json)?;
    if dir.exists() {
        std::fs::rename(dir, &retired).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| Error::io(dir, e))?;
    if retired.exists() {
        std::fs::remove_dir_all(&retired).map_err(|e| Error::io(&retired, e))?;
    }
    Ok(())
}

/// The checkpoint folder to resume from: `dir`, or the previous one if a save was interrupted
/// between its two renames.
pub fn locate(dir: &Path) -> Option<PathBuf> {
    if dir.join(STATE).exists() {
        return Some(dir.to_path_buf());
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let retired = dir.parent()?.join(format!(".{name}.old"));
    retired.join(STATE).exists().then_some(retired)
}

/// Loads the checkpoint at `dir` into `exp` and returns its training state. Everything is read
/// and checked before anything in `exp` changes.
pub fn load(exp: &mut Experiment, dir: &Path) -> Result<TrainingState> {
    let device = exp.device.clone();
    let model = StateDict::load(dir.join(MODEL), &device)?;
    let optimizer = StateDict::load(dir.join(OPTIMIZER), &device)?;
    let preprocess = StateDict::load(dir.join(PREPROCESS), &device)?;
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainingState = serde_json::from_str(&text).map_err(|e| Error::CorruptFile {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    load_model_state(exp, &model)?;
    exp.optimizer.load_state_dict(&optimizer)?;
    if let (Some((schedule, _)), Some(saved)) = (exp.schedule.as_mut(), state.schedule.as_ref()) {
        schedule.load_state(saved)?;
    }
    for (i, p) in exp.preprocessors.iter_mut().enumerate() {
        p.load_state(&preprocess.sub(&i.to_string()))?;
    }
    Ok(state)
}

/// Path of the model weights inside a checkpoint folder.
pub fn model_file(dir: &Path) -> PathBuf {
    dir.join(MODEL)
}
