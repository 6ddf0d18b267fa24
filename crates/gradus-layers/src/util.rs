//! Small pieces the layers share: `int or [h, w]` sizes, required fields, error placement, and
//! strided slicing along one dimension.

use candle_core::Tensor;
use gradus_core::config::join_path;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A 2-d size given as one integer (used for both dimensions) or `[h, w]`, as PyTorch's
/// `_pair` arguments (`kernel_size=3` or `kernel_size=(3, 5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Size2 {
    /// The same value for height and width.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Size2 {
    /// `[height, width]`.
    pub fn get(self) -> [usize; 2] {
        match self {
            Size2::One(v) => [v, v],
            Size2::Two(v) => v,
        }
    }
}

/// The value of a field PyTorch requires (no default): a [`Error::Config`] at `path.field` when
/// absent.
pub(crate) fn required<T: Copy>(value: Option<T>, path: &str, field: &str) -> Result<T> {
    value.ok_or_else(|| Error::config(join_path(path, field), format!("missing field `{field}`")))
}

/// An [`Error::Config`] at `path.field` for an invalid hyperparameter value.
pub(crate) fn invalid(path: &str, field: &str, message: impl Into<String>) -> Error {
    Error::config(join_path(path, field), message)
}

/// Every `step`-th entry of `x` along `dim`, starting at 0 (`x[..., ::step]`); a no-op for 1.
pub(crate) fn every_nth(x: &Tensor, dim: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(x.clone());
    }
    let x = x.contiguous()?; // Candle's index_select wants a contiguous source
    let len = x.dim(dim)?;
    let idx: Vec<u32> = (0..len).step_by(step).map(|i| i as u32).collect();
    let idx = Tensor::from_vec(idx.clone(), idx.len(), x.device())?;
    Ok(x.index_select(&idx, dim)?)
}

/// Output length of a sliding window: `floor((len + 2 pad - dilation (k - 1) - 1) / stride) + 1`,
/// or `None` when the window does not fit (PyTorch's "output size is too small").
///
/// Computed in `u128`, so that no size a config can hold overflows (`padding: 2^63`); a length
/// beyond `usize` saturates, and the output-size limit of the model's build then rejects it
/// with its JSON path.
pub(crate) fn window_out(
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
) -> Option<usize> {
    let span = window_span(k, dil) as u128;
    let padded = len as u128 + 2 * pad as u128;
    (padded >= span).then(|| {
        let out = (padded - span) / stride.max(1) as u128 + 1;
        usize::try_from(out).unwrap_or(usize::MAX)
    })
}

/// Extent of a dilated window, `dilation (k - 1) + 1`, saturating at `usize::MAX`.
pub(crate) fn window_span(k: usize, dil: usize) -> usize {
    dil.saturating_mul(k.saturating_sub(1)).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lengths_follow_torch_and_never_overflow() {
        assert_eq!(window_out(8, 3, 1, 1, 1), Some(8));
        assert_eq!(window_out(8, 2, 2, 0, 1), Some(4));
        assert_eq!(window_out(8, 3, 1, 0, 4), None);
        // Sizes no layer could allocate saturate instead of wrapping or panicking; the build's
        // output-size limit rejects them with their path.
        assert_eq!(window_out(8, 3, 1, 1 << 63, 1), Some(usize::MAX));
        assert_eq!(window_out(8, usize::MAX, 1, 0, usize::MAX), None);
        assert_eq!(window_span(usize::MAX, 2), usize::MAX);
    }
}
