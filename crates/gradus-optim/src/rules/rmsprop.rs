//! RMSprop, plain or centered, with optional momentum (`torch.optim.RMSprop`).

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

/// RMSprop: divide the gradient by a running RMS of recent gradients.
///
/// ```text
/// g ← −g if maximize;   g ← g + λ θ if λ ≠ 0
/// v ← α v + (1 − α) g²                         (square_avg)
/// ḡ ← α ḡ + (1 − α) g,  ṽ ← v − ḡ²             if centered (grad_avg), else ṽ ← v
/// b ← μ b + g / (√ṽ + ε),  θ ← θ − γ b          if μ > 0 (momentum_buffer)
/// θ ← θ − γ g / (√ṽ + ε)                        otherwise
/// ```
///
/// γ = `lr`, α = `alpha`, ε = `eps`, λ = `weight_decay`, μ = `momentum`. Defaults are
/// `torch.optim.RMSprop`'s (PyTorch 2.15): lr `1e-2`, alpha `0.99`. Source: Hinton, Lecture 6e of
/// "Neural Networks for Machine Learning" (2012); centered form: Graves (2013).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RmspropConfig {
    /// Learning rate γ. Default: `1e-2` (torch.optim.RMSprop).
    pub lr: f64,
    /// Smoothing constant α. Default: `0.99`.
    pub alpha: f64,
    /// ε added to the RMS. Default: `1e-8`.
    pub eps: f64,
    /// Coupled L2 weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Momentum μ. Default: `0`.
    pub momentum: f64,
    /// Normalize by the centered second moment (an estimate of the variance). Default: `false`.
    pub centered: bool,
    /// Maximize the objective. Default: `false`.
    pub maximize: bool,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        RmspropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// RMSprop as an optimizer (also a `candle_nn::Optimizer`).
pub type Rmsprop = GroupedOptimizer<RmspropConfig>;

impl Rule for RmspropConfig {
    const NAME: &'static str = "rmsprop";
    crate::hyperparameters!(
        "lr" => lr,
        "alpha" => alpha,
        "eps" => eps,
        "weight_decay" => weight_decay,
        "momentum" => momentum,
    );
    type Step = RmspropStep;
    type Kernel = RmspropKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::eps(self.eps)?;
        validate::momentum(self.momentum)?;
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("alpha", self.alpha)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        let mut names = vec!["square_avg"];
        if self.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        if self.centered {
            names.push("grad_avg");
        }
        names
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> RmspropStep {
        RmspropStep {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            centered: self.centered,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &RmspropStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, step.maximize)?,
            param,
            step.weight_decay,
        )?;
        let v = moments::ema_sq(buffers, "square_avg", &grad, step.alpha)?;
        let v = if step.centered {
            let mean = moments::ema(buffers, "grad_avg", &grad, step.alpha)?;
            (v - mean.sqr()?)?
        } else {
            v
        };
        let avg = (v.sqrt()? + step.eps)?;
        if step.momentum > 0.0 {
            let buf = buffers.get_or("momentum_buffer", || Ok(grad.zeros_like()?))?;
            let buf = ((buf * step.momentum)? + (&grad / avg)?)?;
            buffers.set("momentum_buffer", buf.clone());
            Ok((param - (buf * step.lr)?)?)
        } else {
            Ok((param - ((grad / avg)? * step.lr)?)?)
        }
    }
}

/// The coefficients of one RMSprop step: the hyperparameters as they are.
#[derive(Debug, Clone, Copy)]
pub struct RmspropStep {
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    maximize: bool,
}

/// RMSprop's fused kernel (plain or centered, with or without momentum). Buffers, in order:
/// `square_avg`, `momentum_buffer` (μ > 0), `grad_avg` (centered).
#[derive(Debug, Clone, Copy)]
pub struct RmspropKernel;

impl Kernel<RmspropStep> for RmspropKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &RmspropStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [a, b, c, _],
            ..
        } = chunk;
        let n = p.len();
        let g = &g[..n];
        let (wd, has_wd) = (T::of(step.weight_decay), step.weight_decay != 0.0);
        let (alpha, one_minus, eps, lr) = (
            T::of(step.alpha),
            T::of(1.0 - step.alpha),
            T::of(step.eps),
            T::of(step.lr),
        );
        let v = &mut a[..n];
        let has_momentum = step.momentum > 0.0;
        let (buf, mean): (&mut [T], &mut [T]) = match (has_momentum, step.centered) {
            (true, true) => (&mut b[..n], &mut c[..n]),
            (true, false) => (&mut b[..n], Default::default()),
            (false, true) => (Default::default(), &mut b[..n]),
            (false, false) => (Default::default(), Default::default()),
        };
        let mu = T::of(step.momentum);
        specialize2(
            step.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                match (has_momentum, step.centered) {
                    (false, false) => {
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                            let vi = v[i] * alpha + gi * gi * one_minus;
                            v[i] = vi;
                            p[i] = p[i] - gi / (vi.sqrt() + eps) * lr;
                        }
                    }
                    (false, true) => {
                        let mean = &mut mean[..n];
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                            let vi = v[i] * alpha + gi * gi * one_minus;
                            v[i] = vi;
                            let mi = mean[i] + (gi - mean[i]) * one_minus;
                            mean[i] = mi;
                            p[i] = p[i] - gi / ((vi - mi * mi).sqrt() + eps) * lr;
                        }
                    }
                    (true, centered) => {
                        let buf = &mut buf[..n];
                        for i in 0..n {
                            let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                            let vi = v[i] * alpha + gi * gi * one_minus;
                            v[i] = vi;
                            let var = if centered {
                                let mi = mean[i] + (gi - mean[i]) * one_minus;
                                mean[i] = mi;
                                vi - mi * mi
                            } else {
                                vi
                            };
                            let bi = buf[i] * mu + gi / (var.sqrt() + eps);
                            buf[i] = bi;
                            p[i] = p[i] - bi * lr;
                        }
                    }
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "rmsprop",
    "RMSprop, plain or centered, with optional momentum (torch.optim.RMSprop)",
    RmspropConfig,
    crate::engine::build::build_rule::<RmspropConfig>
);
