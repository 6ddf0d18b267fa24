//! What `gradus validate` runs after building a pipeline, so that what only a batch reveals
//! fails validation instead of the run.

use gradus_core::plugin::layer::ForwardContext;
use gradus_core::{Error, Result, SeededRng};

use super::step::augment_batch;
use crate::experiment::Experiment;

/// One training forward and backward pass (with the augmentations and the loss) on the
/// smallest batch the batching produces in the first epoch, and one evaluation forward pass,
/// so that shapes and layer constraints that only a batch reveals (batch norm on a one-sample
/// batch, an augmentation that changes the sample shape, a loss that does not fit the labels)
/// fail validation instead of the run. No parameter or optimizer state is updated (the
/// experiment is discarded afterwards).
pub fn dry_run(exp: &mut Experiment) -> Result<()> {
    let batches = exp.loader.epoch_indices(0)?;
    let Some(smallest) = batches.iter().min_by_key(|b| b.len()) else {
        return Err(Error::config(
            "batching",
            "the batching produces no batch from the training split",
        ));
    };
    let mut rng = SeededRng::new(exp.pipeline.seed).derive("dry-run");
    training_pass(exp, smallest, &mut rng).map_err(|e| {
        Error::config(
            "batching",
            format!(
                "a training step on the smallest batch ({} samples) fails: {e}",
                smallest.len()
            ),
        )
    })?;
    evaluation_pass(exp, &mut rng)
}

fn training_pass(exp: &mut Experiment, indices: &[u32], rng: &mut SeededRng) -> Result<()> {
    let (x, y) = gradus_data::gather(exp.loader.dataset(), indices)?;
    let x = x.to_dtype(exp.dtype)?;
    let (x, targets) = if exp.augment.is_empty() {
        (x, y)
    } else {
        let mut augment_rng = rng.derive("augment");
        augment_batch(exp, &x, &y, &mut augment_rng)?
    };
    let mut ctx = ForwardContext { train: true, rng };
    let out = exp.model.forward(&x, &mut ctx)?;
    let loss = exp.loss.compute(&out, &targets)?;
    let _ = loss.backward()?;
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
    let x = val.features.narrow(0, 0, take)?;
    let y = val.targets.narrow(0, 0, take)?;
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
