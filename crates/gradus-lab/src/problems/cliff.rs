//! `cliff`: a valley bounded by a wall whose gradient is huge.

use candle_core::Tensor;
use gradus_core::config::{join_path, parse_config};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{check_finite, coords, typed_config, Point, Problem, ViewBox};

/// The cliff `f(x, y) = √(1 + x² + κy²) − 1 + H · σ((x − c) / w)`, `σ(z) = 1 / (1 + e⁻ᶻ)`.
///
/// A valley (the first term: quadratic near its floor at the origin, with slopes of at most
/// `max(1, √κ)` far from it) bounded at `x = c` by a wall of height `H` and width `w`, whose
/// face has gradients up to `H / 4w` (1250 with the defaults). A plain gradient step that lands
/// on the face is thrown `η H / 4w` away, far out of the valley, and the gentle slopes bring it
/// back only slowly; clipping the gradient norm bounds every step by `η · max_norm`, so the run
/// walks down the face instead.
///
/// Minimum `f(0, 0) = 0`, up to the wall's tail: the tail moves the minimizer by about
/// `(H / w) e^(−c/w)`, below 1e-80 with the defaults (`c / w = 200`).
#[derive(Debug, Clone)]
pub struct Cliff {
    config: CliffConfig,
}

/// Config of [`Cliff`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CliffConfig {
    /// Height `H > 0` of the wall. Default: `50`.
    pub height: f64,
    /// Width `w > 0` of the wall's face. Default: `0.01`.
    pub width: f64,
    /// Position `c > 0` of the wall on the `x` axis. Default: `2`.
    pub position: f64,
    /// Steepness `κ > 0` of the valley across `y`. Default: `4`.
    pub kappa: f64,
}

impl Default for CliffConfig {
    fn default() -> Self {
        CliffConfig {
            height: 50.0,
            width: 0.01,
            position: 2.0,
            kappa: 4.0,
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Cliff {
    fn valley_radius(&self, [x, y]: Point) -> f64 {
        (1.0 + x * x + self.config.kappa * y * y).sqrt()
    }

    fn wall_z(&self, x: f64) -> f64 {
        (x - self.config.position) / self.config.width
    }
}

impl Problem for Cliff {
    fn name(&self) -> &str {
        "cliff"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, p: Point) -> f64 {
        self.valley_radius(p) - 1.0 + self.config.height * sigmoid(self.wall_z(p[0]))
    }

    fn gradient(&self, p: Point) -> Point {
        let r = self.valley_radius(p);
        let s = sigmoid(self.wall_z(p[0]));
        let wall = self.config.height / self.config.width * s * (1.0 - s);
        [p[0] / r + wall, self.config.kappa * p[1] / r]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let c = &self.config;
        let (x, y) = coords(xy)?;
        let r = ((x.sqr()? + (y.sqr()? * c.kappa)?)? + 1.0)?.sqrt()?;
        let z = x.affine(1.0 / c.width, -c.position / c.width)?;
        let s = (z.neg()?.exp()? + 1.0)?.recip()?;
        Ok(Some(((r - 1.0)? + (s * c.height)?)?))
    }

    fn minima(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        [self.config.position + 1.5, 0.5]
    }

    fn view(&self) -> ViewBox {
        let c = self.config.position;
        ViewBox::new(-2.0 * c, c + 2.5, -2.5, 2.5)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: CliffConfig = parse_config(config, path)?;
    check_finite(path, "height", c.height, true)?;
    check_finite(path, "width", c.width, true)?;
    check_finite(path, "position", c.position, true)?;
    check_finite(path, "kappa", c.kappa, true)?;
    if c.position / c.width < 40.0 {
        return Err(Error::config(
            join_path(path, "width"),
            format!(
                "the wall must be narrow next to its distance from the minimum \
                 (position / width >= 40), got {} / {}",
                c.position, c.width
            ),
        ));
    }
    Ok(Box::new(Cliff { config: c }))
}

crate::register_problem!(
    "cliff",
    "a valley bounded by a wall with a huge gradient (exploding steps, clipping)",
    CliffConfig,
    build
);
