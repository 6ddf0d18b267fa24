//! The fused step of a bf16/f16 parameter: the rule's f32 kernel run tile by tile over widened
//! copies, so every kernel (built-in or plugin) gets a low-precision fused path unchanged.
//!
//! Per tile of [`TILE`] elements, in L1: the gradient is widened to f32, the parameter too (or
//! the f32 master copy is used in place), state kept in the parameter's dtype is widened; the
//! kernel runs on the f32 tile exactly as on an f32 tensor; then the parameter is rounded back
//! ([`Rounder`]) and narrow state rounded to nearest. The memory traffic is the narrow streams'
//! plus the f32 state's, once, as in a hand-fused bf16 kernel. The reference path does the same
//! with whole tensors (`to_dtype`), so the two paths agree to the bit.

use std::marker::PhantomData;

use crate::engine::chunks::CHUNK;
use crate::engine::kernel::{Chunk, Kernel, Sums, MAX_BUFFERS};
use crate::engine::precision::{LowFloat, Rounder};

/// Elements per tile: 6 f32 streams of 2 KiB stay in L1 next to the kernel's own.
const TILE: usize = 512;

/// One state buffer of a low-precision step: f32 (the default) or the parameter's dtype.
pub(crate) enum Wide<'a, H> {
    /// The rule has no buffer in this position.
    None,
    /// f32 state, updated in place.
    F32(&'a mut [f32]),
    /// State in the parameter's dtype: widened per tile, rounded to nearest after.
    Narrow(&'a mut [H]),
}

impl<'a, H> Wide<'a, H> {
    fn split_at(self, mid: usize) -> (Wide<'a, H>, Wide<'a, H>) {
        match self {
            Wide::None => (Wide::None, Wide::None),
            Wide::F32(s) => {
                let (l, r) = s.split_at_mut(mid);
                (Wide::F32(l), Wide::F32(r))
            }
            Wide::Narrow(s) => {
                let (l, r) = s.split_at_mut(mid);
                (Wide::Narrow(l), Wide::Narrow(r))
            }
        }
    }

    fn reborrow(&mut self) -> Wide<'_, H> {
        match self {
            Wide::None => Wide::None,
            Wide::F32(s) => Wide::F32(s),
            Wide::Narrow(s) => Wide::Narrow(s),
        }
    }
}

/// What a low-precision step writes and checks, the same for every chunk of the parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LowPlan {
    /// How this step rounds the parameter.
    pub(crate) rounder: Rounder,
    /// How the previous step rounded it (to find outside writes against the master copy).
    pub(crate) previous: Rounder,
}

/// A contiguous run of one low-precision parameter's step.
pub(crate) struct WideChunk<'a, H> {
    pub(crate) param: &'a mut [H],
    pub(crate) grad: &'a [H],
    pub(crate) state: [Wide<'a, H>; MAX_BUFFERS],
    /// The f32 master copy, when the optimizer keeps one.
    pub(crate) master: Option<&'a mut [f32]>,
    pub(crate) fresh: bool,
    /// Index of `param[0]` in the whole parameter (the stochastic draws' position).
    pub(crate) offset: usize,
}

impl<'a, H> WideChunk<'a, H> {
    fn len(&self) -> usize {
        self.param.len()
    }

    fn split_at(self, mid: usize) -> (WideChunk<'a, H>, WideChunk<'a, H>) {
        let (pl, pr) = self.param.split_at_mut(mid);
        let (gl, gr) = self.grad.split_at(mid);
        let mut left: [Wide<'a, H>; MAX_BUFFERS] = std::array::from_fn(|_| Wide::None);
        let mut right: [Wide<'a, H>; MAX_BUFFERS] = std::array::from_fn(|_| Wide::None);
        for (k, w) in self.state.into_iter().enumerate() {
            (left[k], right[k]) = w.split_at(mid);
        }
        let (ml, mr) = match self.master {
            Some(m) => {
                let (l, r) = m.split_at_mut(mid);
                (Some(l), Some(r))
            }
            None => (None, None),
        };
        let (fresh, offset) = (self.fresh, self.offset);
        (
            WideChunk {
                param: pl,
                grad: gl,
                state: left,
                master: ml,
                fresh,
                offset,
            },
            WideChunk {
                param: pr,
                grad: gr,
                state: right,
                master: mr,
                fresh,
                offset: offset + mid,
            },
        )
    }

    fn reborrow(&mut self) -> WideChunk<'_, H> {
        let [a, b, c, d] = &mut self.state;
        WideChunk {
            param: &mut *self.param,
            grad: self.grad,
            state: [a.reborrow(), b.reborrow(), c.reborrow(), d.reborrow()],
            master: self.master.as_deref_mut(),
            fresh: self.fresh,
            offset: self.offset,
        }
    }
}

/// Which passes a low-precision step runs, as [`crate::engine::step::Stage`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum WideStage {
    /// The reduce pass (when the kernel reduces), then the apply pass.
    Whole,
    /// Only the reduce pass.
    Reduce,
    /// Only the apply pass, with the group's totals.
    Apply(Sums),
}

/// Runs `stage` of kernel `K` over a whole low-precision parameter; the reduce pass's sums
/// (zeros otherwise). The master copy is checked against outside writes in the step's first
/// pass.
pub(crate) fn run<K: Kernel<S>, S: Sync, H: LowFloat>(
    step: &S,
    mut chunk: WideChunk<'_, H>,
    plan: &LowPlan,
    stage: WideStage,
) -> Sums {
    match stage {
        WideStage::Whole if K::REDUCES => {
            let sums = split::<K, S, H>(step, chunk.reborrow(), plan, Pass::Reduce, true, &ZERO);
            split::<K, S, H>(step, chunk, plan, Pass::Apply, false, &sums);
            ZERO
        }
        WideStage::Whole => split::<K, S, H>(step, chunk, plan, Pass::Apply, true, &ZERO),
        WideStage::Reduce => split::<K, S, H>(step, chunk, plan, Pass::Reduce, true, &ZERO),
        WideStage::Apply(sums) => split::<K, S, H>(step, chunk, plan, Pass::Apply, false, &sums),
    }
}

const ZERO: Sums = [0.0; 4];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Reduce,
    Apply,
}

/// Splits like the f32 path's `chunks::split` (same leaf size, left before right), so a step's sums are
/// added in a fixed order.
fn split<K: Kernel<S>, S: Sync, H: LowFloat>(
    step: &S,
    chunk: WideChunk<'_, H>,
    plan: &LowPlan,
    pass: Pass,
    sync_master: bool,
    sums: &Sums,
) -> Sums {
    let n = chunk.len();
    if n <= CHUNK {
        return pulp::Arch::new().dispatch(Leaf::<K, S, H> {
            step,
            chunk,
            plan,
            pass,
            sync_master,
            sums,
            kernel: PhantomData,
        });
    }
    let (left, right) = chunk.split_at((n / 2) & !63);
    let (a, b) = rayon::join(
        || split::<K, S, H>(step, left, plan, pass, sync_master, sums),
        || split::<K, S, H>(step, right, plan, pass, sync_master, sums),
    );
    std::array::from_fn(|i| a[i] + b[i])
}

/// One leaf's tiles under the best instruction set (see `chunks::Leaf`).
struct Leaf<'s, 'c, K, S, H> {
    step: &'s S,
    chunk: WideChunk<'c, H>,
    plan: &'s LowPlan,
    pass: Pass,
    sync_master: bool,
    sums: &'s Sums,
    kernel: PhantomData<fn() -> K>,
}

impl<K: Kernel<S>, S, H: LowFloat> pulp::WithSimd for Leaf<'_, '_, K, S, H> {
    type Output = Sums;

    #[inline(always)]
    fn with_simd<Simd: pulp::Simd>(self, _simd: Simd) -> Sums {
        let mut chunk = self.chunk;
        let mut total = ZERO;
        let mut start = 0;
        while start < chunk.len() {
            let end = (start + TILE).min(chunk.len());
            let partial = tile::<K, S, H>(
                self.step,
                &mut chunk,
                start..end,
                self.plan,
                self.pass,
                self.sync_master,
                self.sums,
            );
            for (t, p) in total.iter_mut().zip(partial) {
                *t += p;
            }
            start = end;
        }
        total
    }
}

/// One tile `range` of a chunk: widen, run the f32 kernel, round back.
#[inline(always)]
fn tile<K: Kernel<S>, S, H: LowFloat>(
    step: &S,
    chunk: &mut WideChunk<'_, H>,
    range: std::ops::Range<usize>,
    plan: &LowPlan,
    pass: Pass,
    sync_master: bool,
    sums: &Sums,
) -> Sums {
    let m = range.len();
    let offset = chunk.offset + range.start;
    let mut grad32 = [0f32; TILE];
    H::widen_slice(&chunk.grad[range.clone()], &mut grad32[..m]);
    let mut param32 = [0f32; TILE];
    let param = &mut chunk.param[range.clone()];
    let weights: &mut [f32] = match chunk.master.as_deref_mut() {
        Some(master) => {
            let master = &mut master[range.clone()];
            if sync_master {
                take_outside_writes(&plan.previous, master, param, offset);
            }
            master
        }
        None => {
            H::widen_slice(param, &mut param32[..m]);
            &mut param32[..m]
        }
    };
    let mut narrow32 = [[0f32; TILE]; MAX_BUFFERS];
    let mut views: [&mut [f32]; MAX_BUFFERS] = Default::default();
    for ((view, wide), scratch) in views
        .iter_mut()
        .zip(chunk.state.iter_mut())
        .zip(narrow32.iter_mut())
    {
        *view = match wide {
            Wide::None => &mut [],
            Wide::F32(s) => &mut s[range.clone()],
            Wide::Narrow(s) => {
                H::widen_slice(&s[range.clone()], &mut scratch[..m]);
                &mut scratch[..m]
            }
        };
    }
    let f32_chunk = Chunk {
        param: &mut *weights,
        grad: &grad32[..m],
        state: views,
        fresh: chunk.fresh,
    };
    let mut partial = ZERO;
    match pass {
        Pass::Reduce => K::reduce(step, f32_chunk, &mut partial),
        Pass::Apply => {
            K::apply(step, f32_chunk, sums);
            plan.rounder.round(weights, param, offset);
        }
    }
    for (wide, scratch) in chunk.state.iter_mut().zip(&narrow32) {
        if let Wide::Narrow(s) = wide {
            H::nearest_slice(&scratch[..m], &mut s[range.clone()]);
        }
    }
    partial
}

/// Where `param` no longer holds what the previous step wrote from `master` (its rounding by
/// `previous`), the parameter was written from outside: its value becomes the master value.
#[inline(always)]
fn take_outside_writes<H: LowFloat>(
    previous: &Rounder,
    master: &mut [f32],
    param: &[H],
    offset: usize,
) {
    let mut same = [true; TILE];
    let same = &mut same[..param.len()];
    previous.matches(master, param, offset, same);
    for ((m, p), ok) in master.iter_mut().zip(param).zip(same.iter()) {
        if !ok {
            *m = p.widen();
        }
    }
}
