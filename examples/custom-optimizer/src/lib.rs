//! An optimizer plugin written outside Gradus: Lion, with its own fused CPU kernel, registered
//! with one macro line.
//!
//! A binary that wants it names this crate (`use custom_optimizer as _;`) so the linker keeps
//! the registration; `gradus list optimizer` then shows `lion`, `gradus replay` runs it on
//! either path, and a `"path": "fused"` config gets the same chunked, SIMD-dispatched,
//! in-place engine as the built-in optimizers.
#![deny(missing_docs)]

use candle_core::Tensor;
use gradus_core::Result;
use gradus_optim::{Buffers, Chunk, Elem, GroupedOptimizer, Kernel, Rule, Scalars, Sums};
use serde::{Deserialize, Serialize};

/// Lion: the sign of an interpolated momentum, with decoupled weight decay.
///
/// ```text
/// c ← β₁ m + (1 − β₁) g
/// θ ← θ (1 − γ λ) − γ sign(c)
/// m ← β₂ m + (1 − β₂) g                      (exp_avg)
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, λ = `weight_decay`. Defaults from the paper and
/// pytorch-optimizer 4.1.0's `Lion`: Chen et al., "Symbolic Discovery of Optimization
/// Algorithms" (NeurIPS 2023).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LionConfig {
    /// Learning rate γ. Default: `1e-4`.
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.99]`.
    pub betas: (f64, f64),
    /// Decoupled weight decay λ. Default: `0`.
    pub weight_decay: f64,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
        }
    }
}

/// Lion as an optimizer (also a `candle_nn::Optimizer`).
pub type Lion = GroupedOptimizer<LionConfig>;

/// The coefficients of one Lion step, computed once and read by both paths.
#[derive(Debug, Clone, Copy)]
pub struct LionStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
}

impl Rule for LionConfig {
    const NAME: &'static str = "lion";
    gradus_optim::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
    );
    type Step = LionStep;
    type Kernel = LionKernel;

    fn validate(&self) -> Result<()> {
        gradus_optim::validate::lr(self.lr)?;
        gradus_optim::validate::betas(self.betas)?;
        gradus_optim::validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg"]
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> LionStep {
        LionStep {
            lr: self.lr,
            beta1: self.betas.0,
            beta2: self.betas.1,
            weight_decay: self.weight_decay,
        }
    }

    /// The reference update in Candle ops (any device, any float dtype).
    fn update(
        &self,
        step: &LionStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let m = buffers.get_or("exp_avg", || Ok(grad.zeros_like()?))?;
        let c = ((&m * step.beta1)? + (grad * (1.0 - step.beta1))?)?;
        let decayed = gradus_optim::decay::decoupled(param, step.lr, step.weight_decay)?;
        let next = (decayed - (c.sign()? * step.lr)?)?;
        buffers.set(
            "exp_avg",
            ((m * step.beta2)? + (grad * (1.0 - step.beta2))?)?,
        );
        Ok(next)
    }
}

/// Lion's fused CPU kernel: the same arithmetic as [`LionConfig::update`], element by element,
/// in the reference path's order of operations. Buffer: `exp_avg`.
#[derive(Debug, Clone, Copy)]
pub struct LionKernel;

impl Kernel<LionStep> for LionKernel {
    // `inline(always)`: the engine calls this inside its per-instruction-set functions, and
    // only an inlined loop is vectorized for AVX2/AVX-512 there.
    #[inline(always)]
    fn apply<T: Elem>(step: &LionStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m) = (&g[..n], &mut m[..n]);
        // Coefficients rounded to the element type once, as Candle's scalar ops round them.
        let (b1, one_minus_b1) = (T::of(step.beta1), T::of(1.0 - step.beta1));
        let (b2, one_minus_b2) = (T::of(step.beta2), T::of(1.0 - step.beta2));
        let (lr, decay) = (T::of(step.lr), T::of(1.0 - step.lr * step.weight_decay));
        let decays = step.weight_decay != 0.0;
        for i in 0..n {
            let c = m[i] * b1 + g[i] * one_minus_b1;
            let pi = if decays { p[i] * decay } else { p[i] };
            p[i] = pi - c.sign() * lr;
            m[i] = m[i] * b2 + g[i] * one_minus_b2;
        }
    }
}

gradus_core::register_optimizer!(
    "lion",
    "Lion, sign of interpolated momentum (Chen et al., 2023) - example plugin with a fused kernel",
    LionConfig,
    gradus_optim::build::build_rule::<LionConfig>
);
