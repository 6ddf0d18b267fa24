//! LARS, layer-wise adaptive rate scaling (pytorch-optimizer's `LARS`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay;
use crate::rules::lamb::sum_sq;
use crate::validate;

/// LARS: SGD with momentum whose gradient is scaled per tensor by a trust ratio.
///
/// Per parameter θ with gradient g (pytorch-optimizer 4.1.0's `LARS`):
///
/// ```text
/// g ← −g                                              if maximize
/// if θ has rank > 1:
///     r ← η ‖θ‖ / (‖g‖ + λ ‖θ‖)   (1 when ‖θ‖ = 0 or the denominator is 0)
///     g ← (g + λ θ) · r
/// b ← μ b + (1 − τ) g                                  if μ > 0   (momentum_buffer, from 0)
/// g ← g + μ b  (nesterov)   or   g ← b                 if μ > 0
/// θ ← θ − γ g
/// ```
///
/// γ = `lr`, λ = `weight_decay`, μ = `momentum`, τ = `dampening`, η = `trust_coefficient`;
/// norms are Frobenius norms over the whole tensor. Scalars and vectors (biases, norm scales)
/// take the plain momentum step, without weight decay or scaling, as in the reference. The
/// momentum buffer starts at zero (unlike `torch.optim.SGD`'s, which starts at g). Defaults are
/// pytorch-optimizer 4.1.0's. Paper: You, Gitman & Ginsburg, "Large Batch Training of
/// Convolutional Networks" (2017, arXiv:1708.03888). `foreach` chooses the reference's batching
/// only and has no effect here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LarsConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Weight decay λ (tensors of rank > 1 only). Default: `0`.
    pub weight_decay: f64,
    /// Momentum factor μ, in [0, 1]. Default: `0.9`.
    pub momentum: f64,
    /// Dampening τ of the momentum, in [0, 1]. Default: `0`.
    pub dampening: f64,
    /// Trust coefficient η. Default: `1e-3`.
    pub trust_coefficient: f64,
    /// Nesterov momentum. Default: `false`.
    pub nesterov: bool,
    /// The reference's batched (`foreach`) implementation: no effect here. Default: `null`.
    pub foreach: Option<bool>,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            dampening: 0.0,
            trust_coefficient: 1e-3,
            nesterov: false,
            foreach: None,
            maximize: false,
        }
    }
}

/// LARS as an optimizer (also a `candle_nn::Optimizer`).
pub type Lars = GroupedOptimizer<LarsConfig>;

/// The coefficients of one LARS step of one parameter.
#[derive(Debug, Clone, Copy)]
pub struct LarsStep {
    lr: f64,
    weight_decay: f64,
    momentum: f64,
    dampening: f64,
    trust_coefficient: f64,
    nesterov: bool,
    maximize: bool,
    /// The parameter has rank > 1: decay and scale its gradient.
    scaled: bool,
}

impl LarsStep {
    /// The trust ratio from ‖θ‖² and ‖g‖².
    fn trust_ratio(&self, param_sq: f64, grad_sq: f64) -> f64 {
        let (param_norm, grad_norm) = (param_sq.sqrt(), grad_sq.sqrt());
        let denominator = grad_norm + self.weight_decay * param_norm;
        if param_norm > 0.0 && denominator > 0.0 {
            self.trust_coefficient * param_norm / denominator
        } else {
            1.0
        }
    }
}

impl LarsConfig {
    fn step(&self, scaled: bool) -> LarsStep {
        LarsStep {
            lr: self.lr,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            dampening: self.dampening,
            trust_coefficient: self.trust_coefficient,
            nesterov: self.nesterov,
            maximize: self.maximize,
            scaled,
        }
    }
}

impl Rule for LarsConfig {
    const NAME: &'static str = "lars";
    crate::hyperparameters!(
        "lr" => lr,
        "weight_decay" => weight_decay,
        "momentum" => momentum,
        "dampening" => dampening,
        "trust_coefficient" => trust_coefficient,
    );
    type Step = LarsStep;
    type Kernel = LarsKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::weight_decay(self.weight_decay)?;
        validate::in_range("momentum", self.momentum, 0.0, 1.0)?;
        validate::in_range("dampening", self.dampening, 0.0, 1.0)?;
        validate::non_negative("trust_coefficient", self.trust_coefficient)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        if self.momentum > 0.0 {
            vec!["momentum_buffer"]
        } else {
            Vec::new()
        }
    }

    /// A rank-free plan (a rank-1 parameter's); the engine calls [`Rule::plan_shaped`].
    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> LarsStep {
        self.step(false)
    }

    fn plan_shaped(&self, _t: u64, _scalars: &mut Scalars, dims: &[usize]) -> LarsStep {
        self.step(dims.len() > 1)
    }

    fn update(
        &self,
        step: &LarsStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let mut grad = decay::signed(grad, step.maximize)?;
        if step.scaled {
            let trust = step.trust_ratio(sum_sq(param)?, sum_sq(&grad)?);
            grad = (decay::coupled(&grad, param, step.weight_decay)? * trust)?;
        }
        if step.momentum > 0.0 {
            let b = buffers.get_or("momentum_buffer", || Ok(grad.zeros_like()?))?;
            let b = ((b * step.momentum)? + (&grad * (1.0 - step.dampening))?)?;
            buffers.set("momentum_buffer", b.clone());
            grad = if step.nesterov {
                (&grad + (b * step.momentum)?)?
            } else {
                b
            };
        }
        Ok((param - (grad * step.lr)?)?)
    }
}

/// LARS's fused kernel: a reduce pass sums ‖θ‖² and ‖g‖² (tensors of rank > 1), then the apply
/// pass runs the momentum step on the scaled gradient. Buffer: `momentum_buffer` when μ > 0.
#[derive(Debug, Clone, Copy)]
pub struct LarsKernel;

impl Kernel<LarsStep> for LarsKernel {
    const REDUCES: bool = true;

    #[inline(always)]
    fn reduce<T: Elem>(step: &LarsStep, chunk: Chunk<'_, T>, sums: &mut Sums) {
        if !step.scaled {
            return;
        }
        let Chunk {
            param: p, grad: g, ..
        } = chunk;
        let g = &g[..p.len()];
        let (mut param_sq, mut grad_sq) = (0.0, 0.0);
        for (p, g) in p.iter().zip(g) {
            let (p, g) = (p.to_f64(), g.to_f64());
            param_sq += p * p;
            grad_sq += g * g;
        }
        sums[0] += param_sq;
        sums[1] += grad_sq;
    }

    #[inline(always)]
    fn apply<T: Elem>(step: &LarsStep, chunk: Chunk<'_, T>, sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [b, ..],
            ..
        } = chunk;
        let n = p.len();
        let g = &g[..n];
        let sg = sign::<T>(step.maximize);
        let scaled = step.scaled;
        let has_wd = scaled && step.weight_decay != 0.0;
        let wd = T::of(step.weight_decay);
        let trust = T::of(if scaled {
            step.trust_ratio(sums[0], sums[1])
        } else {
            1.0
        });
        let lr = T::of(step.lr);
        let has_momentum = step.momentum > 0.0;
        let b: &mut [T] = if has_momentum {
            &mut b[..n]
        } else {
            Default::default()
        };
        let (mu, keep) = (T::of(step.momentum), T::of(1.0 - step.dampening));
        let nesterov = step.nesterov;
        for i in 0..n {
            let mut gi = g[i] * sg;
            if scaled {
                if has_wd {
                    gi = gi + p[i] * wd;
                }
                gi = gi * trust;
            }
            if has_momentum {
                let bi = b[i] * mu + gi * keep;
                b[i] = bi;
                gi = if nesterov { gi + bi * mu } else { bi };
            }
            p[i] = p[i] - gi * lr;
        }
    }
}

gradus_core::register_optimizer!(
    "lars",
    "LARS, momentum SGD with a per-tensor trust ratio (pytorch-optimizer LARS)",
    LarsConfig,
    crate::engine::build::build_rule::<LarsConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, run_steps, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1, nesterov in any::<bool>()) {
            let cfg = LarsConfig { lr: 0.0, weight_decay: wd, nesterov, ..LarsConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn vectors_take_the_plain_momentum_step(p in small_params(), lr in 0.0f64..1.0) {
            // Rank 1: no scaling, no decay; b₁ = (1 − τ) g = g, so θ ← θ − γ g with g = 2θ.
            let cfg = LarsConfig { lr, weight_decay: 0.5, ..LarsConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            let expected: Vec<f64> = before.iter().map(|t| t - lr * 2.0 * t).collect();
            assert_close(&after, &expected, 1e-12);
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params()) {
            let up = LarsConfig { lr: 0.1, maximize: true, ..LarsConfig::default() };
            let down = LarsConfig { lr: 0.1, ..LarsConfig::default() };
            let (b1, a1) = run_steps(up, &p, 1);
            let (_, a2) = run_steps(down, &p, 1);
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }
    }

    #[test]
    fn matrices_are_scaled_by_the_trust_ratio() {
        // θ = [[3, 4]] (‖θ‖ = 5), g = 2θ (‖g‖ = 10), λ = 0: r = η · 5 / 10, the step γ r g.
        use candle_core::{Device, Var};
        let var = Var::new(&[[3.0f64, 4.0]], &Device::Cpu).unwrap();
        let cfg = LarsConfig {
            lr: 0.1,
            momentum: 0.0,
            trust_coefficient: 0.02,
            ..LarsConfig::default()
        };
        let named = vec![gradus_core::NamedVar::new("w", var.clone())];
        let mut opt = GroupedOptimizer::from_named(named, cfg).unwrap();
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.apply(&loss.backward().unwrap()).unwrap();
        let after: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let r = 0.02 * 5.0 / 10.0;
        assert_close(&after, &[3.0 - 0.1 * r * 6.0, 4.0 - 0.1 * r * 8.0], 1e-14);
    }
}
