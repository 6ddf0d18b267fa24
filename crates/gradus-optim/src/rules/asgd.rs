//! ASGD, averaged stochastic gradient descent (`torch.optim.ASGD`).

use candle_core::Tensor;
use gradus_core::Result;
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, specialize2, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay::{self, effective_grad};
use crate::validate;

/// ASGD: SGD with a decaying step size and a running (Polyak–Ruppert) average of the iterates.
///
/// Per parameter θ with gradient g at step t (PyTorch's single-tensor formulation; η and μ are
/// per-parameter scalars, η₁ = γ and μ₁ = 1):
///
/// ```text
/// g ← −g                                       if maximize
/// g ← g + λ_wd θ                               if weight_decay ≠ 0
/// θ ← θ (1 − λ ηₜ)
/// θ ← θ − ηₜ g
/// ā ← θ  if μₜ = 1,  else  ā ← ā + μₜ (θ − ā)  (ax)
/// ηₜ₊₁ ← γ / (1 + λ γ t)^α
/// μₜ₊₁ ← 1 / max(1, t − t₀)
/// ```
///
/// γ = `lr`, λ = `lambd`, α = `alpha`, t₀ = `t0`, λ_wd = `weight_decay`. State: the tensor `ax`
/// (the average ā, which the parameters do not follow: evaluate with it) and the scalars `eta`
/// and `mu`, kept in f64 (PyTorch keeps them as 0-d tensors of its default dtype), all under
/// PyTorch's names. Defaults are `torch.optim.ASGD`'s (PyTorch 2.15): lr `1e-2`, lambd `1e-4`,
/// alpha `0.75`, t0 `1e6`, weight_decay `0`. Paper: Polyak & Juditsky, "Acceleration of
/// Stochastic Approximation by Averaging" (SIAM J. Control Optim. 1992).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AsgdConfig {
    /// Learning rate γ. Default: `1e-2`.
    pub lr: f64,
    /// Decay term λ. Default: `1e-4`.
    pub lambd: f64,
    /// Power α of the η update. Default: `0.75`.
    pub alpha: f64,
    /// Step t₀ at which averaging starts. Default: `1e6`.
    pub t0: f64,
    /// Coupled L2 weight decay. Default: `0`.
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for AsgdConfig {
    fn default() -> Self {
        AsgdConfig {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// ASGD as an optimizer (also a `candle_nn::Optimizer`).
pub type Asgd = GroupedOptimizer<AsgdConfig>;

/// The coefficients of one ASGD step: this step's η and μ (read from the scalar state before
/// [`Rule::plan`] advanced it).
#[derive(Debug, Clone, Copy)]
pub struct AsgdStep {
    eta: f64,
    mu: f64,
    /// 1 − λ η.
    shrink: f64,
    weight_decay: f64,
    maximize: bool,
}

impl Rule for AsgdConfig {
    const NAME: &'static str = "asgd";
    crate::hyperparameters!(
        "lr" => lr,
        "lambd" => lambd,
        "alpha" => alpha,
        "t0" => t0,
        "weight_decay" => weight_decay,
    );
    type Step = AsgdStep;
    type Kernel = AsgdKernel;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::weight_decay(self.weight_decay)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["ax"]
    }

    fn scalar_names(&self) -> Vec<&'static str> {
        vec!["eta", "mu"]
    }

    /// This step's η and μ (γ and 1 at the first step), then the next step's, as PyTorch
    /// computes them after the update.
    fn plan(&self, t: u64, scalars: &mut Scalars) -> AsgdStep {
        let eta = scalars.get("eta").copied().unwrap_or(self.lr);
        let mu = scalars.get("mu").copied().unwrap_or(1.0);
        let step = t as f64;
        let next_eta = self.lr / (1.0 + self.lambd * self.lr * step).powf(self.alpha);
        let next_mu = 1.0 / (step - self.t0).max(1.0);
        scalars.insert("eta", next_eta);
        scalars.insert("mu", next_mu);
        AsgdStep {
            eta,
            mu,
            shrink: 1.0 - self.lambd * eta,
            weight_decay: self.weight_decay,
            maximize: self.maximize,
        }
    }

    fn update(
        &self,
        step: &AsgdStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let grad = decay::coupled(
            &decay::signed(grad, step.maximize)?,
            param,
            step.weight_decay,
        )?;
        let next = ((param * step.shrink)? - (grad * step.eta)?)?;
        let ax = buffers.get_or("ax", || Ok(param.zeros_like()?))?;
        let ax = if step.mu == 1.0 {
            next.clone()
        } else {
            (&ax + ((&next - &ax)? * step.mu)?)?
        };
        buffers.set("ax", ax);
        Ok(next)
    }
}

/// ASGD's fused kernel (the elementwise part; η and μ come planned). Buffer: `ax`.
#[derive(Debug, Clone, Copy)]
pub struct AsgdKernel;

impl Kernel<AsgdStep> for AsgdKernel {
    #[inline(always)]
    fn apply<T: Elem>(step: &AsgdStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [ax, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, ax) = (&g[..n], &mut ax[..n]);
        let (wd, has_wd) = (T::of(step.weight_decay), step.weight_decay != 0.0);
        let (shrink, eta, mu) = (T::of(step.shrink), T::of(step.eta), T::of(step.mu));
        let copy = step.mu == 1.0;
        specialize2(
            step.maximize,
            has_wd,
            #[inline(always)]
            |maximize, has_wd| {
                let sg = sign::<T>(maximize);
                for i in 0..n {
                    let gi = effective_grad(g[i], p[i], sg, wd, has_wd);
                    let pi = p[i] * shrink - gi * eta;
                    p[i] = pi;
                    ax[i] = if copy { pi } else { ax[i] + (pi - ax[i]) * mu };
                }
            },
        );
    }
}

gradus_core::register_optimizer!(
    "asgd",
    "ASGD, averaged stochastic gradient descent (torch.optim.ASGD)",
    AsgdConfig,
    crate::engine::build::build_rule::<AsgdConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, run_steps, small_params};
    use candle_core::{Device, Var};
    use gradus_core::NamedVar;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1) {
            let cfg = AsgdConfig { lr: 0.0, weight_decay: wd, ..AsgdConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn first_step_is_sgd_with_decay(p in small_params(), lr in 0.0f64..0.5) {
            // η₁ = γ: θ (1 − λγ) − γ g with g = 2θ.
            let cfg = AsgdConfig { lr, ..AsgdConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            let expected: Vec<f64> = before.iter().map(|t| t * (1.0 - 1e-4 * lr) - 2.0 * t * lr).collect();
            assert_close(&after, &expected, 1e-12);
        }

        /// With t₀ = 0, μ is 1 at steps 1 and 2 and 1/(t − 1) after: ā is the mean of the
        /// iterates from the second on.
        #[test]
        fn ax_is_the_mean_of_the_iterates(p in small_params(), steps in 1usize..8) {
            let cfg = AsgdConfig { lr: 0.05, t0: 0.0, ..AsgdConfig::default() };
            let var = Var::new(p[0].as_slice(), &Device::Cpu).unwrap();
            let mut opt = Asgd::from_named(vec![NamedVar::new("w", var.clone())], cfg).unwrap();
            let mut iterates = Vec::new();
            for _ in 0..steps {
                let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.apply(&loss.backward().unwrap()).unwrap();
                iterates.push(var.as_tensor().to_vec1::<f64>().unwrap());
            }
            let averaged = &iterates[steps.min(2) - 1..];
            let mean: Vec<f64> = (0..p[0].len())
                .map(|i| averaged.iter().map(|v| v[i]).sum::<f64>() / averaged.len() as f64)
                .collect();
            let ax = opt.param_state("w").unwrap().buffers.get("ax").unwrap().to_vec1::<f64>().unwrap();
            assert_close(&ax, &mean, 1e-12);
        }
    }

    #[test]
    fn eta_and_mu_follow_pytorch_schedules() {
        let cfg = AsgdConfig {
            lr: 0.1,
            lambd: 0.01,
            alpha: 0.5,
            t0: 2.0,
            ..AsgdConfig::default()
        };
        let mut scalars = Scalars::new();
        let first = cfg.plan(1, &mut scalars);
        assert_eq!((first.eta, first.mu), (0.1, 1.0));
        for t in 2..6u64 {
            let s = cfg.plan(t, &mut scalars);
            let prev = (t - 1) as f64;
            assert_eq!(s.eta, 0.1 / (1.0 + 0.01 * 0.1 * prev).powf(0.5));
            assert_eq!(s.mu, 1.0 / (prev - 2.0).max(1.0));
        }
    }
}
