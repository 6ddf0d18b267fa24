//! The `problem` plugin kind: 2-D objectives with an analytic gradient, their registry and
//! the [`register_problem!`](crate::register_problem) macro.
//!
//! The registry mirrors `gradus_core::registry`: a registration is const data
//! ([`ProblemEntry`]) submitted with one macro line next to the problem; the name map is built
//! once, on first use; a duplicate name is an error naming both origins; an unknown name is an
//! error at `problem.type` that lists the registered names and suggests the nearest.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use candle_core::Tensor;
use gradus_core::config::{display_path, join_path, split_type};
use gradus_core::registry::build_name_map;
use gradus_core::suggest::nearest;
use gradus_core::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// A point of the plane: `[x, y]` (for `least_squares`, `[slope, intercept]`).
pub type Point = [f64; 2];

/// The rectangle a problem is drawn in: `x = [x_min, x_max]`, `y = [y_min, y_max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ViewBox {
    /// `[x_min, x_max]`.
    pub x: [f64; 2],
    /// `[y_min, y_max]`.
    pub y: [f64; 2],
}

impl ViewBox {
    /// The box `[x0, x1] x [y0, y1]`.
    pub const fn new(x0: f64, x1: f64, y0: f64, y1: f64) -> Self {
        ViewBox {
            x: [x0, x1],
            y: [y0, y1],
        }
    }

    /// The larger of the two side lengths.
    pub fn span(&self) -> f64 {
        (self.x[1] - self.x[0]).max(self.y[1] - self.y[0])
    }

    /// Whether `p` lies inside the box (edges included).
    pub fn contains(&self, p: Point) -> bool {
        (self.x[0]..=self.x[1]).contains(&p[0]) && (self.y[0]..=self.y[1]).contains(&p[1])
    }
}

/// A 2-D objective the lab runs optimizers on.
///
/// `value` and `gradient` are the analytic formulas (documented on each problem's type);
/// [`Problem::value_tensor`] is the same value written in Candle tensor ops, so that tests can
/// check `gradient` against Candle's autograd ([`autograd_gradient`]).
pub trait Problem: Send + Sync {
    /// The registered name (`quadratic`).
    fn name(&self) -> &str;

    /// The resolved configuration, `{"type": name, ...every field}`.
    fn config(&self) -> Value;

    /// The objective at `p`.
    fn value(&self, p: Point) -> f64;

    /// The analytic gradient at `p`.
    fn gradient(&self, p: Point) -> Point;

    /// The objective as a Candle expression of `xy` (an f64 tensor of shape `[2]`), returning a
    /// tensor of one element; `None` when the problem has no tensor form.
    fn value_tensor(&self, xy: &Tensor) -> Result<Option<Tensor>> {
        let _ = xy;
        Ok(None)
    }

    /// The known global minimizers (empty when unknown or unbounded below).
    fn minima(&self) -> Vec<Point> {
        Vec::new()
    }

    /// The minimum value, when known.
    fn min_value(&self) -> Option<f64> {
        None
    }

    /// Saddle points worth marking on the plot.
    fn saddles(&self) -> Vec<Point> {
        Vec::new()
    }

    /// Where a run starts when the experiment gives no `start`.
    fn default_start(&self) -> Point;

    /// The rectangle the problem is drawn in.
    fn view(&self) -> ViewBox;

    /// Names of the two coordinates, for the plot axes.
    fn axis_names(&self) -> [&'static str; 2] {
        ["x", "y"]
    }

    /// Number of data samples behind the objective (0: not a data problem, only full
    /// gradients apply).
    fn sample_count(&self) -> usize {
        0
    }

    /// The gradient of the mean loss over the samples `batch` (indices below
    /// [`Problem::sample_count`]); the full gradient for problems without data.
    fn batch_gradient(&self, p: Point, batch: &[usize]) -> Point {
        let _ = batch;
        self.gradient(p)
    }
}

impl std::fmt::Debug for dyn Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Problem({})", self.config())
    }
}

/// Builds a problem from its JSON config (without `"type"`), found at JSON path `path`.
pub type ProblemBuild = fn(config: &Value, path: &str) -> Result<Box<dyn Problem>>;

/// One registered problem: plain const data, submitted with
/// [`register_problem!`](crate::register_problem).
pub struct ProblemEntry {
    /// Unique name: the `"type"` used in JSON.
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// The default configuration as JSON (without `"type"`).
    pub default_config: fn() -> Value,
    /// Builds the problem from its JSON config.
    pub build: ProblemBuild,
    /// Module path of the registration, named in duplicate-name errors.
    pub origin: &'static str,
}

inventory::collect!(ProblemEntry);

/// Registers a problem: `register_problem!("name", "summary", Config, build_fn);`, where
/// `Config` is `Default + Serialize` and `build_fn` is a [`ProblemBuild`].
#[macro_export]
macro_rules! register_problem {
    ($name:literal, $summary:literal, $config:ty, $build:expr) => {
        $crate::__private::inventory::submit! {
            $crate::problem::ProblemEntry {
                name: $name,
                summary: $summary,
                default_config: $crate::__private::default_json::<$config>,
                build: $build,
                origin: ::core::module_path!(),
            }
        }
    };
}

type NameMap = BTreeMap<&'static str, &'static ProblemEntry>;

fn submitted() -> impl Iterator<Item = (&'static str, &'static str, &'static ProblemEntry)> {
    inventory::iter::<ProblemEntry>
        .into_iter()
        .map(|e| (e.name, e.origin, e))
}

/// The name map of every registered problem, built on first use.
///
/// # Errors
/// [`Error::DuplicateName`] when two registrations share a name.
pub fn name_map() -> Result<&'static NameMap> {
    static CELL: OnceLock<Option<NameMap>> = OnceLock::new();
    match CELL.get_or_init(|| build_name_map("problem", submitted()).ok()) {
        Some(map) => Ok(map),
        None => Err(match build_name_map("problem", submitted()) {
            Err(e) => e,
            Ok(_) => Error::Unsupported("the problem registry changed while in use".into()),
        }),
    }
}

/// Every registered problem, sorted by name.
pub fn entries() -> Result<Vec<&'static ProblemEntry>> {
    Ok(name_map()?.values().copied().collect())
}

/// The problem registered as `name`; `path` is the JSON path of the `type` field.
pub fn lookup(name: &str, path: &str) -> Result<&'static ProblemEntry> {
    let map = name_map()?;
    map.get(name).copied().ok_or_else(|| Error::UnknownName {
        kind: "problem",
        name: name.to_string(),
        path: display_path(path),
        valid: map.keys().map(|k| k.to_string()).collect(),
        suggestion: nearest(name, map.keys()),
    })
}

/// Builds the problem `{"type": name, ...}` found at JSON path `path`.
pub fn build_problem(config: &Value, path: &str) -> Result<Box<dyn Problem>> {
    let (name, rest) = split_type(config, path)?;
    let entry = lookup(&name, &join_path(path, "type"))?;
    (entry.build)(&rest, path)
}

/// `{"type": name, ...fields of config}`: the resolved config of a problem.
pub fn typed_config<C: Serialize>(name: &str, config: &C) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("type".into(), Value::String(name.into()));
    if let Ok(Value::Object(fields)) = serde_json::to_value(config) {
        object.extend(fields);
    }
    Value::Object(object)
}

/// Checks that config field `key` (at `path`) is finite and, when `positive`, above zero.
pub fn check_finite(path: &str, key: &str, value: f64, positive: bool) -> Result<()> {
    if !value.is_finite() || (positive && value <= 0.0) {
        let want = if positive {
            "a finite number > 0"
        } else {
            "a finite number"
        };
        return Err(Error::config(
            join_path(path, key),
            format!("expected {want}, got {value}"),
        ));
    }
    Ok(())
}

/// The gradient of [`Problem::value_tensor`] at `p` by Candle's autograd (`None` when the
/// problem has no tensor form).
pub fn autograd_gradient(problem: &dyn Problem, p: Point) -> Result<Option<Point>> {
    // host-side: the lab's small 2-D problems run on the CPU.
    let var = candle_core::Var::new(&p[..], &candle_core::Device::Cpu)?;
    let Some(value) = problem.value_tensor(var.as_tensor())? else {
        return Ok(None);
    };
    let grads = value.sum_all()?.backward()?;
    let grad = grads
        .get(var.as_tensor())
        .ok_or_else(|| Error::Unsupported("the value does not depend on the point".into()))?
        .to_vec1::<f64>()?;
    Ok(Some([grad[0], grad[1]]))
}

/// `(x, y)` of an `xy` tensor of shape `[2]`, each of shape `[1]`.
pub fn coords(xy: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((xy.narrow(0, 0, 1)?, xy.narrow(0, 1, 1)?))
}

/// The nearest of `minima` to `p` and its distance.
pub fn nearest_minimum(minima: &[Point], p: Point) -> Option<(Point, f64)> {
    minima
        .iter()
        .map(|m| (*m, (p[0] - m[0]).hypot(p[1] - m[1])))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}
