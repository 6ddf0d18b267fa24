//! Small helpers shared by the initializers: validation and degenerate shapes.

use candle_core::{DType, Device, Tensor};
use gradus_core::{Error, Result};

/// `value` if finite, else an error naming the initializer and field.
pub(crate) fn finite(what: &str, field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::InvalidHyperparameter(format!(
            "{what}: `{field}` must be a finite number, got {value}"
        )))
    }
}

/// A finite, non-negative `value` (gains and standard deviations).
pub(crate) fn non_negative(what: &str, field: &str, value: f64) -> Result<f64> {
    if finite(what, field, value)? < 0.0 {
        return Err(Error::InvalidHyperparameter(format!(
            "{what}: `{field}` must be >= 0, got {value}"
        )));
    }
    Ok(value)
}

/// A tensor of `shape` filled with `value`, in `dtype`.
pub(crate) fn filled(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(value, shape, device)?.to_dtype(dtype)?)
}

/// True for a shape with no elements: every initializer returns it empty and draws nothing,
/// as PyTorch's "Initializing zero-element tensors is a no-op".
pub(crate) fn is_empty(shape: &[usize]) -> bool {
    shape.contains(&0)
}
