//! Adadelta (`torch.optim.Adadelta`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad};
use crate::rules::moments;
use crate::validate;

/// Adadelta: a step size from the ratio of running RMS of updates and of gradients.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// v ← ρ v + (1 − ρ) g²                       (square_avg)
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ u + (1 − ρ) Δ²                       (acc_delta)
/// θ ← θ − γ Δ
/// ```
///
/// γ = `lr`, ρ = `rho`, ε = `eps`, λ = `weight_decay`. Defaults are `torch.optim.Adadelta`'s
/// (PyTorch 2.15): lr `1.0`, rho `0.9`, eps `1e-6`. Paper: Zeiler, "ADADELTA: An Adaptive
/// Learning Rate Method" (2012).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdadeltaConfig {
    /// Coefficient γ scaling Δ. Default: `1.0` (torch.optim.Adadelta).
    pub lr: f64,
    /// Decay ρ of the running averages. Default: `0.9`.
    pub rho: f64,
    /// ε inside the square roots. Default: `1e-6`.
    pub eps: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// Adadelta as an optimizer (also a `candle_nn::Optimizer`).
pub type Adadelta = GroupedOptimizer<AdadeltaConfig>;

impl Rule for AdadeltaConfig {
    const NAME: &'static str = "adadelta";
    crate::hyperparameters!(
        "lr" => lr,
        "rho" => rho,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );
    type Step = AdadeltaStep;
    type Kernel = AdadeltaKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::in_range("rho", self.rho, 0.0, 1.0)?;
        validate::eps(self.eps)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["square_avg", "acc_delta"]
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> AdadeltaStep {
        AdadeltaStep {
            lr: self.lr,
            rho: self.rho,
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AdadeltaStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, step.maximize)?,
            param,
            step.weight_decay,
        )?;
        let v = moments::ema_sq(buffers, "square_avg", &grad, step.rho)?;
        let u = buffers.get_or("acc_delta", || Ok(grad.zeros_like()?))?;
        let std = (v + step.eps)?.sqrt()?;
        let delta = (((&u + step.eps)?.sqrt()? / std)? * &grad)?;
        let u = ((u * step.rho)? + (delta.sqr()? * (1.0 - step.rho))?)?;
        buffers.set("acc_delta", u);
        Ok((param - (delta * step.lr)?)?)
    }
}

/// The coefficients of one Adadelta step: the hyperparameters as they are.
#[derive(Debug, Clone, Copy)]
pub struct AdadeltaStep {
    lr: f64,
    rho: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
}

/// Adadelta's fused kernel. Buffers, in order: `square_avg`, `acc_delta`.
#[derive(Debug, Clone, Copy)]
pub struct AdadeltaKernel;

impl Kernel<AdadeltaStep> for AdadeltaKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdadeltaStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [v, u, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, v, u) = (&g[..n], &mut v[..n], &mut u[..n]);
        let (wd, has_wd) = (T::of(step.weight_decay), step.weight_decay != 0.0);
        let (rho, one_rho, eps, lr) = (
            T::of(step.rho),
            T::of(1.0 - step.rho),
            T::of(step.eps),
            T::of(step.lr),
        );
        specialize2(
            step.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let vi = v[i] * rho + gi * gi * one_rho;
                    v[i] = vi;
                    let delta = (u[i] + eps).sqrt() / (vi + eps).sqrt() * gi;
                    u[i] = u[i] * rho + delta * delta * one_rho;
                    p[i] = p[i] - delta * lr;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "adadelta",
    "Adadelta, step sizes from running RMS of updates and gradients (torch.optim.Adadelta)",
    AdadeltaConfig,
    crate::engine::build::build_rule::<AdadeltaConfig>
);
