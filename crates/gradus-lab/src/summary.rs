//! What each run achieved, measured on its trace, and `summary.md`.

use std::fmt::Write as _;

use crate::experiment::{Experiment, RunSpec};
use crate::plot::curves::tick_label;
use crate::problem::{nearest_minimum, Point, Problem, ViewBox};
use crate::run::Trace;

/// The measurements of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// The first step whose point is within the tolerance of a known minimum.
    pub steps_to_tolerance: Option<usize>,
    /// Distance of the last point to the nearest known minimum.
    pub final_distance: Option<f64>,
    /// The last point.
    pub final_point: Point,
    /// The objective at the last point.
    pub final_loss: f64,
    /// The first step whose point is outside the problem's view box.
    pub left_view_at: Option<usize>,
    /// Whether the last point is inside the view box.
    pub ends_in_view: bool,
    /// The step at which the run became non-finite.
    pub diverged_at: Option<usize>,
}

impl RunSummary {
    /// Measures `trace` on `problem` with `tolerance`, against the box `view`.
    pub fn of(trace: &Trace, problem: &dyn Problem, view: &ViewBox, tolerance: f64) -> Self {
        let minima = problem.minima();
        let distance = |p| nearest_minimum(&minima, p).map(|(_, d)| d);
        let last = trace.points[trace.points.len() - 1];
        RunSummary {
            name: trace.name.clone(),
            steps_to_tolerance: trace
                .points
                .iter()
                .position(|&p| distance(p).is_some_and(|d| d <= tolerance)),
            final_distance: distance(last),
            final_point: last,
            final_loss: trace.loss[trace.loss.len() - 1],
            left_view_at: trace.points.iter().position(|&p| !view.contains(p)),
            ends_in_view: view.contains(last),
            diverged_at: trace.diverged_at,
        }
    }

    /// Short notes for the legend and the summary: divergence and leaving the view.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(step) = self.left_view_at {
            let back = if self.ends_in_view { ", came back" } else { "" };
            notes.push(format!("left the view at step {step}{back}"));
        }
        if let Some(step) = self.diverged_at {
            notes.push(format!("diverged (non-finite) at step {step}"));
        }
        notes
    }
}

/// Measures every trace of an experiment.
pub fn summarize(experiment: &Experiment, traces: &[Trace]) -> Vec<RunSummary> {
    traces
        .iter()
        .map(|t| {
            RunSummary::of(
                t,
                experiment.problem.as_ref(),
                &experiment.view,
                experiment.tolerance,
            )
        })
        .collect()
}

fn number(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

fn describe(spec: &RunSpec) -> String {
    let mut parts = vec![format!("`{}`", compact(&spec.optimizer))];
    if let Some(s) = &spec.schedule {
        parts.push(format!("schedule `{}`", compact(s)));
    }
    if let Some(c) = &spec.clip {
        parts.push(format!("clip `{}`", compact(c)));
    }
    if let Some(n) = spec.noise.filter(|n| n.std > 0.0) {
        parts.push(format!("noise std {} (seed {})", n.std, n.seed));
    }
    if spec.batching != crate::batching::Batching::Full {
        parts.push(format!("batching {}", spec.batching.label()));
    }
    parts.join(", ")
}

fn compact(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `summary.md`: the setup, then one table row per run.
pub fn render_markdown(experiment: &Experiment, summaries: &[RunSummary]) -> String {
    let mut out = String::new();
    let p = experiment.problem.as_ref();
    let _ = writeln!(out, "# {}\n", experiment.title);
    let _ = writeln!(out, "- problem: `{}`", compact(&p.config()));
    let _ = writeln!(
        out,
        "- start: ({}, {}); {} steps per run",
        experiment.start[0], experiment.start[1], experiment.steps
    );
    let minima = p.minima();
    if minima.is_empty() {
        let _ = writeln!(
            out,
            "- no known minimum: steps to tolerance and distances do not apply"
        );
    } else {
        let list: Vec<String> = minima
            .iter()
            .map(|m| format!("({}, {})", tick_label(m[0]), tick_label(m[1])))
            .collect();
        let _ = writeln!(
            out,
            "- minimum: {}; tolerance {} (distance to the nearest minimum)",
            list.join(", "),
            experiment.tolerance
        );
    }
    let _ = writeln!(
        out,
        "\n| run | setup | steps to tolerance | final point | final distance | final loss | notes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (spec, s) in experiment.runs.iter().zip(summaries) {
        let reached = match (s.steps_to_tolerance, s.final_distance) {
            (Some(k), _) => k.to_string(),
            (None, Some(_)) => "not reached".into(),
            (None, None) => "n/a".into(),
        };
        let distance = s.final_distance.map_or("n/a".into(), number);
        let _ = writeln!(
            out,
            "| {} | {} | {} | ({}, {}) | {} | {} | {} |",
            s.name,
            describe(spec),
            reached,
            number(s.final_point[0]),
            number(s.final_point[1]),
            distance,
            number(s.final_loss),
            s.notes().join("; ")
        );
    }
    if !experiment.skipped.is_empty() {
        let _ = writeln!(
            out,
            "\nNot run (optimizer not registered in this build): {}.",
            experiment.skipped.join(", ")
        );
    }
    out
}
