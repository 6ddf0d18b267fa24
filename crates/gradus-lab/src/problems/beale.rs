//! `beale`: Beale's function, flat centre and steep corners.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{coords, typed_config, Point, Problem, ViewBox};

/// Beale's function
/// `f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²`.
///
/// Flat near the axes, with ridges and gradients growing like `y⁶` in the corners. Minimum
/// `f(3, 0.5) = 0`.
#[derive(Debug, Clone)]
pub struct Beale {
    config: BealeConfig,
}

/// Config of [`Beale`]: no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BealeConfig {}

const C: [f64; 3] = [1.5, 2.25, 2.625];

/// The three residuals `cₖ − x + x yᵏ`, `k = 1, 2, 3`.
fn residuals([x, y]: Point) -> [f64; 3] {
    [
        C[0] - x + x * y,
        C[1] - x + x * y * y,
        C[2] - x + x * y * y * y,
    ]
}

impl Problem for Beale {
    fn name(&self) -> &str {
        "beale"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, p: Point) -> f64 {
        residuals(p).iter().map(|t| t * t).sum()
    }

    fn gradient(&self, p: Point) -> Point {
        let [x, y] = p;
        let [t1, t2, t3] = residuals(p);
        let dx = 2.0 * (t1 * (y - 1.0) + t2 * (y * y - 1.0) + t3 * (y * y * y - 1.0));
        let dy = 2.0 * x * (t1 + 2.0 * t2 * y + 3.0 * t3 * y * y);
        [dx, dy]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let (x, y) = coords(xy)?;
        let mut total = x.zeros_like()?;
        let mut y_power = y.clone();
        for c in C {
            let t = ((x.affine(-1.0, c)? + (&x * &y_power)?)?).sqr()?;
            total = (total + t)?;
            y_power = (y_power * &y)?;
        }
        Ok(Some(total))
    }

    fn minima(&self) -> Vec<Point> {
        vec![[3.0, 0.5]]
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        [1.0, 1.5]
    }

    fn view(&self) -> ViewBox {
        ViewBox::new(-1.0, 4.5, -1.5, 2.5)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: BealeConfig = parse_config(config, path)?;
    Ok(Box::new(Beale { config: c }))
}

crate::register_problem!(
    "beale",
    "Beale's function: flat centre, steep corners, minimum at (3, 0.5)",
    BealeConfig,
    build
);
