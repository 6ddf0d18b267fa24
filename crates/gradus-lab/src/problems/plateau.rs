//! `plateau`: a narrow well in a nearly flat plain.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{check_finite, coords, typed_config, Point, Problem, ViewBox};

/// The plateau `f(x, y) = 1 − exp(−(x² + y²) / (2σ²))`.
///
/// A Gaussian well of width `σ` in a plain where the gradient,
/// `(x, y) / σ² · exp(−r² / 2σ²)`, is tiny but never zero: plain gradient descent crawls,
/// momentum and adaptive methods (which rescale small gradients) cross it. Minimum
/// `f(0, 0) = 0`.
#[derive(Debug, Clone)]
pub struct Plateau {
    config: PlateauConfig,
}

/// Config of [`Plateau`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlateauConfig {
    /// Width `σ > 0` of the well. Default: `1`.
    pub width: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig { width: 1.0 }
    }
}

impl Plateau {
    fn well(&self, [x, y]: Point) -> f64 {
        let s = self.config.width;
        (-(x * x + y * y) / (2.0 * s * s)).exp()
    }
}

impl Problem for Plateau {
    fn name(&self) -> &str {
        "plateau"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, p: Point) -> f64 {
        1.0 - self.well(p)
    }

    fn gradient(&self, p: Point) -> Point {
        let s2 = self.config.width * self.config.width;
        let w = self.well(p);
        p.map(|t| t / s2 * w)
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let s = self.config.width;
        let (x, y) = coords(xy)?;
        let r2 = (x.sqr()? + y.sqr()?)?;
        let well = (r2 * (-1.0 / (2.0 * s * s)))?.exp()?;
        Ok(Some(well.affine(-1.0, 1.0)?))
    }

    fn minima(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        let s = self.config.width;
        [3.0 * s, 2.2 * s]
    }

    fn view(&self) -> ViewBox {
        let s = self.config.width;
        ViewBox::new(-4.0 * s, 4.0 * s, -4.0 * s, 4.0 * s)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: PlateauConfig = parse_config(config, path)?;
    check_finite(path, "width", c.width, true)?;
    Ok(Box::new(Plateau { config: c }))
}

crate::register_problem!(
    "plateau",
    "1 − exp(−r²/2σ²): a well in a plain of tiny gradients",
    PlateauConfig,
    build
);
