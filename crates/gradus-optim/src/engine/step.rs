//! Running one parameter's planned fused step in place, and moving state between the fused
//! buffers and the reference path's tensors.

use std::borrow::Cow;
use std::cell::RefCell;
use std::marker::PhantomData;

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};
use gradus_core::{Error, Result};
use smallvec::SmallVec;

use half::{bf16, f16};

use crate::engine::aligned::StateBuf;
use crate::engine::chunks;
use crate::engine::elem::Elem;
use crate::engine::kernel::{Chunk, Kernel, Sums, MAX_BUFFERS};
use crate::engine::precision::{LowFloat, MASTER_WEIGHT};
use crate::engine::rule::Buffers;
use crate::engine::slot::{Found, ParamFacts};
use crate::engine::widen::{self, LowPlan, Wide, WideChunk, WideStage};

/// The fused path's state of one parameter: its tensor buffers, by name. Held inline, so a
/// step reaches a buffer without another cold heap line.
#[derive(Debug, Clone, Default)]
pub(crate) struct FusedState {
    bufs: SmallVec<[(&'static str, StateBuf); MAX_BUFFERS]>,
}

impl FusedState {
    /// The buffers as tensors of shape `dims` (copies), for `state_dict`.
    pub(crate) fn export(&self, dims: &[usize]) -> Result<Vec<(&'static str, Tensor)>> {
        self.bufs
            .iter()
            .map(|(name, b)| Ok((*name, b.to_tensor(dims)?)))
            .collect()
    }

    /// Moves the buffers into `buffers` as tensors, for a reference step.
    pub(crate) fn move_into(&mut self, buffers: &mut Buffers, dims: &[usize]) -> Result<()> {
        for (name, t) in self.export(dims)? {
            buffers.set(name, t);
        }
        self.bufs.clear();
        Ok(())
    }

    /// Drops every buffer (state was loaded into the reference tensors).
    pub(crate) fn clear(&mut self) {
        self.bufs.clear();
    }
}

/// What a fused step needs of its rule, the same for every parameter of a group: the buffers'
/// names (in kernel order) and initial values.
pub(crate) struct BufferPlan {
    pub(crate) names: Vec<&'static str>,
    pub(crate) initial: Vec<f64>,
}

/// One parameter's fused step with kernel `K` and coefficients `step`: readied
/// ([`Job::prepare`]) and run in place.
pub(crate) struct Job<'a, K, S> {
    pub(crate) param: &'a Tensor,
    pub(crate) facts: &'a ParamFacts,
    pub(crate) found: Found<'a>,
    pub(crate) buffers: &'a BufferPlan,
    pub(crate) step: &'a S,
    /// Reference-path tensors to move in (left by an earlier reference step or a load).
    pub(crate) reference: &'a mut Buffers,
    pub(crate) fused: &'a mut FusedState,
    /// The dtype the state buffers are kept in (the parameter's, or f32 for bf16/f16).
    pub(crate) state_dtype: DType,
    /// For a bf16/f16 parameter: how the step rounds it, and whether it keeps a master copy.
    pub(crate) low: Option<LowJob>,
    pub(crate) kernel: PhantomData<fn() -> K>,
}

/// The low-precision part of a [`Job`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LowJob {
    pub(crate) plan: LowPlan,
    /// Keep (and step) an f32 master copy, buffer [`MASTER_WEIGHT`].
    pub(crate) master: bool,
}

impl<'a, K: Kernel<S>, S: Sync> Job<'a, K, S> {
    /// Readies the buffers and runs the kernel, large tensors in parallel chunks.
    pub(crate) fn run(self) -> Result<()> {
        self.run_stage(Stage::Whole).map(|_| ())
    }

    /// Readies the buffers and runs `stage` of the kernel: the tensor's sums after
    /// [`Stage::Reduce`], zeros otherwise.
    pub(crate) fn run_stage(self, stage: Stage) -> Result<Sums> {
        let len = self.facts.len;
        self.prepare()?.run(len, stage)
    }

    /// Readies the step: moves reference-path buffers into the fused state and creates missing
    /// ones, placed away from the parameter's page offset.
    fn prepare(self) -> Result<Ready<'a, K, S>> {
        let Job {
            param,
            facts,
            found,
            buffers,
            step,
            reference,
            fused,
            state_dtype,
            low,
            kernel,
        } = self;
        if buffers.names.len() > MAX_BUFFERS {
            return Err(Error::Unsupported(format!(
                "the fused path handles at most {MAX_BUFFERS} state buffers, the rule has {}",
                buffers.names.len()
            )));
        }
        let dtype = facts.dtype;
        // Candle's gradients are contiguous and of the parameter's dtype in practice: borrowed
        // then (a clone costs atomic reference-count updates per tensor, each a miss on a cold
        // line after the previous step streamed the caches); otherwise converted, or copied.
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
        let stored_dtype = |name: &str| {
            if name == MASTER_WEIGHT {
                DType::F32
            } else {
                state_dtype
            }
        };
        if !reference.is_empty() {
            for (name, t) in reference.take() {
                let slot = fused.bufs.len();
                let buf = StateBuf::from_tensor(&t, stored_dtype(name), avoid()?, slot)?;
                match fused.bufs.iter_mut().find(|(n, _)| *n == name) {
                    Some(entry) => entry.1 = buf,
                    None => fused.bufs.push((name, buf)),
                }
            }
        }
        let mut order = [None; MAX_BUFFERS];
        let mut fresh = false;
        for (j, (name, init)) in buffers.names.iter().zip(&buffers.initial).enumerate() {
            let k = match fused.bufs.iter().position(|(n, _)| n == name) {
                Some(k) => k,
                None => {
                    let slot = fused.bufs.len();
                    let buf = StateBuf::filled(state_dtype, facts.len, *init, avoid()?, slot);
                    fused.bufs.push((name, buf));
                    fresh |= j == 0;
                    slot
                }
            };
            order[j] = Some(k);
        }
        let master = match low {
            Some(LowJob { master: true, .. }) => Some(master_buffer(param, fused, avoid()?)?),
            _ => None,
        };
        Ok(Ready {
            param,
            grad,
            step,
            state: fused,
            order,
            master,
            low: low.map(|l| l.plan),
            fresh,
            kernel,
        })
    }
}

/// The index in `fused` of the parameter's f32 master copy, created from the parameter's
/// (widened) values on its first fused step.
fn master_buffer(param: &Tensor, fused: &mut FusedState, avoid: usize) -> Result<usize> {
    if let Some(k) = fused.bufs.iter().position(|(n, _)| *n == MASTER_WEIGHT) {
        return Ok(k);
    }
    let slot = fused.bufs.len();
    let buf = StateBuf::from_tensor(param, DType::F32, avoid, slot)?;
    fused.bufs.push((MASTER_WEIGHT, buf));
    Ok(slot)
}

/// The address of the first element of a CPU f32/f64/bf16/f16 tensor.
fn address(t: &Tensor) -> Result<usize> {
    let (storage, layout) = t.storage_and_layout();
    let offset = layout.start_offset();
    Ok(match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => v[offset..].as_ptr() as usize,
        Storage::Cpu(CpuStorage::F64(v)) => v[offset..].as_ptr() as usize,
        Storage::Cpu(CpuStorage::BF16(v)) => v[offset..].as_ptr() as usize,
        Storage::Cpu(CpuStorage::F16(v)) => v[offset..].as_ptr() as usize,
        _ => {
            return Err(Error::Unsupported(
                "fused step on a tensor that is not f32, f64, bf16 or f16 on the CPU".into(),
            ))
        }
    })
}

/// Which passes of a kernel a fused step runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    /// Both: the reduce pass when the kernel reduces, then the apply pass (one tensor's step).
    Whole,
    /// Only the reduce pass (the first pass of a group-reducing rule).
    Reduce,
    /// Only the apply pass, with the group's totals (the second pass of a group-reducing rule).
    Apply(Sums),
}

/// One parameter's fused step, ready to run.
struct Ready<'a, K, S> {
    param: &'a Tensor,
    grad: Cow<'a, Tensor>,
    step: &'a S,
    state: &'a mut FusedState,
    /// For each of the rule's buffers (in `buffer_names` order), its index in `state.bufs`.
    order: [Option<usize>; MAX_BUFFERS],
    /// The index in `state.bufs` of the f32 master copy, when one is kept.
    master: Option<usize>,
    /// How a bf16/f16 parameter's step rounds (`None` for f32/f64).
    low: Option<LowPlan>,
    fresh: bool,
    kernel: PhantomData<fn() -> K>,
}

impl<K: Kernel<S>, S: Sync> Ready<'_, K, S> {
    fn run(mut self, len: usize, stage: Stage) -> Result<Sums> {
        if len == 0 {
            return Ok([0.0; 4]);
        }
        let param = self.param;
        // The op borrows the job mutably; the gradient travels as the op's second operand.
        let grad = std::mem::replace(&mut self.grad, Cow::Borrowed(param));
        let op = StepOp {
            job: RefCell::new(&mut self),
            len,
            stage,
            sums: std::cell::Cell::new([0.0; 4]),
        };
        param.inplace_op2(&grad, &op)?;
        Ok(op.sums.get())
    }

    /// Runs the kernel over the `n` elements of the parameter's storage `s1` and the
    /// gradient's `s2`. Both were checked contiguous, of one dtype and of `n` elements when the
    /// step was planned (a tensor's layout never changes); the slicing is still bounds-checked.
    #[allow(clippy::too_many_arguments)]
    fn run_typed<T: Elem>(
        &mut self,
        n: usize,
        stage: Stage,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<Sums> {
        let (Some(p), Some(g)) = (T::storage_mut(s1), T::storage(s2)) else {
            candle_core::bail!("gradus fused step: parameter and gradient dtypes differ")
        };
        let (p0, g0) = (l1.start_offset(), l2.start_offset());
        let (Some(p), Some(g)) = (p.get_mut(p0..p0 + n), g.get(g0..g0 + n)) else {
            candle_core::bail!("gradus fused step: storage shorter than the parameter")
        };
        let mut state: [&mut [T]; MAX_BUFFERS] = Default::default();
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
        let chunk = Chunk {
            param: p,
            grad: g,
            state,
            fresh: self.fresh,
        };
        Ok(match stage {
            Stage::Whole => {
                chunks::run::<K, S, T>(self.step, chunk);
                [0.0; 4]
            }
            Stage::Reduce => chunks::reduce::<K, S, T>(self.step, chunk),
            Stage::Apply(sums) => {
                chunks::apply::<K, S, T>(self.step, chunk, &sums);
                [0.0; 4]
            }
        })
    }
}

impl<K: Kernel<S>, S: Sync> Ready<'_, K, S> {
    /// [`Ready::run_typed`] for a bf16/f16 parameter: the rule's f32 kernel over widened
    /// tiles (see `widen`), with f32 state (or state in the parameter's dtype) and the master
    /// copy when one is kept.
    #[allow(clippy::too_many_arguments)]
    fn run_wide<H: LowFloat>(
        &mut self,
        n: usize,
        stage: Stage,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<Sums> {
        let Some(plan) = self.low else {
            candle_core::bail!("gradus fused step: a bf16/f16 parameter without its rounding")
        };
        let (Some(p), Some(g)) = (H::storage_mut(s1), H::storage(s2)) else {
            candle_core::bail!("gradus fused step: parameter and gradient dtypes differ")
        };
        let (p0, g0) = (l1.start_offset(), l2.start_offset());
        let (Some(p), Some(g)) = (p.get_mut(p0..p0 + n), g.get(g0..g0 + n)) else {
            candle_core::bail!("gradus fused step: storage shorter than the parameter")
        };
        let mut state: [Wide<'_, H>; MAX_BUFFERS] = std::array::from_fn(|_| Wide::None);
        let mut master = None;
        for (k, (_, buf)) in self.state.bufs.iter_mut().enumerate() {
            if self.master == Some(k) {
                let StateBuf::F32(b) = buf else {
                    candle_core::bail!("gradus fused step: the master copy is not f32")
                };
                master = Some(b.as_mut_slice());
            } else if let Some(j) = self.order.iter().position(|o| *o == Some(k)) {
                state[j] = match buf {
                    StateBuf::F32(b) => Wide::F32(b.as_mut_slice()),
                    other => match H::buf_mut(other) {
                        Some(b) => Wide::Narrow(b.as_mut_slice()),
                        None => candle_core::bail!(
                            "gradus fused step: state is neither f32 nor the parameter's dtype"
                        ),
                    },
                };
            }
        }
        let chunk = WideChunk {
            param: p,
            grad: g,
            state,
            master,
            fresh: self.fresh,
            offset: 0,
        };
        let stage = match stage {
            Stage::Whole => WideStage::Whole,
            Stage::Reduce => WideStage::Reduce,
            Stage::Apply(sums) => WideStage::Apply(sums),
        };
        Ok(widen::run::<K, S, H>(self.step, chunk, &plan, stage))
    }
}

/// The in-place op handing the kernel `&mut` access to the parameter's storage.
struct StepOp<'j, 'a, K, S> {
    job: RefCell<&'j mut Ready<'a, K, S>>,
    len: usize,
    stage: Stage,
    /// The reduce pass's sums, out of the op.
    sums: std::cell::Cell<Sums>,
}

impl<K: Kernel<S>, S: Sync> candle_core::InplaceOp2 for StepOp<'_, '_, K, S> {
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
        let sums = match s1 {
            CpuStorage::F32(_) => job.run_typed::<f32>(self.len, self.stage, s1, l1, s2, l2)?,
            CpuStorage::F64(_) => job.run_typed::<f64>(self.len, self.stage, s1, l1, s2, l2)?,
            CpuStorage::BF16(_) => job.run_wide::<bf16>(self.len, self.stage, s1, l1, s2, l2)?,
            CpuStorage::F16(_) => job.run_wide::<f16>(self.len, self.stage, s1, l1, s2, l2)?,
            _ => candle_core::bail!("gradus fused step: only f32, f64, bf16 and f16 parameters"),
        };
        self.sums.set(sums);
        Ok(())
    }
}

/// Below this many elements in one step, the whole step runs on the calling thread: waking
/// rayon's workers costs more than the work, and on a loaded machine a descheduled worker
/// stalls the step (measured: a 10k-parameter MLP's optimizer share fell from 50-70% to ~10%).
pub(crate) const SERIAL_BELOW: usize = 1 << 16;

/// Runs kernel `K` in place over `param` and `state` (one [`StateBuf`] per kernel buffer, in
/// kernel order, each of the parameter's length and dtype) with no gradient: the chunk's `grad`
/// is empty. For updates outside an optimizer step, such as Lookahead's sync of the fast and slow
/// weights; `param` must be eligible for the fused path (contiguous f32/f64 on the CPU).
pub(crate) fn run_on_state<K: Kernel<S>, S: Sync>(
    param: &Tensor,
    step: &S,
    state: &mut [StateBuf],
) -> Result<()> {
    if state.len() > MAX_BUFFERS {
        return Err(Error::Unsupported(format!(
            "a fused kernel takes at most {MAX_BUFFERS} state buffers, got {}",
            state.len()
        )));
    }
    let op = StateOp::<K, S> {
        step,
        state: RefCell::new(state),
        len: param.elem_count(),
        kernel: PhantomData,
    };
    param.inplace_op1(&op)?;
    Ok(())
}

/// The in-place op of [`run_on_state`].
struct StateOp<'a, K, S> {
    step: &'a S,
    state: RefCell<&'a mut [StateBuf]>,
    len: usize,
    kernel: PhantomData<fn() -> K>,
}

impl<K: Kernel<S>, S: Sync> StateOp<'_, K, S> {
    fn run_typed<T: Elem>(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let n = self.len;
        let Some(p) = T::storage_mut(s) else {
            candle_core::bail!("gradus fused kernel: the parameter's dtype is not f32 or f64")
        };
        let p0 = l.start_offset();
        let Some(p) = p.get_mut(p0..p0 + n) else {
            candle_core::bail!("gradus fused kernel: storage shorter than the parameter")
        };
        let mut bufs = self.state.borrow_mut();
        let mut state: [&mut [T]; MAX_BUFFERS] = Default::default();
        for (k, buf) in bufs.iter_mut().enumerate() {
            let Some(b) = T::buf_mut(buf) else {
                candle_core::bail!("gradus fused kernel: state dtype differs from the parameter's")
            };
            let b = b.as_mut_slice();
            if b.len() != n {
                candle_core::bail!("gradus fused kernel: state length differs from the parameter's")
            }
            state[k] = b;
        }
        let chunk = Chunk {
            param: p,
            grad: &[],
            state,
            fresh: false,
        };
        chunks::apply::<K, S, T>(self.step, chunk, &[0.0; 4]);
        Ok(())
    }
}

impl<K: Kernel<S>, S: Sync> candle_core::InplaceOp1 for StateOp<'_, K, S> {
    fn name(&self) -> &'static str {
        "gradus-fused-state"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        match s {
            CpuStorage::F32(_) => self.run_typed::<f32>(s, l),
            CpuStorage::F64(_) => self.run_typed::<f64>(s, l),
            _ => candle_core::bail!("gradus fused kernel: only f32 and f64 parameters"),
        }
    }
}
