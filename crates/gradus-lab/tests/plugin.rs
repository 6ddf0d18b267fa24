//! A problem registered from outside the crate (as a plugin crate would) is usable by name:
//! the example of docs/lab.md.

use gradus_lab::problem::{typed_config, Point, Problem, ViewBox};
use gradus_lab::{run_experiment, summarize, Experiment};
use serde_json::json;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct BowlConfig {
    scale: f64,
}

impl Default for BowlConfig {
    fn default() -> Self {
        BowlConfig { scale: 1.0 }
    }
}

struct Bowl(BowlConfig);

impl Problem for Bowl {
    fn name(&self) -> &str {
        "test_bowl"
    }
    fn config(&self) -> serde_json::Value {
        typed_config("test_bowl", &self.0)
    }
    fn value(&self, [x, y]: Point) -> f64 {
        self.0.scale * (x * x + y * y)
    }
    fn gradient(&self, [x, y]: Point) -> Point {
        [2.0 * self.0.scale * x, 2.0 * self.0.scale * y]
    }
    fn minima(&self) -> Vec<Point> {
        vec![[0.0, 0.0]]
    }
    fn min_value(&self) -> Option<f64> {
        Some(0.0)
    }
    fn default_start(&self) -> Point {
        [1.0, 1.0]
    }
    fn view(&self) -> ViewBox {
        ViewBox::new(-2.0, 2.0, -2.0, 2.0)
    }
}

fn build(config: &serde_json::Value, path: &str) -> gradus_core::Result<Box<dyn Problem>> {
    Ok(Box::new(Bowl(gradus_core::config::parse_config(
        config, path,
    )?)))
}

gradus_lab::register_problem!("test_bowl", "a round bowl (test only)", BowlConfig, build);

#[test]
fn a_plugin_problem_runs_by_name() {
    let entry = gradus_lab::problem::lookup("test_bowl", "problem.type").unwrap();
    assert_eq!((entry.default_config)(), json!({"scale": 1.0}));
    assert!(entry.origin.ends_with("plugin"), "{}", entry.origin);
    let experiment = Experiment::from_json(
        &json!({
            "problem": {"type": "test_bowl", "scale": 2.0},
            "steps": 30,
            "runs": [{"name": "gd", "optimizer": {"type": "sgd", "lr": 0.1}}]
        }),
        "plugin",
    )
    .unwrap();
    let traces = run_experiment(&experiment).unwrap();
    // Each step multiplies the point by 1 - 2·scale·lr = 0.6.
    assert!((traces.runs[0].points[1][0] - 0.6).abs() < 1e-15);
    let summary = summarize(&experiment, &traces.runs);
    assert!(summary[0].steps_to_tolerance.is_some());
    // A tensor form is optional: without one, autograd has nothing to check.
    let bowl = gradus_lab::build_problem(&json!({"type": "test_bowl"}), "problem").unwrap();
    assert!(
        gradus_lab::problem::autograd_gradient(bowl.as_ref(), [1.0, 1.0])
            .unwrap()
            .is_none()
    );
}
