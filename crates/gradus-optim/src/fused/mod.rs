//! The fused CPU path: one pass over parameter, gradient and state per step, in place.
//!
//! The reference path ([`Rule::update`](crate::rule::Rule::update)) builds one temporary tensor
//! per elementary op. For contiguous f32/f64 parameters on the CPU, each optimizer instead
//! plans a [`FusedUpdate`] (its per-step coefficients, computed in f64 exactly as the reference
//! path computes them) and a kernel applies it element by element, in the parameter's dtype and
//! in the reference path's order of operations, so the two paths agree to rounding:
//!
//! - the parameter is written in place through `candle_core::InplaceOp2`;
//! - state lives in optimizer-owned buffers ([`aligned::AlignedBuf`]), 64-byte aligned and
//!   placed at a different offset within a 4 KiB page than the parameter;
//! - large tensors are split into chunks run on rayon's pool, and tensors are themselves
//!   processed in parallel, so many small tensors cost about what one large one does;
//! - each chunk runs under run-time CPU dispatch (`pulp`: AVX-512, AVX2+FMA or baseline), so a
//!   portable build uses the machine's widest vectors.
//!
//! [`UpdatePath`] chooses between the paths; `Auto` (the default) takes the fused path wherever
//! it is eligible.

pub mod aligned;
pub mod clip;
pub mod elem;
mod kernels;
mod moments;
pub(crate) mod step;

pub mod adadelta;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod nadam;
pub mod radam;
pub mod rmsprop;
pub mod sgd;

#[cfg(test)]
mod proptests;

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Tensor};

pub use elem::Elem;

/// Which implementation of the update an optimizer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdatePath {
    /// The fused CPU kernel for each parameter where eligible (contiguous f32/f64 on the CPU,
    /// and a rule that has one), the reference path for the others.
    #[default]
    Auto,
    /// Candle tensor ops for every parameter (any device, any float dtype).
    Reference,
    /// The fused kernel for every parameter; a step over an ineligible one is an error.
    Fused,
}

static DEFAULT_PATH: AtomicU8 = AtomicU8::new(0);

/// Sets the path used by every optimizer that has no path of its own
/// ([`GroupedOptimizer::set_update_path`](crate::GroupedOptimizer::set_update_path)); the
/// `gradus` binary's `--path` sets it.
pub fn set_default_path(path: UpdatePath) {
    let code = match path {
        UpdatePath::Auto => 0,
        UpdatePath::Reference => 1,
        UpdatePath::Fused => 2,
    };
    DEFAULT_PATH.store(code, Ordering::Relaxed);
}

thread_local! {
    static SCOPED_PATH: std::cell::Cell<Option<UpdatePath>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `path` as the default path of optimizers stepped on this thread (restored
/// afterwards, also on panic); takes precedence over [`set_default_path`].
pub fn with_default_path<T>(path: UpdatePath, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<UpdatePath>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED_PATH.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SCOPED_PATH.with(|c| c.replace(Some(path))));
    f()
}

/// The default path on this thread: the one of an enclosing [`with_default_path`], else the
/// process-wide one (initially [`UpdatePath::Auto`]).
pub fn default_path() -> UpdatePath {
    if let Some(path) = SCOPED_PATH.with(|c| c.get()) {
        return path;
    }
    match DEFAULT_PATH.load(Ordering::Relaxed) {
        1 => UpdatePath::Reference,
        2 => UpdatePath::Fused,
        _ => UpdatePath::Auto,
    }
}

/// Why a parameter cannot take the fused path (`None`: it can).
pub fn ineligibility(param: &Tensor) -> Option<String> {
    if !param.device().is_cpu() {
        return Some(format!("it is on {:?}, not the CPU", param.device()));
    }
    if !matches!(param.dtype(), DType::F32 | DType::F64) {
        return Some(format!("its dtype is {:?}, not f32 or f64", param.dtype()));
    }
    if !param.is_contiguous() {
        return Some("its layout is strided, not contiguous".to_string());
    }
    None
}

/// One step of one optimizer for one parameter: its per-step coefficients, planned by the
/// rule ([`Rule::fused`](crate::rule::Rule::fused)) and applied by the fused kernel.
#[derive(Debug, Clone, Copy)]
pub enum FusedUpdate {
    /// SGD, with or without momentum.
    Sgd(sgd::SgdStep),
    /// AdaGrad.
    Adagrad(adagrad::AdagradStep),
    /// RMSprop, plain or centered, with or without momentum.
    Rmsprop(rmsprop::RmspropStep),
    /// Adam, AMSGrad, AdamW.
    Adam(adam::AdamStepCoef),
    /// NAdam.
    Nadam(nadam::NadamStep),
    /// RAdam.
    Radam(radam::RadamStep),
    /// Adamax.
    Adamax(adamax::AdamaxStep),
    /// Adadelta.
    Adadelta(adadelta::AdadeltaStep),
}

impl FusedUpdate {
    /// The value a newly created state buffer starts at (AdaGrad's
    /// `initial_accumulator_value`, else 0).
    pub fn initial_value(&self) -> f64 {
        match self {
            FusedUpdate::Adagrad(a) => a.initial_accumulator_value,
            _ => 0.0,
        }
    }

    /// Applies the update to one chunk: `state` holds the rule's buffers in
    /// [`Rule::buffer_names`](crate::rule::Rule::buffer_names) order (unused ones empty);
    /// `fresh` says the first buffer was created for this step.
    #[inline(always)]
    pub fn apply<T: Elem>(&self, p: &mut [T], g: &[T], state: &mut [&mut [T]; 3], fresh: bool) {
        match self {
            FusedUpdate::Sgd(k) => k.apply(p, g, state, fresh),
            FusedUpdate::Adagrad(k) => k.apply(p, g, state),
            FusedUpdate::Rmsprop(k) => k.apply(p, g, state),
            FusedUpdate::Adam(k) => k.apply(p, g, state),
            FusedUpdate::Nadam(k) => k.apply(p, g, state),
            FusedUpdate::Radam(k) => k.apply(p, g, state),
            FusedUpdate::Adamax(k) => k.apply(p, g, state),
            FusedUpdate::Adadelta(k) => k.apply(p, g, state),
        }
    }
}

/// Runs `update` over whole tensors: splits them into chunks on rayon's pool and runs each
/// chunk under run-time SIMD dispatch. Every slice in `state` is empty or as long as `p`.
pub fn run<T: Elem>(update: &FusedUpdate, p: &mut [T], g: &[T], state: [&mut [T]; 3], fresh: bool) {
    kernels::split(update, p, g, state, fresh);
}
