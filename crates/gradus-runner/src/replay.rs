//! `gradus replay CASE.json`: run an optimizer (with its schedule and clipping) over a recorded
//! gradient sequence and print the trajectory as JSON.
//!
//! Per step, as in the golden files: gradients ← `grads[step]`; clip; optimizer step; schedule
//! step. The schedule is stepped once per optimizer step.

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::DType;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, NamedVar, Optimizer, Result};
use gradus_optim::build_optimizer;
use gradus_optim::clip::ClipConfig;
use gradus_optim::replay::{replay_with, Case, ReplayHooks, Trajectory};

/// Which implementation of the update runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpdatePath {
    /// The fused CPU kernel where eligible, else the reference path.
    Auto,
    /// Candle tensor ops (any device, any float dtype).
    Reference,
    /// The fused CPU kernel (contiguous f32/f64 on the CPU).
    Fused,
}

impl From<UpdatePath> for gradus_optim::UpdatePath {
    fn from(path: UpdatePath) -> Self {
        match path {
            UpdatePath::Auto => gradus_optim::UpdatePath::Auto,
            UpdatePath::Reference => gradus_optim::UpdatePath::Reference,
            UpdatePath::Fused => gradus_optim::UpdatePath::Fused,
        }
    }
}

/// Reads a case file and replays it; `update_path`, when given, overrides the `path` of the
/// case's optimizer and clip configs.
pub fn replay_file(
    path: &Path,
    dtype: DType,
    update_path: Option<UpdatePath>,
) -> Result<Trajectory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let case = Case::from_json(&text, &path.display().to_string())?;
    replay_case(&case, dtype, update_path)
}

struct Controls {
    clip: Option<ClipConfig>,
    schedule: Option<Box<dyn Schedule>>,
}

impl ReplayHooks for Controls {
    fn before_step(&mut self, params: &[NamedVar], grads: &mut GradStore) -> Result<()> {
        if let Some(clip) = &self.clip {
            clip.apply(params, grads)?;
        }
        Ok(())
    }

    fn after_step(&mut self, optimizer: &mut dyn Optimizer) -> Result<()> {
        match &mut self.schedule {
            Some(schedule) => schedule.step(optimizer, None),
            None => Ok(()),
        }
    }
}

/// Replays a parsed case, with its `clip` and `schedule` when present; `update_path`, when
/// given, is the path of both the optimizer and the clipping (else each config's own `path`).
pub fn replay_case(
    case: &Case,
    dtype: DType,
    update_path: Option<UpdatePath>,
) -> Result<Trajectory> {
    let update_path = update_path.map(gradus_optim::UpdatePath::from);
    let params = case.variables(dtype)?;
    let mut optimizer = build_optimizer(&case.optimizer, "optimizer", &params)?;
    let mut clip = match &case.clip {
        Some(c) if !c.is_null() => Some(ClipConfig::parse(c, "clip")?),
        _ => None,
    };
    if let Some(path) = update_path {
        optimizer.set_update_path(path)?;
        if let Some(clip) = &mut clip {
            clip.set_path(path);
        }
    }
    let schedule = match &case.schedule {
        Some(s) if !s.is_null() => Some(gradus_schedule::build_schedule(
            s,
            "schedule",
            optimizer.as_mut(),
        )?),
        _ => None,
    };
    let mut controls = Controls { clip, schedule };
    replay_with(case, &params, optimizer.as_mut(), &mut controls)
}
