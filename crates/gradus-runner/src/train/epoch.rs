//! One epoch: its batches' training steps, then SWA's update, evaluation on the validation
//! split (with the weights the run evaluates: [`super::averaged`]) and a per-epoch schedule
//! step (`SWALR` in SWA's phase), summed into the epoch's [`EpochMetrics`] record.

use std::time::Instant;

use gradus_core::plugin::data::Task;
use gradus_core::Result;

use super::averaged;
use super::console::Console;
use super::report::Throughput;
use super::step::{train_step, StepOutcome, StepRecord};
use crate::checkpoint::TrainingState;
use crate::experiment::{Experiment, SchedulePer};
use crate::metrics::EpochMetrics;
use crate::signals::Interrupt;

/// Sums over an epoch's training steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct EpochTotals {
    /// Batches trained.
    pub batches: usize,
    /// Samples trained.
    pub samples: usize,
    /// Sum of batch mean losses weighted by batch size.
    pub loss_sum: f64,
    /// Sum of the batches' penalties.
    pub penalty_sum: f64,
    /// Correct predictions (classification).
    pub correct: usize,
    /// Optimizer updates attempted.
    pub updates: usize,
    /// Updates the guard skipped.
    pub skipped: usize,
    /// Sum of the finite gradient norms of the attempted updates.
    pub grad_norm_sum: f64,
}

impl EpochTotals {
    /// Adds one step.
    pub fn add(&mut self, step: &StepRecord) {
        self.batches += 1;
        self.samples += step.samples;
        self.loss_sum += step.loss * step.samples as f64;
        self.penalty_sum += step.penalty;
        self.correct += step.correct.unwrap_or(0);
        if let Some(update) = step.update {
            self.updates += 1;
            self.skipped += usize::from(update.skipped);
            if update.grad_norm.is_finite() {
                self.grad_norm_sum += update.grad_norm;
            }
        }
    }

    /// Mean training loss so far.
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }

    /// Training accuracy so far (classification only).
    pub fn accuracy(&self, task: Task) -> Option<f64> {
        matches!(task, Task::Classification { .. })
            .then(|| self.correct as f64 / self.samples.max(1) as f64)
    }
}

/// How an epoch ended.
#[derive(Debug)]
pub enum EpochEnd {
    /// Every batch trained, then evaluated: the epoch's record.
    Completed(EpochMetrics),
    /// A signal arrived; the epoch's batches so far are not kept.
    Interrupted,
    /// A non-finite loss with `train.terminate_on_non_finite`: why, for the report.
    NonFiniteLoss(String),
}

/// Trains epoch `state.epochs_done` (0-based), adding its steps' samples and times to `throughput`.
pub fn run_epoch(
    exp: &mut Experiment,
    state: &mut TrainingState,
    console: &Console,
    interrupt: &Interrupt,
    throughput: &mut Throughput,
) -> Result<EpochEnd> {
    let started = Instant::now();
    let epoch = state.epochs_done;
    let epochs = exp.pipeline.train.epochs;
    let batches = exp.loader.epoch_indices(epoch)?;
    let progress = console.epoch(batches.len(), epoch + 1, epochs);
    // A schedule-free optimizer was left at its eval point by the last evaluation.
    exp.optimizer.train()?;
    let mut totals = EpochTotals::default();
    for (batch, indices) in batches.iter().enumerate() {
        if interrupt.requested() {
            progress.abandon("interrupted");
            return Ok(EpochEnd::Interrupted);
        }
        match train_step(exp, state, indices, &mut throughput.timing)? {
            StepOutcome::Trained(step) => {
                throughput.samples += step.samples;
                totals.add(&step)
            }
            StepOutcome::NonFiniteLoss(loss) => {
                progress.abandon("stopped: non-finite loss");
                return Ok(EpochEnd::NonFiniteLoss(format!(
                    "non-finite loss ({loss}) at epoch {}, batch {} (terminate_on_non_finite)",
                    epoch + 1,
                    batch + 1
                )));
            }
        }
        let lr = exp.optimizer.learning_rate().unwrap_or(f64::NAN);
        progress.tick(totals.mean_loss(), totals.accuracy(exp.task), lr);
    }
    let record = close_epoch(exp, epoch, &totals, started)?;
    progress.finish(&record);
    Ok(EpochEnd::Completed(record))
}

/// Evaluates the validation split, steps a per-epoch schedule and makes the epoch's record.
fn close_epoch(
    exp: &mut Experiment,
    epoch: usize,
    totals: &EpochTotals,
    started: Instant,
) -> Result<EpochMetrics> {
    let number = epoch + 1;
    averaged::end_of_epoch(exp, number)?;
    // Evaluated and saved at the eval point; `train()` at the next epoch's start.
    exp.optimizer.eval()?;
    if exp.optimizer.has_eval_point() {
        averaged::recompute_batch_norm(exp)?;
    }
    let val = exp.val.clone();
    let (val_loss, val_accuracy) = match averaged::evaluate_split(exp, val.as_ref())? {
        Some((loss, accuracy)) => (Some(loss), accuracy),
        None => (None, None),
    };
    let weights = averaged::evaluated_weights(exp);
    let train_loss = totals.mean_loss();
    if !averaged::step_swa_schedule(exp, number)? {
        if let Some((schedule, SchedulePer::Epoch)) = exp.schedule.as_mut() {
            schedule.step(exp.optimizer.as_mut(), Some(val_loss.unwrap_or(train_loss)))?;
        }
    }
    Ok(EpochMetrics {
        epoch: epoch + 1,
        train_loss,
        train_accuracy: totals.accuracy(exp.task),
        val_loss,
        val_accuracy,
        lr: exp.optimizer.learning_rate()?,
        grad_norm: totals.grad_norm_sum / totals.updates.max(1) as f64,
        penalty: totals.penalty_sum / totals.batches.max(1) as f64,
        skipped_steps: totals.skipped,
        seconds: started.elapsed().as_secs_f64(),
        weights,
    })
}
