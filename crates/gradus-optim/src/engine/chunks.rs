//! Chunking, the rayon split and run-time SIMD dispatch, shared by every fused kernel.

use std::marker::PhantomData;

use crate::engine::elem::Elem;
use crate::engine::kernel::{Chunk, Kernel, Sums};

/// Elements per leaf chunk: 32 Ki (128 KiB of f32 per stream), small enough for rayon to
/// balance 2-16 threads on a 1e6-element tensor, large enough to amortize a task.
pub(crate) const CHUNK: usize = 1 << 15;

/// Runs kernel `K` with coefficients `step` over a whole tensor: when `K` reduces, first its
/// reduce pass over every chunk (partial sums added in a fixed tree order, so the result does
/// not depend on thread timing), then its elementwise pass with the totals.
pub(crate) fn run<K: Kernel<S>, S: Sync, T: Elem>(step: &S, mut chunk: Chunk<'_, T>) {
    let sums = if K::REDUCES {
        split::<K, S, T, Reduce>(step, chunk.reborrow(), &[0.0; 4])
    } else {
        [0.0; 4]
    };
    split::<K, S, T, Apply>(step, chunk, &sums);
}

/// Only the reduce pass of kernel `K` over a whole tensor: the tensor's sums (partial sums
/// added in the same fixed tree order as [`run`]). For a rule whose step reduces over its whole
/// group ([`Rule::GROUP_REDUCES`](crate::Rule::GROUP_REDUCES)), which adds the tensors' sums
/// before any tensor's apply pass.
pub(crate) fn reduce<K: Kernel<S>, S: Sync, T: Elem>(step: &S, chunk: Chunk<'_, T>) -> Sums {
    split::<K, S, T, Reduce>(step, chunk, &[0.0; 4])
}

/// Only the elementwise pass of kernel `K` over a whole tensor, with `sums` (a group's totals
/// after [`reduce`], or zeros for a kernel that reads none).
pub(crate) fn apply<K: Kernel<S>, S: Sync, T: Elem>(step: &S, chunk: Chunk<'_, T>, sums: &Sums) {
    split::<K, S, T, Apply>(step, chunk, sums);
}

/// One of the two passes of a kernel.
trait Pass: Send + Sync + 'static {
    fn leaf<K: Kernel<S>, S, T: Elem>(step: &S, chunk: Chunk<'_, T>, sums: &Sums) -> Sums;
}

struct Reduce;
struct Apply;

impl Pass for Reduce {
    #[inline(always)]
    fn leaf<K: Kernel<S>, S, T: Elem>(step: &S, chunk: Chunk<'_, T>, _sums: &Sums) -> Sums {
        let mut partial = [0.0; 4];
        K::reduce(step, chunk, &mut partial);
        partial
    }
}

impl Pass for Apply {
    #[inline(always)]
    fn leaf<K: Kernel<S>, S, T: Elem>(step: &S, chunk: Chunk<'_, T>, sums: &Sums) -> Sums {
        K::apply(step, chunk, sums);
        [0.0; 4]
    }
}

/// Splits all streams at the same index until chunks are at most [`CHUNK`] long, running the
/// halves with `rayon::join`; each leaf runs under the best instruction set of this CPU. Returns
/// the sum of the leaves' results, left before right.
fn split<K: Kernel<S>, S: Sync, T: Elem, P: Pass>(
    step: &S,
    chunk: Chunk<'_, T>,
    sums: &Sums,
) -> Sums {
    let n = chunk.len();
    if n <= CHUNK {
        return leaf::<K, S, T, P>(step, chunk, sums);
    }
    // Cut on a 64-element boundary so every chunk but the last starts cache-line aligned
    // relative to its stream.
    let (left, right) = chunk.split_at((n / 2) & !63);
    let (a, b) = rayon::join(
        || split::<K, S, T, P>(step, left, sums),
        || split::<K, S, T, P>(step, right, sums),
    );
    std::array::from_fn(|i| a[i] + b[i])
}

#[inline(never)]
fn leaf<K: Kernel<S>, S, T: Elem, P: Pass>(step: &S, chunk: Chunk<'_, T>, sums: &Sums) -> Sums {
    pulp::Arch::new().dispatch(Leaf::<K, S, T, P> {
        step,
        chunk,
        sums,
        kernel: PhantomData,
    })
}

/// One chunk's pass as a [`pulp::WithSimd`] operation. pulp compiles `with_simd` once per
/// instruction set (AVX-512, AVX2+FMA, baseline) inside a `#[target_feature]` function and
/// picks one from the CPU at run time; the loops inside are plain element loops that LLVM
/// vectorizes for that set. A trait method marked `#[inline(always)]` is what makes this
/// work: a closure's compiler-made `FnOnce::call_once` shim carries no inline attribute, and
/// LLVM left the (large) shim out of line, where the loops compiled to baseline SSE2 (measured:
/// every kernel's loop in `xmm` registers only).
struct Leaf<'s, 'c, K, S, T, P> {
    step: &'s S,
    chunk: Chunk<'c, T>,
    sums: &'s Sums,
    kernel: PhantomData<fn() -> (K, P)>,
}

impl<K: Kernel<S>, S, T: Elem, P: Pass> pulp::WithSimd for Leaf<'_, '_, K, S, T, P> {
    type Output = Sums;

    #[inline(always)]
    fn with_simd<Simd: pulp::Simd>(self, _simd: Simd) -> Sums {
        P::leaf::<K, S, T>(self.step, self.chunk, self.sums)
    }
}
