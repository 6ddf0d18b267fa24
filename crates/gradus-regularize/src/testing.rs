//! Small helpers shared by the unit tests.

use candle_core::{Device, Tensor, Var};
use gradus_core::NamedVar;

/// An f64 parameter `name` of `shape` holding `data` (row-major).
pub fn named(name: &str, data: &[f64], shape: &[usize]) -> NamedVar {
    let t = Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap();
    NamedVar::new(name, Var::from_tensor(&t).unwrap())
}

/// The values of an f64 variable, flattened.
pub fn values(var: &Var) -> Vec<f64> {
    var.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// A tensor's f32 values, flattened.
pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// `copies` stacked copies of `x` (shape `tail`): shape `(copies, tail...)`, f32.
pub fn tiled(x: &[f32], copies: usize, tail: &[usize]) -> Tensor {
    let mut data = Vec::with_capacity(x.len() * copies);
    for _ in 0..copies {
        data.extend_from_slice(x);
    }
    let mut shape = vec![copies];
    shape.extend_from_slice(tail);
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Checks that the mean over the `draws` leading rows of `y` is within 6 standard errors of
/// `x`, element by element, when one draw has variance `x^2 * rel_var`.
pub fn assert_unbiased(y: &Tensor, x: &[f32], draws: usize, rel_var: f64) {
    let values = f32s(y);
    let n = x.len();
    for (i, &xi) in x.iter().enumerate() {
        let mean: f64 = (0..draws).map(|d| values[d * n + i] as f64).sum::<f64>() / draws as f64;
        let se = (xi as f64).abs() * (rel_var / draws as f64).sqrt();
        let tol = 6.0 * se + 1e-5 * (xi as f64).abs();
        assert!(
            (mean - xi as f64).abs() <= tol,
            "element {i}: mean {mean} vs input {xi} (tolerance {tol})"
        );
    }
}
