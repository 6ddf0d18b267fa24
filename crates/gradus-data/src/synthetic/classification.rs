//! Classification generators: two moons, spirals, blobs.

use std::f64::consts::PI;

use gradus_core::plugin::data::Dataset;
use gradus_core::{Result, SeededRng};

use super::Params;
use crate::tensors;

/// Samples per class: `n / classes` each, the first `n % classes` one more (scikit-learn).
fn per_class(n: usize, classes: usize) -> impl Iterator<Item = (u32, usize)> {
    (0..classes).map(move |k| (k as u32, n / classes + usize::from(k < n % classes)))
}

/// `m` evenly spaced points from 0 to `end` inclusive (`numpy.linspace`).
fn linspace(end: f64, m: usize, i: usize) -> f64 {
    if m <= 1 {
        0.0
    } else {
        end * i as f64 / (m - 1) as f64
    }
}

/// scikit-learn's `make_moons`: outer half circle class 0, inner class 1.
pub(super) fn two_moons(p: Params, rng: &mut SeededRng) -> Result<Dataset> {
    let mut points = Vec::with_capacity(p.n * 2);
    let mut labels = Vec::with_capacity(p.n);
    // n_samples_out = n // 2 on the outer moon, the rest on the inner one (scikit-learn).
    for (class, m) in [(0u32, p.n / 2), (1, p.n - p.n / 2)] {
        for i in 0..m {
            let t = linspace(PI, m, i);
            if class == 0 {
                points.extend([t.cos(), t.sin()]);
            } else {
                points.extend([1.0 - t.cos(), 0.5 - t.sin()]);
            }
            labels.push(class);
        }
    }
    finish(points, 2, labels, p.noise, rng)
}

/// Interleaved spiral arms, `a = 2 pi k / classes + 3 pi r`.
pub(super) fn spirals(p: Params, rng: &mut SeededRng) -> Result<Dataset> {
    let mut points = Vec::with_capacity(p.n * 2);
    let mut labels = Vec::with_capacity(p.n);
    for (class, m) in per_class(p.n, p.classes) {
        for i in 0..m {
            let r = (i + 1) as f64 / m as f64;
            let a = 2.0 * PI * f64::from(class) / p.classes as f64 + 3.0 * PI * r;
            points.extend([r * a.cos(), r * a.sin()]);
            labels.push(class);
        }
    }
    finish(points, 2, labels, p.noise, rng)
}

/// scikit-learn's `make_blobs`: centres uniform in `[-10, 10]^features`, std `noise`.
pub(super) fn blobs(p: Params, rng: &mut SeededRng) -> Result<Dataset> {
    let centres: Vec<f64> = (0..p.classes * p.features)
        .map(|_| -10.0 + 20.0 * rng.unit_f64())
        .collect();
    let mut points = Vec::with_capacity(p.n * p.features);
    let mut labels = Vec::with_capacity(p.n);
    for (class, m) in per_class(p.n, p.classes) {
        let centre = &centres[class as usize * p.features..][..p.features];
        for _ in 0..m {
            points.extend_from_slice(centre);
            labels.push(class);
        }
    }
    finish(points, p.features, labels, p.noise, rng)
}

/// Adds `N(0, noise^2)` to every coordinate, shuffles the rows and builds the data set.
fn finish(
    mut points: Vec<f64>,
    width: usize,
    labels: Vec<u32>,
    noise: f64,
    rng: &mut SeededRng,
) -> Result<Dataset> {
    if noise > 0.0 {
        for v in &mut points {
            *v += noise * rng.standard_normal();
        }
    }
    let order = rng.permutation(labels.len());
    let mut features = Vec::with_capacity(points.len());
    let mut shuffled = Vec::with_capacity(labels.len());
    for &row in &order {
        let row = row as usize;
        features.extend(points[row * width..][..width].iter().map(|&v| v as f32));
        shuffled.push(labels[row]);
    }
    tensors::classification(features, &[labels.len(), width], shuffled)
}
