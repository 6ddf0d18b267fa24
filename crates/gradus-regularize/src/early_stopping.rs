//! Early stopping on a monitored metric, with Keras' `EarlyStopping` semantics.

use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::Device;
use gradus_core::{Error, NamedVar, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether smaller or larger values of the monitored metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `max` when the monitor name contains `acc` (Keras' rule), else `min`.
    Auto,
    /// Smaller is better (losses).
    Min,
    /// Larger is better (accuracies).
    Max,
}

/// Configuration of [`EarlyStopping`]; field names and defaults are Keras'
/// (`keras.callbacks.EarlyStopping`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStoppingConfig {
    /// Name of the monitored metric (for messages and the runner). Default: `"val_loss"`.
    pub monitor: String,
    /// `min`, `max` or `auto`. Default: `"auto"`.
    pub mode: Mode,
    /// An improvement must beat the best value by more than this (`>= 0`). Default: `0.0`.
    pub min_delta: f64,
    /// Epochs without improvement after which training stops. Default: `0`.
    pub patience: usize,
    /// A value the metric must beat before the patience counter resets. Default: `null`.
    pub baseline: Option<f64>,
    /// Epochs (0-based) before this one are ignored (warm-up). Default: `0`.
    pub start_from_epoch: usize,
    /// Keep the best weights (or the best checkpoint's path) and restore them. Default: `false`.
    pub restore_best_weights: bool,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            monitor: "val_loss".to_string(),
            mode: Mode::Auto,
            min_delta: 0.0,
            patience: 0,
            baseline: None,
            start_from_epoch: 0,
            restore_best_weights: false,
        }
    }
}

/// Why training stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// `patience` epochs passed without an improvement larger than `min_delta`.
    NoImprovement {
        /// Monitored metric.
        monitor: String,
        /// Epoch (0-based) at which the stop was decided.
        epoch: usize,
        /// Epochs since the last improvement.
        epochs_without_improvement: usize,
        /// Best value seen and its epoch (`None` if every value was NaN).
        best: Option<(f64, usize)>,
        /// The `min_delta` in force.
        min_delta: f64,
    },
    /// The metric never beat `baseline` within `patience` epochs.
    BaselineNotReached {
        /// Monitored metric.
        monitor: String,
        /// Epoch (0-based) at which the stop was decided.
        epoch: usize,
        /// The baseline.
        baseline: f64,
        /// Best value seen and its epoch.
        best: Option<(f64, usize)>,
    },
}

impl StopReason {
    /// The epoch (0-based) at which training stopped.
    pub fn epoch(&self) -> usize {
        match self {
            StopReason::NoImprovement { epoch, .. }
            | StopReason::BaselineNotReached { epoch, .. } => *epoch,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let best = |b: &Option<(f64, usize)>| match b {
            Some((v, e)) => format!("best {v} at epoch {e}"),
            None => "no finite value".to_string(),
        };
        match self {
            StopReason::NoImprovement { monitor, epoch, epochs_without_improvement, best: b, min_delta } => write!(
                f,
                "early stopping at epoch {epoch}: {monitor} did not improve by more than {min_delta} for {epochs_without_improvement} epochs ({})",
                best(b)
            ),
            StopReason::BaselineNotReached { monitor, epoch, baseline, best: b } => write!(
                f,
                "early stopping at epoch {epoch}: {monitor} did not beat the baseline {baseline} ({})",
                best(b)
            ),
        }
    }
}

/// What to do after an epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep training; `improved` says whether this epoch is the new best (save a checkpoint
    /// then, and hand its path to [`EarlyStopping::record_best_checkpoint`]).
    Continue {
        /// This epoch's value is the new best.
        improved: bool,
    },
    /// Stop training, for the given reason.
    Stop(StopReason),
}

/// Where the best weights are kept.
#[derive(Debug, Clone)]
enum BestWeights {
    Memory(StateDict),
    Checkpoint(PathBuf),
}

/// Early stopping fed one metric value per epoch, usable with or without the runner.
///
/// Semantics are those of Keras 3's `keras.callbacks.EarlyStopping` (0-based epochs):
/// epochs before `start_from_epoch` and missing values are ignored; each observed epoch
/// increments a `wait` counter; a value is an *improvement* when
/// `value < best - min_delta` (mode `min`) or `value > best + min_delta` (mode `max`), the
/// first observed value always being one; an improvement becomes the new best and resets `wait`
/// to 0, unless a `baseline` is set and not beaten (then `wait` keeps counting); training
/// stops when `wait >= patience` at an epoch `> 0`. So with patience `k` training stops exactly
/// `k` epochs after the last improvement. A NaN value is never an improvement (Keras would take
/// a first NaN as its best). With `restore_best_weights`, the weights at the best epoch (or, as
/// in Keras, at the first observed epoch if nothing improved) are kept and
/// [`restore_best`](Self::restore_best) writes them back bit-exactly; like Keras 3 the runner
/// should restore at the end of training, whether or not it stopped early.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    minimize: bool,
    wait: usize,
    best: Option<(f64, usize)>,
    best_weights: Option<BestWeights>,
    stopped: Option<StopReason>,
}

impl EarlyStopping {
    /// Validates `config`.
    pub fn new(config: EarlyStoppingConfig) -> Result<Self> {
        if !(config.min_delta.is_finite() && config.min_delta >= 0.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "min_delta must be finite and >= 0, got {}",
                config.min_delta
            )));
        }
        if config.baseline.is_some_and(f64::is_nan) {
            return Err(Error::InvalidHyperparameter(
                "baseline must not be NaN".to_string(),
            ));
        }
        let minimize = match config.mode {
            Mode::Min => true,
            Mode::Max => false,
            Mode::Auto => !config.monitor.contains("acc"),
        };
        Ok(EarlyStopping {
            config,
            minimize,
            wait: 0,
            best: None,
            best_weights: None,
            stopped: None,
        })
    }

    /// Parses and validates a JSON config at `path`.
    pub fn from_json(value: &Value, path: &str) -> Result<Self> {
        let config: EarlyStoppingConfig = gradus_core::config::parse_config(value, path)?;
        Self::new(config).map_err(|e| match e {
            Error::InvalidHyperparameter(m) => Error::config(path, m),
            other => other,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EarlyStoppingConfig {
        &self.config
    }

    fn improves(&self, value: f64, reference: Option<f64>) -> bool {
        match reference {
            _ if value.is_nan() => false,
            None => true,
            Some(r) if self.minimize => value < r - self.config.min_delta,
            Some(r) => value > r + self.config.min_delta,
        }
    }

    /// Feeds the metric of `epoch` (0-based); `params` (when given and `restore_best_weights`
    /// is set) are copied on a new best. Returns whether to continue.
    pub fn observe(
        &mut self,
        epoch: usize,
        value: f64,
        params: Option<&[NamedVar]>,
    ) -> Result<Decision> {
        if let Some(reason) = &self.stopped {
            return Ok(Decision::Stop(reason.clone()));
        }
        if epoch < self.config.start_from_epoch {
            return Ok(Decision::Continue { improved: false });
        }
        if self.config.restore_best_weights && self.best_weights.is_none() {
            self.snapshot(params)?;
        }
        self.wait += 1;
        if self.improves(value, self.best.map(|b| b.0)) {
            self.best = Some((value, epoch));
            if self.config.restore_best_weights {
                self.snapshot(params)?;
            }
            if self.config.baseline.is_none() || self.improves(value, self.config.baseline) {
                self.wait = 0;
            }
            return Ok(Decision::Continue { improved: true });
        }
        if self.wait >= self.config.patience && epoch > 0 {
            let reason = match self.config.baseline {
                Some(baseline)
                    if !self
                        .best
                        .is_some_and(|(b, _)| self.improves(b, Some(baseline))) =>
                {
                    StopReason::BaselineNotReached {
                        monitor: self.config.monitor.clone(),
                        epoch,
                        baseline,
                        best: self.best,
                    }
                }
                _ => StopReason::NoImprovement {
                    monitor: self.config.monitor.clone(),
                    epoch,
                    epochs_without_improvement: self.wait,
                    best: self.best,
                    min_delta: self.config.min_delta,
                },
            };
            self.stopped = Some(reason.clone());
            return Ok(Decision::Stop(reason));
        }
        Ok(Decision::Continue { improved: false })
    }

    fn snapshot(&mut self, params: Option<&[NamedVar]>) -> Result<()> {
        if let Some(params) = params {
            let mut state = StateDict::new();
            for p in params {
                // `copy` gives fresh storage: later in-place updates of the Var leave it alone.
                state.insert(p.name.clone(), p.var.as_tensor().detach().copy()?);
            }
            self.best_weights = Some(BestWeights::Memory(state));
        }
        Ok(())
    }

    /// Records that the best weights were saved to `path` (a [`StateDict`] file), instead of
    /// keeping a copy in memory.
    pub fn record_best_checkpoint(&mut self, path: impl Into<PathBuf>) {
        self.best_weights = Some(BestWeights::Checkpoint(path.into()));
    }

    /// Writes the kept best weights back into `params`, bit-exactly. Returns `false` when
    /// nothing was kept. Every parameter must be present with its shape and dtype.
    pub fn restore_best(&self, params: &[NamedVar]) -> Result<bool> {
        let loaded;
        let state = match &self.best_weights {
            None => return Ok(false),
            Some(BestWeights::Memory(state)) => state,
            Some(BestWeights::Checkpoint(path)) => {
                let device = params
                    .first()
                    // host-side: no parameter to follow; nothing is loaded then.
                    .map_or(Device::Cpu, |p| p.var.device().clone());
                loaded = StateDict::load(path, &device)?;
                &loaded
            }
        };
        for p in params {
            let saved = state.require(&p.name, p.var.dims())?;
            if saved.dtype() != p.var.dtype() {
                return Err(Error::StateMismatch(format!(
                    "best weights `{}` are {:?}, the parameter is {:?}",
                    p.name,
                    saved.dtype(),
                    p.var.dtype()
                )));
            }
            p.var.set(saved)?;
        }
        Ok(true)
    }

    /// The best value and its epoch.
    pub fn best(&self) -> Option<(f64, usize)> {
        self.best
    }

    /// Epochs since the last improvement (Keras' `wait`).
    pub fn wait(&self) -> usize {
        self.wait
    }

    /// Why and when training stopped, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stopped.as_ref()
    }

    /// The path of the best checkpoint, when one was recorded.
    pub fn best_checkpoint(&self) -> Option<&Path> {
        match &self.best_weights {
            Some(BestWeights::Checkpoint(p)) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "early_stopping_tests.rs"]
mod tests;
