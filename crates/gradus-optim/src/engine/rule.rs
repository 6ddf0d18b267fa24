//! The per-parameter update rule every optimizer implements, and the state it keeps.

use std::collections::BTreeMap;
use std::fmt::Debug;

use candle_core::Tensor;
use gradus_core::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::kernel::{Kernel, Sums};

/// A parameter's tensor buffers, by PyTorch's `optimizer.state` key (`exp_avg`,
/// `momentum_buffer`, ...), as the reference path holds them.
#[derive(Debug, Clone, Default)]
pub struct Buffers(BTreeMap<&'static str, Tensor>);

impl Buffers {
    /// The buffer `name`, if it exists (it does not before the parameter's first step).
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.get(name)
    }

    /// The buffer `name`, created by `init` on first use.
    pub fn get_or(
        &mut self,
        name: &'static str,
        init: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        if let Some(t) = self.0.get(name) {
            return Ok(t.clone());
        }
        let t = init()?;
        self.0.insert(name, t.clone());
        Ok(t)
    }

    /// Stores `value` as buffer `name` (detached, so no autograd graph is kept alive).
    pub fn set(&mut self, name: &'static str, value: Tensor) {
        self.0.insert(name, value.detach());
    }

    /// The buffers, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Tensor)> {
        self.0.iter().map(|(name, t)| (*name, t))
    }

    /// Number of buffers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes buffer `name` out, if it exists.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.0.remove(name)
    }

    /// Takes every buffer out, leaving none.
    pub(crate) fn take(&mut self) -> BTreeMap<&'static str, Tensor> {
        std::mem::take(&mut self.0)
    }
}

/// A parameter's scalar state (NAdam's `mu_product`), by name.
pub type Scalars = BTreeMap<&'static str, f64>;

/// Per-parameter optimizer state: a step counter, tensor buffers and scalar buffers.
///
/// The engine advances `step` and lets [`Rule::plan`] advance `scalars`, once per step; the
/// update of either path then changes only the tensor buffers.
#[derive(Debug, Clone, Default)]
pub struct ParamState {
    /// Number of updates applied to this parameter (PyTorch's `step`).
    pub step: u64,
    /// Tensor buffers, same shape as the parameter.
    pub buffers: Buffers,
    /// Scalar buffers (NAdam's `mu_product`).
    pub scalars: Scalars,
}

/// One optimization algorithm: its hyperparameters (the config type itself), the coefficients
/// of one step, its reference update in Candle ops and, optionally, its fused CPU kernel.
///
/// The config struct implements this trait, so that `GroupedOptimizer<AdamConfig>` is Adam.
/// A step of one parameter runs in this order, whichever path takes it:
///
/// 1. the engine counts the step (`t ← t + 1`);
/// 2. [`Rule::plan`] computes the step's coefficients in f64 (bias corrections, schedules of
///    the rule's own, ...) and advances the scalar state: the only place either happens;
/// 3. the reference path calls [`Rule::update`] with those coefficients, or the fused path runs
///    [`Rule::Kernel`] with them, element by element, in place.
///
/// A rule whose step needs sums over every parameter of its group before any parameter moves
/// (Prodigy's estimate of the distance to the solution) sets [`Rule::GROUP_REDUCES`]; a step of
/// its group then runs in two passes:
///
/// 1. for each parameter with a gradient: count the step, [`Rule::plan_in_group`] with the
///    group's scalar state, then the first pass, which may update the tensor buffers and returns
///    the parameter's [`Sums`] ([`Rule::reduce`] on the reference path, the kernel's
///    [`Kernel::reduce`] over every chunk on the fused path);
/// 2. the parameters' sums are added in parameter order (deterministic), [`Rule::finish_group`]
///    advances the group's scalar state from the totals (the only place it changes) and says
///    whether the second pass runs; [`Rule::complete`] gives each step the new group state;
/// 3. for each parameter, the second pass: [`Rule::update`], or the kernel's [`Kernel::apply`]
///    with the totals as its `sums`.
///
/// Rules that leave [`Rule::GROUP_REDUCES`] false never see these methods, and their steps run
/// exactly as before.
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

    /// The coefficients of one step of one parameter, read by both paths.
    type Step: Debug + Send + Sync;
    /// The fused CPU kernel over [`Rule::Step`], or [`NoKernel`](crate::NoKernel) for a rule
    /// that runs on the reference path only.
    type Kernel: Kernel<Self::Step>;

    /// Checks the hyperparameters, with the reference implementation's wording.
    fn validate(&self) -> Result<()>;

    /// The hyperparameter `name` (`beta1` and `beta2` address `betas`).
    fn get(&self, name: &str) -> Option<f64>;

    /// Sets hyperparameter `name`; false when the rule has no such hyperparameter.
    fn set(&mut self, name: &str, value: f64) -> bool;

    /// Names of the tensor buffers a parameter carries after its first step under these
    /// hyperparameters, in the order the kernel receives them (checked when state is loaded).
    fn buffer_names(&self) -> Vec<&'static str>;

    /// The tensor buffers a parameter of shape `dims` carries after its first step, with their
    /// shapes, as state is saved and loaded: by default each of [`Rule::buffer_names`], of the
    /// parameter's shape. A rule whose buffers depend on the parameter (Adafactor's factored
    /// second moments of matrices, shaped as a row and a column) overrides this, and says with
    /// [`Rule::kernel_applies`] that its kernel does not step such a parameter.
    fn buffer_shapes(&self, dims: &[usize]) -> Vec<(&'static str, Vec<usize>)> {
        self.buffer_names()
            .into_iter()
            .map(|name| (name, dims.to_vec()))
            .collect()
    }

    /// Whether [`Rule::Kernel`] steps a parameter of shape `dims`: false where the update is not
    /// elementwise over buffers of the parameter's shape (Adafactor's factored statistics of a
    /// matrix). Such a parameter takes the reference path whatever the update path, `fused`
    /// included: the rule has no fused form for it, which is not an error. Default: `true`.
    fn kernel_applies(&self, dims: &[usize]) -> bool {
        let _ = dims;
        true
    }

    /// Names of the scalar buffers a parameter carries after its first step.
    fn scalar_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The value every element of buffer `name` starts at (AdaGrad's
    /// `initial_accumulator_value`); 0 by default.
    fn initial_value(&self, name: &str) -> f64 {
        let _ = name;
        0.0
    }

    /// The coefficients of step `t` (1 for the first), advancing `scalars` as the algorithm
    /// does once per step.
    fn plan(&self, t: u64, scalars: &mut Scalars) -> Self::Step;

    /// [`Rule::plan`] for a parameter of shape `dims`, which the engine calls: for a rule whose
    /// coefficients depend on the parameter's shape (LARS scales only tensors of rank > 1).
    /// Defaults to `plan`.
    fn plan_shaped(&self, t: u64, scalars: &mut Scalars, dims: &[usize]) -> Self::Step {
        let _ = dims;
        self.plan(t, scalars)
    }

    /// True for a rule whose step needs sums over every parameter of its group first (see the
    /// trait's documentation for the two-pass protocol). Default: `false`.
    const GROUP_REDUCES: bool = false;

    /// Names of the group's scalar state (Prodigy's `d`), saved as `param_groups.<g>.<name>`;
    /// none by default.
    fn group_scalar_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The value group scalar `name` starts at; 0 by default.
    fn initial_group_scalar(&self, name: &str) -> f64 {
        let _ = name;
        0.0
    }

    /// [`Rule::plan_shaped`] with the group's scalar state `group` as it was before this step,
    /// which the engine calls for a [`Rule::GROUP_REDUCES`] rule. Defaults to `plan_shaped`.
    fn plan_in_group(
        &self,
        t: u64,
        scalars: &mut Scalars,
        dims: &[usize],
        group: &Scalars,
    ) -> Self::Step {
        let _ = group;
        self.plan_shaped(t, scalars, dims)
    }

    /// The first pass of a [`Rule::GROUP_REDUCES`] rule on the reference path: updates
    /// `buffers` and returns this parameter's contribution to the group's sums, as the kernel's
    /// [`Kernel::reduce`] does on the fused path. Default: no sums.
    fn reduce(
        &self,
        step: &Self::Step,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Sums> {
        let _ = (step, param, grad, buffers);
        Ok([0.0; 4])
    }

    /// Advances the group's scalar state from the totals of the first pass (the one place it
    /// changes); false skips the second pass for this step (Prodigy, when every `s` is 0).
    /// Default: `true`.
    fn finish_group(&self, group: &mut Scalars, totals: &Sums) -> bool {
        let _ = (group, totals);
        true
    }

    /// Gives a planned step the group's scalar state after [`Rule::finish_group`], before the
    /// second pass. Default: nothing to do.
    fn complete(&self, step: &mut Self::Step, group: &Scalars) {
        let _ = (step, group);
    }

    /// The reference update: the new parameter value from `param` and `grad` (both detached,
    /// of one dtype) with the coefficients `step`, updating `buffers` (for a
    /// [`Rule::GROUP_REDUCES`] rule: the second pass, after [`Rule::reduce`]).
    fn update(
        &self,
        step: &Self::Step,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor>;
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
