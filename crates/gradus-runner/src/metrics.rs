//! Per-epoch metrics: the records written to `metrics.csv` and `metrics.jsonl` of a run folder.

use std::path::Path;

use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// One epoch of a training run. Accuracy fields are `None` for regression tasks and validation
/// fields are `None` when the pipeline has no validation split.
///
/// In `metrics.jsonl` every float round-trips exactly; a non-finite one (a diverged loss) is the
/// string `"inf"`, `"-inf"` or `"nan"` ([`gradus_core::json_float`]). `metrics.csv` writes them
/// as `inf`, `-inf` and `NaN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, starting at 1.
    pub epoch: usize,
    /// Mean training loss over the epoch (without regularization penalties).
    #[serde(with = "gradus_core::json_float")]
    pub train_loss: f64,
    /// Training accuracy over the epoch (classification only).
    #[serde(with = "gradus_core::json_float::option")]
    pub train_accuracy: Option<f64>,
    /// Validation loss after the epoch.
    #[serde(with = "gradus_core::json_float::option")]
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch.
    #[serde(with = "gradus_core::json_float::option")]
    pub val_accuracy: Option<f64>,
    /// Learning rate (group 0) at the end of the epoch.
    #[serde(with = "gradus_core::json_float")]
    pub lr: f64,
    /// Mean global L2 gradient norm over the epoch's steps (before clipping).
    #[serde(with = "gradus_core::json_float")]
    pub grad_norm: f64,
    /// Mean regularization penalty added to the loss over the epoch.
    #[serde(with = "gradus_core::json_float")]
    pub penalty: f64,
    /// Optimizer steps skipped by the non-finite guard during the epoch.
    pub skipped_steps: usize,
    /// Wall-clock seconds spent on the epoch.
    #[serde(with = "gradus_core::json_float")]
    pub seconds: f64,
    /// Which weights the validation metrics evaluated when not the training weights: `ema` or
    /// `swa` (`train.averaging`, once averaging has begun), `eval_point` (a schedule-free
    /// optimizer's averaged point `x`). Not a `metrics.csv` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
}

/// The CSV header, in field order.
pub const CSV_HEADER: &str =
    "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,grad_norm,penalty,skipped_steps,seconds";

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

impl EpochMetrics {
    /// One CSV line (without newline), fields as in [`CSV_HEADER`]; floats in shortest
    /// round-trip form so that equal values give equal text.
    pub fn csv_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.train_loss,
            opt(self.train_accuracy),
            opt(self.val_loss),
            opt(self.val_accuracy),
            self.lr,
            self.grad_norm,
            self.penalty,
            self.skipped_steps,
            self.seconds
        )
    }
}

/// Writes `metrics.csv` and `metrics.jsonl` for `records` into `dir` (both rewritten whole,
/// atomically, so a crash never leaves a half-written file).
pub fn write_all(dir: &Path, records: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    let mut jsonl = String::new();
    for r in records {
        csv.push_str(&r.csv_line());
        csv.push('\n');
        let line = serde_json::to_string(r)
            .map_err(|e| Error::Unsupported(format!("cannot encode metrics: {e}")))?;
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    gradus_core::state_dict::write_atomically(&dir.join("metrics.csv"), csv.as_bytes())?;
    gradus_core::state_dict::write_atomically(&dir.join("metrics.jsonl"), jsonl.as_bytes())
}

/// Reads `metrics.jsonl` of a run folder.
pub fn read_jsonl(dir: &Path) -> Result<Vec<EpochMetrics>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::CorruptFile {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}
