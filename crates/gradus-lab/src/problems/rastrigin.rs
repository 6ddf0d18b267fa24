//! `rastrigin`: a bowl covered in local minima.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{check_finite, coords, typed_config, Point, Problem, ViewBox};

use std::f64::consts::TAU;

/// Rastrigin's function `f(x, y) = 2A + (x² − A cos 2πx) + (y² − A cos 2πy)`.
///
/// A parabola with a regular grid of local minima near the integer points; the global minimum
/// is `f(0, 0) = 0`.
#[derive(Debug, Clone)]
pub struct Rastrigin {
    config: RastriginConfig,
}

/// Config of [`Rastrigin`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RastriginConfig {
    /// Amplitude `A ≥ 0` of the ripples. Default: `10`.
    pub amplitude: f64,
}

impl Default for RastriginConfig {
    fn default() -> Self {
        RastriginConfig { amplitude: 10.0 }
    }
}

impl Problem for Rastrigin {
    fn name(&self) -> &str {
        "rastrigin"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, p: Point) -> f64 {
        let a = self.config.amplitude;
        p.iter()
            .map(|&t| a + t * t - a * (TAU * t).cos())
            .sum::<f64>()
    }

    fn gradient(&self, p: Point) -> Point {
        let a = self.config.amplitude;
        p.map(|t| 2.0 * t + TAU * a * (TAU * t).sin())
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let a = self.config.amplitude;
        let (x, y) = coords(xy)?;
        let term =
            |t: &Tensor| -> Result<Tensor> { Ok(((t.sqr()? - ((t * TAU)?.cos()? * a)?)? + a)?) };
        Ok(Some((term(&x)? + term(&y)?)?))
    }

    fn minima(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        [2.3, 1.8]
    }

    fn view(&self) -> ViewBox {
        ViewBox::new(-5.12, 5.12, -5.12, 5.12)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: RastriginConfig = parse_config(config, path)?;
    check_finite(path, "amplitude", c.amplitude, false)?;
    if c.amplitude < 0.0 {
        return Err(gradus_core::Error::config(
            gradus_core::config::join_path(path, "amplitude"),
            format!("expected a number >= 0, got {}", c.amplitude),
        ));
    }
    Ok(Box::new(Rastrigin { config: c }))
}

crate::register_problem!(
    "rastrigin",
    "2A + Σ(t² − A cos 2πt): a bowl of local minima",
    RastriginConfig,
    build
);
