//! Weight averaging, as `torch.optim.swa_utils`: an [`AveragedModel`] over a set of named
//! parameters, updated by EMA ([`ema`]) or SWA ([`swa`]); evaluation with the averaged weights
//! swapped in and the training weights restored bit-exactly; state that resumes
//! bit-identically; and [`update_bn`] for batch-norm statistics after averaging.
//!
//! ```
//! use candle_core::{DType, Device, Tensor, Var};
//! use gradus_core::NamedVar;
//! use gradus_optim::averaging::{AveragedModel, AveragingConfig};
//!
//! # fn main() -> gradus_core::Result<()> {
//! let w = Var::new(&[1.0f64, 2.0], &Device::Cpu)?;
//! let params = [NamedVar::new("fc.weight", w.clone())];
//! let config = AveragingConfig::parse(&serde_json::json!({"type": "swa", "start_epoch": 1, "swa_lr": 0.05}), "train.averaging")?;
//! let mut swa = AveragedModel::new(&params, config)?;
//! swa.update(&params)?; // the first update copies: [1, 2]
//! w.set(&Tensor::new(&[3.0f64, 0.0], &Device::Cpu)?)?;
//! swa.update(&params)?; // the mean of the two: [2, 1]
//! let seen = swa.with_averaged(&params, || Ok(w.to_vec1::<f64>()?))?;
//! assert_eq!(seen, [2.0, 1.0]); // evaluated with the averaged weights ...
//! assert_eq!(w.to_vec1::<f64>()?, [3.0, 0.0]); // ... and the training weights are back
//! assert_eq!(swa.n_averaged(), 2);
//! # Ok(())
//! # }
//! ```

pub mod ema;
pub mod swa;
mod update_bn;

pub use ema::{ema_update, EmaConfig};
pub use swa::{swa_update, AnnealStrategy, SwaConfig};
pub use update_bn::update_bn;

use candle_core::{DType, Tensor};
use gradus_core::config::{display_path, join_path, parse_config, split_type};
use gradus_core::suggest::nearest;
use gradus_core::{Error, NamedVar, Result, StateDict};
use serde_json::Value;

/// The registered averaging names, for errors.
const NAMES: &[&str] = &["ema", "swa"];

/// Key of the number of averaged models in [`AveragedModel::state_dict`] (PyTorch's buffer).
const N_AVERAGED: &str = "n_averaged";

/// Prefix of the averaged tensors in [`AveragedModel::state_dict`] (PyTorch's `module.`).
const MODULE: &str = "module";

/// Which average, with its options: `{"type": "ema", "decay": 0.999}` or `{"type": "swa",
/// "start_epoch": N, "swa_lr": X, "anneal_epochs": 10, "anneal_strategy": "cos"}` (the
/// pipeline's `train.averaging`).
#[derive(Debug, Clone, PartialEq)]
pub enum AveragingConfig {
    /// Exponential moving average, updated after every optimizer step.
    Ema(EmaConfig),
    /// Stochastic weight averaging, updated at the end of every epoch from `start_epoch`.
    Swa(SwaConfig),
}

/// When an [`AveragedModel`] is updated, by its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// After every optimizer step (EMA).
    EveryStep,
    /// At the end of every epoch `>= from` (epochs count from 1; SWA's `start_epoch`).
    EveryEpochFrom(u64),
}

impl AveragingConfig {
    /// Parses the config found at JSON path `path`, strictly: an unknown `type` lists `ema`
    /// and `swa` and suggests the nearest; an unknown field (an option of PyTorch's that is not
    /// implemented, such as `use_buffers`) names the path and the nearest valid field; values
    /// are checked as PyTorch checks them.
    pub fn parse(value: &Value, path: &str) -> Result<Self> {
        let (name, rest) = split_type(value, path)?;
        let config = match name.as_str() {
            "ema" => AveragingConfig::Ema(parse_config(&rest, path)?),
            "swa" => AveragingConfig::Swa(parse_config(&rest, path)?),
            _ => {
                return Err(Error::UnknownName {
                    kind: "averaging",
                    suggestion: nearest(&name, NAMES),
                    name,
                    path: display_path(&join_path(path, "type")),
                    valid: NAMES.iter().map(|s| s.to_string()).collect(),
                })
            }
        };
        match &config {
            AveragingConfig::Ema(c) => c.validate(path)?,
            AveragingConfig::Swa(c) => c.validate(path)?,
        }
        Ok(config)
    }

    /// `ema` or `swa`.
    pub fn name(&self) -> &'static str {
        match self {
            AveragingConfig::Ema(_) => "ema",
            AveragingConfig::Swa(_) => "swa",
        }
    }

    /// When the average is updated.
    pub fn cadence(&self) -> Cadence {
        match self {
            AveragingConfig::Ema(_) => Cadence::EveryStep,
            AveragingConfig::Swa(c) => Cadence::EveryEpochFrom(c.first_epoch()),
        }
    }
}

/// Averaged copies of a set of named parameters, as `torch.optim.swa_utils.AveragedModel`:
/// built from the parameters (a copy of them, as PyTorch deep-copies the model), updated with
/// [`AveragedModel::update`] (the first update copies, the next ones average by the config's
/// rule), counted by [`AveragedModel::n_averaged`].
///
/// The averaged tensors live beside the model, in the parameters' dtype and device. To use
/// them: [`AveragedModel::with_averaged`] (or [`swap_in`](AveragedModel::swap_in) /
/// [`swap_back`](AveragedModel::swap_back)) writes them into the variables and afterwards puts
/// the training weights back bit for bit; [`copy_into`](AveragedModel::copy_into) writes them
/// for good (the final model); [`weights`](AveragedModel::weights) names them as the
/// parameters, to save as a model. [`state_dict`](AveragedModel::state_dict) /
/// [`load_state_dict`](AveragedModel::load_state_dict) carry the averages (`module.<name>`)
/// and `n_averaged`, PyTorch's names, so that a resumed run continues bit-identically.
/// Parameters are matched by name and shape, in the order given at construction.
#[derive(Debug)]
pub struct AveragedModel {
    config: AveragingConfig,
    names: Vec<String>,
    averages: Vec<Tensor>,
    n_averaged: u64,
    /// The training weights while the averaged ones are swapped in.
    swapped_out: Option<Vec<Tensor>>,
}

/// A copy of `t` with its own storage, outside any autograd graph.
fn snapshot(t: &Tensor) -> Result<Tensor> {
    Ok(t.detach().copy()?)
}

/// The first average of a parameter: a copy in the dtype the average is kept in, f32 for a
/// bf16/f16 parameter (an EMA's increments, `(1 − decay)(θ − avg)`, would mostly round away
/// in bf16), else the parameter's.
fn first_average(t: &Tensor) -> Result<Tensor> {
    let dtype = crate::engine::precision::Precision::compute_dtype(t.dtype());
    Ok(t.detach().to_dtype(dtype)?.copy()?)
}

/// `avg` written into `var`, rounded to its dtype (nearest) when the average is wider.
fn set_from(var: &candle_core::Var, avg: &Tensor) -> Result<()> {
    var.set(&avg.to_dtype(var.dtype())?)?;
    Ok(())
}

impl AveragedModel {
    /// An averaged model over `params`, starting from a copy of their values.
    pub fn new(params: &[NamedVar], config: AveragingConfig) -> Result<Self> {
        let mut names = Vec::with_capacity(params.len());
        for p in params {
            if names.contains(&p.name) {
                return Err(Error::StateMismatch(format!(
                    "parameter `{}` given twice to the averaged model",
                    p.name
                )));
            }
            if !p.var.dtype().is_float() {
                return Err(Error::Unsupported(format!(
                    "averaging needs floating-point parameters, `{}` is {:?}",
                    p.name,
                    p.var.dtype()
                )));
            }
            names.push(p.name.clone());
        }
        let averages = params
            .iter()
            .map(|p| first_average(p.var.as_tensor()))
            .collect::<Result<_>>()?;
        Ok(AveragedModel {
            config,
            names,
            averages,
            n_averaged: 0,
            swapped_out: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &AveragingConfig {
        &self.config
    }

    /// How many parameter values have been averaged (PyTorch's `n_averaged`).
    pub fn n_averaged(&self) -> u64 {
        self.n_averaged
    }

    /// The averaged value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(&self.averages[i])
    }

    /// True while [`AveragedModel::swap_in`] has put the averaged weights into the variables.
    pub fn is_swapped_in(&self) -> bool {
        self.swapped_out.is_some()
    }

    /// Folds the current values of `params` into the average: a copy on the first update, then
    /// the config's rule ([`ema_update`], [`swa_update`]). An error (a parameter missing, renamed
    /// or reshaped; the averaged weights swapped in) leaves the average unchanged.
    pub fn update(&mut self, params: &[NamedVar]) -> Result<()> {
        self.refuse_while_swapped("update")?;
        self.check(params)?;
        let next = params
            .iter()
            .zip(&self.averages)
            .map(|(p, avg)| {
                let value = p.var.as_tensor().detach().to_dtype(avg.dtype())?;
                match (self.n_averaged, &self.config) {
                    (0, _) => first_average(&value),
                    (_, AveragingConfig::Ema(c)) => ema_update(avg, &value, c.decay),
                    (n, AveragingConfig::Swa(_)) => swa_update(avg, &value, n),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        self.averages = next;
        self.n_averaged += 1;
        Ok(())
    }

    /// Runs `f` with the averaged weights in the variables of `params`, then puts the training
    /// weights back bit for bit, also when `f` fails (its error is returned).
    pub fn with_averaged<T>(
        &mut self,
        params: &[NamedVar],
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.swap_in(params)?;
        let out = f();
        let back = self.swap_back(params);
        let value = out?;
        back?;
        Ok(value)
    }

    /// Writes the averaged weights into the variables of `params`, keeping a copy of the
    /// training weights for [`AveragedModel::swap_back`].
    pub fn swap_in(&mut self, params: &[NamedVar]) -> Result<()> {
        self.refuse_while_swapped("swap_in")?;
        self.check(params)?;
        let saved = params
            .iter()
            .map(|p| snapshot(p.var.as_tensor()))
            .collect::<Result<Vec<_>>>()?;
        for (p, avg) in params.iter().zip(&self.averages) {
            set_from(&p.var, avg)?;
        }
        self.swapped_out = Some(saved);
        Ok(())
    }

    /// Puts back the training weights that [`AveragedModel::swap_in`] replaced.
    pub fn swap_back(&mut self, params: &[NamedVar]) -> Result<()> {
        self.check(params)?;
        let saved = self.swapped_out.take().ok_or_else(|| {
            Error::Unsupported(
                "swap_back without swap_in: the training weights are in place".into(),
            )
        })?;
        for (p, t) in params.iter().zip(&saved) {
            p.var.set(t)?;
        }
        Ok(())
    }

    /// Writes the averaged weights into the variables of `params` for good (the final model,
    /// as PyTorch users keep `swa_model`).
    pub fn copy_into(&self, params: &[NamedVar]) -> Result<()> {
        self.refuse_while_swapped("copy_into")?;
        self.check(params)?;
        for (p, avg) in params.iter().zip(&self.averages) {
            set_from(&p.var, avg)?;
        }
        Ok(())
    }

    /// The averaged weights under the parameters' own names: a model file
    /// (`averaged.safetensors`) that loads like the training weights.
    pub fn weights(&self) -> StateDict {
        let mut sd = StateDict::new();
        for (name, avg) in self.names.iter().zip(&self.averages) {
            sd.insert(name.clone(), avg.clone());
        }
        sd
    }

    /// Everything a resumed run needs: `module.<name>` for each average and `n_averaged` (an
    /// `i64` scalar), PyTorch's `AveragedModel.state_dict()` names.
    pub fn state_dict(&self) -> Result<StateDict> {
        let mut sd = StateDict::new();
        for (name, avg) in self.names.iter().zip(&self.averages) {
            sd.insert(join_path(MODULE, name), avg.clone());
        }
        let count = i64::try_from(self.n_averaged)
            .map_err(|_| Error::StateMismatch("n_averaged does not fit an i64".into()))?;
        let device = self.averages.first().map(|t| t.device().clone());
        sd.insert(
            N_AVERAGED,
            // host-side: state-dict scalars are host values (no parameter to follow).
            Tensor::new(count, &device.unwrap_or(candle_core::Device::Cpu))?,
        );
        Ok(sd)
    }

    /// Restores what [`AveragedModel::state_dict`] saved: every average (same shape, converted
    /// to the parameter's dtype and device) and `n_averaged`. A missing, extra or reshaped
    /// entry is an error and leaves this model unchanged.
    pub fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        self.refuse_while_swapped("load_state_dict")?;
        let expected = self.names.len() + 1;
        if state.len() != expected {
            let unknown: Vec<&str> = state
                .names()
                .filter(|k| {
                    *k != N_AVERAGED
                        && !self
                            .names
                            .iter()
                            .any(|n| join_path(MODULE, n).as_str() == *k)
                })
                .collect();
            if !unknown.is_empty() {
                return Err(Error::StateMismatch(format!(
                    "averaged-model state has entries for no parameter: {}",
                    unknown.join(", ")
                )));
            }
        }
        let mut averages = Vec::with_capacity(self.names.len());
        for (name, current) in self.names.iter().zip(&self.averages) {
            let saved = state.require(&join_path(MODULE, name), current.dims())?;
            averages.push(
                saved
                    .to_device(current.device())?
                    .to_dtype(current.dtype())?,
            );
        }
        let count = state
            .require(N_AVERAGED, &[])?
            .to_dtype(DType::I64)?
            .to_scalar::<i64>()?;
        let count = u64::try_from(count)
            .map_err(|_| Error::StateMismatch(format!("n_averaged must be >= 0, got {count}")))?;
        self.averages = averages;
        self.n_averaged = count;
        Ok(())
    }

    fn refuse_while_swapped(&self, what: &str) -> Result<()> {
        if self.swapped_out.is_some() {
            return Err(Error::Unsupported(format!(
                "{what} while the averaged weights are swapped in; swap_back first"
            )));
        }
        Ok(())
    }

    /// `params` must be the parameters this model was built over: same names, order, shapes.
    fn check(&self, params: &[NamedVar]) -> Result<()> {
        if params.len() != self.names.len() {
            return Err(Error::StateMismatch(format!(
                "averaged model holds {} parameters, got {}",
                self.names.len(),
                params.len()
            )));
        }
        for ((p, name), avg) in params.iter().zip(&self.names).zip(&self.averages) {
            if &p.name != name {
                return Err(Error::StateMismatch(format!(
                    "averaged model expects parameter `{name}` here, got `{}`",
                    p.name
                )));
            }
            if p.var.dims() != avg.dims() {
                return Err(Error::ShapeMismatch {
                    context: format!("averaged parameter `{name}`"),
                    expected: avg.dims().to_vec(),
                    actual: p.var.dims().to_vec(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
