//! The per-parameter update rule every optimizer implements, and the state it keeps.

use std::collections::BTreeMap;
use std::fmt::Debug;

use candle_core::Tensor;
use gradus_core::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fused::FusedUpdate;

/// Per-parameter optimizer state: a step counter, tensor buffers and scalar buffers.
///
/// Buffer names follow PyTorch's `optimizer.state` keys (`exp_avg`, `momentum_buffer`, ...).
#[derive(Debug, Clone, Default)]
pub struct ParamState {
    /// Number of updates applied to this parameter (PyTorch's `step`).
    pub step: u64,
    /// Tensor buffers, same shape and dtype as the parameter.
    pub buffers: BTreeMap<&'static str, Tensor>,
    /// Scalar buffers (NAdam's `mu_product`).
    pub scalars: BTreeMap<&'static str, f64>,
}

impl ParamState {
    /// The buffer `name`, created by `init` on first use.
    pub fn buffer_or(
        &mut self,
        name: &'static str,
        init: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        if let Some(t) = self.buffers.get(name) {
            return Ok(t.clone());
        }
        let t = init()?;
        self.buffers.insert(name, t.clone());
        Ok(t)
    }

    /// Stores `value` as buffer `name` (detached, so no autograd graph is kept alive).
    pub fn set_buffer(&mut self, name: &'static str, value: Tensor) {
        self.buffers.insert(name, value.detach());
    }
}

/// One optimization algorithm: its hyperparameters (the config type itself) and its
/// per-parameter update.
///
/// The config struct implements this trait, so that `GroupedOptimizer<AdamConfig>` is Adam.
/// Hyperparameters are f64 in the config; the update runs in the parameter's dtype.
pub trait Rule:
    Clone + Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Registered name (`adam`).
    const NAME: &'static str;
    /// Names of the scalar hyperparameters that can be read and set at run time.
    ///
    /// [`hyperparameters!`](crate::hyperparameters) writes this constant, [`Rule::get`] and
    /// [`Rule::set`] from one list of `"name" => field` pairs.
    const HYPERPARAMETERS: &'static [&'static str];

    /// Checks the hyperparameters, with PyTorch's wording for invalid values.
    fn validate(&self) -> Result<()>;

    /// The hyperparameter `name` (`beta1` and `beta2` address `betas`).
    fn get(&self, name: &str) -> Option<f64>;

    /// Sets hyperparameter `name`; false when the rule has no such hyperparameter.
    fn set(&mut self, name: &str, value: f64) -> bool;

    /// Names of the tensor buffers a parameter carries after its first step under these
    /// hyperparameters (checked when state is loaded).
    fn buffer_names(&self) -> Vec<&'static str>;

    /// Names of the scalar buffers a parameter carries after its first step.
    fn scalar_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Computes the new parameter value from `param` and `grad` (both detached), updating
    /// `state` (whose `step` has already been incremented for this update).
    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut ParamState) -> Result<Tensor>;

    /// The fused CPU kernel's plan for this update (`state.step` already incremented), or
    /// `None` when the rule has no fused kernel and the reference path must run.
    ///
    /// A rule that returns `Some` also does here whatever [`Rule::update`] does to scalar
    /// state (NAdam's `mu_product`); the kernel then reads and writes the tensor buffers of
    /// [`Rule::buffer_names`], in that order, with the same arithmetic as `update`. A rule
    /// that returns `None` leaves `state` as it was (the reference path then runs `update`).
    fn fused(&self, state: &mut ParamState) -> Option<FusedUpdate> {
        let _ = state;
        None
    }
}

/// Writes `HYPERPARAMETERS`, `get` and `set` of a [`Rule`] impl from `"name" => field` pairs
/// (`"beta1" => betas.0` for a tuple field), so that the names exist in one place:
///
/// ```text
/// impl Rule for SgdConfig {
///     gradus_optim::hyperparameters!("lr" => lr, "momentum" => momentum);
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! hyperparameters {
    ($($name:literal => $field:ident $(. $index:tt)?),+ $(,)?) => {
        const HYPERPARAMETERS: &'static [&'static str] = &[$($name),+];

        fn get(&self, name: &str) -> Option<f64> {
            match name {
                $($name => Some(self.$field $(.$index)?),)+
                _ => None,
            }
        }

        fn set(&mut self, name: &str, value: f64) -> bool {
            match name {
                $($name => self.$field $(.$index)? = value,)+
                _ => return false,
            }
            true
        }
    };
}
