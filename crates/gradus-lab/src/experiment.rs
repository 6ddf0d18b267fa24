//! The experiment JSON: one problem, a start, a number of steps, and the runs to compare.
//!
//! Parsing is strict (unknown keys are errors naming their JSON path and the nearest valid
//! key) and builds every component once, so an experiment that parses also runs: each run's
//! optimizer, schedule and clip are built through the registries on a scratch parameter.

use candle_core::{Device, Var};
use gradus_core::config::{display_path, index_path, join_path, parse_config};
use gradus_core::registry::{lookup, OptimizerKind};
use gradus_core::{Error, NamedVar, Result};
use gradus_optim::clip::ClipConfig;
use serde::Deserialize;
use serde_json::Value;

use crate::batching::Batching;
use crate::problem::{build_problem, Point, Problem, ViewBox};

/// The most steps one run may take (the traces and plots stay small).
pub const MAX_STEPS: usize = 100_000;

/// The default `tolerance`: distance to the nearest known minimum that counts as reached.
pub const DEFAULT_TOLERANCE: f64 = 1e-3;

/// Gradient noise: `std · ε` added to each gradient coordinate, `ε` standard normal, drawn
/// from a stream fixed by `seed` alone (every run with the same noise sees the same draws).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    /// Standard deviation `>= 0` (`0`: no noise).
    pub std: f64,
    /// Seed of the noise stream. Default: `0`.
    #[serde(default)]
    pub seed: u64,
}

impl Noise {
    fn check(&self, path: &str) -> Result<()> {
        if !(self.std.is_finite() && self.std >= 0.0) {
            return Err(Error::config(
                join_path(path, "std"),
                format!("expected a finite number >= 0, got {}", self.std),
            ));
        }
        Ok(())
    }
}

/// One run of an experiment: an optimizer with its controls.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Unique name within the experiment (legend, traces, summary).
    pub name: String,
    /// The optimizer config, `{"type": ..., ...}`.
    pub optimizer: Value,
    /// The schedule config, stepped once per optimizer step.
    pub schedule: Option<Value>,
    /// The clip config (the pipeline's `clip` object), applied after noise.
    pub clip: Option<Value>,
    /// Gradient noise (the run's own, else the experiment's).
    pub noise: Option<Noise>,
    /// How gradients are batched (`full` unless the problem has data).
    pub batching: Batching,
    /// JSON path of this run (`runs[2]`), for errors while running.
    pub path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    #[serde(default)]
    title: Option<String>,
    problem: Value,
    #[serde(default)]
    start: Option<Point>,
    #[serde(default)]
    view: Option<[f64; 4]>,
    steps: usize,
    #[serde(default)]
    tolerance: Option<f64>,
    #[serde(default)]
    noise: Option<Noise>,
    runs: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    name: String,
    optimizer: Value,
    #[serde(default)]
    schedule: Option<Value>,
    #[serde(default)]
    clip: Option<Value>,
    #[serde(default)]
    noise: Option<Noise>,
    #[serde(default)]
    batching: Option<String>,
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    skip_unregistered: bool,
}

/// A parsed, validated experiment.
#[derive(Debug)]
pub struct Experiment {
    /// Title of the plots and the summary.
    pub title: String,
    /// The problem.
    pub problem: Box<dyn Problem>,
    /// Where every run starts.
    pub start: Point,
    /// The box drawn and measured against ("left the view"): the experiment's `view`, else
    /// the problem's, widened to hold the start.
    pub view: ViewBox,
    /// Optimizer steps per run.
    pub steps: usize,
    /// Distance to the nearest known minimum that counts as reached.
    pub tolerance: f64,
    /// The runs, in order.
    pub runs: Vec<RunSpec>,
    /// Runs left out because their optimizer is not registered (`skip_unregistered`).
    pub skipped: Vec<String>,
}

impl Experiment {
    /// Parses experiment JSON text; `origin` (a file name) is named in syntax errors and is
    /// the default title.
    pub fn from_text(text: &str, origin: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::config(display_path(""), format!("{origin} is not valid JSON: {e}"))
        })?;
        Experiment::from_json(&value, origin)
    }

    /// Parses and validates an experiment object; `default_title` is used without `title`.
    pub fn from_json(value: &Value, default_title: &str) -> Result<Self> {
        let raw: RawExperiment = parse_config(value, "")?;
        let problem = build_problem(&raw.problem, "problem")?;
        let start = raw.start.unwrap_or_else(|| problem.default_start());
        check_point(&start, "start")?;
        let view = match raw.view {
            Some(v) => parse_view(v)?,
            None => widen_to(problem.view(), start),
        };
        check_steps(raw.steps)?;
        let tolerance = raw.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return Err(Error::config(
                "tolerance",
                format!("expected a finite number > 0, got {tolerance}"),
            ));
        }
        if let Some(noise) = &raw.noise {
            noise.check("noise")?;
        }
        let (runs, skipped) = parse_runs(&raw.runs, raw.noise, problem.as_ref())?;
        Ok(Experiment {
            title: raw.title.unwrap_or_else(|| default_title.to_string()),
            problem,
            start,
            view,
            steps: raw.steps,
            tolerance,
            runs,
            skipped,
        })
    }
}

fn check_point(p: &Point, path: &str) -> Result<()> {
    match p.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::config(
            index_path(path, i),
            format!("expected a finite number, got {}", p[i]),
        )),
        None => Ok(()),
    }
}

/// `[x_min, x_max, y_min, y_max]`, finite and non-empty.
fn parse_view([x0, x1, y0, y1]: [f64; 4]) -> Result<ViewBox> {
    let ok = [x0, x1, y0, y1].iter().all(|v| v.is_finite()) && x0 < x1 && y0 < y1;
    if !ok {
        return Err(Error::config(
            "view",
            format!(
                "expected [x_min, x_max, y_min, y_max], finite with min < max, \
                 got [{x0}, {x1}, {y0}, {y1}]"
            ),
        ));
    }
    Ok(ViewBox::new(x0, x1, y0, y1))
}

/// `view` grown (with a 10% margin on the grown side) until it holds `p`.
fn widen_to(view: ViewBox, p: Point) -> ViewBox {
    let grow = |[lo, hi]: [f64; 2], v: f64| {
        let margin = 0.1 * (hi - lo).max((v - lo).abs()).max((v - hi).abs());
        [
            if v < lo { v - margin } else { lo },
            if v > hi { v + margin } else { hi },
        ]
    };
    if view.contains(p) {
        return view;
    }
    ViewBox {
        x: grow(view.x, p[0]),
        y: grow(view.y, p[1]),
    }
}

fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 || steps > MAX_STEPS {
        return Err(Error::config(
            "steps",
            format!("expected 1 to {MAX_STEPS} steps, got {steps}"),
        ));
    }
    Ok(())
}

fn parse_runs(
    raw: &[Value],
    noise: Option<Noise>,
    problem: &dyn Problem,
) -> Result<(Vec<RunSpec>, Vec<String>)> {
    if raw.is_empty() {
        return Err(Error::config("runs", "expected at least one run"));
    }
    let mut runs: Vec<RunSpec> = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in raw.iter().enumerate() {
        let path = index_path("runs", i);
        let run: RawRun = parse_config(value, &path)?;
        if run.name.trim().is_empty() {
            return Err(Error::config(join_path(&path, "name"), "expected a name"));
        }
        if runs.iter().any(|r| r.name == run.name) || skipped.contains(&run.name) {
            return Err(Error::config(
                join_path(&path, "name"),
                format!("duplicate run name `{}`", run.name),
            ));
        }
        if run.skip_unregistered && !optimizer_registered(&run.optimizer) {
            skipped.push(run.name);
            continue;
        }
        runs.push(build_run(run, &path, noise, problem)?);
    }
    if runs.is_empty() {
        return Err(Error::config(
            "runs",
            "no run left: every optimizer is unregistered (skip_unregistered)",
        ));
    }
    Ok((runs, skipped))
}

fn optimizer_registered(config: &Value) -> bool {
    config
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|name| lookup::<OptimizerKind>(name, "").is_ok())
}

fn build_run(
    run: RawRun,
    path: &str,
    noise: Option<Noise>,
    problem: &dyn Problem,
) -> Result<RunSpec> {
    let noise = run.noise.or(noise);
    if let Some(n) = &run.noise {
        n.check(&join_path(path, "noise"))?;
    }
    let batching = Batching::parse(
        run.batching.as_deref(),
        run.batch_size,
        run.seed,
        problem,
        path,
    )?;
    let spec = RunSpec {
        name: run.name,
        optimizer: run.optimizer,
        schedule: run.schedule.filter(|s| !s.is_null()),
        clip: run.clip.filter(|c| !c.is_null()),
        noise,
        batching,
        path: path.to_string(),
    };
    spec.controls(&[0.0, 0.0])?;
    Ok(spec)
}

/// A run's optimizer with its schedule and clip, built over one parameter.
pub struct Controls {
    /// The parameter: an f64 `Var` of shape `[2]`, named `xy`.
    pub params: Vec<NamedVar>,
    /// The optimizer.
    pub optimizer: Box<dyn gradus_core::Optimizer>,
    /// The schedule, if any.
    pub schedule: Option<Box<dyn gradus_core::plugin::schedule::Schedule>>,
    /// The clip, if any.
    pub clip: Option<ClipConfig>,
}

impl RunSpec {
    /// Builds the optimizer (over a fresh parameter at `start`), schedule and clip of this run.
    pub fn controls(&self, start: &Point) -> Result<Controls> {
        // host-side: the lab's small 2-D problems run on the CPU.
        let var = Var::new(&start[..], &Device::Cpu)?;
        let params = vec![NamedVar::new("xy", var)];
        let mut optimizer = gradus_optim::build_optimizer(
            &self.optimizer,
            &join_path(&self.path, "optimizer"),
            &params,
        )?;
        let schedule = match &self.schedule {
            Some(s) => Some(gradus_schedule::build_schedule(
                s,
                &join_path(&self.path, "schedule"),
                optimizer.as_mut(),
            )?),
            None => None,
        };
        let clip = match &self.clip {
            Some(c) => Some(ClipConfig::parse(c, &join_path(&self.path, "clip"))?),
            None => None,
        };
        Ok(Controls {
            params,
            optimizer,
            schedule,
            clip,
        })
    }
}
