//! The end of a training: the last checkpoint, the best weights restored, test metrics, plots
//! and `report.json`; or, for an interrupted run, exactly which checkpoint `resume` continues
//! from.

use std::path::Path;
use std::time::Duration;

use gradus_core::{Error, Result};
use serde::Serialize;

use super::averaged;
use super::console::Console;
use super::RunOptions;
use crate::checkpoint::{self, TrainingState};
use crate::experiment::Experiment;

/// Where the time of the training steps went (seconds, summed over the run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepTiming {
    /// Whole training steps (gather, forward, backward, controls, update).
    pub step_seconds: f64,
    /// The optimizer update (inside the non-finite guard).
    pub optimizer_seconds: f64,
    /// Gradient clipping and the gradient norm.
    pub clip_seconds: f64,
    /// Regularizer penalties and post-step corrections.
    pub regularizer_seconds: f64,
}

/// Samples trained and the time their steps took, over one invocation.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// Where the step time went.
    pub timing: StepTiming,
    /// Training samples processed.
    pub samples: usize,
}

/// `report.json` of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Accuracy on the test split (classification with a test split).
    #[serde(with = "gradus_core::json_float::option")]
    pub test_accuracy: Option<f64>,
    /// Loss on the test split (`"inf"` / `"nan"` when it diverged).
    #[serde(with = "gradus_core::json_float::option")]
    pub test_loss: Option<f64>,
    /// Epoch (1-based) of the best monitored value.
    pub best_epoch: Option<usize>,
    /// Epochs completed.
    pub epochs_run: usize,
    /// Which weights the test metrics (and the last epochs' validation metrics) evaluated:
    /// `training`, `ema` or `swa` (`train.averaging`), `eval_point` (a schedule-free
    /// optimizer's averaged point).
    pub evaluated_weights: String,
    /// The loss scale at the end (`train.loss_scale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
    /// Why training ended.
    pub stopped_because: String,
    /// The first epoch (1-based) whose training loss was infinite or NaN, if any.
    pub non_finite_loss_epoch: Option<usize>,
    /// Training ended at a non-finite loss (`train.terminate_on_non_finite`): exit code 3.
    pub terminated_on_non_finite: bool,
    /// Wall-clock seconds of this invocation (a resumed run counts its own time).
    pub wall_seconds: f64,
    /// Training samples processed per second of training-step time.
    pub samples_per_second: f64,
    /// Shares of the step time.
    pub timing: StepTiming,
}

/// Why the epoch loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Every epoch trained.
    Completed,
    /// Early stopping decided (the reason).
    EarlyStopping(String),
    /// A non-finite loss with `train.terminate_on_non_finite` (where it happened).
    NonFiniteLoss(String),
    /// A signal, after a batch.
    Interrupted,
}

/// Finishes a run whose epoch loop ended with `stop`: the report of a finished run, or the
/// message of an interrupted one.
pub fn finish(
    exp: &mut Experiment,
    state: &TrainingState,
    opts: &RunOptions,
    stop: Stop,
    elapsed: Duration,
    throughput: Throughput,
) -> Result<super::Ended> {
    let checkpoints = opts.dir.join("checkpoints");
    if stop == Stop::Interrupted {
        let last = checkpoints.join("last");
        let message = interrupted_message(&last, state.epochs_done, &opts.dir);
        return Ok(super::Ended::Interrupted(message));
    }
    let every = exp.pipeline.output.checkpoint_every;
    let terminated = matches!(stop, Stop::NonFiniteLoss(_));
    // Stopped mid-epoch at a non-finite loss, the weights no longer match `epochs_done`: the
    // checkpoints already written are kept as they are.
    if !terminated && (every == 0 || !state.epochs_done.is_multiple_of(every)) {
        checkpoint::save(exp, state, &checkpoints.join("last"))?;
    }
    let restore = exp
        .early_stopping
        .as_ref()
        .is_some_and(|es| es.config().restore_best_weights);
    if restore {
        restore_best(exp, &checkpoints.join("best"))?;
    }
    let (test_loss, test_accuracy) = match exp.test.clone() {
        Some(test) => match averaged::evaluate_split(exp, Some(&test))? {
            Some((loss, accuracy)) => (Some(loss), accuracy),
            None => (None, None),
        },
        None => (None, None),
    };
    let evaluated_weights = averaged::evaluated_weights(exp).unwrap_or_else(|| "training".into());
    let plots = if exp.pipeline.output.plots && !state.metrics.is_empty() {
        let title = exp.pipeline.name.as_deref().unwrap_or("gradus run");
        crate::plots::write_plots(&opts.dir, &state.metrics, title)?
    } else {
        Vec::new()
    };
    let report = Report {
        test_accuracy,
        test_loss,
        best_epoch: state.best.map(|(e, _)| e),
        epochs_run: state.epochs_done,
        evaluated_weights,
        loss_scale: exp.controls.scaler.as_ref().map(|s| s.current_scale()),
        stopped_because: stopped_because(exp, state, &stop, &opts.console),
        non_finite_loss_epoch: non_finite_loss_epoch(state),
        terminated_on_non_finite: terminated,
        wall_seconds: elapsed.as_secs_f64(),
        samples_per_second: throughput.samples as f64 / throughput.timing.step_seconds.max(1e-9),
        timing: throughput.timing,
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Unsupported(e.to_string()))?;
    gradus_core::state_dict::write_atomically(&opts.dir.join("report.json"), &json)?;
    write_html(exp, state, &opts.dir, &report, &plots)?;
    Ok(super::Ended::Finished(report))
}

/// `report.html`: the report, the plots written (inline), the epochs, the model, the pipeline.
fn write_html(
    exp: &Experiment,
    state: &TrainingState,
    dir: &Path,
    report: &Report,
    plots: &[&str],
) -> Result<()> {
    let mut svgs = Vec::new();
    for stem in plots {
        if let Some(svg) = crate::html::inline_svg(&dir.join(format!("{stem}.svg")))? {
            svgs.push((stem.to_string(), svg));
        }
    }
    let report_json =
        serde_json::to_value(report).map_err(|e| Error::Unsupported(e.to_string()))?;
    let summary = crate::experiment::model_summary(exp);
    let html = crate::html::run_report(&crate::html::RunPage {
        title: exp.pipeline.name.as_deref().unwrap_or("gradus run"),
        pipeline: &exp.pipeline.resolved(),
        model_summary: &summary,
        metrics: &state.metrics,
        report: &report_json,
        plots: &svgs,
    });
    gradus_core::state_dict::write_atomically(&dir.join("report.html"), html.as_bytes())
}

/// The first epoch whose training loss was not finite.
fn non_finite_loss_epoch(state: &TrainingState) -> Option<usize> {
    state
        .metrics
        .iter()
        .find(|m| !m.train_loss.is_finite())
        .map(|m| m.epoch)
}

/// `stopped_because` of the report; a loss that became non-finite without stopping the run is
/// also a warning on the terminal.
fn stopped_because(
    exp: &Experiment,
    state: &TrainingState,
    stop: &Stop,
    console: &Console,
) -> String {
    let epochs = exp.pipeline.train.epochs;
    match stop {
        Stop::EarlyStopping(reason) => format!("early stopping: {reason}"),
        Stop::NonFiniteLoss(reason) => reason.clone(),
        Stop::Completed | Stop::Interrupted => match non_finite_loss_epoch(state) {
            Some(e) => {
                let text = format!(
                    "completed {epochs} epochs (the training loss became non-finite at epoch {e})"
                );
                console.warn(&text);
                text
            }
            None => format!("completed {epochs} epochs"),
        },
    }
}

/// What an interrupted run keeps, precisely: the checkpoint `resume` will continue from (read
/// from disk, never assumed), or that there is none yet. The batches of the epoch in progress
/// are not kept: `resume` runs that epoch again, from the checkpoint, bit-identically.
fn interrupted_message(last: &Path, epochs_done: usize, dir: &Path) -> String {
    let during = epochs_done + 1;
    match checkpoint::epochs_in(last) {
        Some(kept) => format!(
            "interrupted during epoch {during}; checkpoints/last holds epoch {kept}: \
             `gradus resume {}` continues with epoch {}",
            dir.display(),
            kept + 1
        ),
        None => format!(
            "interrupted during epoch {during}, before the first checkpoint was written: \
             `gradus resume {}` starts again at epoch 1",
            dir.display()
        ),
    }
}

fn restore_best(exp: &mut Experiment, best: &Path) -> Result<()> {
    if let Some(dir) = checkpoint::locate(best) {
        let sd = gradus_core::StateDict::load(checkpoint::model_file(&dir), &exp.device)?;
        checkpoint::load_model_state(exp, &sd)?;
        if exp.averaging.is_some() {
            let file = checkpoint::averaged_file(&dir);
            let sd = gradus_core::StateDict::load(file, &exp.device)?;
            averaged::load_averaged_file(exp, &sd)?;
        }
    }
    Ok(())
}
