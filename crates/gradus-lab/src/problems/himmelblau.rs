//! `himmelblau`: four equal minima.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::{coords, typed_config, Point, Problem, ViewBox};

/// Himmelblau's function `f(x, y) = (x² + y − 11)² + (x + y² − 7)²`.
///
/// Four minima of value 0: `(3, 2)`, `(−2.805118, 3.131313)`, `(−3.779310, −3.283186)`,
/// `(3.584428, −1.848126)`; which one a run finds depends on where it starts and how it moves.
#[derive(Debug, Clone)]
pub struct Himmelblau {
    config: HimmelblauConfig,
}

/// Config of [`Himmelblau`]: no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HimmelblauConfig {}

/// The four minimizers (the three irrational ones to about 1e-15).
pub const MINIMA: [Point; 4] = [
    [3.0, 2.0],
    [-2.805_118_086_952_745, 3.131_312_518_250_573],
    [-3.779_310_253_377_747, -3.283_185_991_286_17],
    [3.584_428_340_330_492, -1.848_126_526_964_404],
];

impl Problem for Himmelblau {
    fn name(&self) -> &str {
        "himmelblau"
    }

    fn config(&self) -> Value {
        typed_config(self.name(), &self.config)
    }

    fn value(&self, [x, y]: Point) -> f64 {
        (x * x + y - 11.0).powi(2) + (x + y * y - 7.0).powi(2)
    }

    fn gradient(&self, [x, y]: Point) -> Point {
        let a = x * x + y - 11.0;
        let b = x + y * y - 7.0;
        [4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b]
    }

    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let (x, y) = coords(xy)?;
        let a = ((x.sqr()? + &y)? - 11.0)?;
        let b = ((&x + y.sqr()?)? - 7.0)?;
        Ok(Some((a.sqr()? + b.sqr()?)?))
    }

    fn minima(&self) -> Vec<Point> {
        MINIMA.to_vec()
    }

    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }

    fn default_start(&self) -> Point {
        [0.0, 0.0]
    }

    fn view(&self) -> ViewBox {
        ViewBox::new(-5.0, 5.0, -5.0, 5.0)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let c: HimmelblauConfig = parse_config(config, path)?;
    Ok(Box::new(Himmelblau { config: c }))
}

crate::register_problem!(
    "himmelblau",
    "(x² + y − 11)² + (x + y² − 7)²: four equal minima",
    HimmelblauConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_minima_have_zero_gradient() {
        let h = Himmelblau {
            config: HimmelblauConfig {},
        };
        for m in MINIMA {
            assert!(h.value(m) < 1e-20, "{m:?}");
            let g = h.gradient(m);
            assert!(g[0].abs() < 1e-12 && g[1].abs() < 1e-12, "{m:?}: {g:?}");
        }
    }
}
