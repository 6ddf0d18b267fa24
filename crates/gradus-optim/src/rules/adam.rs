//! Adam and AMSGrad (`torch.optim.Adam`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad, Decay};
use crate::rules::moments::{self, Moments};
use crate::validate;

/// Adam: adaptive moment estimation, with optional AMSGrad and decoupled weight decay.
///
/// Per parameter θ with gradient g at step t (PyTorch's formulation):
///
/// ```text
/// g ← −g                                   if maximize
/// θ ← θ (1 − γ λ)                          if decoupled_weight_decay, else g ← g + λ θ
/// m ← β₁ m + (1 − β₁) g                    (exp_avg)
/// v ← β₂ v + (1 − β₂) g²                   (exp_avg_sq)
/// v̂ ← max(v̂, v)                            if amsgrad (max_exp_avg_sq), else v̂ = v
/// θ ← θ − γ / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
/// ```
///
/// γ = `lr`, (β₁, β₂) = `betas`, ε = `eps`, λ = `weight_decay`. Defaults are
/// `torch.optim.Adam`'s (PyTorch 2.15). Note ε is added after the bias correction of √v, as in
/// PyTorch (TensorFlow adds ε̂ before it). Paper: Kingma & Ba, "Adam: A Method for Stochastic
/// Optimization" (ICLR 2015); AMSGrad: Reddi et al., "On the Convergence of Adam and Beyond"
/// (ICLR 2018).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    /// Learning rate γ. Default: `1e-3` (torch.optim.Adam).
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first and second moments. Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// ε added to the denominator. Default: `1e-8`.
    pub eps: f64,
    /// Weight decay λ (coupled L2 unless `decoupled_weight_decay`). Default: `0`.
    pub weight_decay: f64,
    /// Use the running maximum of v (AMSGrad). Default: `false`.
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
    /// Decay θ directly (AdamW) instead of adding λθ to g. Default: `false`.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
        }
    }
}

/// Adam as an optimizer (also a `candle_nn::Optimizer`).
pub type Adam = GroupedOptimizer<AdamConfig>;

/// The hyperparameters of the Adam family's update, as Adam and AdamW configure it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamHyper {
    pub(crate) lr: f64,
    pub(crate) betas: (f64, f64),
    pub(crate) eps: f64,
    pub(crate) weight_decay: f64,
    pub(crate) amsgrad: bool,
    pub(crate) maximize: bool,
    pub(crate) decoupled: bool,
}

impl AdamHyper {
    pub(crate) fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::betas(self.betas)?;
        validate::weight_decay(self.weight_decay)
    }

    /// `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` under AMSGrad.
    pub(crate) fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["exp_avg", "exp_avg_sq"];
        if self.amsgrad {
            names.push("max_exp_avg_sq");
        }
        names
    }

    /// The coefficients of step `t`.
    pub(crate) fn plan(&self, t: u64) -> AdamStep {
        let t = t as i32;
        let (beta1, beta2) = self.betas;
        AdamStep {
            lr: self.lr,
            beta1,
            beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            step_size: self.lr / (1.0 - beta1.powi(t)),
            // PyTorch divides by √(1 − β₂ᵗ); Candle divides a tensor by a scalar as a product
            // by its reciprocal, which both paths therefore use.
            inv_bias_correction2_sqrt: 1.0 / (1.0 - beta2.powi(t)).sqrt(),
            amsgrad: self.amsgrad,
            maximize: self.maximize,
            decoupled: self.decoupled,
        }
    }
}

/// The coefficients of one step of Adam, AMSGrad or AdamW.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// γ / (1 − β₁ᵗ).
    step_size: f64,
    /// 1 / √(1 − β₂ᵗ).
    inv_bias_correction2_sqrt: f64,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
}

impl AdamStep {
    /// The reference update of Adam / AMSGrad / AdamW with these coefficients.
    pub(crate) fn update(
        &self,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let mut grad = decay::signed(grad, self.maximize)?;
        let param = if self.decoupled {
            decay::decoupled(param, self.lr, self.weight_decay)?
        } else {
            grad = decay::coupled(&grad, param, self.weight_decay)?;
            param.clone()
        };
        let m = moments::ema(buffers, "exp_avg", &grad, self.beta1)?;
        let mut v = moments::ema_sq(buffers, "exp_avg_sq", &grad, self.beta2)?;
        if self.amsgrad {
            let max = buffers
                .get_or("max_exp_avg_sq", || Ok(v.zeros_like()?))?
                .maximum(&v)?;
            buffers.set("max_exp_avg_sq", max.clone());
            v = max;
        }
        let denom = ((v.sqrt()? * self.inv_bias_correction2_sqrt)? + self.eps)?;
        Ok((param - ((m / denom)? * self.step_size)?)?)
    }
}

/// The fused kernel of Adam, AMSGrad and AdamW (coupled or decoupled weight decay, maximize).
/// Buffers, in order: `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq` (AMSGrad).
#[derive(Debug, Clone, Copy)]
pub struct AdamKernel;

impl Kernel<AdamStep> for AdamKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AdamStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, v, vmax, _],
            ..
        } = chunk;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let decay = Decay::<T>::new(step.weight_decay, step.lr, step.decoupled);
        let moments = Moments::<T>::new(step.beta1, step.beta2);
        let (inv_bc2, eps, step_size) = (
            T::of(step.inv_bias_correction2_sqrt),
            T::of(step.eps),
            T::of(step.step_size),
        );
        let vmax: &mut [T] = if step.amsgrad {
            &mut vmax[..n]
        } else {
            Default::default()
        };
        specialize2(
            step.maximize,
            decay.coupled,
            #[inline(always)]
            |maximize, coupled| {
                specialize2(
                    decay.decoupled,
                    step.amsgrad,
                    #[inline(always)]
                    |decoupled, amsgrad| {
                        let sg = sign::<T>(maximize);
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, decay.wd, coupled);
                            let pi = decay.param(p[i], decoupled);
                            let (mi, vi) = moments.update(&mut m[i], &mut v[i], gi);
                            let xi = if amsgrad {
                                let xi = T::max_of(vmax[i], vi);
                                vmax[i] = xi;
                                xi
                            } else {
                                vi
                            };
                            p[i] = pi - mi / (xi.sqrt() * inv_bc2 + eps) * step_size;
                        }
                    },
                )
            },
        );
    }
}

impl AdamConfig {
    fn hyper(&self) -> AdamHyper {
        AdamHyper {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: self.amsgrad,
            maximize: self.maximize,
            decoupled: self.decoupled_weight_decay,
        }
    }
}

impl Rule for AdamConfig {
    const NAME: &'static str = "adam";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "eps" => eps,
        "weight_decay" => weight_decay,
    );
    type Step = AdamStep;
    type Kernel = AdamKernel;

    fn validate(&self) -> Result<()> {
        self.hyper().validate()
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        self.hyper().buffer_names()
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdamStep {
        self.hyper().plan(t)
    }

    fn update(
        &self,
        step: &AdamStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        step.update(param, grad, buffers)
    }
}

gradus_core::register_optimizer!(
    "adam",
    "Adam / AMSGrad, adaptive moment estimation (torch.optim.Adam)",
    AdamConfig,
    crate::engine::build::build_rule::<AdamConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_steps, run_steps_with_grad, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), amsgrad in any::<bool>()) {
            let cfg = AdamConfig { lr: 0.0, amsgrad, weight_decay: 0.1, decoupled_weight_decay: true, ..AdamConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn first_step_moves_each_coordinate_by_about_lr(p in small_params(), lr in 1e-4f64..1e-1) {
            // m̂ = g and v̂ = g², so the first step is γ g / (|g| + ε) ≈ γ sign(g).
            let cfg = AdamConfig { lr, ..AdamConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            for (b, a) in before.iter().zip(&after) {
                if b.abs() > 1e-3 {
                    prop_assert!(((b - a).abs() - lr).abs() <= lr * 1e-4, "moved {} for lr {}", (b - a).abs(), lr);
                    prop_assert!((b - a).signum() == b.signum());
                }
            }
        }

        #[test]
        fn maximize_mirrors_the_step(p in small_params()) {
            let up = AdamConfig { lr: 0.01, maximize: true, ..AdamConfig::default() };
            let down = AdamConfig { lr: 0.01, ..AdamConfig::default() };
            let (b1, a1) = run_steps(up, &p, 1);
            let (_, a2) = run_steps(down, &p, 1);
            for ((b, x), y) in b1.iter().zip(&a1).zip(&a2) {
                prop_assert!(((x - b) + (y - b)).abs() <= 1e-12);
            }
        }
    }

    #[test]
    fn decoupled_decay_alone_shrinks_by_one_minus_lr_wd() {
        // A zero gradient leaves m = v = 0, so only the decay acts: θ (1 − γλ).
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.2,
            decoupled_weight_decay: true,
            ..AdamConfig::default()
        };
        let (before, after) = run_steps_with_grad(cfg, &[vec![1.0, -3.0]], 1, 0.0);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(*a, b * (1.0 - 0.1 * 0.2));
        }
    }

    #[test]
    fn invalid_betas_are_rejected_with_pytorch_wording() {
        let err = AdamConfig {
            betas: (0.9, 1.0),
            ..AdamConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.to_string(), "Invalid beta parameter at index 1: 1");
    }
}
