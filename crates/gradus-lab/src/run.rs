//! Running an experiment: each run drives its optimizer, schedule and clip over the problem's
//! analytic gradient, recording the trajectory.
//!
//! Per step, as in `gradus replay`: gradient at the current point (full or batched) plus
//! noise; clip; optimizer step; schedule step. Everything is f64 on the CPU. A run whose point
//! or loss stops being finite ends there, with the step recorded in [`Trace::diverged_at`].

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};

use crate::batching::Batcher;
use crate::experiment::{Controls, Experiment, Noise, RunSpec};
use crate::problem::{Point, Problem};

/// The trajectory of one run: `points[0]` is the start, `points[k]` the point after step `k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The run's name.
    pub name: String,
    /// The start and the point after every step.
    pub points: Vec<Point>,
    /// The objective at every point.
    pub loss: Vec<f64>,
    /// The gradient the optimizer received at every step (after noise and clipping).
    #[serde(skip)]
    pub grads: Vec<Point>,
    /// The step at which the point or the loss became non-finite (the trace stops before it).
    #[serde(skip)]
    pub diverged_at: Option<usize>,
}

/// `traces.json`: the resolved problem and every run's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Traces {
    /// The problem's resolved config.
    pub problem: serde_json::Value,
    /// One trace per run, in the experiment's order.
    pub runs: Vec<Trace>,
}

/// Runs every run of `experiment`.
pub fn run_experiment(experiment: &Experiment) -> Result<Traces> {
    let runs = experiment
        .runs
        .iter()
        .map(|spec| {
            run_one(
                experiment.problem.as_ref(),
                experiment.start,
                experiment.steps,
                spec,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Traces {
        problem: experiment.problem.config(),
        runs,
    })
}

/// Runs `spec` for `steps` steps from `start` on `problem`.
pub fn run_one(problem: &dyn Problem, start: Point, steps: usize, spec: &RunSpec) -> Result<Trace> {
    let mut controls = spec.controls(&start)?;
    let var = controls.params[0].var.clone();
    let mut noise = spec.noise.filter(|n| n.std > 0.0).map(NoiseStream::new);
    let mut batcher = Batcher::new(spec.batching, problem.sample_count());
    let mut trace = Trace {
        name: spec.name.clone(),
        points: vec![start],
        loss: vec![problem.value(start)],
        grads: Vec::with_capacity(steps),
        diverged_at: None,
    };
    for step in 1..=steps {
        let p = trace.points[trace.points.len() - 1];
        let mut g = match batcher.next_batch() {
            Some(batch) => problem.batch_gradient(p, &batch),
            None => problem.gradient(p),
        };
        if let Some(n) = &mut noise {
            n.add(&mut g);
        }
        let applied = apply_step(&mut controls, &var, g)?;
        let q = read_point(&var)?;
        let loss = problem.value(q);
        if !(q.iter().all(|v| v.is_finite()) && loss.is_finite()) {
            trace.diverged_at = Some(step);
            break;
        }
        trace.points.push(q);
        trace.loss.push(loss);
        trace.grads.push(applied);
    }
    Ok(trace)
}

/// One step: gradient into a `GradStore`, clip, optimizer, schedule; returns the gradient the
/// optimizer saw.
fn apply_step(controls: &mut Controls, var: &Var, g: Point) -> Result<Point> {
    let mut grads = GradStore::default();
    // host-side: the lab's small 2-D problems run on the CPU.
    grads.insert(var.as_tensor(), Tensor::new(&g[..], &Device::Cpu)?);
    if let Some(clip) = &controls.clip {
        clip.apply(&controls.params, &mut grads)?;
    }
    let applied = grads
        .get(var.as_tensor())
        .ok_or_else(|| Error::Unsupported("clipping dropped the gradient".into()))?
        .to_vec1::<f64>()?;
    controls.optimizer.step(&grads)?;
    if let Some(schedule) = &mut controls.schedule {
        schedule.step(controls.optimizer.as_mut(), None)?;
    }
    Ok([applied[0], applied[1]])
}

fn read_point(var: &Var) -> Result<Point> {
    let v = var.as_tensor().to_vec1::<f64>()?;
    Ok([v[0], v[1]])
}

/// The draws of one run's gradient noise.
struct NoiseStream {
    std: f64,
    rng: SeededRng,
}

impl NoiseStream {
    fn new(noise: Noise) -> Self {
        NoiseStream {
            std: noise.std,
            rng: SeededRng::new(noise.seed).derive("gradient_noise"),
        }
    }

    fn add(&mut self, g: &mut Point) {
        for v in g.iter_mut() {
            *v += self.std * self.rng.standard_normal();
        }
    }
}
