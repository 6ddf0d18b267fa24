//! The open kernel interface: how a rule, in any crate, gives the engine a fused CPU update.
//!
//! A fused kernel is the elementwise form of a rule's update. The engine hands it the tensors of
//! one parameter in chunks ([`Chunk`]: parameter, gradient, the rule's state buffers), under
//! run-time SIMD dispatch, on rayon's pool; the kernel only writes the loop. A kernel that needs
//! per-tensor sums before its elementwise pass (a trust ratio ‖θ‖/‖u‖ for LAMB or LARS, a norm)
//! sets [`Kernel::REDUCES`] and implements [`Kernel::reduce`]: the engine runs `reduce` over every
//! chunk, adds the partial [`Sums`] in a fixed order (so results are deterministic), then runs
//! `apply` over every chunk with the tensor's totals.
//!
//! The rule's per-step coefficients (its [`Rule::Step`](crate::Rule::Step), computed once per
//! step by [`Rule::plan`](crate::Rule::plan)) are what both paths read, so the kernel never
//! recomputes what the reference path computes.

use crate::engine::elem::Elem;

/// Most state buffers a fused kernel can keep per parameter (Adan: `exp_avg`, `exp_avg_sq`,
/// `exp_avg_diff`, `previous_grad`).
pub const MAX_BUFFERS: usize = 4;

/// Per-tensor sums a reduce pass accumulates (sums of squares, dot products, ...), added chunk by
/// chunk in f64. Unused entries stay 0.
pub type Sums = [f64; 4];

/// One chunk of one parameter's step: contiguous slices of equal length.
///
/// `state` holds the rule's buffers in [`Rule::buffer_names`](crate::Rule::buffer_names) order;
/// entries past the rule's buffers are empty.
pub struct Chunk<'a, T> {
    /// The parameter's elements, updated in place.
    pub param: &'a mut [T],
    /// The gradient's elements.
    pub grad: &'a [T],
    /// The state buffers, in `buffer_names` order (unused ones empty).
    pub state: [&'a mut [T]; MAX_BUFFERS],
    /// The first buffer was created for this step (SGD starts its momentum at the gradient).
    pub fresh: bool,
}

impl<'a, T> Chunk<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.param.len()
    }

    /// True when the chunk holds no element.
    pub fn is_empty(&self) -> bool {
        self.param.is_empty()
    }

    /// Splits every stream at `mid` (empty buffers stay empty, and so does an empty gradient:
    /// a kernel that reads none, such as Lookahead's sync, gets an empty `grad`).
    pub fn split_at(self, mid: usize) -> (Chunk<'a, T>, Chunk<'a, T>) {
        let (pl, pr) = self.param.split_at_mut(mid);
        let (gl, gr) = if self.grad.is_empty() {
            (self.grad, self.grad)
        } else {
            self.grad.split_at(mid)
        };
        let mut left: [&'a mut [T]; MAX_BUFFERS] = Default::default();
        let mut right: [&'a mut [T]; MAX_BUFFERS] = Default::default();
        for (k, buf) in self.state.into_iter().enumerate() {
            if !buf.is_empty() {
                let (l, r) = buf.split_at_mut(mid);
                left[k] = l;
                right[k] = r;
            }
        }
        let fresh = self.fresh;
        (
            Chunk {
                param: pl,
                grad: gl,
                state: left,
                fresh,
            },
            Chunk {
                param: pr,
                grad: gr,
                state: right,
                fresh,
            },
        )
    }

    /// The same chunk, borrowed for a shorter time (to run two passes over it).
    pub fn reborrow(&mut self) -> Chunk<'_, T> {
        let [a, b, c, d] = &mut self.state;
        Chunk {
            param: &mut *self.param,
            grad: self.grad,
            state: [&mut **a, &mut **b, &mut **c, &mut **d],
            fresh: self.fresh,
        }
    }
}

/// The fused CPU kernel of a rule whose per-step coefficients are `S`.
///
/// Implement [`Kernel::apply`] (and, for a reduce-then-apply kernel, [`Kernel::REDUCES`] and
/// [`Kernel::reduce`]) with plain element loops, and mark them `#[inline(always)]`: the engine
/// calls them inside functions compiled once per instruction set (AVX-512, AVX2+FMA, baseline),
/// and a loop only gets the wide vectors when it is inlined there. Round every f64 coefficient
/// to the element type once, before the loop, with [`Elem::of`], as Candle's scalar ops do, and
/// keep the reference path's order of operations so that both paths agree to the bit.
pub trait Kernel<S>: 'static {
    /// False only for [`NoKernel`]: whether a rule has a kernel is known from its type.
    const FUSED: bool = true;
    /// True when [`Kernel::apply`] needs the tensor's [`Sums`] from a [`Kernel::reduce`] pass.
    const REDUCES: bool = false;

    /// First pass over one chunk (only when [`Kernel::REDUCES`]): adds this chunk's
    /// contributions to `sums`; it may also update the state buffers.
    #[inline(always)]
    fn reduce<T: Elem>(step: &S, chunk: Chunk<'_, T>, sums: &mut Sums) {
        let _ = (step, chunk, sums);
    }

    /// The elementwise update of one chunk; `sums` are the whole tensor's totals of the reduce
    /// pass (zeros when the kernel does not reduce).
    fn apply<T: Elem>(step: &S, chunk: Chunk<'_, T>, sums: &Sums);
}

/// The kernel of a rule that has none: the rule runs on the reference path only, and a
/// `"path": "fused"` optimizer over it is refused before any step.
#[derive(Debug, Clone, Copy)]
pub struct NoKernel;

impl<S> Kernel<S> for NoKernel {
    const FUSED: bool = false;

    #[inline(always)]
    fn apply<T: Elem>(_step: &S, _chunk: Chunk<'_, T>, _sums: &Sums) {}
}

/// Calls `f` with `(a, b)` as literal constants, one call site per case: `f` inlines into each,
/// so every case gets its own loop without loop-invariant selects (LLVM does not unswitch them
/// itself; they cost up to 2.7x at in-cache sizes). `x · 1` and `x · -1` fold to `x` and `-x`,
/// which are the same bits, so a specialized kernel stays bit-identical.
#[inline(always)]
pub fn specialize2(a: bool, b: bool, mut f: impl FnMut(bool, bool)) {
    match (a, b) {
        (false, false) => f(false, false),
        (false, true) => f(false, true),
        (true, false) => f(true, false),
        (true, true) => f(true, true),
    }
}

/// [`specialize2`] for three flags.
#[inline(always)]
pub fn specialize3(a: bool, b: bool, c: bool, mut f: impl FnMut(bool, bool, bool)) {
    specialize2(
        a,
        b,
        #[inline(always)]
        |a, b| {
            if c {
                f(a, b, true)
            } else {
                f(a, b, false)
            }
        },
    )
}

/// -1 when maximizing (an exact negation), else 1.
#[inline(always)]
pub fn sign<T: Elem>(maximize: bool) -> T {
    T::of(if maximize { -1.0 } else { 1.0 })
}
