//! Running planned fused updates on parameters in place, and moving state between the fused
//! buffers and the reference path's tensors.

use std::borrow::Cow;
use std::cell::RefCell;

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};
use gradus_core::{Error, Result};

use smallvec::SmallVec;

use crate::fused::aligned::{AlignedBuf, StateBuf};
use crate::fused::{Elem, FusedUpdate};
use crate::rule::ParamState;
use crate::slot::{Found, ParamFacts};

/// The fused path's state of one parameter: its tensor buffers, by name. Held inline (at most
/// three), so a step reaches a buffer without another cold heap line.
#[derive(Debug, Clone, Default)]
pub(crate) struct FusedState {
    bufs: SmallVec<[(&'static str, StateBuf); 3]>,
}

impl FusedState {
    /// The buffers as tensors of shape `dims` (copies), for `state_dict`.
    pub(crate) fn export(&self, dims: &[usize]) -> Result<Vec<(&'static str, Tensor)>> {
        self.bufs
            .iter()
            .map(|(name, b)| Ok((*name, b.to_tensor(dims)?)))
            .collect()
    }

    /// Moves the buffers into `state` as tensors, for a reference step.
    pub(crate) fn move_into(&mut self, state: &mut ParamState, dims: &[usize]) -> Result<()> {
        for (name, t) in self.export(dims)? {
            state.buffers.insert(name, t);
        }
        self.bufs.clear();
        Ok(())
    }

    /// Drops every buffer (state was loaded into the reference tensors).
    pub(crate) fn clear(&mut self) {
        self.bufs.clear();
    }
}

/// One parameter's fused step, planned: readied ([`prepare`]) and run ([`Job::run`]).
pub(crate) struct Job<'a> {
    param: &'a Tensor,
    facts: &'a ParamFacts,
    found: Found<'a>,
    names: &'a [&'static str],
    update: FusedUpdate,
    ps: &'a mut ParamState,
    fs: &'a mut FusedState,
}

impl<'a> Job<'a> {
    /// The step `update` of `param` (described by `facts`: contiguous, f32/f64, CPU) with the
    /// gradient `found` (on the CPU, of `param`'s shape), the rule's buffers named `names`,
    /// state `ps` (reference tensors) and `fs` (fused buffers).
    pub(crate) fn new(
        param: &'a Tensor,
        facts: &'a ParamFacts,
        found: Found<'a>,
        names: &'a [&'static str],
        update: FusedUpdate,
        ps: &'a mut ParamState,
        fs: &'a mut FusedState,
    ) -> Self {
        Job {
            param,
            facts,
            found,
            names,
            update,
            ps,
            fs,
        }
    }

    /// Readies the buffers and runs the kernel, large tensors in parallel chunks.
    pub(crate) fn run(self) -> Result<()> {
        let len = self.facts.len;
        prepare(self)?.run(len)
    }
}

/// One parameter's fused step, ready to run.
struct Ready<'a> {
    param: &'a Tensor,
    grad: Cow<'a, Tensor>,
    update: FusedUpdate,
    state: &'a mut FusedState,
    /// For each of the rule's buffers (in `buffer_names` order), its index in `state.bufs`.
    order: [Option<usize>; 3],
    fresh: bool,
}

/// The address of the first element of a CPU f32/f64 tensor.
fn address(t: &Tensor) -> Result<usize> {
    let (storage, layout) = t.storage_and_layout();
    let offset = layout.start_offset();
    Ok(match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => v[offset..].as_ptr() as usize,
        Storage::Cpu(CpuStorage::F64(v)) => v[offset..].as_ptr() as usize,
        _ => {
            return Err(Error::Unsupported(
                "fused step on a non-f32/f64 CPU tensor".into(),
            ))
        }
    })
}

/// Readies the fused step of `job`: moves reference-path buffers into the fused state and
/// creates missing ones, placed away from the parameter's page offset.
fn prepare(job: Job<'_>) -> Result<Ready<'_>> {
    let (param, facts, names, update, ps, fs) =
        (job.param, job.facts, job.names, job.update, job.ps, job.fs);
    let found = job.found;
    if names.len() > 3 {
        return Err(Error::Unsupported(format!(
            "the fused path handles at most 3 state buffers, the rule has {}",
            names.len()
        )));
    }
    let dtype = facts.dtype;
    // Candle's gradients are contiguous and of the parameter's dtype in practice: borrowed then
    // (a clone costs atomic reference-count updates per tensor, each a miss on a cold line
    // after the previous step streamed the caches); otherwise converted, or copied.
    let grad = if found.direct {
        Cow::Borrowed(found.grad)
    } else {
        Cow::Owned(found.grad.to_dtype(dtype)?.contiguous()?)
    };
    // The parameter's address (a storage lock) only matters when a buffer is created.
    let mut avoid = None;
    let mut avoid = || -> Result<usize> {
        match avoid {
            Some(a) => Ok(a),
            None => {
                let a = address(param)?;
                avoid = Some(a);
                Ok(a)
            }
        }
    };
    let len = facts.len;
    if !ps.buffers.is_empty() {
        for (name, t) in std::mem::take(&mut ps.buffers) {
            let slot = fs.bufs.len();
            let buf = StateBuf::from_tensor(&t, dtype, avoid()?, slot)?;
            match fs.bufs.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = buf,
                None => fs.bufs.push((name, buf)),
            }
        }
    }
    let mut order = [None; 3];
    let mut fresh = false;
    for (j, name) in names.iter().enumerate() {
        let k = match fs.bufs.iter().position(|(n, _)| n == name) {
            Some(k) => k,
            None => {
                let slot = fs.bufs.len();
                let init = update.initial_value();
                let avoid = avoid()?;
                let buf = match dtype {
                    DType::F32 => f32::wrap(AlignedBuf::new(len, f32::of(init), avoid, slot)),
                    _ => f64::wrap(AlignedBuf::new(len, f64::of(init), avoid, slot)),
                };
                fs.bufs.push((name, buf));
                fresh |= j == 0;
                slot
            }
        };
        order[j] = Some(k);
    }
    Ok(Ready {
        param,
        grad,
        update,
        state: fs,
        order,
        fresh,
    })
}

/// Below this many elements in one step, the whole step runs on the calling thread: waking
/// rayon's workers costs more than the work, and on a loaded machine a descheduled worker
/// stalls the step (measured: a 10k-parameter MLP's optimizer share fell from 50-70% to ~10%).
pub(crate) const SERIAL_BELOW: usize = 1 << 16;

impl Ready<'_> {
    fn run(mut self, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let param = self.param;
        // The op borrows the job mutably; the gradient travels as the op's second operand.
        let grad = std::mem::replace(&mut self.grad, Cow::Borrowed(param));
        let op = StepOp {
            job: RefCell::new(&mut self),
            len,
        };
        param.inplace_op2(&grad, &op)?;
        Ok(())
    }

    /// Runs the kernel over the `n` elements of the parameter's storage `s1` and the
    /// gradient's `s2`. Both were checked contiguous, of one dtype and of `n` elements when the
    /// step was planned (a tensor's layout never changes); the slicing is still bounds-checked.
    fn run_typed<T: Elem>(
        &mut self,
        n: usize,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (Some(p), Some(g)) = (T::storage_mut(s1), T::storage(s2)) else {
            candle_core::bail!("gradus fused step: parameter and gradient dtypes differ")
        };
        let (p0, g0) = (l1.start_offset(), l2.start_offset());
        let (Some(p), Some(g)) = (p.get_mut(p0..p0 + n), g.get(g0..g0 + n)) else {
            candle_core::bail!("gradus fused step: storage shorter than the parameter")
        };
        let mut state: [&mut [T]; 3] = Default::default();
        for (k, (_, buf)) in self.state.bufs.iter_mut().enumerate() {
            if let Some(j) = self.order.iter().position(|o| *o == Some(k)) {
                let Some(b) = T::buf_mut(buf) else {
                    candle_core::bail!(
                        "gradus fused step: state dtype differs from the parameter's"
                    )
                };
                state[j] = b.as_mut_slice();
            }
        }
        crate::fused::run(&self.update, p, g, state, self.fresh);
        Ok(())
    }
}

/// The in-place op handing the kernel `&mut` access to the parameter's storage.
struct StepOp<'j, 'a> {
    job: RefCell<&'j mut Ready<'a>>,
    len: usize,
}

impl candle_core::InplaceOp2 for StepOp<'_, '_> {
    fn name(&self) -> &'static str {
        "gradus-fused-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let mut job = self.job.borrow_mut();
        match s1 {
            CpuStorage::F32(_) => job.run_typed::<f32>(self.len, s1, l1, s2, l2),
            CpuStorage::F64(_) => job.run_typed::<f64>(self.len, s1, l1, s2, l2),
            _ => candle_core::bail!("gradus fused step: only f32 and f64 parameters"),
        }
    }
}
