//! Test helpers: draw through the trait and read the values back in f64.

use candle_core::{DType, Device};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::SeededRng;

/// Draws `shape` in f64 with `seed` and returns the values row-major.
pub(crate) fn draw(init: &dyn Initializer, shape: &[usize], seed: u64) -> Vec<f64> {
    let mut rng = SeededRng::new(seed);
    init.init(shape, DType::F64, &Device::Cpu, &mut rng)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Bits of an f32 draw, for same-seed-same-bits checks.
pub(crate) fn bits_f32(init: &dyn Initializer, shape: &[usize], seed: u64) -> Vec<u32> {
    let mut rng = SeededRng::new(seed);
    init.init(shape, DType::F32, &Device::Cpu, &mut rng)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Sample mean and (biased) variance.
pub(crate) fn mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// True when the sample variance of `n` draws lies within `k` standard errors of `expected`,
/// for a distribution of the given excess-free fourth moment ratio `kurtosis` (`E[x^4]/var^2`:
/// 3 for a normal, 9/5 for a uniform). The standard error of the sample variance is
/// `var * sqrt((kurtosis - 1) / n)`.
pub(crate) fn variance_close(sample: f64, expected: f64, n: usize, kurtosis: f64, k: f64) -> bool {
    let se = expected * ((kurtosis - 1.0) / n as f64).sqrt();
    (sample - expected).abs() <= k * se + 1e-12
}

/// Asserts (as a proptest failure message) that `values` lie in `[-bound, bound]` and that
/// their variance is `bound^2 / 3` within 6 standard errors.
pub(crate) fn check_uniform(values: &[f64], bound: f64) -> Result<(), String> {
    if let Some(v) = values.iter().find(|v| v.abs() > bound) {
        return Err(format!("{v} outside [-{bound}, {bound}]"));
    }
    let (_, var) = mean_var(values);
    let expected = bound * bound / 3.0;
    if !variance_close(var, expected, values.len(), 9.0 / 5.0, 6.0) {
        return Err(format!("variance {var}, expected {expected}"));
    }
    Ok(())
}

/// Asserts that the variance of `values` is `std^2` within 6 standard errors.
pub(crate) fn check_normal(values: &[f64], std: f64) -> Result<(), String> {
    let (_, var) = mean_var(values);
    if !variance_close(var, std * std, values.len(), 3.0, 6.0) {
        return Err(format!("variance {var}, expected {}", std * std));
    }
    Ok(())
}

/// A weight shape: `(out, in)` or `(out, in, k, k)`, with at least a few hundred entries.
pub(crate) fn weight_shape() -> impl proptest::strategy::Strategy<Value = Vec<usize>> {
    use proptest::prelude::*;
    prop_oneof![
        (16usize..80, 16usize..80).prop_map(|(o, i)| vec![o, i]),
        (8usize..24, 2usize..12, 1usize..4).prop_map(|(o, i, k)| vec![o, i, k, k]),
    ]
}
