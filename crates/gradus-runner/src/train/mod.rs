//! The training loop, as a page: for each epoch, [`epoch::run_epoch`] (its steps are
//! [`step::train_step`], through the [`controls::Controls`]), then [`record_epoch`] (metrics,
//! early stopping, best and last checkpoints), then [`report::finish`].

pub mod averaged;
pub mod console;
pub mod controls;
pub mod dry_run;
pub mod epoch;
pub mod evaluate;
pub mod report;
pub mod step;

use std::path::PathBuf;
use std::time::Instant;

use gradus_core::{Result, SeededRng};
use gradus_regularize::Decision;

pub use console::Console;
pub use controls::Controls;
pub use dry_run::dry_run;
pub use evaluate::evaluate;
pub use report::{Report, StepTiming};

use crate::checkpoint::{self, TrainingState};
use crate::experiment::Experiment;
use crate::metrics::{self, EpochMetrics};
use epoch::{run_epoch, EpochEnd};
use report::{Stop, Throughput};

/// How a run is driven.
pub struct RunOptions {
    /// The run folder.
    pub dir: PathBuf,
    /// What the run shows while it trains.
    pub console: Console,
    /// Set (by Ctrl-C or SIGTERM) to stop after the current batch.
    pub interrupt: crate::signals::Interrupt,
}

/// How a call of [`train`] ended.
#[derive(Debug)]
pub enum Ended {
    /// Trained to the end (all epochs, early stopping, or a non-finite loss): the report.
    Finished(Report),
    /// Stopped by a signal after a batch; says which checkpoint `resume` continues from.
    Interrupted(String),
}

/// The state of a run that has not trained yet.
pub fn fresh_state(seed: u64) -> TrainingState {
    let root = SeededRng::new(seed);
    TrainingState {
        epochs_done: 0,
        metrics: Vec::new(),
        layer_rng: root.derive("layers"),
        augment_rng: root.derive("augment"),
        schedule: None,
        best: None,
        skipped_steps: 0,
        swa_schedule: None,
    }
}

/// Trains from `state` (fresh or loaded from a checkpoint) to the end, writing metrics,
/// checkpoints, plots and `report.json` into `opts.dir`.
pub fn train(exp: &mut Experiment, mut state: TrainingState, opts: &RunOptions) -> Result<Ended> {
    let started = Instant::now();
    let mut throughput = Throughput::default();
    let mut stop = replay_early_stopping(exp, &state)?;
    while stop == Stop::Completed && state.epochs_done < exp.pipeline.train.epochs {
        stop = match run_epoch(
            exp,
            &mut state,
            &opts.console,
            &opts.interrupt,
            &mut throughput,
        )? {
            EpochEnd::Completed(record) => record_epoch(exp, &mut state, record, opts)?,
            EpochEnd::Interrupted => Stop::Interrupted,
            EpochEnd::NonFiniteLoss(reason) => {
                eprintln!("{reason}");
                Stop::NonFiniteLoss(reason)
            }
        };
    }
    report::finish(exp, &state, opts, stop, started.elapsed(), throughput)
}

/// Early stopping decides from the recorded metrics, so a resumed run is told what the
/// interrupted one saw (and stops where it would have).
fn replay_early_stopping(exp: &mut Experiment, state: &TrainingState) -> Result<Stop> {
    let monitor = monitor_name(exp);
    let mut stop = Stop::Completed;
    if let Some(es) = exp.early_stopping.as_mut() {
        for (i, m) in state.metrics.iter().enumerate() {
            let value = monitored(m, &monitor).unwrap_or(f64::NAN);
            if let Decision::Stop(reason) = es.observe(i, value, None)? {
                stop = Stop::EarlyStopping(format!("{reason:?}"));
            }
        }
    }
    Ok(stop)
}

/// Records a completed epoch: its metrics, early stopping's decision, the best value, the
/// `best` and `last` checkpoints and the metrics files.
fn record_epoch(
    exp: &mut Experiment,
    state: &mut TrainingState,
    record: EpochMetrics,
    opts: &RunOptions,
) -> Result<Stop> {
    let monitor = monitor_name(exp);
    let value = monitored(&record, &monitor).unwrap_or(f64::NAN);
    let epoch = state.epochs_done;
    state.skipped_steps += record.skipped_steps;
    state.metrics.push(record);
    state.epochs_done += 1;
    let mut stop = Stop::Completed;
    let improved = match exp.early_stopping.as_mut() {
        Some(es) => match es.observe(epoch, value, None)? {
            Decision::Continue { improved } => improved,
            Decision::Stop(reason) => {
                stop = Stop::EarlyStopping(format!("{reason:?}"));
                false
            }
        },
        None => {
            let maximize = monitor.ends_with("accuracy");
            state
                .best
                .is_none_or(|(_, best)| if maximize { value > best } else { value < best })
        }
    };
    if improved {
        state.best = Some((epoch + 1, value));
    }
    state.schedule = exp.schedule.as_ref().map(|(s, _)| s.state());
    state.swa_schedule = exp
        .averaging
        .as_ref()
        .and_then(|a| a.swa_schedule.as_ref())
        .map(|s| s.state());
    let checkpoints = opts.dir.join("checkpoints");
    if improved {
        checkpoint::save(exp, state, &checkpoints.join("best"))?;
    }
    let every = exp.pipeline.output.checkpoint_every;
    if every > 0 && state.epochs_done.is_multiple_of(every) {
        checkpoint::save(exp, state, &checkpoints.join("last"))?;
    }
    metrics::write_all(&opts.dir, &state.metrics)?;
    Ok(stop)
}

/// The metric early stopping (or, without it, the best checkpoint) follows.
fn monitor_name(exp: &Experiment) -> String {
    match &exp.early_stopping {
        Some(es) => es.config().monitor.clone(),
        None if exp.val.is_some() => "val_loss".into(),
        None => "train_loss".into(),
    }
}

fn monitored(m: &EpochMetrics, name: &str) -> Option<f64> {
    match name {
        "val_loss" => m.val_loss,
        "val_accuracy" => m.val_accuracy,
        "train_accuracy" => m.train_accuracy,
        _ => Some(m.train_loss),
    }
}
