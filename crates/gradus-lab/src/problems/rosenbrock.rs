//! `rosenbrock`: the banana-shaped valley.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{check_finite, coords, typed_config, Point, Problem, ViewBox};

/// Rosenbrock's function `f(x, y) = (a − x)² + b (y − x²)²`.
///
/// A curved, narrow valley along `y = x²`, easy to find and slow to follow. Minimum
/// `f(a, a²) = 0`.
#[derive(Debug, Clone)]
pub struct Rosenbrock {
    config: RosenbrockConfig,
}

/// Config of [`Rosenbrock`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RosenbrockConfig {
    /// `a`, the minimizer's `x`. Default: `1`.
    pub a: f64,
    /// `b > 0`, the valley's steepness. Default: `100`.
    pub b: f64,
}

impl Default for RosenbrockConfig {
    fn default() -> Self {
        RosenbrockConfig { a: 1.0, b: 100.0 }
    }
}

impl Problem for Rosenbrock {
    fn name(&self) -> &str {
        "rosenbrock"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, [x, y]: Point) -> f64 {
        let RosenbrockConfig { a, b } = self.config;
        (a - x).powi(2) + b * (y - x * x).powi(2)
    }

    fn gradient(&self, [x, y]: Point) -> Point {
        let RosenbrockConfig { a, b } = self.config;
        let r = y - x * x;
        [-2.0 * (a - x) - 4.0 * b * x * r, 2.0 * b * r]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let RosenbrockConfig { a, b } = self.config;
        let (x, y) = coords(xy)?;
        let first = x.affine(-1.0, a)?.sqr()?;
        let second = (y - x.sqr()?)?.sqr()?;
        Ok(Some((first + (second * b)?)?))
    }

    fn minima(&self) -> Vec<Point> {
        let a = self.config.a;
        vec![[a, a * a]]
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        [-1.2, 1.0]
    }

    fn view(&self) -> ViewBox {
        let a = self.config.a;
        ViewBox::new(a - 3.0, a + 1.5, a * a - 2.0, a * a + 2.5)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: RosenbrockConfig = parse_config(config, path)?;
    check_finite(path, "a", c.a, false)?;
    check_finite(path, "b", c.b, true)?;
    Ok(Box::new(Rosenbrock { config: c }))
}

crate::register_problem!(
    "rosenbrock",
    "(a − x)² + b(y − x²)²: the curved banana valley",
    RosenbrockConfig,
    build
);
