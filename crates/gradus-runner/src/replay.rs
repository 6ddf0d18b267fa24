//! `gradus replay CASE.json`: run an optimizer (with its schedule and clipping) over a recorded
//! gradient sequence and print the trajectory as JSON.

use std::path::Path;

use candle_core::DType;
use gradus_core::{Error, Result};
use gradus_optim::replay::{replay, Case, NoHooks, Trajectory};

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

/// Reads a case file and replays it.
pub fn replay_file(path: &Path, dtype: DType, update_path: UpdatePath) -> Result<Trajectory> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let case = Case::from_json(&text, &path.display().to_string())?;
    replay_case(&case, dtype, update_path)
}

/// Replays a parsed case.
pub fn replay_case(case: &Case, dtype: DType, update_path: UpdatePath) -> Result<Trajectory> {
    if update_path == UpdatePath::Fused {
        return Err(Error::Unsupported(
            "the fused CPU path is not part of this build yet; use --path auto or reference".into(),
        ));
    }
    if case.schedule.as_ref().is_some_and(|s| !s.is_null()) {
        return Err(Error::Unsupported("replaying a case with a `schedule` needs the training-controls component, not yet in this build".into()));
    }
    if case.clip.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(Error::Unsupported("replaying a case with `clip` needs the training-controls component, not yet in this build".into()));
    }
    replay(case, dtype, &mut NoHooks)
}
