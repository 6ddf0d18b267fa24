//! Checkpoints: model weights and buffers, optimizer state, schedule and RNG state,
//! preprocessing statistics, the averaged weights (`train.averaging`: `averaged.safetensors`),
//! the loss scale (`train.loss_scale`: `loss_scale.safetensors`) and the metrics so far. Each checkpoint is a folder
//! (`checkpoints/last`, `checkpoints/best`) replaced as a whole: it is written beside the old one
//! and swapped in by renames, every file itself written atomically, so an interrupted save
//! never leaves a mix of two epochs.

use std::path::{Path, PathBuf};

use candle_core::Device;
use gradus_core::{Error, Result, SeededRng, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::experiment::Experiment;
use crate::metrics::EpochMetrics;
use crate::train::averaged;

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
    /// Best epoch so far (1-based) and its monitored value (`"inf"` / `"nan"` when not finite).
    #[serde(with = "best_epoch")]
    pub best: Option<(usize, f64)>,
    /// Steps skipped by the non-finite guard so far.
    pub skipped_steps: usize,
    /// The state of SWA's `SWALR` schedule, once built (`train.averaging` SWA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swa_schedule: Option<Value>,
}

/// Serde for the best epoch and its value, the value possibly non-finite.
mod best_epoch {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Best(usize, #[serde(with = "gradus_core::json_float")] f64);

    pub fn serialize<S: Serializer>(v: &Option<(usize, f64)>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|(e, x)| Best(e, x)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(usize, f64)>, D::Error> {
        Ok(Option::<Best>::deserialize(d)?.map(|Best(e, x)| (e, x)))
    }
}

const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const PREPROCESS: &str = "preprocess.safetensors";
const STATE: &str = "state.json";
const AVERAGED: &str = "averaged.safetensors";
const LOSS_SCALE: &str = "loss_scale.safetensors";

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

/// The identity of a run: a hash of its resolved pipeline (seed included; the run folder's own
/// path and its `device` left out, so a moved folder keeps it and a run may resume on another
/// device), written into every file of its checkpoints so that files from another run, or
/// another seed, are rejected.
pub fn run_id(exp: &Experiment) -> String {
    let mut resolved = exp.pipeline.resolved();
    if let Some(output) = resolved.get_mut("output").and_then(Value::as_object_mut) {
        output.remove("dir");
    }
    // Where a run trains is not what it is: a run may resume on another device.
    if let Some(fields) = resolved.as_object_mut() {
        fields.remove("device");
    }
    // serde_json's objects are sorted maps: the text is canonical.
    let text = resolved.to_string();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(text.as_bytes());
    let low = hasher.finalize();
    let mut hasher = crc32fast::Hasher::new_with_initial(low);
    hasher.update(text.as_bytes());
    format!("{low:08x}{:08x}", hasher.finalize())
}

/// `state.json`: the training state with its run identity and a checksum of the state's
/// canonical JSON text.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    run_id: String,
    crc32: String,
    state: Value,
}

const STATE_FORMAT: &str = "gradus-training-state-v1";

fn crc_of(value: &Value) -> String {
    format!("{:08x}", crc32fast::hash(value.to_string().as_bytes()))
}

fn encode_state(state: &TrainingState, run: &str) -> Result<Vec<u8>> {
    let value = serde_json::to_value(state)
        .map_err(|e| Error::Unsupported(format!("cannot encode training state: {e}")))?;
    let file = StateFile {
        format: STATE_FORMAT.into(),
        run_id: run.into(),
        crc32: crc_of(&value),
        state: value,
    };
    serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::Unsupported(format!("cannot encode training state: {e}")))
}

fn decode_state(text: &str, path: &Path, run: &str) -> Result<TrainingState> {
    let corrupt = |message: String| Error::CorruptFile {
        path: path.to_path_buf(),
        message,
    };
    let file: StateFile = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    if file.format != STATE_FORMAT {
        return Err(corrupt(format!("unknown format {:?}", file.format)));
    }
    if file.run_id != run {
        return Err(corrupt(format!(
            "written by another run (run id {}, this run is {run})",
            file.run_id
        )));
    }
    let actual = crc_of(&file.state);
    if actual != file.crc32 {
        return Err(corrupt(format!(
            "checksum mismatch (stored {}, computed {actual}): the state was changed or damaged",
            file.crc32
        )));
    }
    serde_json::from_value(file.state).map_err(|e| corrupt(e.to_string()))
}

/// A loaded state must describe whole epochs in order, within the pipeline's epochs, so that a
/// resume never replays or skips one.
fn check_consistent(state: &TrainingState, epochs: usize, path: &Path) -> Result<()> {
    let corrupt = |message: String| Error::CorruptFile {
        path: path.to_path_buf(),
        message,
    };
    if state.metrics.len() != state.epochs_done {
        return Err(corrupt(format!(
            "{} epochs done but {} epochs of metrics: resuming would replay or skip epochs",
            state.epochs_done,
            state.metrics.len()
        )));
    }
    if let Some((i, m)) = state
        .metrics
        .iter()
        .enumerate()
        .find(|(i, m)| m.epoch != i + 1)
    {
        return Err(corrupt(format!(
            "metrics row {} is for epoch {} (expected {})",
            i + 1,
            m.epoch,
            i + 1
        )));
    }
    if state.epochs_done > epochs {
        return Err(corrupt(format!(
            "{} epochs done, more than the pipeline's {epochs}",
            state.epochs_done
        )));
    }
    if let Some((best, _)) = state.best {
        if best == 0 || best > state.epochs_done {
            return Err(corrupt(format!(
                "best epoch {best} is not one of the {} done",
                state.epochs_done
            )));
        }
    }
    Ok(())
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
    let run = run_id(exp);
    model_state(exp)?.save_tagged(staging.join(MODEL), &run)?;
    exp.optimizer
        .state_dict()?
        .save_tagged(staging.join(OPTIMIZER), &run)?;
    preprocess_state(exp).save_tagged(staging.join(PREPROCESS), &run)?;
    if let Some(avg) = &exp.averaging {
        let file = match &avg.file {
            Some(file) => file.clone(),
            None => averaged::averaged_file(exp)?,
        };
        file.save_tagged(staging.join(AVERAGED), &run)?;
    }
    if let Some(scaler) = &exp.controls.scaler {
        scaler
            .state_dict()?
            .save_tagged(staging.join(LOSS_SCALE), &run)?;
    }
    let json = encode_state(state, &run)?;
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

/// What a run folder's `checkpoints/last` holds for `resume`: a complete checkpoint folder, or
/// none because the run was stopped before its first one (`Ok(None)`); a checkpoint folder
/// without its `state.json` is an error, never a silent restart.
pub fn locate_for_resume(dir: &Path) -> Result<Option<PathBuf>> {
    if let Some(found) = locate(dir) {
        return Ok(Some(found));
    }
    if dir.exists() {
        return Err(Error::CorruptFile {
            path: dir.join(STATE),
            message: "the checkpoint has no state.json (deleted or never completed): refusing to \
                      restart the run over it"
                .into(),
        });
    }
    Ok(None)
}

/// The epochs done by the checkpoint at `dir`, read without loading it (`None`: no checkpoint).
pub fn epochs_in(dir: &Path) -> Option<usize> {
    let found = locate(dir)?;
    let text = std::fs::read_to_string(found.join(STATE)).ok()?;
    let file: StateFile = serde_json::from_str(&text).ok()?;
    file.state.get("epochs_done")?.as_u64().map(|e| e as usize)
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
    let run = run_id(exp);
    let model = StateDict::load_checked(dir.join(MODEL), &device, &run)?;
    let optimizer = StateDict::load_checked(dir.join(OPTIMIZER), &device, &run)?;
    // host-side: the fitted preprocessors transform the data pipeline's host tensors.
    let preprocess = StateDict::load_checked(dir.join(PREPROCESS), &Device::Cpu, &run)?;
    let averaged = match exp.averaging {
        Some(_) => Some(StateDict::load_checked(dir.join(AVERAGED), &device, &run)?),
        None => None,
    };
    let loss_scale = match exp.controls.scaler {
        Some(_) => Some(StateDict::load_checked(
            dir.join(LOSS_SCALE),
            &device,
            &run,
        )?),
        None => None,
    };
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state = decode_state(&text, &state_path, &run)?;
    check_consistent(&state, exp.pipeline.train.epochs, &state_path)?;
    load_model_state(exp, &model)?;
    exp.optimizer.load_state_dict(&optimizer)?;
    if let (Some((schedule, _)), Some(saved)) = (exp.schedule.as_mut(), state.schedule.as_ref()) {
        schedule.load_state(saved)?;
    }
    for (i, p) in exp.preprocessors.iter_mut().enumerate() {
        p.load_state(&preprocess.sub(&i.to_string()))?;
    }
    if let Some(file) = &averaged {
        averaged::load_averaged_file(exp, file)?;
    }
    if let (Some(scaler), Some(saved)) = (exp.controls.scaler.as_mut(), loss_scale.as_ref()) {
        scaler.load_state_dict(saved)?;
    }
    if let (Some(avg), Some(saved)) = (exp.averaging.as_ref(), state.swa_schedule.as_ref()) {
        let mut schedule = averaged::build_swa_schedule(avg, exp.optimizer.as_mut())?;
        schedule.load_state(saved)?;
        if let Some(avg) = exp.averaging.as_mut() {
            avg.swa_schedule = Some(schedule);
        }
    }
    Ok(state)
}

/// Path of the averaged weights (`train.averaging`) inside a checkpoint folder.
pub fn averaged_file(dir: &Path) -> PathBuf {
    dir.join(AVERAGED)
}

/// Path of the model weights inside a checkpoint folder.
pub fn model_file(dir: &Path) -> PathBuf {
    dir.join(MODEL)
}
