//! Test helpers shared by the layers' unit tests.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use gradus_core::plugin::layer::LayerContext;
use gradus_core::SeededRng;

/// A JSON-path build context over f64 parameters named `bn.*`.
pub(crate) fn context<'a>(
    vars: &'a VarMap,
    shape: &[usize],
    rng: &'a mut SeededRng,
) -> LayerContext<'a> {
    LayerContext {
        input_shape: shape.to_vec(),
        vars,
        prefix: "bn".to_string(),
        path: "bn".to_string(),
        rng,
        dtype: DType::F64,
        device: Device::Cpu,
    }
}

/// Mean and biased variance of each channel `c` of an f64 `(N, C, *)` tensor.
pub(crate) fn channel_moments(y: &Tensor) -> Vec<(f64, f64)> {
    let dims = y.dims().to_vec();
    let s: usize = dims[2..].iter().product();
    let y = y
        .reshape((dims[0], dims[1], s))
        .unwrap()
        .to_vec3::<f64>()
        .unwrap();
    (0..dims[1])
        .map(|c| {
            let values: Vec<f64> = y.iter().flat_map(|row| row[c].iter().copied()).collect();
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (mean, var)
        })
        .collect()
}
