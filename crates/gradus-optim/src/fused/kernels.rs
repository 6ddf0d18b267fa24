//! Chunking and run-time SIMD dispatch shared by every fused kernel.

use crate::fused::{Elem, FusedUpdate};

/// Elements per leaf chunk: 32 Ki (128 KiB of f32 per stream), small enough for rayon to
/// balance 2-16 threads on a 1e6-element tensor, large enough to amortize a task.
const CHUNK: usize = 1 << 15;

fn halve<T>(s: &mut [T], mid: usize) -> (&mut [T], &mut [T]) {
    if s.is_empty() {
        (Default::default(), Default::default())
    } else {
        s.split_at_mut(mid)
    }
}

/// Splits all streams at the same index until chunks are at most [`CHUNK`] long, running the
/// halves with `rayon::join`; each leaf runs under the best instruction set of this CPU.
pub(crate) fn split<T: Elem>(
    update: &FusedUpdate,
    p: &mut [T],
    g: &[T],
    state: [&mut [T]; 3],
    fresh: bool,
) {
    let n = p.len();
    if n <= CHUNK {
        let mut state = state;
        leaf(update, p, g, &mut state, fresh);
        return;
    }
    // Cut on a 64-element boundary so every chunk but the last starts cache-line aligned
    // relative to its stream.
    let mid = (n / 2) & !63;
    let [a, b, c] = state;
    let (pl, pr) = p.split_at_mut(mid);
    let (gl, gr) = g.split_at(mid);
    let (al, ar) = halve(a, mid);
    let (bl, br) = halve(b, mid);
    let (cl, cr) = halve(c, mid);
    rayon::join(
        || split(update, pl, gl, [al, bl, cl], fresh),
        || split(update, pr, gr, [ar, br, cr], fresh),
    );
}

#[inline(never)]
fn leaf<T: Elem>(
    update: &FusedUpdate,
    p: &mut [T],
    g: &[T],
    state: &mut [&mut [T]; 3],
    fresh: bool,
) {
    pulp::Arch::new().dispatch(Leaf {
        update,
        p,
        g,
        state,
        fresh,
    });
}

/// One chunk's update as a [`pulp::WithSimd`] operation. pulp compiles `with_simd` once per
/// instruction set (AVX-512, AVX2+FMA, baseline) inside a `#[target_feature]` function and
/// picks one from the CPU at run time; the loops inside are plain element loops that LLVM
/// vectorizes for that set. A trait method marked `#[inline(always)]` is what makes this
/// work: a closure's compiler-made `FnOnce::call_once` shim carries no inline attribute, and
/// LLVM left the (large) shim out of line, where the loops compiled to baseline SSE2 (measured:
/// every kernel's loop in `xmm` registers only).
struct Leaf<'u, 's, 'b, T> {
    update: &'u FusedUpdate,
    p: &'s mut [T],
    g: &'s [T],
    state: &'s mut [&'b mut [T]; 3],
    fresh: bool,
}

impl<T: Elem> pulp::WithSimd for Leaf<'_, '_, '_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.update.apply(self.p, self.g, self.state, self.fresh);
    }
}
