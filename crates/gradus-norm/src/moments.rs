//! Normalization over a set of dimensions, in Candle ops (so autograd gives the backward pass),
//! and the config checks the layers share.

use candle_core::Tensor;
use gradus_core::{Error, Result};

/// Batch moments over `dims` (kept as size-1 dimensions): the mean and the *biased* variance
/// `mean((x - mean)^2)`, as every PyTorch normalization layer uses for normalizing.
pub(crate) fn moments(x: &Tensor, dims: &[usize]) -> Result<(Tensor, Tensor)> {
    let count: usize = dims
        .iter()
        .map(|&d| x.dim(d))
        .product::<candle_core::Result<usize>>()?;
    let mean = (x.sum_keepdim(dims)? / count as f64)?;
    let var = (x.broadcast_sub(&mean)?.sqr()?.sum_keepdim(dims)? / count as f64)?;
    Ok((mean, var))
}

/// `(x - mean) / sqrt(var + eps)`, broadcasting `mean` and `var`.
pub(crate) fn normalize(x: &Tensor, mean: &Tensor, var: &Tensor, eps: f64) -> Result<Tensor> {
    let std = (var + eps)?.sqrt()?;
    Ok(x.broadcast_sub(mean)?.broadcast_div(&std)?)
}

/// `eps` must be finite and `>= 0`.
pub(crate) fn check_eps(layer: &str, eps: f64) -> Result<f64> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(eps)
    } else {
        Err(Error::InvalidHyperparameter(format!(
            "{layer}: eps must be a finite number >= 0, got {eps}"
        )))
    }
}

/// Product of `dims` (1 for none).
pub(crate) fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// A Gradus error as a Candle error, for the `Module` / `ModuleT` impls (Candle errors pass
/// through unchanged).
pub(crate) fn to_candle(err: Error) -> candle_core::Error {
    match err {
        Error::Candle(inner) => inner,
        other => candle_core::Error::wrap(other),
    }
}
