//! What `gradus validate` runs after building a pipeline, so that a pipeline valid for
//! `validate` cannot fail `run` on its configuration: what only a batch, a step or the whole run
//! reveals is tried here, each failure reported at the JSON path of the part that fails.

use gradus_core::plugin::layer::ForwardContext;
use gradus_core::{Error, Result, SeededRng};

use super::step::augment_batch;
use crate::experiment::{Experiment, SchedulePer};

/// Schedule steps tried at most (a run longer than this is checked over its first ones).
pub const MAX_SCHEDULE_STEPS: usize = 2_000_000;

/// Tries everything that can fail at run time on configuration, without training:
///
/// 1. one training step on the smallest batch the batching produces in the first epoch:
///    augmentations (`augment`), the forward pass (each layer at its `model.layers[i]` path:
///    batch norm on a one-sample batch, an augmentation that changes the sample shape), the
///    loss against the training targets (`loss`), every regularizer's penalty and post-step
///    correction (`regularizers[i]`: a parameter selection that matches nothing) and the
///    backward pass;
/// 2. one evaluation forward pass and loss on the validation labels;
/// 3. the schedule stepped over the whole run, as many times as the run will step it
///    (`schedule`: a `one_cycle` whose `total_steps` is too small).
///
/// The experiment is consumed in the process (parameters, optimizer hyperparameters and
/// schedule state change): build a fresh one to train.
pub fn dry_run(exp: &mut Experiment) -> Result<()> {
    let batches = exp.loader.epoch_indices(0).map_err(|e| e.at("batching"))?;
    let Some(smallest) = batches.iter().min_by_key(|b| b.len()) else {
        return Err(Error::config(
            "batching",
            "the batching produces no batch from the training split",
        ));
    };
    let mut rng = SeededRng::new(exp.pipeline.seed).derive("dry-run");
    training_pass(exp, smallest, &mut rng).map_err(|e| on_smallest_batch(e, smallest.len()))?;
    evaluation_pass(exp, &mut rng)?;
    schedule_over_the_run(exp, batches.len())
}

/// Places an error of the training pass: at its own path when it names one, else at
/// `batching`, saying it was the smallest batch.
fn on_smallest_batch(err: Error, samples: usize) -> Error {
    let noun = if samples == 1 { "sample" } else { "samples" };
    let context = format!("on the smallest training batch ({samples} {noun})");
    match err {
        Error::Config { path, message } => Error::config(path, format!("{context}: {message}")),
        other => Error::config(
            "batching",
            format!("a training step {context} fails: {other}"),
        ),
    }
}

fn training_pass(exp: &mut Experiment, indices: &[u32], rng: &mut SeededRng) -> Result<()> {
    let (x, y) = gradus_data::gather(exp.loader.dataset(), indices)?;
    let x = x.to_dtype(exp.dtype)?;
    let (x, targets) = if exp.augment.is_empty() {
        (x, y)
    } else {
        let mut augment_rng = rng.derive("augment");
        let (augmented, targets) = augment_batch(exp, &x, &y, &mut augment_rng)
            .map_err(|e| Error::config("augment", e.to_string()))?;
        if augmented.dims()[1..] != x.dims()[1..] {
            return Err(Error::config(
                "augment",
                format!(
                    "the augmentations change the sample shape from {:?} to {:?}, which the \
                     model (input {:?}) cannot take",
                    &x.dims()[1..],
                    &augmented.dims()[1..],
                    exp.model.input_shape()
                ),
            ));
        }
        (augmented, targets)
    };
    let (x, targets) = (exp.on_device(&x)?, exp.on_device(&targets)?);
    let mut ctx = ForwardContext { train: true, rng };
    let out = exp.model.forward(&x, &mut ctx)?;
    let mut loss = exp.loss.compute(&out, &targets).map_err(|e| {
        Error::config(
            "loss",
            format!(
                "`{}` does not fit the training targets: {e}",
                exp.loss.name()
            ),
        )
    })?;
    for r in &exp.regularizers {
        if let Some(penalty) = r.penalty(&exp.params)? {
            loss = (loss + penalty.to_dtype(out.dtype())?)?;
        }
    }
    let _ = loss.backward()?;
    let lr = exp.optimizer.learning_rate()?;
    for r in exp.regularizers.iter_mut() {
        r.after_step(&exp.params, lr)?;
    }
    Ok(())
}

fn evaluation_pass(exp: &mut Experiment, rng: &mut SeededRng) -> Result<()> {
    let Some(val) = exp.val.clone() else {
        return Ok(());
    };
    let take = val.features.dims().first().copied().unwrap_or(0).min(2);
    if take == 0 {
        return Ok(());
    }
    let x = exp.on_device(&val.features.narrow(0, 0, take)?)?;
    let y = exp.on_device(&val.targets.narrow(0, 0, take)?)?;
    let mut ctx = ForwardContext { train: false, rng };
    let out = exp.model.forward(&x, &mut ctx)?;
    exp.loss.compute(&out, &y).map_err(|e| {
        Error::config(
            "loss",
            format!("the loss does not fit the validation labels: {e}"),
        )
    })?;
    Ok(())
}

/// Steps the schedule as often as the run will: once per epoch, or once per optimizer update
/// (the epochs' batches divided by `train.accumulate`; the first epoch's batch count stands
/// for every epoch's, which holds for every built-in batching). A per-epoch schedule is given
/// a constant metric.
fn schedule_over_the_run(exp: &mut Experiment, batches_per_epoch: usize) -> Result<()> {
    // In SWA's averaging phase `SWALR` drives the learning rate, not the pipeline's schedule.
    let epochs = (1..=exp.pipeline.train.epochs)
        .filter(|&e| super::averaged::pipeline_schedule_steps(exp, e))
        .count();
    let Some((schedule, per)) = exp.schedule.as_mut() else {
        return Ok(());
    };
    let (steps, unit) = match per {
        SchedulePer::Epoch => (epochs, "epochs"),
        SchedulePer::Step => {
            let accumulate = exp.pipeline.train.accumulate.max(1);
            (
                epochs.saturating_mul(batches_per_epoch) / accumulate,
                "optimizer updates",
            )
        }
    };
    let metric = matches!(per, SchedulePer::Epoch).then_some(1.0);
    for step in 1..=steps.min(MAX_SCHEDULE_STEPS) {
        schedule.step(exp.optimizer.as_mut(), metric).map_err(|e| {
            Error::config(
                "schedule",
                format!(
                    "the run steps the schedule {steps} times ({unit}); step {step} fails: {e}"
                ),
            )
        })?;
    }
    Ok(())
}
