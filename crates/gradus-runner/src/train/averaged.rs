//! Which weights the runner evaluates and saves: the training weights, a schedule-free
//! optimizer's eval point, or the averaged weights of `train.averaging` (EMA or SWA, as
//! `torch.optim.swa_utils`).
//!
//! With `train.averaging`, an [`AveragedModel`] follows the training weights: EMA after every
//! optimizer update, SWA at the end of every epoch `>= start_epoch` (epochs from 1). Once it
//! has averaged anything, validation and test metrics evaluate the averaged weights: they are
//! swapped into the variables, for SWA the batch-norm statistics are recomputed for them over
//! the training split ([`update_bn`], cumulative, batches of `train.eval_batch_size` in order,
//! without augmentation), the split is evaluated, and the training weights and statistics are
//! put back bit for bit. The averaged weights with those statistics are what
//! `averaged.safetensors` of a checkpoint holds.
//!
//! SWA's learning rate is PyTorch's `SWALR` (the registered `swalr` schedule built from
//! [`SwaConfig::schedule`](gradus_optim::averaging::SwaConfig::schedule)), built at the end of
//! epoch `start_epoch` and stepped at the end of every epoch from then on; the pipeline's own
//! `schedule` drives the learning rate before `start_epoch` and is not stepped from then on
//! (the composition of PyTorch's SWA example: `scheduler.step()` before `swa_start`,
//! `swa_scheduler.step()` after).
//!
//! A schedule-free optimizer (`has_eval_point()`) is evaluated and saved at its averaged point
//! `x` (`eval()` before, `train()` at the start of the next epoch). Its batch norms' running
//! statistics were gathered at the training point `y`: as the schedulefree README recommends,
//! they are recomputed at `x` by forward passes in training mode over the training split
//! ([`update_bn`]) before evaluating.

use candle_core::Tensor;
use gradus_core::plugin::data::Dataset;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Result, SeededRng, StateDict};
use gradus_optim::averaging::{update_bn, AveragedModel, AveragingConfig, Cadence};

use super::evaluate::evaluate;
use crate::experiment::Experiment;

/// Key of the number of averaged models in `averaged.safetensors`.
pub const N_AVERAGED: &str = "n_averaged";

/// A run's weight averaging: the averaged model, SWA's learning-rate schedule once built, and
/// the contents of `averaged.safetensors` as last evaluated.
pub struct RunAveraging {
    /// The averaged weights.
    pub model: AveragedModel,
    /// `SWALR`, from the end of epoch `start_epoch` on (SWA only).
    pub swa_schedule: Option<Box<dyn Schedule>>,
    /// Averaged weights, the batch-norm buffers evaluated with them (`buffers.<layer>.<name>`)
    /// and `n_averaged`, as the last evaluation saw them (`None` before averaging began:
    /// [`averaged_file`] then makes it from the current buffers).
    pub file: Option<StateDict>,
}

impl RunAveraging {
    /// `ema` or `swa`.
    pub fn name(&self) -> &'static str {
        self.model.config().name()
    }

    /// Whether the averaged weights are evaluated (something has been averaged).
    pub fn active(&self) -> bool {
        self.model.n_averaged() > 0
    }

    /// Whether epoch `epoch` (1-based) is in SWA's averaging phase (never for EMA).
    pub fn swa_phase(&self, epoch: usize) -> bool {
        match self.model.config().cadence() {
            Cadence::EveryEpochFrom(from) => epoch as u64 >= from,
            Cadence::EveryStep => false,
        }
    }
}

/// Whether the pipeline's own schedule steps during epoch `epoch` (1-based): always, except in
/// SWA's averaging phase, where `SWALR` drives the learning rate.
pub fn pipeline_schedule_steps(exp: &Experiment, epoch: usize) -> bool {
    !exp.averaging.as_ref().is_some_and(|a| a.swa_phase(epoch))
}

/// After an optimizer update: EMA folds the new weights in.
pub fn after_update(exp: &mut Experiment) -> Result<()> {
    if let Some(avg) = exp.averaging.as_mut() {
        if avg.model.config().cadence() == Cadence::EveryStep {
            avg.model.update(&exp.params)?;
        }
    }
    Ok(())
}

/// At the end of epoch `epoch` (1-based), before evaluating: SWA folds the weights in.
pub fn end_of_epoch(exp: &mut Experiment, epoch: usize) -> Result<()> {
    if let Some(avg) = exp.averaging.as_mut() {
        if avg.swa_phase(epoch) {
            avg.model.update(&exp.params)?;
        }
    }
    Ok(())
}

/// After evaluating epoch `epoch` (1-based): steps `SWALR` in SWA's phase (building it at the
/// first such epoch). Returns whether it stepped (the pipeline's schedule then does not).
pub fn step_swa_schedule(exp: &mut Experiment, epoch: usize) -> Result<bool> {
    let Some(avg) = exp.averaging.as_mut() else {
        return Ok(false);
    };
    if !avg.swa_phase(epoch) {
        return Ok(false);
    }
    if avg.swa_schedule.is_none() {
        avg.swa_schedule = Some(build_swa_schedule(avg, exp.optimizer.as_mut())?);
    }
    if let Some(schedule) = avg.swa_schedule.as_mut() {
        schedule.step(exp.optimizer.as_mut(), None)?;
    }
    Ok(true)
}

/// `SWALR` for an SWA config (an EMA config has none: an error).
pub fn build_swa_schedule(
    avg: &RunAveraging,
    optimizer: &mut dyn gradus_core::Optimizer,
) -> Result<Box<dyn Schedule>> {
    match avg.model.config() {
        AveragingConfig::Swa(c) => {
            gradus_schedule::build_schedule(&c.schedule(), "train.averaging", optimizer)
        }
        AveragingConfig::Ema(_) => Err(gradus_core::Error::Unsupported(
            "ema averaging has no learning-rate schedule".into(),
        )),
    }
}

/// Recomputes the batch-norm statistics of the model as its weights are now, over the training
/// split in batches of `train.eval_batch_size`, in order (no augmentation); dropout draws from
/// a generator derived from the seed alone, so the result depends on the weights only.
pub fn recompute_batch_norm(exp: &mut Experiment) -> Result<usize> {
    let features = exp.loader.dataset().features.clone();
    let n = features.dims().first().copied().unwrap_or(0);
    let step = exp.pipeline.train.eval_batch_size.max(1);
    let batches = (0..n)
        .step_by(step)
        .map(|start| features.narrow(0, start, step.min(n - start)))
        .collect::<candle_core::Result<Vec<Tensor>>>()?;
    let mut rng = SeededRng::new(exp.pipeline.seed).derive("update_bn");
    update_bn(&mut exp.model, batches, &mut rng)
}

/// Copies of the model's buffers (batch-norm statistics), to put back after evaluating.
fn buffer_copies(exp: &Experiment) -> Result<StateDict> {
    let mut sd = StateDict::new();
    for (name, t) in exp.model.buffers().iter() {
        sd.insert(name.to_string(), t.copy()?);
    }
    Ok(sd)
}

/// Which weights the run evaluates now: `ema` / `swa` once averaging has begun, `eval_point`
/// for a schedule-free optimizer, `None` for the training weights.
pub fn evaluated_weights(exp: &Experiment) -> Option<String> {
    match exp.averaging.as_ref().filter(|a| a.active()) {
        Some(avg) => Some(avg.name().into()),
        None => exp.optimizer.has_eval_point().then(|| "eval_point".into()),
    }
}

/// Loss and accuracy of `data` (when given) with the weights the run evaluates. With averaging
/// active, the averaged weights (see the module docs), and `averaged.safetensors` is refreshed
/// from them, also without `data`; the training weights and buffers are back afterwards, also
/// on an error.
pub fn evaluate_split(
    exp: &mut Experiment,
    data: Option<&Dataset>,
) -> Result<Option<(f64, Option<f64>)>> {
    let Some(avg) = exp.averaging.as_mut().filter(|a| a.active()) else {
        return data.map(|d| evaluate(exp, d)).transpose();
    };
    let params = exp.params.clone();
    avg.model.swap_in(&params)?;
    let buffers = buffer_copies(exp);
    let result = buffers.and_then(|b| {
        let out = evaluate_averaged(exp, data);
        let restored = exp.model.load_buffers(&b);
        let out = out?;
        restored?;
        Ok(out)
    });
    let back = match exp.averaging.as_mut() {
        Some(avg) => avg.model.swap_back(&params),
        None => Ok(()),
    };
    let (metrics, file) = result?;
    back?;
    if let Some(avg) = exp.averaging.as_mut() {
        avg.file = Some(file);
    }
    Ok(metrics)
}

/// With the averaged weights in place: SWA's batch-norm recomputation, the evaluation, and
/// the `averaged.safetensors` contents.
type Evaluated = (Option<(f64, Option<f64>)>, StateDict);

fn evaluate_averaged(exp: &mut Experiment, data: Option<&Dataset>) -> Result<Evaluated> {
    let swa = exp
        .averaging
        .as_ref()
        .is_some_and(|a| matches!(a.model.config(), AveragingConfig::Swa(_)));
    if swa {
        recompute_batch_norm(exp)?;
    }
    let metrics = data.map(|d| evaluate(exp, d)).transpose()?;
    let file = averaged_file(exp)?;
    Ok((metrics, file))
}

/// `averaged.safetensors` from the averaged weights and the model's buffers as they are now.
pub fn averaged_file(exp: &Experiment) -> Result<StateDict> {
    let mut sd = StateDict::new();
    let Some(avg) = exp.averaging.as_ref() else {
        return Ok(sd);
    };
    for (name, t) in avg.model.weights().iter() {
        sd.insert(name.to_string(), t.clone());
    }
    sd.extend_prefixed("buffers", &buffer_copies(exp)?);
    let n = i64::try_from(avg.model.n_averaged()).unwrap_or(i64::MAX);
    sd.insert(N_AVERAGED, Tensor::new(n, &exp.device)?);
    Ok(sd)
}

/// Loads `averaged.safetensors` (as [`averaged_file`] wrote it) into the run's averaged model.
pub fn load_averaged_file(exp: &mut Experiment, file: &StateDict) -> Result<()> {
    let Some(avg) = exp.averaging.as_mut() else {
        return Ok(());
    };
    let mut state = StateDict::new();
    for p in &exp.params {
        let saved = file.require(&p.name, p.var.dims())?;
        state.insert(format!("module.{}", p.name), saved.clone());
    }
    state.insert(N_AVERAGED, file.require(N_AVERAGED, &[])?.clone());
    avg.model.load_state_dict(&state)?;
    // What the interrupted run last evaluated; before averaging began it kept none.
    avg.file = avg.active().then(|| file.clone());
    Ok(())
}
