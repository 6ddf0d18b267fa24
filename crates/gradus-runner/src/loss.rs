//! Training losses: `cross_entropy` (with label smoothing), `mse`, `bce_with_logits`, each
//! with PyTorch's formula and mean reduction, built from the pipeline's `loss` object.

use candle_core::{DType, Tensor};
use gradus_core::config::{display_path, join_path, parse_config, split_type};
use gradus_core::suggest::nearest;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A loss: model output and targets in, a scalar tensor out (differentiable in `output`).
pub trait Loss: Send {
    /// The mean loss of a batch.
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor>;

    /// The registered name (`cross_entropy`, ...).
    fn name(&self) -> &str;
}

/// The loss names [`build_loss`] knows.
pub const LOSS_NAMES: &[&str] = &["bce_with_logits", "cross_entropy", "mse"];

/// Builds the loss described by `config` (`{"type": name, ...}`) found at JSON path `path`.
///
/// Configs are strict: an unknown field is an error naming `path` and the nearest valid field;
/// an unknown `type` lists [`LOSS_NAMES`] and suggests the nearest.
pub fn build_loss(config: &Value, path: &str) -> Result<Box<dyn Loss>> {
    let (name, rest) = split_type(config, path)?;
    match name.as_str() {
        "cross_entropy" => {
            let c: CrossEntropyConfig = parse_config(&rest, path)?;
            if !(0.0..=1.0).contains(&c.label_smoothing) {
                return Err(Error::config(
                    join_path(path, "label_smoothing"),
                    format!(
                        "label_smoothing must be between 0.0 and 1.0. Got: {}",
                        c.label_smoothing
                    ),
                ));
            }
            Ok(Box::new(CrossEntropy { config: c }))
        }
        "mse" => {
            let _: MseConfig = parse_config(&rest, path)?;
            Ok(Box::new(Mse))
        }
        "bce_with_logits" => {
            let _: BceWithLogitsConfig = parse_config(&rest, path)?;
            Ok(Box::new(BceWithLogits))
        }
        _ => Err(Error::UnknownName {
            kind: "loss",
            suggestion: nearest(&name, LOSS_NAMES),
            name,
            path: display_path(&join_path(path, "type")),
            valid: LOSS_NAMES.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// Cross-entropy of logits `(N, C)`, as `torch.nn.CrossEntropyLoss(label_smoothing=eps)`:
///
/// ```text
/// class indices y (N,):         loss = mean_n [ (1 - eps) (-log p[n, y_n]) + eps / C sum_c (-log p[n, c]) ]
/// probabilities t (N, C):       loss = mean_n [ -sum_c ((1 - eps) t[n, c] + eps / C) log p[n, c] ]
/// ```
///
/// with `log p = log_softmax(logits, dim=1)`. Integer targets (`u8`, `u32`, `i64`) are class
/// indices; float targets of the logits' shape are probabilities (e.g. after mixup).
#[derive(Debug, Clone)]
pub struct CrossEntropy {
    config: CrossEntropyConfig,
}

/// Configuration of [`CrossEntropy`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossEntropyConfig {
    /// Mass `eps` in `[0, 1]` moved from the target to the uniform distribution.
    /// Default: `0.0` (torch.nn.CrossEntropyLoss).
    pub label_smoothing: f64,
}

impl Loss for CrossEntropy {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let eps = self.config.label_smoothing;
        if targets.dtype().is_float() {
            gradus_regularize::cross_entropy_soft(output, targets, eps)
        } else {
            gradus_regularize::cross_entropy(output, targets, eps)
        }
    }

    fn name(&self) -> &str {
        "cross_entropy"
    }
}

/// Mean squared error, as `torch.nn.MSELoss()`: `loss = mean_i (output_i - target_i)^2`.
///
/// Targets have the output's shape, or `(N)` for an output `(N, 1)`; integer targets are
/// converted to the output's dtype.
#[derive(Debug, Clone, Copy)]
pub struct Mse;

/// Configuration of [`Mse`]: no fields (mean reduction, as torch.nn.MSELoss's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MseConfig {}

impl Loss for Mse {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let t = aligned_targets("mse", output, targets)?;
        Ok((output - t)?.sqr()?.mean_all()?)
    }

    fn name(&self) -> &str {
        "mse"
    }
}

/// Binary cross-entropy on logits, as `torch.nn.BCEWithLogitsLoss()`, in the stable form
///
/// ```text
/// loss = mean_i [ max(x_i, 0) - x_i t_i + log(1 + exp(-|x_i|)) ]
/// ```
///
/// (`= -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]`). Targets are floats of the output's
/// shape, or class indices `0`/`1` as integers `(N)` for an output `(N, 1)`.
#[derive(Debug, Clone, Copy)]
pub struct BceWithLogits;

/// Configuration of [`BceWithLogits`]: no fields (mean reduction, no `weight` / `pos_weight`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BceWithLogitsConfig {}

impl Loss for BceWithLogits {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if !targets.dtype().is_float() {
            let labels = targets
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            if let Some((i, v)) = labels
                .iter()
                .enumerate()
                .find(|(_, v)| **v != 0.0 && **v != 1.0)
            {
                return Err(Error::InvalidHyperparameter(format!(
                    "bce_with_logits integer target {v} at index {i} is not 0 or 1"
                )));
            }
        }
        let t = aligned_targets("bce_with_logits", output, targets)?;
        let x = output;
        let softplus_neg_abs = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
        Ok(((x.relu()? - (x * t)?)? + softplus_neg_abs)?.mean_all()?)
    }

    fn name(&self) -> &str {
        "bce_with_logits"
    }
}

/// `targets` in the output's shape and dtype: the same shape, or `(N)` for an output `(N, 1)`.
fn aligned_targets(name: &str, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !output.dtype().is_float() {
        return Err(Error::Unsupported(format!(
            "{name} needs a floating-point model output, got {:?}",
            output.dtype()
        )));
    }
    let same = targets.dims() == output.dims();
    let column =
        output.dims().len() == 2 && output.dim(1)? == 1 && targets.dims() == [output.dim(0)?];
    if !(same || column) {
        return Err(Error::ShapeMismatch {
            context: format!(
                "{name} targets (the model output's shape, or (N) for an output (N, 1))"
            ),
            expected: output.dims().to_vec(),
            actual: targets.dims().to_vec(),
        });
    }
    Ok(targets.to_dtype(output.dtype())?.reshape(output.dims())?)
}

#[cfg(test)]
#[path = "loss_tests.rs"]
mod tests;
