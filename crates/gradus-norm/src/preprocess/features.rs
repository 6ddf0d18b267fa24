//! Reading a training tensor as an `(N, F)` f64 matrix, and per-feature statistics as tensors.

use candle_core::{DType, Device, Tensor};
use gradus_core::{Error, Result, StateDict};

/// The training features, row-major `(n, f)`, with the per-sample shape they came from.
pub(crate) struct Features {
    pub(crate) n: usize,
    pub(crate) f: usize,
    pub(crate) data: Vec<f64>,
    pub(crate) shape: Vec<usize>,
}

impl Features {
    /// Reads `train` `(N, features...)`; it must have at least one sample and be finite.
    pub(crate) fn read(train: &Tensor, what: &str) -> Result<Self> {
        let dims = train.dims();
        let Some((&n, shape)) = dims.split_first() else {
            return Err(Error::Unsupported(format!(
                "{what}: fit needs a tensor (N, features...), got a scalar"
            )));
        };
        if n == 0 {
            return Err(Error::Unsupported(format!(
                "{what}: cannot fit on an empty training split (shape {dims:?})"
            )));
        }
        let data = train
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "{what}: training value {} at flat index {bad} (shape {dims:?})",
                data[bad]
            )));
        }
        let f = data.len() / n;
        Ok(Features {
            n,
            f,
            data,
            shape: shape.to_vec(),
        })
    }

    /// Applies `stat` to each feature's column of values.
    pub(crate) fn per_feature(&self, stat: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let mut column = vec![0.0; self.n];
        (0..self.f)
            .map(|j| {
                for (i, slot) in column.iter_mut().enumerate() {
                    *slot = self.data[i * self.f + j];
                }
                stat(&column)
            })
            .collect()
    }

    /// Per-feature values as an f64 tensor of the feature shape.
    pub(crate) fn tensor(&self, values: Vec<f64>) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            values,
            self.shape.as_slice(),
            // host-side: preprocessors fit and transform the host-side data pipeline.
            &Device::Cpu,
        )?)
    }
}

/// Mean of a column (sequential sum; n > 0).
pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// `stat` converted to `x`'s dtype and device, after checking that `x` is `(N, shape...)`.
pub(crate) fn like(stat: &Tensor, x: &Tensor, what: &str) -> Result<Tensor> {
    if x.dims().get(1..) != Some(stat.dims()) {
        let mut expected = vec![x.dims().first().copied().unwrap_or(1)];
        expected.extend_from_slice(stat.dims());
        return Err(Error::ShapeMismatch {
            context: format!("{what} input (N, features...) against the fitted features"),
            expected,
            actual: x.dims().to_vec(),
        });
    }
    Ok(stat.to_device(x.device())?.to_dtype(x.dtype())?)
}

/// The fitted statistic, or [`not_fitted`].
pub(crate) fn fitted<'a>(stat: &'a Option<Tensor>, what: &str) -> Result<&'a Tensor> {
    stat.as_ref().ok_or_else(|| not_fitted(what))
}

/// The error of a transform before `fit` / `load_state`.
pub(crate) fn not_fitted(what: &str) -> Error {
    Error::StateMismatch(format!(
        "{what} is not fitted: call fit on the training split (or load_state) first"
    ))
}

/// Loads the named f64 statistics from `state`; all must exist and share one shape.
pub(crate) fn load(state: &StateDict, names: &[&str], what: &str) -> Result<Vec<Tensor>> {
    let first = state.get(names[0]).ok_or_else(|| {
        Error::StateMismatch(format!("{what}: missing `{}` in saved state", names[0]))
    })?;
    let shape = first.dims().to_vec();
    names
        .iter()
        .map(|name| {
            Ok(state
                .require(name, &shape)?
                // host-side: preprocessors fit and transform the host-side data pipeline.
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F64)?)
        })
        .collect()
}
