//! Saving and restoring an optimizer's state, and the fingerprints that keep state saved from
//! unnamed (positional) parameters from loading into the wrong ones.

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
use gradus_core::{Error, NamedVar, Result, StateDict};

use crate::engine::grouped::GroupedOptimizer;
use crate::engine::precision::MASTER_WEIGHT;
use crate::engine::rule::{ParamState, Rule};

/// The state-dict key suffix of a positional parameter's fingerprint.
const FINGERPRINT: &str = "fingerprint";

fn scalar(value: f64) -> Result<Tensor> {
    // host-side: state-dict scalars (counters, checksums) are host values.
    Ok(Tensor::new(value, &Device::Cpu)?)
}

fn read_scalar(state: &StateDict, name: &str) -> Result<f64> {
    let t = state.require(name, &[])?;
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// A parameter's fingerprint: the CRC-32 of its values (as f64, little-endian, row-major) and
/// its element count, as a `[2]` u32 tensor. Two parameters of one shape differ in it unless
/// they hold the same values.
fn fingerprint(param: &NamedVar) -> Result<Tensor> {
    let t = param.var.as_tensor();
    let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mut hasher = crc32fast::Hasher::new();
    for v in &values {
        hasher.update(&v.to_le_bytes());
    }
    let count = values.len() as u32;
    // host-side: state-dict scalars (counters, checksums) are host values.
    Ok(Tensor::new(&[hasher.finalize(), count], &Device::Cpu)?)
}

impl<R: Rule> GroupedOptimizer<R> {
    /// Keys: `<param>.step` for every parameter, `<param>.<buffer>` for each buffer
    /// (`exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`, `sum`, `square_avg`,
    /// `grad_avg`, `acc_delta`, `exp_inf`, `mu_product`), `<param>.master_weight` for a
    /// bf16/f16 parameter with master weights, and `param_groups.<g>.<hyper>`.
    pub fn state_dict(&self) -> Result<StateDict> {
        let mut sd = StateDict::new();
        for slot in &self.slots {
            let name = &slot.param.name;
            sd.insert(format!("{name}.step"), scalar(slot.state.step as f64)?);
            for (buffer, tensor) in slot
                .state
                .buffers
                .iter()
                .map(|(b, t)| (b, t.clone()))
                .chain(slot.fused.export(&slot.facts.dims)?)
            {
                sd.insert(format!("{name}.{buffer}"), tensor.clone());
            }
            for (key, value) in &slot.state.scalars {
                sd.insert(format!("{name}.{key}"), scalar(*value)?);
            }
        }
        if self.positional {
            for slot in &self.slots {
                let name = &slot.param.name;
                sd.insert(format!("{name}.{FINGERPRINT}"), fingerprint(&slot.param)?);
            }
        }
        for (g, group) in self.groups.iter().enumerate() {
            for hyper in R::HYPERPARAMETERS {
                if let Some(value) = group.hyper.get(hyper) {
                    sd.insert(format!("param_groups.{g}.{hyper}"), scalar(value)?);
                }
            }
            for (name, value) in &group.scalars {
                sd.insert(format!("param_groups.{g}.{name}"), scalar(*value)?);
            }
        }
        Ok(sd)
    }

    ///
    /// An optimizer built from unnamed variables (`candle_nn::Optimizer::new`, [`new_lr`]) first
    /// checks that each of its parameters holds the weights the saved one held (their
    /// fingerprints), so that state saved in another process, where `VarMap::all_vars` listed
    /// the variables in another order, is refused instead of loaded into the wrong parameters.
    ///
    /// [`new_lr`]: GroupedOptimizer::new_lr
    pub fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let mut known: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        if self.positional {
            self.check_fingerprints(state, &mut known)?;
        }
        let mut new_groups = Vec::with_capacity(self.groups.len());
        let mut new_group_scalars = Vec::with_capacity(self.groups.len());
        for (g, group) in self.groups.iter().enumerate() {
            let mut hyper = group.hyper.clone();
            for name in R::HYPERPARAMETERS {
                let key = format!("param_groups.{g}.{name}");
                hyper.set(name, read_scalar(state, &key)?);
                known.insert(key);
            }
            hyper.validate()?;
            let mut scalars = crate::engine::rule::Scalars::new();
            for name in hyper.group_scalar_names() {
                let key = format!("param_groups.{g}.{name}");
                scalars.insert(name, read_scalar(state, &key)?);
                known.insert(key);
            }
            new_groups.push(hyper);
            new_group_scalars.push(scalars);
        }
        let mut new_states = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let name = &slot.param.name;
            let step_key = format!("{name}.step");
            let step = read_scalar(state, &step_key)?;
            known.insert(step_key);
            let mut ps = ParamState {
                step: step as u64,
                ..ParamState::default()
            };
            if ps.step > 0 {
                let hyper = &new_groups[slot.group];
                let param = slot.param.var.as_tensor();
                let stored = self.precision.state_dtype_of(param.dtype());
                for (buffer, shape) in hyper.buffer_shapes(param.dims()) {
                    let key = format!("{name}.{buffer}");
                    let t = state.require(&key, &shape)?;
                    ps.buffers
                        .set(buffer, t.to_dtype(stored)?.to_device(param.device())?);
                    known.insert(key);
                }
                // Saved without one (before master weights were on): the next step starts
                // the master copy from the parameter, as a first step does.
                let key = format!("{name}.{MASTER_WEIGHT}");
                if self.precision.keeps_master(param.dtype()) && state.get(&key).is_some() {
                    let t = state.require(&key, param.dims())?;
                    ps.buffers.set(
                        MASTER_WEIGHT,
                        t.to_dtype(DType::F32)?.to_device(param.device())?,
                    );
                    known.insert(key);
                }
                for key_name in hyper.scalar_names() {
                    let key = format!("{name}.{key_name}");
                    ps.scalars.insert(key_name, read_scalar(state, &key)?);
                    known.insert(key);
                }
            }
            new_states.push(ps);
        }
        if let Some(extra) = state.names().find(|n| !known.contains(*n)) {
            return Err(Error::StateMismatch(format!(
                "saved state has `{extra}`, which matches no parameter or buffer of this {} optimizer",
                R::NAME
            )));
        }
        for ((group, hyper), scalars) in self
            .groups
            .iter_mut()
            .zip(new_groups)
            .zip(new_group_scalars)
        {
            group.hyper = hyper;
            group.scalars = scalars;
        }
        for (slot, ps) in self.slots.iter_mut().zip(new_states) {
            slot.state = ps;
            slot.fused.clear();
        }
        Ok(())
    }

    /// The saved fingerprints of a positional optimizer against its parameters' current values.
    fn check_fingerprints(&self, state: &StateDict, known: &mut BTreeSet<String>) -> Result<()> {
        for slot in &self.slots {
            let name = &slot.param.name;
            let key = format!("{name}.{FINGERPRINT}");
            let Some(saved) = state.get(&key) else {
                return Err(Error::StateMismatch(format!(
                    "saved state has no `{key}`: it was not saved by an optimizer built from \
                     unnamed variables, so its parameters cannot be matched by position; build \
                     the optimizer with `GroupedOptimizer::from_varmap` (state keyed by VarMap \
                     names) on both sides"
                )));
            };
            let saved = saved.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            let current = fingerprint(&slot.param)?.to_vec1::<u32>()?;
            if saved != current {
                return Err(Error::StateMismatch(format!(
                    "`{name}` does not hold the weights it held when this state was saved: an \
                     optimizer built from unnamed variables (`candle_nn::Optimizer::new`, \
                     `new_lr`) names parameters by position, and `VarMap::all_vars` lists them \
                     in HashMap order, which differs between processes. Build the optimizer \
                     with `GroupedOptimizer::from_varmap(&varmap, config)` (state keyed by the \
                     VarMap's names), and restore the weights before the optimizer state"
                )));
            }
            known.insert(key);
        }
        Ok(())
    }
}
