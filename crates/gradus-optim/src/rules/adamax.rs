//! Adamax: Adam with the infinity norm (`torch.optim.Adamax`).

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

/// Adamax: the second moment replaced by an exponentially weighted infinity norm.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// m ← β₁ m + (1 − β₁) g               (exp_avg)
/// u ← max(β₂ u, |g| + ε)              (exp_inf)
/// θ ← θ − γ / (1 − β₁ᵗ) · m / u
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`. Defaults are
/// `torch.optim.Adamax`'s (PyTorch 2.15): lr `2e-3`. Paper: Kingma & Ba (2015), section 7.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamaxConfig {
    /// Learning rate γ. Default: `2e-3` (torch.optim.Adamax).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// Adamax as an optimizer (also a `candle_nn::Optimizer`).
pub type Adamax = GroupedOptimizer<AdamaxConfig>;

impl Rule for AdamaxConfig {
    const NAME: &'static str = "adamax";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );
    type Step = AdamaxStep;
    type Kernel = AdamaxKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_inf"]
    }

    /// The bias-corrected step size γ / (1 − β₁ᵗ).
    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdamaxStep {
        AdamaxStep {
            clr: self.lr / (1.0 - self.betas.0.powi(t as i32)),
            beta1: self.betas.0,
            beta2: self.betas.1,
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AdamaxStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, step.maximize)?,
            param,
            step.weight_decay,
        )?;
        let m = moments::ema(buffers, "exp_avg", &grad, step.beta1)?;
        let u = buffers.get_or("exp_inf", || Ok(grad.zeros_like()?))?;
        let u = (u * step.beta2)?.maximum(&(grad.abs()? + step.eps)?)?;
        buffers.set("exp_inf", u.clone());
        Ok((param - ((m / u)? * step.clr)?)?)
    }
}

/// The coefficients of one Adamax step.
#[derive(Debug, Clone, Copy)]
pub struct AdamaxStep {
    /// γ / (1 − β₁ᵗ).
    clr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    maximize: bool,
}

/// Adamax's fused kernel. Buffers, in order: `exp_avg`, `exp_inf`.
#[derive(Debug, Clone, Copy)]
pub struct AdamaxKernel;

impl Kernel<AdamaxStep> for AdamaxKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdamaxStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, u, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, u) = (&g[..n], &mut m[..n], &mut u[..n]);
        let (wd, has_wd) = (T::of(step.weight_decay), step.weight_decay != 0.0);
        let (b1, b2, eps, clr) = (
            T::of(1.0 - step.beta1),
            T::of(step.beta2),
            T::of(step.eps),
            T::of(step.clr),
        );
        specialize2(
            step.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let mi = m[i] + (gi - m[i]) * b1;
                    m[i] = mi;
                    let ui = T::max_of(u[i] * b2, gi.abs() + eps);
                    u[i] = ui;
                    p[i] = p[i] - mi / ui * clr;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "adamax",
    "Adam with the infinity norm (torch.optim.Adamax)",
    AdamaxConfig,
    crate::engine::build::build_rule::<AdamaxConfig>
);
