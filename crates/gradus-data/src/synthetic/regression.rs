//! Regression generators: linear and polynomial.

use gradus_core::plugin::data::Dataset;
use gradus_core::{Result, SeededRng};

use super::Params;
use crate::tensors;

/// `y = x . w + b + e` with `x ~ N(0, 1)^features`, `w_j, b ~ N(0, 1)`, `e ~ N(0, noise^2)`.
pub(super) fn linear(p: Params, rng: &mut SeededRng) -> Result<Dataset> {
    let weights: Vec<f64> = (0..p.features).map(|_| rng.standard_normal()).collect();
    let bias = rng.standard_normal();
    let x: Vec<f64> = (0..p.n * p.features)
        .map(|_| rng.standard_normal())
        .collect();
    let targets = x
        .chunks_exact(p.features)
        .map(|row| {
            let y = bias + row.iter().zip(&weights).map(|(a, w)| a * w).sum::<f64>();
            y + noise(p.noise, rng)
        })
        .collect::<Vec<_>>();
    finish(x, p.features, targets)
}

/// `y = sum_k c_k x^k + e` for `k = 0..=degree`, `x ~ U(-1, 1)`, `c_k ~ N(0, 1)`.
pub(super) fn polynomial(p: Params, rng: &mut SeededRng) -> Result<Dataset> {
    let coefficients: Vec<f64> = (0..=p.degree).map(|_| rng.standard_normal()).collect();
    let x: Vec<f64> = (0..p.n).map(|_| -1.0 + 2.0 * rng.unit_f64()).collect();
    let targets = x
        .iter()
        .map(|&v| {
            // Horner's rule, highest coefficient first.
            let y = coefficients.iter().rev().fold(0.0, |acc, c| acc * v + c);
            y + noise(p.noise, rng)
        })
        .collect::<Vec<_>>();
    finish(x, 1, targets)
}

fn noise(std: f64, rng: &mut SeededRng) -> f64 {
    if std > 0.0 {
        std * rng.standard_normal()
    } else {
        0.0
    }
}

fn finish(x: Vec<f64>, width: usize, targets: Vec<f64>) -> Result<Dataset> {
    let n = targets.len();
    tensors::regression(
        x.into_iter().map(|v| v as f32).collect(),
        &[n, width],
        targets.into_iter().map(|v| v as f32).collect(),
    )
}
