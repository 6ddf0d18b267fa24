//! One training step: gather and augment a batch, forward, loss and penalties, backward, then
//! the controls (accumulation, clipping, guard), the update, the regularizers' post-step
//! corrections and a per-step schedule.

use std::time::Instant;

use candle_core::{DType, Tensor};
use gradus_core::plugin::augment::ImageBatch;
use gradus_core::plugin::data::Task;
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::Result;
use gradus_optim::guard::Verdict;

use super::evaluate::correct;
use super::report::StepTiming;
use crate::checkpoint::TrainingState;
use crate::experiment::{one_hot, Experiment, SchedulePer};

/// What one training step did.
#[derive(Debug, Clone, Copy)]
pub struct StepRecord {
    /// Samples in the batch.
    pub samples: usize,
    /// Mean loss of the batch (without penalties).
    pub loss: f64,
    /// Sum of the regularization penalties added to the loss.
    pub penalty: f64,
    /// Correctly classified samples (classification only).
    pub correct: Option<usize>,
    /// The optimizer update this step attempted; `None` while gradients accumulate.
    pub update: Option<UpdateRecord>,
}

/// An attempted optimizer update.
#[derive(Debug, Clone, Copy)]
pub struct UpdateRecord {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// The non-finite guard skipped the update.
    pub skipped: bool,
}

/// How a training step ended.
#[derive(Debug, Clone, Copy)]
pub enum StepOutcome {
    /// The step ran (its update may have been skipped by the guard).
    Trained(StepRecord),
    /// The loss was not finite and `train.terminate_on_non_finite` is set: nothing was updated.
    NonFiniteLoss(f64),
}

/// Runs one training step on the samples `indices` of the training split.
pub fn train_step(
    exp: &mut Experiment,
    state: &mut TrainingState,
    indices: &[u32],
    timing: &mut StepTiming,
) -> Result<StepOutcome> {
    let started = Instant::now();
    let (x, labels, targets) = training_batch(exp, state, indices)?;
    let mut ctx = ForwardContext {
        train: true,
        rng: &mut state.layer_rng,
    };
    let output = exp.model.forward(&x, &mut ctx)?;
    let loss = exp.loss.compute(&output, &targets)?;
    let loss_value = scalar(&loss)?;
    if exp.pipeline.train.terminate_on_non_finite && !loss_value.is_finite() {
        return Ok(StepOutcome::NonFiniteLoss(loss_value));
    }
    let (objective, penalty) = timed(&mut timing.regularizer_seconds, || {
        with_penalties(exp, loss)
    })?;
    let grads = objective.backward()?;
    let update = match exp.controls.accumulate(grads)? {
        Some(grads) => Some(update(exp, grads, loss_value + penalty, timing)?),
        None => None,
    };
    let correct = match exp.task {
        Task::Classification { .. } => Some(correct(&output, &labels)?),
        Task::Regression => None,
    };
    timing.step_seconds += started.elapsed().as_secs_f64();
    Ok(StepOutcome::Trained(StepRecord {
        samples: indices.len(),
        loss: loss_value,
        penalty,
        correct,
        update,
    }))
}

/// Features, class labels and training targets of a batch: the targets are the labels, or the
/// soft labels an augmentation mixed.
fn training_batch(
    exp: &Experiment,
    state: &mut TrainingState,
    indices: &[u32],
) -> Result<(Tensor, Tensor, Tensor)> {
    let (x, y) = gradus_data::gather(exp.loader.dataset(), indices)?;
    let x = x.to_dtype(exp.dtype)?;
    // Augmentation runs on the host; the batch moves to the model's device afterwards.
    let (x, targets) = if exp.augment.is_empty() {
        (x, y.clone())
    } else {
        augment_batch(exp, &x, &y, &mut state.augment_rng)?
    };
    Ok((
        exp.on_device(&x)?,
        exp.on_device(&y)?,
        exp.on_device(&targets)?,
    ))
}

/// The loss plus every regularizer's penalty, and the penalties' sum.
fn with_penalties(exp: &Experiment, loss: Tensor) -> Result<(Tensor, f64)> {
    let mut total = loss;
    let mut penalty = 0.0;
    for r in &exp.regularizers {
        if let Some(p) = r.penalty(&exp.params)? {
            penalty += scalar(&p)?;
            total = (total.clone() + p.to_dtype(total.dtype())?)?;
        }
    }
    Ok((total, penalty))
}

/// Clips, updates through the guard and, when the update ran, applies the regularizers'
/// post-step corrections and a per-step schedule.
fn update(
    exp: &mut Experiment,
    mut grads: candle_core::backprop::GradStore,
    objective: f64,
    timing: &mut StepTiming,
) -> Result<UpdateRecord> {
    let grad_norm = timed(&mut timing.clip_seconds, || {
        exp.controls.clip(&exp.params, &mut grads)
    })?;
    let verdict = timed(&mut timing.optimizer_seconds, || {
        exp.controls
            .update(objective, &grads, exp.optimizer.as_mut())
    })?;
    let skipped = verdict != Verdict::Proceed;
    if !skipped {
        let lr = exp.optimizer.learning_rate()?;
        timed(&mut timing.regularizer_seconds, || {
            exp.regularizers
                .iter_mut()
                .try_for_each(|r| r.after_step(&exp.params, lr))
        })?;
        if let Some((schedule, SchedulePer::Step)) = exp.schedule.as_mut() {
            schedule.step(exp.optimizer.as_mut(), None)?;
        }
    }
    Ok(UpdateRecord { grad_norm, skipped })
}

/// Applies the pipeline's augmentations to a batch; returns the augmented features and the
/// targets (soft labels where an augmentation mixed samples, else `y`).
pub fn augment_batch(
    exp: &Experiment,
    x: &Tensor,
    y: &Tensor,
    rng: &mut gradus_core::SeededRng,
) -> Result<(Tensor, Tensor)> {
    let dims = x.dims4()?;
    let num_classes = match exp.task {
        Task::Classification { num_classes } => num_classes,
        Task::Regression => 0,
    };
    let hard = (num_classes > 0)
        .then(|| one_hot(y, num_classes))
        .transpose()?;
    let mut batch = ImageBatch {
        pixels: x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
        n: dims.0,
        c: dims.1,
        h: dims.2,
        w: dims.3,
        targets: hard.clone(),
        num_classes,
    };
    for op in &exp.augment {
        op.apply(&mut batch, rng)?;
    }
    let x = Tensor::from_vec(
        batch.pixels,
        (batch.n, batch.c, batch.h, batch.w),
        x.device(),
    )?
    .to_dtype(exp.dtype)?;
    let targets = match (batch.targets, hard) {
        (Some(soft), Some(hard)) if soft != hard => {
            Tensor::from_vec(soft, (batch.n, num_classes), x.device())?.to_dtype(exp.dtype)?
        }
        _ => y.clone(),
    };
    Ok((x, targets))
}

/// A scalar tensor's value as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Runs `f`, adding its wall time to `acc`.
pub fn timed<T>(acc: &mut f64, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let out = f();
    *acc += start.elapsed().as_secs_f64();
    out
}
