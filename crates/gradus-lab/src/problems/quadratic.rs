//! `quadratic`: an ill-conditioned 2-D quadratic bowl, rotated.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{check_finite, coords, typed_config, Point, Problem, ViewBox};

/// The quadratic `f(x, y) = ½ (u² + κ v²)` in coordinates rotated by `θ`:
/// `u = cos θ · x + sin θ · y`, `v = −sin θ · x + cos θ · y`.
///
/// Its Hessian has eigenvalues 1 and `κ` (the condition number), with the steep direction `v`
/// at angle `θ + π/2`. Gradient descent with learning rate `η` is stable for `η < 2/κ` and
/// contracts the flat direction by `1 − η` per step: the lecture's zig-zagging valley. Minimum
/// `f(0, 0) = 0`.
#[derive(Debug, Clone)]
pub struct Quadratic {
    config: QuadraticConfig,
    cos: f64,
    sin: f64,
}

/// Config of [`Quadratic`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuadraticConfig {
    /// Condition number `κ > 0` (ratio of the Hessian's eigenvalues). Default: `10`.
    pub kappa: f64,
    /// Rotation angle `θ` in radians. Default: `0`.
    pub angle: f64,
}

impl Default for QuadraticConfig {
    fn default() -> Self {
        QuadraticConfig {
            kappa: 10.0,
            angle: 0.0,
        }
    }
}

impl Quadratic {
    /// The quadratic of `config` (not validated: see the registered builder).
    pub fn new(config: QuadraticConfig) -> Self {
        let (sin, cos) = config.angle.sin_cos();
        Quadratic { config, cos, sin }
    }

    fn rotate(&self, p: Point) -> (f64, f64) {
        let u = self.cos * p[0] + self.sin * p[1];
        let v = -self.sin * p[0] + self.cos * p[1];
        (u, v)
    }
}

impl Problem for Quadratic {
    fn name(&self) -> &str {
        "quadratic"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, p: Point) -> f64 {
        let (u, v) = self.rotate(p);
        0.5 * (u * u + self.config.kappa * v * v)
    }

    fn gradient(&self, p: Point) -> Point {
        let (u, v) = self.rotate(p);
        let kv = self.config.kappa * v;
        [u * self.cos - kv * self.sin, u * self.sin + kv * self.cos]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let (x, y) = coords(xy)?;
        let u = ((&x * self.cos)? + (&y * self.sin)?)?;
        let v = ((&x * -self.sin)? + (&y * self.cos)?)?;
        let f = ((u.sqr()? + (v.sqr()? * self.config.kappa)?)? * 0.5)?;
        Ok(Some(f))
    }

    fn minima(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        [-4.0, 1.5]
    }

    fn view(&self) -> ViewBox {
        ViewBox::new(-5.0, 5.0, -4.5, 4.5)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: QuadraticConfig = parse_config(config, path)?;
    check_finite(path, "kappa", c.kappa, true)?;
    check_finite(path, "angle", c.angle, false)?;
    Ok(Box::new(Quadratic::new(c)))
}

crate::register_problem!(
    "quadratic",
    "½(u² + κv²) rotated by `angle`: the ill-conditioned valley",
    QuadraticConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenvalues_are_one_and_kappa() {
        let q = Quadratic::new(QuadraticConfig {
            kappa: 50.0,
            angle: 0.3,
        });
        // Along the steep axis v the curvature is kappa.
        let steep = [-(0.3f64).sin(), (0.3f64).cos()];
        assert!((q.value(steep) - 25.0).abs() < 1e-12);
        let flat = [(0.3f64).cos(), (0.3f64).sin()];
        assert!((q.value(flat) - 0.5).abs() < 1e-12);
    }
}
