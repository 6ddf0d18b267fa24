//! `least_squares`: a small linear regression, the problem where gradient batching matters.

use candle_core::{Device, Tensor};
use gradus_core::config::{join_path, parse_config};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{check_finite, coords, typed_config, Point, Problem, ViewBox};

/// Linear regression `f(w, b) = 1/(2n) Σᵢ (w xᵢ + b − yᵢ)²` over `n` generated samples.
///
/// The parameters are the slope `w` and the intercept `b`. The data are drawn once, from
/// `seed` alone: `xᵢ` uniform in `[x_min, x_max)`, `yᵢ = slope · xᵢ + intercept + noise · εᵢ`
/// with `εᵢ` standard normal. The gradient over a batch `B` is the batch mean
/// `(1/|B|) Σ_{i∈B} rᵢ (xᵢ, 1)` with `rᵢ = w xᵢ + b − yᵢ`, so full-batch, mini-batch and
/// stochastic gradients differ ([`Problem::batch_gradient`]). The minimum is the ordinary
/// least-squares solution of the normal equations, computed exactly.
#[derive(Debug, Clone)]
pub struct LeastSquares {
    config: LeastSquaresConfig,
    x: Vec<f64>,
    y: Vec<f64>,
    solution: Point,
}

/// Config of [`LeastSquares`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeastSquaresConfig {
    /// Number of samples `n >= 2`. Default: `64`.
    pub samples: usize,
    /// True slope of the data. Default: `2`.
    pub slope: f64,
    /// True intercept of the data. Default: `-1`.
    pub intercept: f64,
    /// Standard deviation `>= 0` of the label noise. Default: `0.5`.
    pub noise: f64,
    /// Lower bound of the inputs. Default: `0`.
    pub x_min: f64,
    /// Upper bound of the inputs, `> x_min`. Default: `2`.
    pub x_max: f64,
    /// Seed of the data. Default: `0`.
    pub seed: u64,
}

impl Default for LeastSquaresConfig {
    fn default() -> Self {
        LeastSquaresConfig {
            samples: 64,
            slope: 2.0,
            intercept: -1.0,
            noise: 0.5,
            x_min: 0.0,
            x_max: 2.0,
            seed: 0,
        }
    }
}

impl LeastSquares {
    /// Generates the data of `config` (validated by the registered builder).
    pub fn new(config: LeastSquaresConfig) -> Result<Self> {
        let mut rng = SeededRng::new(config.seed).derive("least_squares");
        let width = config.x_max - config.x_min;
        let x: Vec<f64> = (0..config.samples)
            .map(|_| config.x_min + width * rng.unit_f64())
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&xi| config.slope * xi + config.intercept + config.noise * rng.standard_normal())
            .collect();
        let solution = solve_normal_equations(&x, &y)?;
        Ok(LeastSquares {
            config,
            x,
            y,
            solution,
        })
    }

    /// The inputs `xᵢ`.
    pub fn inputs(&self) -> &[f64] {
        &self.x
    }

    /// The labels `yᵢ`.
    pub fn labels(&self) -> &[f64] {
        &self.y
    }

    fn residual(&self, [w, b]: Point, i: usize) -> f64 {
        w * self.x[i] + b - self.y[i]
    }
}

/// The least-squares `(w, b)`: `[[Σx², Σx], [Σx, n]] (w, b) = (Σxy, Σy)`.
fn solve_normal_equations(x: &[f64], y: &[f64]) -> Result<Point> {
    let n = x.len() as f64;
    let sx: f64 = x.iter().sum();
    let sy: f64 = y.iter().sum();
    let sxx: f64 = x.iter().map(|v| v * v).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let det = sxx * n - sx * sx;
    if det.abs() <= f64::EPSILON * sxx * n {
        return Err(Error::Unsupported(
            "least_squares: the inputs are all equal, the solution is not unique".into(),
        ));
    }
    Ok([(sxy * n - sx * sy) / det, (sxx * sy - sx * sxy) / det])
}

impl Problem for LeastSquares {
    fn name(&self) -> &str {
        "least_squares"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, p: Point) -> f64 {
        let total: f64 = (0..self.x.len()).map(|i| self.residual(p, i).powi(2)).sum();
        total / (2.0 * self.x.len() as f64)
    }

    fn gradient(&self, p: Point) -> Point {
        let all: Vec<usize> = (0..self.x.len()).collect();
        self.batch_gradient(p, &all)
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let (w, b) = coords(xy)?;
        // host-side: the lab's small 2-D problems run on the CPU.
        let x = Tensor::new(self.x.as_slice(), &Device::Cpu)?;
        let y = Tensor::new(self.y.as_slice(), &Device::Cpu)?;
        let r = (x.broadcast_mul(&w)?.broadcast_add(&b)? - y)?;
        Ok(Some((r.sqr()?.mean_all()? * 0.5)?))
    }

    fn minima(&self) -> Vec<Point> {
        vec![self.solution]
    }

    fn min_value(&self) -> Option<f64> {
        Some(self.value(self.solution))
    }

    fn default_start(&self) -> Point {
        [self.config.slope - 3.0, self.config.intercept + 3.0]
    }

    fn view(&self) -> ViewBox {
        let (w, b) = (self.config.slope, self.config.intercept);
        ViewBox::new(w - 4.0, w + 4.0, b - 4.0, b + 4.0)
    }

    fn axis_names(&self) -> [&'static str; 2] {
        ["slope", "intercept"]
    }

    fn sample_count(&self) -> usize {
        self.x.len()
    }

    fn batch_gradient(&self, p: Point, batch: &[usize]) -> Point {
        let mut g = [0.0, 0.0];
        for &i in batch {
            let r = self.residual(p, i);
            g[0] += r * self.x[i];
            g[1] += r;
        }
        let n = batch.len().max(1) as f64;
        g.map(|v| v / n)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: LeastSquaresConfig = parse_config(config, path)?;
    for (key, value) in [
        ("slope", c.slope),
        ("intercept", c.intercept),
        ("noise", c.noise),
        ("x_min", c.x_min),
        ("x_max", c.x_max),
    ] {
        check_finite(path, key, value, false)?;
    }
    if c.samples < 2 {
        return Err(Error::config(
            join_path(path, "samples"),
            format!("expected at least 2 samples, got {}", c.samples),
        ));
    }
    if c.noise < 0.0 {
        return Err(Error::config(
            join_path(path, "noise"),
            format!("expected a number >= 0, got {}", c.noise),
        ));
    }
    if c.x_max <= c.x_min {
        return Err(Error::config(
            join_path(path, "x_max"),
            format!("expected x_max > x_min, got {} <= {}", c.x_max, c.x_min),
        ));
    }
    Ok(Box::new(LeastSquares::new(c)?))
}

crate::register_problem!(
    "least_squares",
    "linear regression on generated data: full, mini-batch and stochastic gradients",
    LeastSquaresConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_solution_has_zero_full_gradient_and_batches_average_to_it() {
        let ls = LeastSquares::new(LeastSquaresConfig::default()).unwrap();
        let g = ls.gradient(ls.solution);
        assert!(g[0].abs() < 1e-12 && g[1].abs() < 1e-12, "{g:?}");
        let p = [0.5, 0.5];
        let full = ls.gradient(p);
        let halves = [
            ls.batch_gradient(p, &(0..32).collect::<Vec<_>>()),
            ls.batch_gradient(p, &(32..64).collect::<Vec<_>>()),
        ];
        for k in 0..2 {
            let mean = 0.5 * (halves[0][k] + halves[1][k]);
            assert!((mean - full[k]).abs() < 1e-12);
        }
        assert_ne!(ls.batch_gradient(p, &[0]), full);
    }

    #[test]
    fn the_data_depend_on_the_seed_alone() {
        let a = LeastSquares::new(LeastSquaresConfig::default()).unwrap();
        let b = LeastSquares::new(LeastSquaresConfig::default()).unwrap();
        assert_eq!(a.inputs(), b.inputs());
        assert_eq!(a.labels(), b.labels());
        let c = LeastSquares::new(LeastSquaresConfig {
            seed: 1,
            ..Default::default()
        })
        .unwrap();
        assert_ne!(a.inputs(), c.inputs());
    }
}
