//! An optimizer plugin written outside Gradus: Signum (sign momentum), with its own fused CPU
//! kernel, registered with one macro line. Signum is not one of the built-in optimizers: linking
//! this crate is what adds it. The crate adds a loss the same way: [`Huber`] (`"loss": {"type":
//! "huber"}`, in `huber.rs`).
//!
//! A binary that wants it names this crate (`use custom_optimizer as _;`) so the linker keeps
//! the registration; `gradus list optimizer` then shows `signum`, `gradus replay` runs it on
//! either path, and a `"path": "fused"` config gets the same chunked, SIMD-dispatched,
//! in-place engine as the built-in optimizers.
#![deny(missing_docs)]

use candle_core::Tensor;
use gradus_core::Result;
use gradus_optim::{Buffers, Chunk, Elem, GroupedOptimizer, Kernel, Rule, Scalars, Sums};
use serde::{Deserialize, Serialize};

mod huber;
pub use huber::{Huber, HuberConfig};

/// Signum: SGD on the sign of an exponential moving average of the gradient, with optional
/// decoupled weight decay.
///
/// ```text
/// m ← β m + (1 − β) g                        (momentum)
/// θ ← θ (1 − γ λ) − γ sign(m)
/// ```
///
/// γ = `lr`, β = `beta`, λ = `weight_decay`; sign(0) = 0. Sign momentum: an un-debiased EMA of
/// the gradient, its sign, decoupled weight decay, scaled by −γ (the decay applied to θ before
/// the step). Paper: Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems"
/// (ICML 2018), which names it Signum. Unlike Lion
/// (built in as `lion`), the step is the sign of the momentum itself, not of an interpolation
/// between it and the gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, gradus_core::schemars::JsonSchema)]
// The schema of `gradus schema`, through gradus-core's re-export (no schemars dependency).
#[schemars(crate = "gradus_core::schemars")]
#[serde(deny_unknown_fields, default)]
pub struct SignumConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Momentum decay β. Default: `0.9`.
    pub beta: f64,
    /// Decoupled weight decay λ. Default: `0`.
    pub weight_decay: f64,
}

impl Default for SignumConfig {
    fn default() -> Self {
        SignumConfig {
            lr: 1e-3,
            beta: 0.9,
            weight_decay: 0.0,
        }
    }
}

/// Signum as an optimizer (also a `candle_nn::Optimizer`).
pub type Signum = GroupedOptimizer<SignumConfig>;

/// The coefficients of one Signum step, computed once and read by both paths.
#[derive(Debug, Clone, Copy)]
pub struct SignumStep {
    lr: f64,
    beta: f64,
    weight_decay: f64,
}

impl Rule for SignumConfig {
    const NAME: &'static str = "signum";
    gradus_optim::hyperparameters!(
        "lr" => lr,
        "beta" => beta,
        "weight_decay" => weight_decay,
    );
    type Step = SignumStep;
    type Kernel = SignumKernel;

    fn validate(&self) -> Result<()> {
        gradus_optim::validate::lr(self.lr)?;
        gradus_optim::validate::betas((self.beta, 0.0))?;
        gradus_optim::validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["momentum"]
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> SignumStep {
        SignumStep {
            lr: self.lr,
            beta: self.beta,
            weight_decay: self.weight_decay,
        }
    }

    /// The reference update in Candle ops (any device, any float dtype).
    fn update(
        &self,
        step: &SignumStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let m = buffers.get_or("momentum", || Ok(grad.zeros_like()?))?;
        let m = ((m * step.beta)? + (grad * (1.0 - step.beta))?)?;
        buffers.set("momentum", m.clone());
        let decayed = gradus_optim::decay::decoupled(param, step.lr, step.weight_decay)?;
        Ok((decayed - (m.sign()? * step.lr)?)?)
    }
}

/// Signum's fused CPU kernel: the same arithmetic as [`SignumConfig::update`], element by
/// element, in the reference path's order of operations. Buffer: `momentum`.
#[derive(Debug, Clone, Copy)]
pub struct SignumKernel;

impl Kernel<SignumStep> for SignumKernel {
    // `inline(always)`: the engine calls this inside its per-instruction-set functions, and
    // only an inlined loop is vectorized for AVX2/AVX-512 there.
    #[inline(always)]
    fn apply<T: Elem>(step: &SignumStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m) = (&g[..n], &mut m[..n]);
        // Coefficients rounded to the element type once, as Candle's scalar ops round them.
        let (beta, one_minus_beta) = (T::of(step.beta), T::of(1.0 - step.beta));
        let (lr, decay) = (T::of(step.lr), T::of(1.0 - step.lr * step.weight_decay));
        let decays = step.weight_decay != 0.0;
        for i in 0..n {
            let mi = m[i] * beta + g[i] * one_minus_beta;
            m[i] = mi;
            let pi = if decays { p[i] * decay } else { p[i] };
            p[i] = pi - mi.sign() * lr;
        }
    }
}

gradus_core::register_optimizer!(
    "signum",
    "Signum, SGD on the sign of the momentum (Bernstein et al., 2018; optax) - example plugin with a fused kernel",
    SignumConfig,
    gradus_optim::build::build_rule::<SignumConfig>
);
