//! The training loop: epochs of guarded, clipped, regularized steps, evaluation, metrics,
//! checkpoints, early stopping and the final report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use gradus_core::plugin::augment::ImageBatch;
use gradus_core::plugin::data::{Dataset, Task};
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::{Error, Result, SeededRng};
use gradus_optim::accumulate::{AccumulateConfig, GradAccumulator};
use gradus_optim::clip::{total_norm, ClipConfig, NormType};
use gradus_optim::guard::Verdict;
use gradus_optim::UpdatePath;
use gradus_regularize::Decision;
use serde::Serialize;

use crate::checkpoint::{self, TrainingState};
use crate::experiment::{one_hot, Experiment, SchedulePer};
use crate::metrics::{self, EpochMetrics};

/// How a run is driven.
pub struct RunOptions {
    /// The run folder.
    pub dir: PathBuf,
    /// One line per epoch instead of a progress bar.
    pub quiet: bool,
    /// Set (by Ctrl-C) to stop after the current batch.
    pub interrupt: crate::signals::Interrupt,
}

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
    }
}

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

fn correct(output: &Tensor, targets: &Tensor) -> Result<usize> {
    let predicted = output.argmax_keepdim(1)?.flatten_all()?.to_vec1::<u32>()?;
    let labels = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    Ok(predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count())
}

/// Loss and accuracy of the model in evaluation mode over `data`.
pub fn evaluate(exp: &mut Experiment, data: &Dataset) -> Result<(f64, Option<f64>)> {
    let n = data.features.dims().first().copied().unwrap_or(0);
    let mut rng = SeededRng::new(0);
    let (mut loss_sum, mut hits) = (0.0, 0usize);
    let step = exp.pipeline.train.eval_batch_size;
    for start in (0..n).step_by(step.max(1)) {
        let len = step.min(n - start);
        let x = data.features.narrow(0, start, len)?;
        let y = data.targets.narrow(0, start, len)?;
        let mut ctx = ForwardContext {
            train: false,
            rng: &mut rng,
        };
        let out = exp.model.forward(&x, &mut ctx)?;
        let loss = exp.loss.compute(&out, &y)?;
        loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * len as f64;
        if matches!(data.task, Task::Classification { .. }) {
            hits += correct(&out, &y)?;
        }
    }
    let accuracy =
        matches!(data.task, Task::Classification { .. }).then(|| hits as f64 / n.max(1) as f64);
    Ok((loss_sum / n.max(1) as f64, accuracy))
}

fn augment_batch(
    exp: &Experiment,
    x: &Tensor,
    y: &Tensor,
    rng: &mut SeededRng,
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

struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(quiet: bool, batches: usize, epoch: usize, epochs: usize) -> Progress {
        if quiet || !std::io::stdout().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new(batches as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        Progress { bar: Some(bar) }
    }

    fn tick(&self, loss: f64, accuracy: Option<f64>, lr: f64) {
        if let Some(bar) = &self.bar {
            let acc = accuracy
                .map(|a| format!(" acc {:.3}", a))
                .unwrap_or_default();
            bar.set_message(format!("loss {loss:.4}{acc} lr {lr:.3e}"));
            bar.inc(1);
        }
    }

    /// Ends the epoch's bar with `line` (without the bar's own `epoch i/n` prefix), or prints it.
    fn finish(&self, line: &str) {
        match &self.bar {
            Some(bar) => {
                let metrics = line.strip_prefix("epoch ").and_then(|r| r.split_once(' '));
                bar.finish_with_message(metrics.map_or(line, |(_, rest)| rest).to_string())
            }
            None => println!("{line}"),
        }
    }
}

fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let mut line = format!("epoch {}/{epochs} train_loss {:.4}", m.epoch, m.train_loss);
    if let Some(a) = m.train_accuracy {
        line.push_str(&format!(" train_acc {a:.4}"));
    }
    if let Some(v) = m.val_loss {
        line.push_str(&format!(" val_loss {v:.4}"));
    }
    if let Some(a) = m.val_accuracy {
        line.push_str(&format!(" val_acc {a:.4}"));
    }
    line.push_str(&format!(" lr {:.3e} ({:.2}s)", m.lr, m.seconds));
    line
}

fn timed<T>(acc: &mut f64, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let out = f();
    *acc += start.elapsed().as_secs_f64();
    out
}

/// What `gradus validate` runs after building: one training forward and backward pass (with the
/// augmentations and the loss) on the smallest batch the batching produces in the first epoch,
/// and one evaluation forward pass, so that shapes and layer constraints that only a batch
/// reveals (batch norm on a one-sample batch, an augmentation that changes the sample shape, a
/// loss that does not fit the labels) fail validation instead of the run. No parameter or
/// optimizer state is updated (the experiment is discarded afterwards).
pub fn dry_run(exp: &mut Experiment) -> Result<()> {
    let batches = exp.loader.epoch_indices(0)?;
    let Some(smallest) = batches.iter().min_by_key(|b| b.len()) else {
        return Err(Error::config(
            "batching",
            "the batching produces no batch from the training split",
        ));
    };
    let described = |e: Error| {
        Error::config(
            "batching",
            format!(
                "a training step on the smallest batch ({} samples) fails: {e}",
                smallest.len()
            ),
        )
    };
    let mut rng = SeededRng::new(exp.pipeline.seed).derive("dry-run");
    let step = |exp: &mut Experiment, rng: &mut SeededRng| -> Result<()> {
        let (x, y) = gradus_data::gather(exp.loader.dataset(), smallest)?;
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
    };
    step(exp, &mut rng).map_err(described)?;
    if let Some(val) = exp.val.clone() {
        let take = val.features.dims().first().copied().unwrap_or(0).min(2);
        if take > 0 {
            let x = val.features.narrow(0, 0, take)?;
            let y = val.targets.narrow(0, 0, take)?;
            let mut ctx = ForwardContext {
                train: false,
                rng: &mut rng,
            };
            let out = exp.model.forward(&x, &mut ctx)?;
            exp.loss.compute(&out, &y).map_err(|e| {
                Error::config(
                    "loss",
                    format!("the loss does not fit the validation labels: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// How a call of [`train`] ended.
#[derive(Debug)]
pub enum Ended {
    /// Trained to the end (all epochs, early stopping, or a non-finite loss): the report.
    Finished(Report),
    /// Stopped by a signal after a batch; says which checkpoint `resume` continues from.
    Interrupted(String),
}

/// Trains from `state` (fresh or loaded from a checkpoint) to the end, writing metrics,
/// checkpoints, plots and `report.json` into `opts.dir`.
pub fn train(exp: &mut Experiment, mut state: TrainingState, opts: &RunOptions) -> Result<Ended> {
    let started = Instant::now();
    let epochs = exp.pipeline.train.epochs;
    let checkpoints = opts.dir.join("checkpoints");
    let monitor = monitor_name(exp);
    // Early stopping is replayed from the recorded metrics, so a resumed run decides alike.
    let mut stop_reason: Option<String> = None;
    if let Some(es) = exp.early_stopping.as_mut() {
        for (i, m) in state.metrics.iter().enumerate() {
            if let Decision::Stop(reason) =
                es.observe(i, monitored(m, &monitor).unwrap_or(f64::NAN), None)?
            {
                stop_reason = Some(format!("early stopping: {reason:?}"));
            }
        }
    }
    let mut timing = StepTiming::default();
    let mut samples = 0usize;
    let mut accumulator = if exp.pipeline.train.accumulate > 1 {
        let config = AccumulateConfig {
            steps: exp.pipeline.train.accumulate,
            ..AccumulateConfig::default()
        };
        Some(GradAccumulator::new(exp.params.clone(), &config)?)
    } else {
        None
    };
    let mut interrupted = false;
    let mut terminated = false;
    let terminate_on_non_finite = exp.pipeline.train.terminate_on_non_finite;
    while stop_reason.is_none() && state.epochs_done < epochs {
        let epoch_start = Instant::now();
        let epoch = state.epochs_done;
        let batches = exp.loader.epoch_indices(epoch)?;
        let progress = Progress::new(opts.quiet, batches.len(), epoch + 1, epochs);
        let (
            mut loss_sum,
            mut penalty_sum,
            mut norm_sum,
            mut hits,
            mut seen,
            mut steps,
            mut skipped,
        ) = (0.0, 0.0, 0.0, 0usize, 0usize, 0usize, 0usize);
        for (batch_index, indices) in batches.iter().enumerate() {
            if opts.interrupt.requested() {
                interrupted = true;
                break;
            }
            let step_start = Instant::now();
            let (x, y) = gradus_data::gather(exp.loader.dataset(), indices)?;
            let x = x.to_dtype(exp.dtype)?;
            let (x, targets) = if exp.augment.is_empty() {
                (x, y.clone())
            } else {
                augment_batch(exp, &x, &y, &mut state.augment_rng)?
            };
            let mut ctx = ForwardContext {
                train: true,
                rng: &mut state.layer_rng,
            };
            let out = exp.model.forward(&x, &mut ctx)?;
            let loss = exp.loss.compute(&out, &targets)?;
            let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if terminate_on_non_finite && !loss_value.is_finite() {
                stop_reason = Some(format!(
                    "non-finite loss ({loss_value}) at epoch {}, batch {} (terminate_on_non_finite)",
                    epoch + 1,
                    batch_index + 1
                ));
                terminated = true;
                break;
            }
            let mut total = loss;
            let mut penalty = 0.0;
            timed(&mut timing.regularizer_seconds, || {
                for r in &exp.regularizers {
                    if let Some(p) = r.penalty(&exp.params)? {
                        penalty += p.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                        total = (total.clone() + p.to_dtype(total.dtype())?)?;
                    }
                }
                Ok(())
            })?;
            let mut grads: GradStore = total.backward()?;
            let ready = match accumulator.as_mut() {
                None => true,
                Some(acc) => {
                    if acc.add(&grads)? {
                        grads = acc.take()?;
                        true
                    } else {
                        false
                    }
                }
            };
            if ready {
                let norm = timed(&mut timing.clip_seconds, || {
                    // L2 norm clipping already computes the norm the metrics record.
                    match &exp.clip {
                        Some(clip @ ClipConfig::Norm(c)) if c.norm_type == NormType::P(2.0) => {
                            Ok(clip.apply(&exp.params, &mut grads)?.unwrap_or(0.0))
                        }
                        other => {
                            let path = other.as_ref().map_or(UpdatePath::Auto, |c| c.path());
                            let before = total_norm(&exp.params, &grads, NormType::P(2.0), path)?;
                            if let Some(clip) = other {
                                clip.apply(&exp.params, &mut grads)?;
                            }
                            Ok(before)
                        }
                    }
                })?;
                let verdict = timed(&mut timing.optimizer_seconds, || {
                    exp.guard
                        .step(Some(loss_value + penalty), &grads, exp.optimizer.as_mut())
                })?;
                if verdict == Verdict::Proceed {
                    let lr = exp.optimizer.learning_rate()?;
                    timed(&mut timing.regularizer_seconds, || {
                        exp.regularizers
                            .iter_mut()
                            .try_for_each(|r| r.after_step(&exp.params, lr))
                    })?;
                    if let Some((schedule, SchedulePer::Step)) = exp.schedule.as_mut() {
                        schedule.step(exp.optimizer.as_mut(), None)?;
                    }
                } else {
                    skipped += 1;
                }
                norm_sum += if norm.is_finite() { norm } else { 0.0 };
                steps += 1;
            }
            let n = indices.len();
            loss_sum += loss_value * n as f64;
            penalty_sum += penalty;
            if matches!(exp.task, Task::Classification { .. }) {
                hits += correct(&out, &y)?;
            }
            seen += n;
            samples += n;
            timing.step_seconds += step_start.elapsed().as_secs_f64();
            let accuracy =
                matches!(exp.task, Task::Classification { .. }).then(|| hits as f64 / seen as f64);
            progress.tick(
                loss_sum / seen as f64,
                accuracy,
                exp.optimizer.learning_rate().unwrap_or(f64::NAN),
            );
        }
        if interrupted {
            progress.finish("interrupted");
            break;
        }
        if terminated {
            progress.finish("stopped: non-finite loss");
            eprintln!(
                "{}",
                stop_reason
                    .as_deref()
                    .unwrap_or("stopped at a non-finite loss")
            );
            break;
        }
        let (val_loss, val_accuracy) = match exp.val.clone() {
            Some(val) => {
                let (l, a) = evaluate(exp, &val)?;
                (Some(l), a)
            }
            None => (None, None),
        };
        let train_loss = loss_sum / seen.max(1) as f64;
        if let Some((schedule, SchedulePer::Epoch)) = exp.schedule.as_mut() {
            schedule.step(exp.optimizer.as_mut(), Some(val_loss.unwrap_or(train_loss)))?;
        }
        state.skipped_steps += skipped;
        let record = EpochMetrics {
            epoch: epoch + 1,
            train_loss,
            train_accuracy: matches!(exp.task, Task::Classification { .. })
                .then(|| hits as f64 / seen.max(1) as f64),
            val_loss,
            val_accuracy,
            lr: exp.optimizer.learning_rate()?,
            grad_norm: norm_sum / steps.max(1) as f64,
            penalty: penalty_sum / batches.len().max(1) as f64,
            skipped_steps: skipped,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        progress.finish(&epoch_line(&record, epochs));
        let value = monitored(&record, &monitor).unwrap_or(f64::NAN);
        state.metrics.push(record);
        state.epochs_done += 1;
        let improved = match exp.early_stopping.as_mut() {
            Some(es) => match es.observe(epoch, value, None)? {
                Decision::Continue { improved } => improved,
                Decision::Stop(reason) => {
                    stop_reason = Some(format!("early stopping: {reason:?}"));
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
        if improved {
            checkpoint::save(exp, &state, &checkpoints.join("best"))?;
        }
        let every = exp.pipeline.output.checkpoint_every;
        if every > 0 && state.epochs_done.is_multiple_of(every) {
            checkpoint::save(exp, &state, &checkpoints.join("last"))?;
        }
        metrics::write_all(&opts.dir, &state.metrics)?;
    }
    finish(
        exp,
        state,
        opts,
        started.elapsed(),
        timing,
        samples,
        Ending {
            interrupted,
            terminated,
            stop_reason,
        },
    )
}

/// How the epoch loop ended.
struct Ending {
    interrupted: bool,
    /// At a non-finite loss, with `terminate_on_non_finite`.
    terminated: bool,
    stop_reason: Option<String>,
}

fn finish(
    exp: &mut Experiment,
    state: TrainingState,
    opts: &RunOptions,
    elapsed: Duration,
    timing: StepTiming,
    samples: usize,
    ending: Ending,
) -> Result<Ended> {
    let Ending {
        interrupted,
        terminated,
        stop_reason,
    } = ending;
    let checkpoints = opts.dir.join("checkpoints");
    let epochs = exp.pipeline.train.epochs;
    if interrupted {
        return Ok(Ended::Interrupted(interrupted_message(
            &checkpoints.join("last"),
            state.epochs_done,
            &opts.dir,
        )));
    }
    let every = exp.pipeline.output.checkpoint_every;
    // Stopped mid-epoch at a non-finite loss, the weights no longer match `epochs_done`: the
    // checkpoints already written are kept as they are.
    if !terminated && (every == 0 || !state.epochs_done.is_multiple_of(every)) {
        checkpoint::save(exp, &state, &checkpoints.join("last"))?;
    }
    let restore = exp
        .early_stopping
        .as_ref()
        .is_some_and(|es| es.config().restore_best_weights);
    if restore {
        restore_best(exp, &checkpoints.join("best"))?;
    }
    let (test_loss, test_accuracy) = match exp.test.clone() {
        Some(test) => {
            let (l, a) = evaluate(exp, &test)?;
            (Some(l), a)
        }
        None => (None, None),
    };
    if exp.pipeline.output.plots && !state.metrics.is_empty() {
        let title = exp
            .pipeline
            .name
            .clone()
            .unwrap_or_else(|| "gradus run".into());
        crate::plots::write_plots(&opts.dir, &state.metrics, &title)?;
    }
    let non_finite_loss_epoch = state
        .metrics
        .iter()
        .find(|m| !m.train_loss.is_finite())
        .map(|m| m.epoch);
    let terminated_on_non_finite = terminated;
    let stopped_because = stop_reason.unwrap_or_else(|| match non_finite_loss_epoch {
        Some(e) => {
            format!("completed {epochs} epochs (the training loss became non-finite at epoch {e})")
        }
        None => format!("completed {epochs} epochs"),
    });
    if non_finite_loss_epoch.is_some() && !terminated {
        eprintln!("warning: {stopped_because}");
    }
    let report = Report {
        test_accuracy,
        test_loss,
        best_epoch: state.best.map(|(e, _)| e),
        epochs_run: state.epochs_done,
        stopped_because,
        non_finite_loss_epoch,
        terminated_on_non_finite,
        wall_seconds: elapsed.as_secs_f64(),
        samples_per_second: samples as f64 / timing.step_seconds.max(1e-9),
        timing,
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Unsupported(e.to_string()))?;
    gradus_core::state_dict::write_atomically(&opts.dir.join("report.json"), &json)?;
    Ok(Ended::Finished(report))
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
    }
    Ok(())
}
