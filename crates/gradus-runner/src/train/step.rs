//! One training step: gather and augment a batch, forward, loss and penalties, backward (twice
//! with SAM), then the controls (accumulation, clipping, guard), the update (or an L-BFGS step
//! through a closure), the regularizers' post-step corrections, the EMA and a per-step
//! schedule.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use gradus_core::plugin::augment::ImageBatch;
use gradus_core::plugin::data::Task;
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{NamedVar, Result, SeededRng, UpdatePath};
use gradus_optim::clip::{total_norm, NormType};
use gradus_optim::guard::Verdict;
use gradus_optim::sam::Perturbation;

use super::averaged;
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

/// Runs one training step on the samples `indices` of the training split: one forward and
/// backward pass, two with `train.sam` (the second at the perturbed weights, whose gradients
/// are clipped and applied), or the optimizer's own closure-driven step (L-BFGS, over the full
/// batch).
pub fn train_step(
    exp: &mut Experiment,
    state: &mut TrainingState,
    indices: &[u32],
    timing: &mut StepTiming,
) -> Result<StepOutcome> {
    let started = Instant::now();
    let epoch = state.epochs_done + 1;
    let (x, labels, targets) = training_batch(exp, state, indices)?;
    let first = forward_backward(exp, &x, &targets, &mut state.layer_rng, timing)?;
    if exp.pipeline.train.terminate_on_non_finite && !first.loss.is_finite() {
        return Ok(StepOutcome::NonFiniteLoss(first.loss));
    }
    let correct = match exp.task {
        Task::Classification { .. } => Some(correct(&first.output, &labels)?),
        Task::Regression => None,
    };
    let (loss, penalty) = (first.loss, first.penalty);
    let update = if exp.optimizer.needs_closure() {
        Some(closure_update(
            exp,
            state,
            first,
            (&x, &targets),
            epoch,
            timing,
        )?)
    } else {
        let (grads, objective) = match exp.sam.clone() {
            None => (first.grads, first.loss + first.penalty),
            Some(config) => {
                // SAM: the gradient at the worst point of the rho-ball is applied at `w`.
                let params = exp.optimizer.params();
                let perturbed = Perturbation::apply(&config, &params, &first.grads)?;
                let second = forward_backward(exp, &x, &targets, &mut state.layer_rng, timing);
                perturbed.restore()?;
                let second = second?;
                (second.grads, second.loss + second.penalty)
            }
        };
        match exp.controls.accumulate(grads)? {
            Some(grads) => Some(update(exp, grads, objective, epoch, timing)?),
            None => None,
        }
    };
    timing.step_seconds += started.elapsed().as_secs_f64();
    Ok(StepOutcome::Trained(StepRecord {
        samples: indices.len(),
        loss,
        penalty,
        correct,
        update,
    }))
}

/// One forward and backward pass over a batch.
pub struct Pass {
    /// The model's output.
    pub output: Tensor,
    /// Mean loss of the batch (without penalties).
    pub loss: f64,
    /// Sum of the regularization penalties.
    pub penalty: f64,
    /// Gradients of the loss plus the penalties.
    pub grads: GradStore,
}

/// Forward (training mode, stochastic layers drawing from `rng`), loss, penalties, backward.
pub fn forward_backward(
    exp: &mut Experiment,
    x: &Tensor,
    targets: &Tensor,
    rng: &mut SeededRng,
    timing: &mut StepTiming,
) -> Result<Pass> {
    let mut ctx = ForwardContext { train: true, rng };
    let output = exp.model.forward(x, &mut ctx)?;
    let loss = exp.loss.compute(&output, targets)?;
    let loss_value = scalar(&loss)?;
    let (objective, penalty) = timed(&mut timing.regularizer_seconds, || {
        with_penalties(&exp.regularizers, &exp.params, loss)
    })?;
    let grads = exp.controls.scale(objective)?.backward()?;
    Ok(Pass {
        output,
        loss: loss_value,
        penalty,
        grads,
    })
}

/// The step of an optimizer that needs a closure (L-BFGS): the closure re-evaluates the loss
/// with penalties and its gradients over the same batch (the whole training set: full
/// batching); its first call returns the pass already taken. The non-finite guard checks that
/// first pass (`skip` and `error` as for any optimizer; `rollback` scales the learning rate,
/// with no snapshot to restore); clipping and accumulation are refused when the pipeline is
/// built.
fn closure_update(
    exp: &mut Experiment,
    state: &mut TrainingState,
    first: Pass,
    (x, targets): (&Tensor, &Tensor),
    epoch: usize,
    timing: &mut StepTiming,
) -> Result<UpdateRecord> {
    let grad_norm = timed(&mut timing.clip_seconds, || {
        total_norm(
            &exp.params,
            &first.grads,
            NormType::P(2.0),
            UpdatePath::Auto,
        )
    })?;
    let objective = first.loss + first.penalty;
    let verdict = exp
        .controls
        .guard
        .check(Some(objective), &first.grads, &exp.params)?;
    match verdict {
        Verdict::Proceed => {}
        Verdict::RolledBack => {
            exp.controls.guard.restore(exp.optimizer.as_mut())?;
            return Ok(UpdateRecord {
                grad_norm,
                skipped: true,
            });
        }
        _ => {
            return Ok(UpdateRecord {
                grad_norm,
                skipped: true,
            })
        }
    }
    let mut cached = Some((objective, first.grads));
    let Experiment {
        model,
        loss,
        regularizers,
        params,
        optimizer,
        ..
    } = exp;
    let rng = &mut state.layer_rng;
    let mut closure = || -> Result<(f64, GradStore)> {
        if let Some(first) = cached.take() {
            return Ok(first);
        }
        let mut ctx = ForwardContext {
            train: true,
            rng: &mut *rng,
        };
        let output = model.forward(x, &mut ctx)?;
        let value = loss.compute(&output, targets)?;
        let loss_value = scalar(&value)?;
        let (objective, penalty) = with_penalties(regularizers, params, value)?;
        Ok((loss_value + penalty, objective.backward()?))
    };
    timed(&mut timing.optimizer_seconds, || {
        optimizer.step_with_closure(&mut closure)
    })?;
    after_update(exp, epoch, timing)?;
    Ok(UpdateRecord {
        grad_norm,
        skipped: false,
    })
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
pub fn with_penalties(
    regularizers: &[Box<dyn Regularizer>],
    params: &[NamedVar],
    loss: Tensor,
) -> Result<(Tensor, f64)> {
    let mut total = loss;
    let mut penalty = 0.0;
    for r in regularizers {
        if let Some(p) = r.penalty(params)? {
            penalty += scalar(&p)?;
            total = (total.clone() + p.to_dtype(total.dtype())?)?;
        }
    }
    Ok((total, penalty))
}

/// Clips, updates through the guard and, when the update ran, applies what follows an update
/// ([`after_update`]).
fn update(
    exp: &mut Experiment,
    mut grads: GradStore,
    objective: f64,
    epoch: usize,
    timing: &mut StepTiming,
) -> Result<UpdateRecord> {
    // Loss scaling: unscaled before clipping; a non-finite unscaled gradient skips the step.
    if exp.controls.unscale(exp.optimizer.as_ref(), &mut grads)? {
        exp.controls.update_scale()?;
        return Ok(UpdateRecord {
            grad_norm: f64::INFINITY,
            skipped: true,
        });
    }
    let grad_norm = timed(&mut timing.clip_seconds, || {
        exp.controls.clip(&exp.params, &mut grads)
    })?;
    let verdict = timed(&mut timing.optimizer_seconds, || {
        exp.controls
            .update(objective, &grads, exp.optimizer.as_mut())
    })?;
    exp.controls.update_scale()?;
    let skipped = verdict != Verdict::Proceed;
    if !skipped {
        after_update(exp, epoch, timing)?;
    }
    Ok(UpdateRecord { grad_norm, skipped })
}

/// After an update that ran: the regularizers' post-step corrections, the EMA of
/// `train.averaging`, and a per-step schedule (not in SWA's averaging phase, where `SWALR`
/// drives the learning rate).
fn after_update(exp: &mut Experiment, epoch: usize, timing: &mut StepTiming) -> Result<()> {
    let lr = exp.optimizer.learning_rate()?;
    timed(&mut timing.regularizer_seconds, || {
        exp.regularizers
            .iter_mut()
            .try_for_each(|r| r.after_step(&exp.params, lr))
    })?;
    averaged::after_update(exp)?;
    if averaged::pipeline_schedule_steps(exp, epoch) {
        if let Some((schedule, SchedulePer::Step)) = exp.schedule.as_mut() {
            schedule.step(exp.optimizer.as_mut(), None)?;
        }
    }
    Ok(())
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
