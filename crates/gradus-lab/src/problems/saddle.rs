//! `saddle`: the simplest saddle point, `x² − y²`.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{coords, typed_config, Point, Problem, ViewBox};

/// The saddle `f(x, y) = x² − y²`.
///
/// A stationary point at the origin, a minimum along `x` and a maximum along `y`; unbounded
/// below, so there is no minimum. On the ridge `y = 0` the gradient has no `y` component and
/// gradient descent walks straight into the saddle; any perturbation in `y` grows by `1 + 2η`
/// per step and escapes.
#[derive(Debug, Clone)]
pub struct Saddle {
    config: SaddleConfig,
}

/// Config of [`Saddle`]: no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaddleConfig {}

impl Problem for Saddle {
    fn name(&self) -> &str {
        "saddle"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, [x, y]: Point) -> f64 {
        x * x - y * y
    }

    fn gradient(&self, [x, y]: Point) -> Point {
        [2.0 * x, -2.0 * y]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let (x, y) = coords(xy)?;
        Ok(Some((x.sqr()? - y.sqr()?)?))
    }

    fn saddles(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }

    fn default_start(&self) -> Point {
        [1.5, 0.0]
    }

    fn view(&self) -> ViewBox {
        ViewBox::new(-2.0, 2.0, -2.0, 2.0)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: SaddleConfig = parse_config(config, path)?;
    Ok(Box::new(Saddle { config: c }))
}

crate::register_problem!(
    "saddle",
    "x² − y²: a saddle point at the origin, unbounded below",
    SaddleConfig,
    build
);
