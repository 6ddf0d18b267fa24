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
    let mean = (sum_keepdim(x, dims)? / count as f64)?;
    let var = (sum_keepdim(&x.broadcast_sub(&mean)?.sqr()?, dims)? / count as f64)?;
    Ok((mean, var))
}

/// `x.sum_keepdim(dims)`, reducing the trailing run of `dims` first and then the others one at a
/// time: Candle's CPU sum over non-trailing dimensions at once (batch norm's `(0, 2, 3)`) walks
/// the tensor with a strided index per element and is two orders of magnitude slower.
pub(crate) fn sum_keepdim(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let mut sorted = dims.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let rank = x.rank();
    let mut trailing = Vec::new();
    while let Some(&d) = sorted.last() {
        if d + 1 + trailing.len() == rank {
            trailing.push(d);
            sorted.pop();
        } else {
            break;
        }
    }
    let mut out = if trailing.is_empty() {
        x.clone()
    } else {
        x.sum_keepdim(trailing)?
    };
    for &d in sorted.iter().rev() {
        out = out.sum_keepdim(d)?;
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The dimension-by-dimension sum equals Candle's one-call sum.
        #[test]
        fn split_sum_equals_direct_sum(shape in prop::collection::vec(1usize..5, 1..5), mask in any::<u8>()) {
            let dims: Vec<usize> = (0..shape.len()).filter(|d| mask & (1 << d) != 0).collect();
            let n: usize = shape.iter().product();
            let values: Vec<f64> = (0..n).map(|i| ((i * 37) % 11) as f64 - 5.25).collect();
            let x = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).unwrap();
            let ours = sum_keepdim(&x, &dims).unwrap();
            let direct = if dims.is_empty() { x.clone() } else { x.sum_keepdim(dims.as_slice()).unwrap() };
            prop_assert_eq!(ours.dims(), direct.dims());
            let a = ours.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let b = direct.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0));
            }
        }
    }
}
