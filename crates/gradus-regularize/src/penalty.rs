//! Shared pieces of the penalties: the sums they are made of, hyperparameter checks, and the
//! last value kept for logging.

use std::sync::Mutex;

use candle_core::{DType, Tensor};
use gradus_core::{Error, NamedVar, Result};

/// Keeps the last penalty value (as a detached scalar tensor) so that it can be logged without
/// forcing a device-to-host copy on every step.
#[derive(Debug, Default)]
pub struct PenaltyLog {
    last: Mutex<Option<Tensor>>,
}

impl PenaltyLog {
    /// Records `value` (a scalar tensor) as the latest penalty.
    pub fn record(&self, value: &Tensor) {
        let mut slot = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(value.detach());
    }

    /// The latest recorded penalty as `f64`, or `None` before the first [`record`](Self::record).
    pub fn last_value(&self) -> Result<Option<f64>> {
        let slot = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(t) => Ok(Some(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)),
            None => Ok(None),
        }
    }
}

/// `sum |w|` whose gradient is `sign(w)`, i.e. exactly 0 at `w = 0`.
///
/// Candle's `abs` differentiates to +1 at 0; multiplying by the detached sign instead gives the
/// minimum-norm subgradient, and the same value (`w * sign(w) = |w|` exactly in floating point).
pub(crate) fn sum_abs(w: &Tensor) -> Result<Tensor> {
    let sign = w.sign()?.detach();
    Ok(w.mul(&sign)?.sum_all()?)
}

/// `sum w^2`.
pub(crate) fn sum_sq(w: &Tensor) -> Result<Tensor> {
    Ok(w.sqr()?.sum_all()?)
}

/// `sum_p scale * f(p)` over the selected parameters, in the dtype of the first one, or `None`
/// when nothing is selected.
pub(crate) fn total(
    selected: &[&NamedVar],
    scale: f64,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Option<Tensor>> {
    let mut acc: Option<Tensor> = None;
    for p in selected {
        let term = f(p.var.as_tensor())?;
        acc = Some(match acc {
            None => term,
            Some(a) => {
                let term = term.to_dtype(a.dtype())?;
                (a + term)?
            }
        });
    }
    acc.map(|t| Ok(t.affine(scale, 0.0)?)).transpose()
}

/// Adds two optional scalar penalties.
pub(crate) fn add_opt(a: Option<Tensor>, b: Option<Tensor>) -> Result<Option<Tensor>> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => {
            let b = b.to_dtype(a.dtype())?;
            Some((a + b)?)
        }
        (a, b) => a.or(b),
    })
}

/// A coefficient that must be finite and `>= 0`.
pub(crate) fn check_coefficient(path: &str, field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            gradus_core::config::join_path(path, field),
            format!("invalid {field} value: {value} (must be finite and >= 0)"),
        ))
    }
}

/// The learning rate handed to `after_step`, which must be finite and `>= 0`.
pub(crate) fn check_lr(lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter(format!(
            "Invalid learning rate: {lr}"
        )))
    }
}
