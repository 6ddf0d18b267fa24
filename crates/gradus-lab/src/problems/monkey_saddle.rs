//! `monkey_saddle`: a degenerate saddle with three valleys.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{coords, typed_config, Point, Problem, ViewBox};

/// The monkey saddle `f(x, y) = x³ − 3xy²`.
///
/// A stationary point at the origin where the gradient vanishes to second order (so descent
/// slows polynomially, not geometrically), between three descending valleys; unbounded below.
#[derive(Debug, Clone)]
pub struct MonkeySaddle {
    config: MonkeySaddleConfig,
}

/// Config of [`MonkeySaddle`]: no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonkeySaddleConfig {}

impl Problem for MonkeySaddle {
    fn name(&self) -> &str {
        "monkey_saddle"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, [x, y]: Point) -> f64 {
        x * x * x - 3.0 * x * y * y
    }

    fn gradient(&self, [x, y]: Point) -> Point {
        [3.0 * (x * x - y * y), -6.0 * x * y]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let (x, y) = coords(xy)?;
        let cube = (x.sqr()? * &x)?;
        let cross = ((&x * y.sqr()?)? * 3.0)?;
        Ok(Some((cube - cross)?))
    }

    fn saddles(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }

    fn default_start(&self) -> Point {
        [1.0, 0.0]
    }

    fn view(&self) -> ViewBox {
        ViewBox::new(-1.5, 1.5, -1.5, 1.5)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: MonkeySaddleConfig = parse_config(config, path)?;
    Ok(Box::new(MonkeySaddle { config: c }))
}

crate::register_problem!(
    "monkey_saddle",
    "x³ − 3xy²: a degenerate saddle between three valleys",
    MonkeySaddleConfig,
    build
);
