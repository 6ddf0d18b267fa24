//! Replaying an optimizer over a recorded gradient sequence: the format of the golden
//! trajectories (`optimizer`, optional `schedule` and `clip`, `params`, `grads`), used by
//! `gradus replay` and by the golden tests.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::{Error, NamedVar, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::build::build_optimizer;
use crate::engine::path::UpdatePath;

/// One parameter's initial value: shape and row-major data (shape `[]` is a scalar).
#[derive(Debug, Clone, Deserialize)]
pub struct ParamSpec {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

/// A replay case; fields other than these are ignored (golden files carry `expected`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Optimizer config with `type`.
    pub optimizer: Value,
    /// Schedule config with `type`, stepped once after every optimizer step.
    #[serde(default)]
    pub schedule: Option<Value>,
    /// Clipping config, applied to the gradients before every step.
    #[serde(default)]
    pub clip: Option<Value>,
    /// Initial parameters.
    pub params: Vec<ParamSpec>,
    /// `grads[step][param]`: row-major gradient values.
    pub grads: Vec<Vec<Vec<f64>>>,
}

/// What a replay produces: parameter values after each step (and, for an optimizer with an
/// eval point, after `eval()`) and the lr used by each step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    /// `params[step][param]`: row-major values after that step.
    pub params: Vec<Vec<Vec<f64>>>,
    /// Learning rate (of group 0) in force during each step.
    pub lr: Vec<f64>,
    /// For an optimizer with an eval point (schedule-free): `params_eval[step][param]`, the
    /// values after `eval()` following that step (`train()` is called again before the next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_eval: Option<Vec<Vec<Vec<f64>>>>,
}

/// Every parameter's row-major values, as f64.
fn snapshot(params: &[NamedVar]) -> Result<Vec<Vec<f64>>> {
    params
        .iter()
        .map(|p| {
            Ok(p.var
                .as_tensor()
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?)
        })
        .collect()
}

/// Hooks around each optimizer step: clipping before it, a schedule after it.
pub trait ReplayHooks {
    /// Runs on the gradients before the step.
    fn before_step(&mut self, params: &[NamedVar], grads: &mut GradStore) -> Result<()>;
    /// Runs after the step.
    fn after_step(&mut self, optimizer: &mut dyn Optimizer) -> Result<()>;
}

/// Hooks that do nothing: plain optimizer replay.
pub struct NoHooks;

impl ReplayHooks for NoHooks {
    fn before_step(&mut self, _: &[NamedVar], _: &mut GradStore) -> Result<()> {
        Ok(())
    }
    fn after_step(&mut self, _: &mut dyn Optimizer) -> Result<()> {
        Ok(())
    }
}

impl Case {
    /// Parses a case from JSON text; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Case> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::config(origin, format!("not valid JSON: {e}")))?;
        gradus_core::config::parse_config(&value, "")
    }

    /// The parameters as named variables (`params.0`, `params.1`, ...) in `dtype`.
    pub fn variables(&self, dtype: DType) -> Result<Vec<NamedVar>> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let expected: usize = p.shape.iter().product();
                if expected != p.data.len() {
                    return Err(Error::ShapeMismatch {
                        context: format!("params[{i}].data"),
                        expected: p.shape.clone(),
                        actual: vec![p.data.len()],
                    });
                }
                // host-side: golden replays are defined on the CPU.
                let t = Tensor::from_vec(p.data.clone(), p.shape.as_slice(), &Device::Cpu)?
                    .to_dtype(dtype)?;
                Ok(NamedVar::new(format!("params.{i}"), Var::from_tensor(&t)?))
            })
            .collect()
    }
}

/// Builds the case's optimizer and runs it over every recorded gradient, on `path` when given
/// (else on the path of the case's optimizer config, `auto` by default).
pub fn replay(
    case: &Case,
    dtype: DType,
    path: Option<UpdatePath>,
    hooks: &mut dyn ReplayHooks,
) -> Result<Trajectory> {
    let params = case.variables(dtype)?;
    let mut optimizer = build_optimizer(&case.optimizer, "optimizer", &params)?;
    if let Some(path) = path {
        optimizer.set_update_path(path)?;
    }
    replay_with(case, &params, optimizer.as_mut(), hooks)
}

/// Runs `optimizer` (built over `params`) over the case's gradients.
pub fn replay_with(
    case: &Case,
    params: &[NamedVar],
    optimizer: &mut dyn Optimizer,
    hooks: &mut dyn ReplayHooks,
) -> Result<Trajectory> {
    let mut trajectory = Trajectory {
        params: Vec::with_capacity(case.grads.len()),
        lr: Vec::with_capacity(case.grads.len()),
        params_eval: optimizer.has_eval_point().then(Vec::new),
    };
    for (step, grads) in case.grads.iter().enumerate() {
        if grads.len() != params.len() {
            return Err(Error::config(
                format!("grads[{step}]"),
                format!("{} gradients for {} parameters", grads.len(), params.len()),
            ));
        }
        let mut store = GradStore::default();
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let dims = p.var.as_tensor().dims().to_vec();
            if g.len() != p.var.as_tensor().elem_count() {
                return Err(Error::ShapeMismatch {
                    context: format!("grads[{step}][{i}] for params[{i}]"),
                    expected: dims,
                    actual: vec![g.len()],
                });
            }
            // host-side: golden replays are defined on the CPU.
            let t = Tensor::from_vec(g.clone(), dims.as_slice(), &Device::Cpu)?
                .to_dtype(p.var.dtype())?;
            store.insert(p.var.as_tensor(), t);
        }
        hooks.before_step(params, &mut store)?;
        trajectory.lr.push(optimizer.learning_rate()?);
        optimizer.step(&store)?;
        hooks.after_step(optimizer)?;
        trajectory.params.push(snapshot(params)?);
        if let Some(eval) = &mut trajectory.params_eval {
            optimizer.eval()?;
            eval.push(snapshot(params)?);
            optimizer.train()?;
        }
    }
    Ok(trajectory)
}
