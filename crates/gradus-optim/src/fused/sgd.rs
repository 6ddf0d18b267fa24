//! Fused SGD (heavy-ball or Nesterov momentum, coupled weight decay, maximize).

use crate::fused::{Elem, FusedUpdate};
use crate::rule::ParamState;
use crate::sgd::SgdConfig;

/// The coefficients of one SGD step (see [`SgdConfig`] for the rule).
#[derive(Debug, Clone, Copy)]
pub struct SgdStep {
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool,
}

/// Plans one step of `cfg` (state: buffer `momentum_buffer` when μ ≠ 0).
pub fn plan(cfg: &SgdConfig, _state: &mut ParamState) -> FusedUpdate {
    FusedUpdate::Sgd(SgdStep {
        lr: cfg.lr,
        momentum: cfg.momentum,
        dampening: cfg.dampening,
        weight_decay: cfg.weight_decay,
        nesterov: cfg.nesterov,
        maximize: cfg.maximize,
    })
}

/// `g ← ±g`, then `g ← g + λ θ` when λ ≠ 0: the gradient as the reference path forms it.
#[inline(always)]
pub(crate) fn effective_grad<T: Elem>(g: T, p: T, sign: T, wd: T, has_wd: bool) -> T {
    let g = g * sign;
    if has_wd {
        g + p * wd
    } else {
        g
    }
}

/// Calls `f` with `(a, b)` as literal constants, one call site per case: `f` inlines into each,
/// so every case gets its own loop without the loop-invariant selects (LLVM does not unswitch
/// them itself; they cost up to 2.7x at in-cache sizes). `x · 1` and `x · -1` fold to `x` and
/// `-x`, which are the same bits, so the kernels stay bit-identical.
#[inline(always)]
pub(crate) fn specialize2(a: bool, b: bool, mut f: impl FnMut(bool, bool)) {
    match (a, b) {
        (false, false) => f(false, false),
        (false, true) => f(false, true),
        (true, false) => f(true, false),
        (true, true) => f(true, true),
    }
}

/// [`specialize2`] for three flags.
#[inline(always)]
pub(crate) fn specialize3(a: bool, b: bool, c: bool, mut f: impl FnMut(bool, bool, bool)) {
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
pub(crate) fn sign<T: Elem>(maximize: bool) -> T {
    T::of(if maximize { -1.0 } else { 1.0 })
}

/// SGD without momentum: `θ ← θ - lr · (±g + λθ)`.
#[inline(always)]
fn plain<T: Elem, const WD: bool, const NEG: bool>(p: &mut [T], g: &[T], wd: T, lr: T) {
    for (p, &g) in p.iter_mut().zip(g) {
        let g = if NEG { -g } else { g };
        let g = if WD { g + *p * wd } else { g };
        *p = *p - g * lr;
    }
}

impl SgdStep {
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]; 3], fresh: bool) {
        let n = p.len();
        let g = &g[..n];
        let (sg, wd, has_wd) = (
            sign::<T>(self.maximize),
            T::of(self.weight_decay),
            self.weight_decay != 0.0,
        );
        let lr = T::of(self.lr);
        if self.momentum == 0.0 {
            // One loop per case: LLVM keeps the loop-invariant selects (and the `· ±1`) inside
            // this short loop, which costs 2.7x at in-cache sizes (1e4-element tensors). `-g`
            // is `g · -1` exactly, so every case stays bit-identical to the reference path.
            match (has_wd, self.maximize) {
                (false, false) => plain::<T, false, false>(p, g, wd, lr),
                (false, true) => plain::<T, false, true>(p, g, wd, lr),
                (true, false) => plain::<T, true, false>(p, g, wd, lr),
                (true, true) => plain::<T, true, true>(p, g, wd, lr),
            }
            return;
        }
        let buf = &mut s[0][..n];
        let (mu, keep) = (T::of(self.momentum), T::of(1.0 - self.dampening));
        let nesterov = self.nesterov;
        for i in 0..n {
            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
            // PyTorch starts the buffer at the first gradient (no dampening).
            let b = if fresh { gi } else { buf[i] * mu + gi * keep };
            buf[i] = b;
            let d = if nesterov { gi + b * mu } else { b };
            p[i] = p[i] - d * lr;
        }
    }
}
