//! The floor under any optimizer that updates Candle parameters in place: a bare SGD loop
//! (`θ ← θ − lr·g`, f32) run through `Tensor::inplace_op2` for each parameter, parameters in
//! parallel, large ones split in chunks over rayon like the fused kernels. It pays what Candle's
//! in-place API costs per tensor (two storage locks, the layout checks) and what the memory
//! system costs for the tensors' placement, and nothing else: Gradus's fused SGD step against
//! it is the cost of Gradus's own bookkeeping (gradient lookup and checks, step counts, plans).

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Var};
use rayon::prelude::*;

const CHUNK: usize = 1 << 15;
const LR: f32 = 1e-3;

/// The loop over one chunk, under run-time SIMD dispatch (a `WithSimd` struct, as the fused
/// kernels, so that it compiles for AVX-512 / AVX2).
struct Chunk<'a> {
    p: &'a mut [f32],
    g: &'a [f32],
}

impl pulp::WithSimd for Chunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (p, &g) in self.p.iter_mut().zip(self.g) {
            *p -= g * LR;
        }
    }
}

fn split(p: &mut [f32], g: &[f32]) {
    if p.len() <= CHUNK {
        pulp::Arch::new().dispatch(Chunk { p, g });
        return;
    }
    let mid = (p.len() / 2) & !63;
    let (pl, pr) = p.split_at_mut(mid);
    let (gl, gr) = g.split_at(mid);
    rayon::join(|| split(pl, gl), || split(pr, gr));
}

struct Sgd;

impl InplaceOp2 for Sgd {
    fn name(&self) -> &'static str {
        "bench-inplace-sgd"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("the in-place floor runs on f32 only")
        };
        let n = l1.shape().elem_count();
        let (p0, g0) = (l1.start_offset(), l2.start_offset());
        let (Some(p), Some(g)) = (p.get_mut(p0..p0 + n), g.get(g0..g0 + n)) else {
            candle_core::bail!("the in-place floor needs a gradient of the parameter's size")
        };
        split(p, g);
        Ok(())
    }
}

/// One step over `vars` (f32, contiguous, each with a gradient in `grads` of its shape).
pub fn step(vars: &[Var], grads: &GradStore) -> candle_core::Result<()> {
    vars.par_iter().try_for_each(|v| {
        let t = v.as_tensor();
        match grads.get(t) {
            Some(g) => t.inplace_op2(g, &Sgd),
            None => Ok(()),
        }
    })
}
