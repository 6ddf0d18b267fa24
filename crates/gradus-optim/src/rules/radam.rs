//! RAdam: rectified Adam (`torch.optim.RAdam`).

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

/// RAdam: Adam whose adaptive term is switched on only once its variance is tractable, and
/// rectified by r_t.
///
/// ```text
/// g ← −g if maximize
/// θ ← θ (1 − γ λ) if decoupled_weight_decay, else g ← g + λ θ
/// m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   m̂ ← m / (1 − β₁ᵗ)
/// ρ∞ ← 2 / (1 − β₂) − 1,   ρₜ ← ρ∞ − 2 t β₂ᵗ / (1 − β₂ᵗ)
/// if ρₜ > 5:  rₜ ← √((ρₜ − 4)(ρₜ − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρₜ))
///             θ ← θ − γ m̂ rₜ √(1 − β₂ᵗ) / (√v + ε)
/// else:       θ ← θ − γ m̂
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`. Defaults are
/// `torch.optim.RAdam`'s (PyTorch 2.15). Paper: Liu et al., "On the Variance of the Adaptive
/// Learning Rate and Beyond" (ICLR 2020).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RadamConfig {
    /// Learning rate γ. Default: `1e-3` (torch.optim.RAdam).
    pub lr: f64,
    /// (β₁, β₂). Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε. Default: `1e-8`.
    pub eps: f64,
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly (RAdamW) instead of adding λθ to g. Default: `false`.
    pub decoupled_weight_decay: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for RadamConfig {
    fn default() -> Self {
        RadamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// RAdam as an optimizer (also a `candle_nn::Optimizer`).
pub type Radam = GroupedOptimizer<RadamConfig>;

impl Rule for RadamConfig {
    const NAME: &'static str = "radam";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );
    type Step = RadamStep;
    type Kernel = RadamKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }

    /// The bias corrections and the rectification rₜ (when ρₜ > 5) of step t.
    fn plan(&self, t: u64, _scalars: &mut Scalars) -> RadamStep {
        let (beta1, beta2) = self.betas;
        let t = t as i32;
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2 = 1.0 - beta2.powi(t);
        let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * f64::from(t) * beta2.powi(t) / bias_correction2;
        let rect = (rho_t > 5.0).then(|| {
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt()
        });
        RadamStep {
            lr: self.lr,
            beta1,
            beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            inv_bias_correction1: 1.0 / bias_correction1,
            bias_correction2_sqrt: bias_correction2.sqrt(),
            rect,
            decoupled: self.decoupled_weight_decay,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &RadamStep,
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
        let m_hat = (m * step.inv_bias_correction1)?;
        match step.rect {
            Some(rect) => {
                let adaptive = (v.sqrt()? + step.eps)?.recip()?;
                let adaptive = (adaptive * step.bias_correction2_sqrt)?;
                Ok((param - (((m_hat * step.lr)? * adaptive)? * rect)?)?)
            }
            None => Ok((param - (m_hat * step.lr)?)?),
        }
    }
}

/// The coefficients of one RAdam step.
#[derive(Debug, Clone, Copy)]
pub struct RadamStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// 1 / (1 − β₁ᵗ): PyTorch divides m by the correction, Candle as a product by its
    /// reciprocal.
    inv_bias_correction1: f64,
    /// √(1 − β₂ᵗ).
    bias_correction2_sqrt: f64,
    /// rₜ when ρₜ > 5, else `None` (the un-adapted step).
    rect: Option<f64>,
    decoupled: bool,
    maximize: bool,
}

/// RAdam's fused kernel (coupled or decoupled weight decay, maximize). Buffers, in order:
/// `exp_avg`, `exp_avg_sq`.
#[derive(Debug, Clone, Copy)]
pub struct RadamKernel;

impl Kernel<RadamStep> for RadamKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &RadamStep, chunk: Chunk<'_, T>, _sums: &Sums) {
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
        let (inv_bc1, lr, eps) = (
            T::of(step.inv_bias_correction1),
            T::of(step.lr),
            T::of(step.eps),
        );
        let bc2 = T::of(step.bias_correction2_sqrt);
        let one = T::of(1.0);
        specialize3(
            step.maximize,
            decay.coupled,
            decay.decoupled,
            #[inline(always)]
            |maximize, coupled, decoupled| {
                let sg = sign::<T>(maximize);
                match step.rect {
                    Some(rect) => {
                        let rect = T::of(rect);
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                            let pi = decay.param(p[i], decoupled);
                            let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                            let adaptive = one / (vi.sqrt() + eps) * bc2;
                            p[i] = pi - mi * inv_bc1 * lr * adaptive * rect;
                        }
                    }
                    None => {
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                            let pi = decay.param(p[i], decoupled);
                            let (mi, _) = moments.update(&mut m[i], &mut v[i], gi);
                            p[i] = pi - mi * inv_bc1 * lr;
                        }
                    }
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "radam",
    "rectified Adam (torch.optim.RAdam)",
    RadamConfig,
    crate::engine::build::build_rule::<RadamConfig>
);
