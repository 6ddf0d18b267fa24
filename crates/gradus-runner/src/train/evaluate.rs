//! Evaluation: the model in evaluation mode over a split, in batches of
//! `train.eval_batch_size`, giving the mean loss and (classification) the accuracy.

use candle_core::{DType, Tensor};
use gradus_core::plugin::data::{Dataset, Task};
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::{Result, SeededRng};

use super::step::scalar;
use crate::experiment::Experiment;

/// How many rows of `output` (class scores) pick the class in `labels`.
pub fn correct(output: &Tensor, labels: &Tensor) -> Result<usize> {
    let predicted = output.argmax_keepdim(1)?.flatten_all()?.to_vec1::<u32>()?;
    let labels = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    Ok(predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count())
}

/// Loss and accuracy of the model in evaluation mode over `data`.
pub fn evaluate(exp: &mut Experiment, data: &Dataset) -> Result<(f64, Option<f64>)> {
    let n = data.features.dims().first().copied().unwrap_or(0);
    let classification = matches!(data.task, Task::Classification { .. });
    // Evaluation draws nothing, but layers take a generator: a fixed one keeps it so.
    let mut rng = SeededRng::new(0);
    let (mut loss_sum, mut hits) = (0.0, 0usize);
    let step = exp.pipeline.train.eval_batch_size.max(1);
    for start in (0..n).step_by(step) {
        let len = step.min(n - start);
        let x = exp.on_device(&data.features.narrow(0, start, len)?)?;
        let y = exp.on_device(&data.targets.narrow(0, start, len)?)?;
        let mut ctx = ForwardContext {
            train: false,
            rng: &mut rng,
        };
        let out = exp.model.forward(&x, &mut ctx)?;
        loss_sum += scalar(&exp.loss.compute(&out, &y)?)? * len as f64;
        if classification {
            hits += correct(&out, &y)?;
        }
    }
    let accuracy = classification.then(|| hits as f64 / n.max(1) as f64);
    Ok((loss_sum / n.max(1) as f64, accuracy))
}
