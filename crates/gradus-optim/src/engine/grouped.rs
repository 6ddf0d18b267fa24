//! The one adaptor that turns a per-parameter [`Rule`] into a full optimizer: parameter
//! groups, skipped gradients, state, run-time hyperparameters, both optimizer traits.

use candle_core::backprop::GradStore;

use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict};

use std::marker::PhantomData;

use rayon::prelude::*;

use crate::engine::groups::GroupSpec;
use crate::engine::kernel::{Kernel, Sums};
use crate::engine::narrow;
use crate::engine::path::UpdatePath;
use crate::engine::precision::{is_low_precision, Precision, Rounder, StateDtype};
use crate::engine::rule::{ParamState, Rule, Scalars};
use crate::engine::slot::{Found, Slot};
use crate::engine::step::{self as fused_step, BufferPlan, LowJob, Stage};
use crate::engine::widen::LowPlan;

pub(crate) struct Group<R> {
    pub(crate) hyper: R,
    pub(crate) frozen: bool,
    /// The group's scalar state ([`Rule::group_scalar_names`]; empty for most rules).
    pub(crate) scalars: Scalars,
}

impl<R: Rule> Group<R> {
    fn new(hyper: R, frozen: bool) -> Self {
        let scalars = hyper
            .group_scalar_names()
            .into_iter()
            .map(|name| (name, hyper.initial_group_scalar(name)))
            .collect();
        Group {
            hyper,
            frozen,
            scalars,
        }
    }
}

/// Parameters handled together in each pass of a step: their gradients looked up, then
/// checked; their metadata read, then their kernels run (see `find_gradients`, `step_fused`).
const BATCH: usize = 16;

/// An optimizer running rule `R` over named parameters split into groups.
///
/// Group 0 holds the optimizer-level hyperparameters and every parameter that matches no
/// [`GroupSpec`]; groups `1..` follow the specs in order. Parameters without a gradient in a
/// step are skipped and keep their state, as in PyTorch.
///
/// Each step takes the fused CPU path (the rule's [`Kernel`]) for every parameter where it is
/// eligible and the reference path ([`Rule::update`]) for the others, unless
/// [`GroupedOptimizer::set_update_path`] (or `"path"` in the JSON config) forces one. State
/// moves between the paths on demand, and `state_dict` is the same whichever path ran.
pub struct GroupedOptimizer<R: Rule> {
    pub(crate) groups: Vec<Group<R>>,
    pub(crate) slots: Vec<Slot>,
    path: UpdatePath,
    /// Elements over all parameters (shapes never change), to size a step's parallelism.
    elem_count: usize,
    /// Built from unnamed variables (`candle_nn::Optimizer::new`): parameters are named by
    /// position, and the state dict carries each parameter's fingerprint (see `state.rs`).
    pub(crate) positional: bool,
    /// How bf16/f16 parameters are stepped (state dtype, master weights, rounding).
    pub(crate) precision: Precision,
}

impl<R: Rule> GroupedOptimizer<R> {
    /// One group holding every parameter.
    pub fn from_named(params: Vec<NamedVar>, hyper: R) -> Result<Self> {
        Self::with_groups(params, hyper, Vec::new())
    }

    /// Parameters assigned to the first spec whose pattern matches their name, else to the
    /// default group built from `hyper`.
    pub fn with_groups(params: Vec<NamedVar>, hyper: R, specs: Vec<GroupSpec<R>>) -> Result<Self> {
        hyper.validate()?;
        let mut seen = std::collections::BTreeSet::new();
        for p in &params {
            if !seen.insert(p.name.as_str()) {
                return Err(Error::config(
                    "params",
                    format!("parameter `{}` given twice", p.name),
                ));
            }
        }
        let slots: Vec<Slot> = params
            .into_iter()
            .enumerate()
            .map(|(index, param)| {
                let group = specs
                    .iter()
                    .position(|s| s.matches(&param.name))
                    .map_or(0, |i| i + 1);
                Slot::new(param, group, index)
            })
            .collect();
        let mut groups = vec![Group::new(hyper, false)];
        for spec in specs {
            spec.hyper.validate()?;
            groups.push(Group::new(spec.hyper, spec.frozen));
        }
        let elem_count = slots.iter().map(|s| s.facts.len).sum();
        Ok(GroupedOptimizer {
            groups,
            slots,
            path: UpdatePath::Auto,
            elem_count,
            positional: false,
            precision: Precision::default(),
        })
    }

    /// The hyperparameters of `group`.
    pub fn group_hyper(&self, group: usize) -> Option<&R> {
        self.groups.get(group).map(|g| &g.hyper)
    }

    /// Index of the group that holds parameter `name`.
    pub fn group_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .find(|s| s.param.name == name)
            .map(|s| s.group)
    }

    /// The state of parameter `name` (empty before its first step), buffers as tensors
    /// (copies, whichever path holds them).
    pub fn param_state(&self, name: &str) -> Option<ParamState> {
        self.slots
            .iter()
            .find(|s| s.param.name == name)
            .and_then(|s| s.materialized().ok())
    }

    /// Chooses the update path of this optimizer ([`UpdatePath::Auto`] until set).
    pub fn set_update_path(&mut self, path: UpdatePath) {
        self.path = path;
    }

    /// The update path this optimizer follows.
    pub fn update_path(&self) -> UpdatePath {
        self.path
    }

    /// Sets how bf16/f16 parameters are stepped (see
    /// [`precision`](crate::engine::precision)): before the first step only, since the state
    /// already kept (its dtype, the master copies) follows the settings it was made under.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if self.slots.iter().any(|s| s.state.step > 0) {
            return Err(Error::config(
                "precision",
                "the precision settings can only change before the optimizer's first step",
            ));
        }
        self.precision = precision;
        Ok(())
    }

    /// How bf16/f16 parameters are stepped.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether the rule has a fused kernel: a fact of its type.
    pub(crate) const HAS_KERNEL: bool = <R::Kernel as Kernel<R::Step>>::FUSED;

    /// Applies one update to every non-frozen parameter that has a gradient in `grads`.
    pub fn apply(&mut self, grads: &GradStore) -> Result<()> {
        let path = self.path;
        // Both passes run over the parameters in parallel when the step is large enough:
        // with many small tensors the per-tensor bookkeeping (cold metadata after the previous
        // step streamed the caches) costs as much as their data, and it spreads over threads.
        let parallel = self.slots.len() > 1 && self.elem_count >= fused_step::SERIAL_BELOW;
        // First every gradient is found and checked (and, with the path forced to fused, every
        // parameter to update found eligible), so a bad one fails the step before any
        // parameter or state changes.
        let mut found = self.find_gradients(grads, parallel)?;
        if path == UpdatePath::Fused {
            self.check_fused(&found)?;
        }
        if R::GROUP_REDUCES {
            return self.step_group_reduced(found);
        }
        if path != UpdatePath::Reference && Self::HAS_KERNEL {
            self.step_fused(&mut found, parallel)?;
        }
        self.step_reference(found)
    }

    /// Each parameter's gradient (`None`: frozen, or no gradient this step), checked. One
    /// vector, written in place (a parallel `collect` into a `Result` builds and merges a list
    /// of vectors instead). In each batch the lookups go first, then the checks: each is a
    /// chain of cache misses (hash bucket, then the gradient's metadata), and short independent
    /// iterations keep many of them in flight.
    fn find_gradients<'g>(
        &self,
        grads: &'g GradStore,
        parallel: bool,
    ) -> Result<Vec<Option<Found<'g>>>> {
        let groups = &self.groups;
        let mut found: Vec<Option<Found<'g>>> = vec![None; self.slots.len()];
        let batch = |(entries, slots): (&mut [Option<Found<'g>>], &[Slot])| -> Result<()> {
            for (entry, slot) in entries.iter_mut().zip(slots) {
                if !groups[slot.group].frozen {
                    *entry = grads.get_id(slot.facts.id).map(Found::unchecked);
                }
            }
            for (entry, slot) in entries.iter_mut().zip(slots) {
                if let Some(found) = entry {
                    found.check(slot)?;
                }
            }
            Ok(())
        };
        if parallel {
            found
                .par_chunks_mut(BATCH)
                .zip(self.slots.par_chunks(BATCH))
                .try_for_each(batch)?;
        } else {
            found
                .chunks_mut(BATCH)
                .zip(self.slots.chunks(BATCH))
                .try_for_each(batch)?;
        }
        Ok(found)
    }

    /// Steps every eligible parameter of `found` on the fused path and clears its entry; the
    /// entries left are the reference path's.
    fn step_fused(&mut self, found: &mut [Option<Found<'_>>], parallel: bool) -> Result<()> {
        let groups = &self.groups;
        let precision = self.precision;
        let plans: Vec<BufferPlan> = groups.iter().map(|g| buffer_plan(&g.hyper)).collect();
        let step = |(entry, slot): (&mut Option<Found<'_>>, &mut Slot)| -> Result<()> {
            let Some(found) = *entry else {
                return Ok(());
            };
            let hyper = &groups[slot.group].hyper;
            if !fused_eligible(hyper, &precision, slot, &found) {
                return Ok(());
            }
            let step = begin_step(hyper, &mut slot.state, &slot.facts.dims);
            fused_job::<R>(slot, found, &plans[slot.group], &step, &precision).run()?;
            *entry = None;
            Ok(())
        };
        if !parallel {
            return found.iter_mut().zip(&mut self.slots).try_for_each(step);
        }
        found
            .par_chunks_mut(BATCH)
            .zip(self.slots.par_chunks_mut(BATCH))
            .try_for_each(|(entries, slots)| {
                // Read the batch's tensor metadata (the lines Candle's in-place op reads first)
                // before any kernel streams: independent misses overlap here, where one at a
                // time between kernels they would not.
                for (entry, slot) in entries.iter().zip(slots.iter()) {
                    if let Some(found) = entry {
                        std::hint::black_box((
                            slot.param.var.as_tensor().is_contiguous(),
                            found.grad.layout().start_offset(),
                        ));
                    }
                }
                entries.iter_mut().zip(slots.iter_mut()).try_for_each(step)
            })
    }

    /// Steps the parameters left in `found` on the reference path, on the calling thread.
    fn step_reference(&mut self, found: Vec<Option<Found<'_>>>) -> Result<()> {
        let precision = self.precision;
        for (slot, found) in self.slots.iter_mut().zip(found) {
            let Some(Found { grad, .. }) = found else {
                continue;
            };
            let hyper = &self.groups[slot.group].hyper;
            let step = begin_step(hyper, &mut slot.state, &slot.facts.dims);
            let (param, grad) = narrow::operands(slot, grad, &precision)?;
            let next = hyper.update(&step, &param, &grad, &mut slot.state.buffers)?;
            narrow::write(slot, next, &precision)?;
        }
        Ok(())
    }

    /// The step of a [`Rule::GROUP_REDUCES`] rule, group by group, in two passes over the
    /// group's parameters (see [`Rule`]): each parameter on the fused path when it is eligible
    /// (and the path is not `reference`), else on the reference path, in either pass.
    fn step_group_reduced(&mut self, found: Vec<Option<Found<'_>>>) -> Result<()> {
        let use_fused = self.path != UpdatePath::Reference && Self::HAS_KERNEL;
        let fused_ok: Vec<bool> = self
            .slots
            .iter()
            .zip(&found)
            .map(|(slot, f)| {
                use_fused
                    && f.as_ref().is_some_and(|f| {
                        let hyper = &self.groups[slot.group].hyper;
                        fused_eligible(hyper, &self.precision, slot, f)
                    })
            })
            .collect();
        let precision = self.precision;
        let plans: Vec<BufferPlan> = self.groups.iter().map(|g| buffer_plan(&g.hyper)).collect();
        for (g, group) in self.groups.iter_mut().enumerate() {
            let hyper = &group.hyper;
            let mut members: Vec<(&mut Slot, Found<'_>, bool, R::Step)> = Vec::new();
            for ((slot, found), &fused) in self.slots.iter_mut().zip(&found).zip(&fused_ok) {
                let Some(found) = *found else { continue };
                if slot.group != g {
                    continue;
                }
                slot.state.step += 1;
                let step = hyper.plan_in_group(
                    slot.state.step,
                    &mut slot.state.scalars,
                    &slot.facts.dims,
                    &group.scalars,
                );
                members.push((slot, found, fused, step));
            }
            if members.is_empty() {
                continue;
            }
            // Pass 1: state updates and each parameter's sums, added in parameter order.
            let mut totals: Sums = [0.0; 4];
            for (slot, found, fused, step) in &mut members {
                let sums = if *fused {
                    fused_job::<R>(slot, *found, &plans[g], step, &precision)
                        .run_stage(Stage::Reduce)?
                } else {
                    let (param, grad) = narrow::operands(slot, found.grad, &precision)?;
                    let sums = hyper.reduce(step, &param, &grad, &mut slot.state.buffers)?;
                    // Between the passes the state is kept as the precision stores it, and the
                    // parameter (its master copy) is unchanged until the second pass.
                    narrow::keep(slot, param, &precision)?;
                    sums
                };
                for (t, s) in totals.iter_mut().zip(sums) {
                    *t += s;
                }
            }
            if !hyper.finish_group(&mut group.scalars, &totals) {
                continue;
            }
            // Pass 2: the elementwise update with the group's new state.
            for (slot, found, fused, mut step) in members {
                hyper.complete(&mut step, &group.scalars);
                if fused {
                    fused_job::<R>(slot, found, &plans[g], &step, &precision)
                        .run_stage(Stage::Apply(totals))?;
                } else {
                    let (param, grad) = narrow::operands(slot, found.grad, &precision)?;
                    let next = hyper.update(&step, &param, &grad, &mut slot.state.buffers)?;
                    narrow::write(slot, next, &precision)?;
                }
            }
        }
        Ok(())
    }

    /// With the path forced to fused: every parameter that would be updated must be eligible.
    fn check_fused(&self, found: &[Option<Found<'_>>]) -> Result<()> {
        for (slot, found) in self.slots.iter().zip(found) {
            // Frozen parameters and those without a gradient have no entry: nothing to update.
            let Some(found) = found else {
                continue;
            };
            if Self::HAS_KERNEL
                && !self.groups[slot.group]
                    .hyper
                    .kernel_applies(&slot.facts.dims)
            {
                // The rule's reference update is its only form for this parameter.
                continue;
            }
            let why = if !Self::HAS_KERNEL {
                format!("`{}` has no fused kernel", R::NAME)
            } else if let Some(why) = &slot.facts.ineligible {
                why.clone()
            } else if !found.on_cpu {
                "its gradient is not on the CPU".to_string()
            } else if let Some(why) = precision_ineligibility::<R>(&self.precision, slot) {
                why
            } else {
                continue;
            };
            return Err(Error::Unsupported(format!(
                "the fused path cannot update `{}`: {why}; use the auto or reference path",
                slot.param.name
            )));
        }
        Ok(())
    }

    pub(crate) fn check_group(&self, group: usize) -> Result<&Group<R>> {
        self.groups.get(group).ok_or_else(|| {
            Error::config(
                "group",
                format!(
                    "no parameter group {group} (the optimizer has {})",
                    self.groups.len()
                ),
            )
        })
    }

    pub(crate) fn unknown_hyper(&self, name: &str) -> Error {
        Error::UnknownName {
            kind: "hyperparameter",
            name: name.to_string(),
            path: R::NAME.to_string(),
            valid: R::HYPERPARAMETERS.iter().map(|s| s.to_string()).collect(),
            suggestion: gradus_core::suggest::nearest(name, R::HYPERPARAMETERS),
        }
    }
}

/// Why the fused path cannot take `slot` under `precision` (`None`: it can). A kernel with a
/// reduce pass over state kept in a bf16/f16 parameter's dtype would round the state between
/// its passes, where the reference path keeps it in f32 for the whole step.
fn precision_ineligibility<R: Rule>(precision: &Precision, slot: &Slot) -> Option<String> {
    let narrow_state =
        precision.state_dtype == StateDtype::Param && is_low_precision(slot.facts.dtype);
    let two_pass = <R::Kernel as Kernel<R::Step>>::REDUCES || R::GROUP_REDUCES;
    (narrow_state && two_pass).then(|| {
        format!(
            "`{}` reduces over its state before updating, which `\"state_dtype\": \"param\"` \
             would round between the passes",
            R::NAME
        )
    })
}

/// True when the fused path takes `slot` with gradient `found` (unless the path is forced).
fn fused_eligible<R: Rule>(
    hyper: &R,
    precision: &Precision,
    slot: &Slot,
    found: &Found<'_>,
) -> bool {
    hyper.kernel_applies(&slot.facts.dims)
        && slot.facts.ineligible.is_none()
        && found.on_cpu
        && precision_ineligibility::<R>(precision, slot).is_none()
}

/// Counts a step of one parameter and plans it: the one place a step changes the step counter
/// and the scalar state, whichever path then runs it.
fn begin_step<R: Rule>(hyper: &R, state: &mut ParamState, dims: &[usize]) -> R::Step {
    state.step += 1;
    hyper.plan_shaped(state.step, &mut state.scalars, dims)
}

/// A fused step (or one pass of it) of `slot` with coefficients `step`, counted already: for
/// a bf16/f16 parameter with the rounding of this step and of the previous one.
fn fused_job<'a, R: Rule>(
    slot: &'a mut Slot,
    found: Found<'a>,
    plan: &'a BufferPlan,
    step: &'a R::Step,
    precision: &Precision,
) -> fused_step::Job<'a, R::Kernel, R::Step> {
    let dtype = slot.facts.dtype;
    let t = slot.state.step;
    let low = is_low_precision(dtype).then(|| LowJob {
        plan: LowPlan {
            rounder: Rounder::new(precision, t, slot.index),
            previous: Rounder::new(precision, t.saturating_sub(1), slot.index),
        },
        master: precision.keeps_master(dtype),
    });
    fused_step::Job {
        param: slot.param.var.as_tensor(),
        facts: &slot.facts,
        found,
        buffers: plan,
        step,
        reference: &mut slot.state.buffers,
        fused: &mut slot.fused,
        state_dtype: precision.state_dtype_of(dtype),
        low,
        kernel: PhantomData,
    }
}

/// The buffers a fused step of `hyper` keeps, in kernel order, with their initial values.
fn buffer_plan<R: Rule>(hyper: &R) -> BufferPlan {
    let names = hyper.buffer_names();
    let initial = names.iter().map(|n| hyper.initial_value(n)).collect();
    BufferPlan { names, initial }
}

impl<R: Rule> Optimizer for GroupedOptimizer<R> {
    fn algorithm(&self) -> &str {
        R::NAME
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.apply(grads)
    }

    fn params(&self) -> Vec<NamedVar> {
        self.slots.iter().map(|s| s.param.clone()).collect()
    }

    fn group_count(&self) -> usize {
        self.groups.len()
    }

    fn hyperparameter_names(&self) -> Vec<&'static str> {
        R::HYPERPARAMETERS.to_vec()
    }

    fn hyperparameter(&self, group: usize, name: &str) -> Result<f64> {
        self.check_group(group)?
            .hyper
            .get(name)
            .ok_or_else(|| self.unknown_hyper(name))
    }

    fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        let mut hyper = self.check_group(group)?.hyper.clone();
        if !hyper.set(name, value) {
            return Err(self.unknown_hyper(name));
        }
        hyper.validate()?;
        self.groups[group].hyper = hyper;
        Ok(())
    }

    /// Keys: `<param>.step` for every parameter, `<param>.<buffer>` for each buffer
    /// (`exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`, `sum`, `square_avg`,
    /// `grad_avg`, `acc_delta`, `exp_inf`, `mu_product`), and `param_groups.<g>.<hyper>`.
    fn state_dict(&self) -> Result<StateDict> {
        GroupedOptimizer::state_dict(self)
    }

    fn update_path(&self) -> UpdatePath {
        self.path
    }

    fn set_update_path(&mut self, path: UpdatePath) -> Result<()> {
        if path == UpdatePath::Fused && !Self::HAS_KERNEL {
            return Err(Error::Unsupported(format!(
                "`{}` has no fused kernel; use the auto or reference path",
                R::NAME
            )));
        }
        self.path = path;
        Ok(())
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        GroupedOptimizer::load_state_dict(self, state)
    }
}
