//! NAdam: Adam with Nesterov momentum (`torch.optim.NAdam`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize3, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad, Decay};
use crate::rules::moments::{self, Moments};
use crate::validate;

/// NAdam: Adam whose first moment is used with a Nesterov look-ahead and a momentum schedule.
///
/// ```text
/// g ← −g if maximize
/// θ ← θ (1 − γ λ) if decoupled_weight_decay, else g ← g + λ θ
/// μₜ ← β₁ (1 − ½ · 0.96^(t ψ)),   μₜ₊₁ ← β₁ (1 − ½ · 0.96^((t+1) ψ))
/// Πₜ ← Πₜ₋₁ μₜ                                     (mu_product, Π₀ = 1)
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
/// d ← √(v / (1 − β₂ᵗ)) + ε
/// θ ← θ − γ (1 − μₜ) / (1 − Πₜ) · g / d − γ μₜ₊₁ / (1 − Πₜ μₜ₊₁) · m / d
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`, ψ = `momentum_decay`.
/// Defaults are `torch.optim.NAdam`'s (PyTorch 2.15): lr `2e-3`, momentum_decay `4e-3`. Paper:
/// Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NadamConfig {
    /// Learning rate γ. Default: `2e-3` (torch.optim.NAdam).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Momentum decay ψ. Default: `4e-3`.
    pub momentum_decay: f64,
    /// Decay θ directly (NAdamW) instead of adding λθ to g. Default: `false`.
    pub decoupled_weight_decay: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for NadamConfig {
    fn default() -> Self {
        NadamConfig {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// NAdam as an optimizer (also a `candle_nn::Optimizer`).
pub type Nadam = GroupedOptimizer<NadamConfig>;

impl Rule for NadamConfig {
    const NAME: &'static str = "nadam";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
        "momentum_decay" => momentum_decay,
    );
    type Step = NadamStep;
    type Kernel = NadamKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("momentum_decay", self.momentum_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }

    fn scalar_names(&self) -> Vec<&'static str> {
        vec!["mu_product"]
    }

    /// The momentum schedule μₜ, μₜ₊₁ and the product Πₜ (advanced here, once per step).
    fn plan(&self, t: u64, scalars: &mut Scalars) -> NadamStep {
        let (beta1, beta2) = self.betas;
        let tf = t as f64;
        let mu = beta1 * (1.0 - 0.5 * 0.96f64.powf(tf * self.momentum_decay));
        let mu_next = beta1 * (1.0 - 0.5 * 0.96f64.powf((tf + 1.0) * self.momentum_decay));
        let mu_product = scalars.get("mu_product").copied().unwrap_or(1.0) * mu;
        scalars.insert("mu_product", mu_product);
        NadamStep {
            lr: self.lr,
            beta1,
            beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            inv_bias_correction2: 1.0 / (1.0 - beta2.powi(t as i32)),
            grad_coef: self.lr * (1.0 - mu) / (1.0 - mu_product),
            m_coef: self.lr * mu_next / (1.0 - mu_product * mu_next),
            decoupled: self.decoupled_weight_decay,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &NadamStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let mut grad = decay::signed(grad, step.maximize)?;
        let param = if step.decoupled {
            decay::decoupled(param, step.lr, step.weight_decay)?
        } else {
            grad = decay::coupled(&grad, param, step.weight_decay)?;
            param.clone()
        };
        let m = moments::ema(buffers, "exp_avg", &grad, step.beta1)?;
        let v = moments::ema_sq(buffers, "exp_avg_sq", &grad, step.beta2)?;
        let denom = ((v * step.inv_bias_correction2)?.sqrt()? + step.eps)?;
        let param = (param - ((grad / &denom)? * step.grad_coef)?)?;
        Ok((param - ((m / denom)? * step.m_coef)?)?)
    }
}

/// The coefficients of one NAdam step.
#[derive(Debug, Clone, Copy)]
pub struct NadamStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// 1 / (1 − β₂ᵗ).
    inv_bias_correction2: f64,
    /// γ (1 − μₜ) / (1 − Πₜ).
    grad_coef: f64,
    /// γ μₜ₊₁ / (1 − Πₜ μₜ₊₁).
    m_coef: f64,
    decoupled: bool,
    maximize: bool,
}

/// NAdam's fused kernel (coupled or decoupled weight decay, maximize). Buffers, in order:
/// `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, Copy)]
pub struct NadamKernel;

impl Kernel<NadamStep> for NadamKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &NadamStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, v, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let decay = Decay::<T>::new(step.weight_decay, step.lr, step.decoupled);
        let moments = Moments::<T>::new(step.beta1, step.beta2);
        let (inv_bc2, eps) = (T::of(step.inv_bias_correction2), T::of(step.eps));
        let (gc, mc) = (T::of(step.grad_coef), T::of(step.m_coef));
        specialize3(
            step.maximize,
            decay.coupled,
            decay.decoupled,
            #[inline(always)]
            |maximize, coupled, decoupled| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                    let pi = decay.param(p[i], decoupled);
                    let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                    let denom = (vi * inv_bc2).sqrt() + eps;
                    let pi = pi - gi / denom * gc;
                    p[i] = pi - mi / denom * mc;
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "nadam",
    "Adam with Nesterov momentum (torch.optim.NAdam)",
    NadamConfig,
    crate::engine::build::build_rule::<NadamConfig>
);
