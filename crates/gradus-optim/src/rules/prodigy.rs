//! Prodigy, the parameter-free learning rate by D-adaptation (pytorch-optimizer's `Prodigy`).

use candle_core::{DType, Tensor};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay;
use crate::validate;

/// Prodigy: Adam whose step size is an estimate `d` of the distance to the solution, learned
/// from the gradients of the whole parameter group.
///
/// Per step, with d the group's estimate (it starts at `d0`), γ = `lr`, (β₁, β₂) = `betas`,
/// β₃ = `beta3` (√β₂ when `null`), ε = `eps`, λ = `weight_decay`, and for each parameter θ with
/// gradient g (negated when maximizing) and its value θ₀ at its first step (pytorch-optimizer
/// 4.1.0's `Prodigy`):
///
/// ```text
/// b   = (1 − β₁ᵏ) / √(1 − β₂ᵏ)  if bias_correction, else 1
/// dγ  = d γ / b
/// m ← β₁ m + d (1 − β₁) g                                    (exp_avg)
/// v ← β₂ v + d² (1 − β₂) g²                                  (exp_avg_sq)
/// s ← β₃ s + (d / d0) (d if safeguard_warmup, else dγ) g     (s)
/// N ← β₃ N + (d / d0) dγ Σ_group ⟨g, θ₀ − θ⟩                 (group: d_numerator)
/// D = Σ_group ‖s‖₁;   when D = 0 the step ends here
/// d̂ = d_coef N / D
/// d ← max(d, d̂) if d = d0;   d_max ← max(d_max, d̂);   d ← min(d_max, d · growth_rate)
/// θ ← θ (1 − λ dγ)             (1 − λ if fixed_decay)
/// θ ← θ − dγ m / (√v + d ε)    (dγ from the old d, d ε from the new)
/// ```
///
/// The sums Σ_group run over every parameter of the group that has a gradient, before any of
/// them moves: the rule sets [`Rule::GROUP_REDUCES`], and the engine runs both passes (the
/// fused kernel's reduce pass, or [`Rule::reduce`], over the group, then the update). k is the
/// reference's group step, which it advances twice per step: 1, 3, 5, ... (reproduced; it only
/// matters under `bias_correction`). The group's `d`, `d_max` and `d_numerator` are saved as
/// `param_groups.<g>.d`, ... Defaults are pytorch-optimizer 4.1.0's (`lr` 1: "leave LR set to 1
/// unless you encounter instability"). The update runs in the parameter's dtype; the sums and
/// d in f64.
///
/// Paper: Mishchenko and Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner"
/// (ICML 2024), <https://arxiv.org/abs/2306.06101>.
///
/// Differences from the reference: each parameter group has its own estimate d (the reference
/// shares group 0's across all groups), and a parameter's θ₀ is taken at its own first step
/// (the reference only at the optimizer's first). Not implemented (refused, naming the
/// option): `eps: null` (the reference's atan2 update) and `weight_decouple: false` with a
/// nonzero `weight_decay` (the reference adds λθ to the gradient after the moments have used
/// it, so it changes nothing but the gradient tensor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProdigyConfig {
    /// Learning rate γ, a multiplier of the estimated step d. Default: `1`.
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the moments. Default: `[0.9, 0.999]`.
    pub betas: (f64, f64),
    /// Decay rate β₃ of `s` and of the numerator of d̂; `null` means √β₂. Default: `null`.
    pub beta3: Option<f64>,
    /// Initial estimate d₀ of d. Default: `1e-6`.
    pub d0: f64,
    /// Coefficient of the estimate d̂. Default: `1`.
    pub d_coef: f64,
    /// Largest factor by which d may grow per step; `null` means no limit (the reference's
    /// `float('inf')`). Default: `null`.
    pub growth_rate: Option<f64>,
    /// Weight decay λ. Default: `0`.
    pub weight_decay: f64,
    /// Decay θ directly (AdamW style); only `true` is implemented with a nonzero decay.
    /// Default: `true`.
    pub weight_decouple: bool,
    /// Decoupled decay by `1 − λ` instead of `1 − λ dγ`. Default: `false`.
    pub fixed_decay: bool,
    /// Divide dγ by Adam's bias correction (1 − β₁ᵏ) / √(1 − β₂ᵏ). Default: `false`.
    pub bias_correction: bool,
    /// Leave γ out of `s`'s increment, against a too small D in warm-up. Default: `false`.
    pub safeguard_warmup: bool,
    /// ε, scaled by d, added to √v; `null` (atan2) is not implemented. Default: `1e-8`.
    pub eps: Option<f64>,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for ProdigyConfig {
    fn default() -> Self {
        ProdigyConfig {
            lr: 1.0,
            betas: (0.9, 0.999),
            beta3: None,
            d0: 1e-6,
            d_coef: 1.0,
            growth_rate: None,
            weight_decay: 0.0,
            weight_decouple: true,
            fixed_decay: false,
            bias_correction: false,
            safeguard_warmup: false,
            eps: Some(1e-8),
            maximize: false,
        }
    }
}

/// Prodigy as an optimizer (also a `candle_nn::Optimizer`).
pub type Prodigy = GroupedOptimizer<ProdigyConfig>;

/// The group scalars: the estimate d, its running maximum, and the numerator of d̂.
const GROUP_SCALARS: [&str; 3] = ["d", "d_max", "d_numerator"];

/// The coefficients of one Prodigy step of one parameter.
#[derive(Debug, Clone, Copy)]
pub struct ProdigyStep {
    beta1: f64,
    beta2: f64,
    beta3: f64,
    /// d (1 − β₁).
    m_coef: f64,
    /// d² (1 − β₂).
    v_coef: f64,
    /// (d / d0) · (d or dγ).
    s_coef: f64,
    /// (d / d0) · dγ, the weight of ⟨g, θ₀ − θ⟩ in the numerator.
    dot_coef: f64,
    /// dγ = d γ / b, from the d before the step.
    d_lr: f64,
    /// The decoupled decay factor 1 − λ dγ (or 1 − λ), when λ ≠ 0.
    decay: Option<f64>,
    eps: f64,
    /// d after the step ([`Rule::complete`]); ε is scaled by it.
    d_next: f64,
    maximize: bool,
}

impl ProdigyConfig {
    fn beta3(&self) -> f64 {
        self.beta3.unwrap_or_else(|| self.betas.1.sqrt())
    }
}

/// Σ x of a tensor, in f64.
fn sum_f64(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?)
}

impl Rule for ProdigyConfig {
    const NAME: &'static str = "prodigy";
    crate::hyperparameters!(
        "lr" => lr,
        "beta1" => betas.0,
        "beta2" => betas.1,
        "weight_decay" => weight_decay,
        "d_coef" => d_coef,
    );
    type Step = ProdigyStep;
    type Kernel = ProdigyKernel;
    const GROUP_REDUCES: bool = true;

    fn validate(&self) -> Result<()> {
        validate::lr(self.lr)?;
        validate::betas(self.betas)?;
        if let Some(beta3) = self.beta3 {
            validate::in_range("beta3", beta3, 0.0, 1.0)?;
        }
        validate::weight_decay(self.weight_decay)?;
        validate::non_negative("d_coef", self.d_coef)?;
        if !(self.d0 > 0.0 && self.d0.is_finite()) {
            return Err(Error::InvalidHyperparameter(format!(
                "Invalid d0 value: {}",
                self.d0
            )));
        }
        if let Some(g) = self.growth_rate {
            if g.is_nan() || g <= 0.0 {
                return Err(Error::InvalidHyperparameter(format!(
                    "Invalid growth_rate value: {g}"
                )));
            }
        }
        match self.eps {
            Some(eps) => validate::eps(eps)?,
            None => {
                return Err(Error::InvalidHyperparameter(
                    "prodigy: `eps: null` (the atan2 update) is not implemented; give a \
                     number (default 1e-8)"
                        .into(),
                ))
            }
        }
        if !self.weight_decouple && self.weight_decay != 0.0 {
            return Err(Error::InvalidHyperparameter(
                "prodigy: `weight_decouple: false` with a nonzero weight_decay is not \
                 implemented (the reference adds the decay to the gradient after the moments \
                 have used it, so it has no effect); use the default `true`"
                    .into(),
            ));
        }
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["p0", "s", "exp_avg", "exp_avg_sq"]
    }

    fn group_scalar_names(&self) -> Vec<&'static str> {
        GROUP_SCALARS.to_vec()
    }

    fn initial_group_scalar(&self, name: &str) -> f64 {
        match name {
            "d_numerator" => 0.0,
            _ => self.d0,
        }
    }

    fn plan(&self, t: u64, scalars: &mut Scalars) -> ProdigyStep {
        let group: Scalars = GROUP_SCALARS
            .iter()
            .map(|n| (*n, self.initial_group_scalar(n)))
            .collect();
        self.plan_in_group(t, scalars, &[], &group)
    }

    fn plan_in_group(
        &self,
        t: u64,
        _scalars: &mut Scalars,
        _dims: &[usize],
        group: &Scalars,
    ) -> ProdigyStep {
        let (beta1, beta2) = self.betas;
        let d = group.get("d").copied().unwrap_or(self.d0);
        let bias = if self.bias_correction {
            // The reference's group step: 1, 3, 5, ... (advanced twice per step).
            let k = (2 * t - 1) as i32;
            (1.0 - beta1.powi(k)) / (1.0 - beta2.powi(k)).sqrt()
        } else {
            1.0
        };
        let d_lr = d * self.lr / bias;
        let ratio = d / self.d0;
        ProdigyStep {
            beta1,
            beta2,
            beta3: self.beta3(),
            m_coef: d * (1.0 - beta1),
            v_coef: d * d * (1.0 - beta2),
            s_coef: ratio * if self.safeguard_warmup { d } else { d_lr },
            dot_coef: ratio * d_lr,
            d_lr,
            decay: (self.weight_decay != 0.0)
                .then_some(1.0 - self.weight_decay * if self.fixed_decay { 1.0 } else { d_lr }),
            eps: self.eps.unwrap_or(0.0),
            d_next: d,
            maximize: self.maximize,
        }
    }

    fn reduce(
        &self,
        step: &ProdigyStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Sums> {
        let grad = decay::signed(grad, step.maximize)?;
        let p0 = buffers.get_or("p0", || Ok(param.copy()?))?;
        let dot = sum_f64(&(&grad * (p0 - param)?)?)? * step.dot_coef;
        let m = buffers.get_or("exp_avg", || Ok(grad.zeros_like()?))?;
        buffers.set("exp_avg", ((m * step.beta1)? + (&grad * step.m_coef)?)?);
        let v = buffers.get_or("exp_avg_sq", || Ok(grad.zeros_like()?))?;
        buffers.set(
            "exp_avg_sq",
            ((v * step.beta2)? + (grad.sqr()? * step.v_coef)?)?,
        );
        let s = buffers.get_or("s", || Ok(grad.zeros_like()?))?;
        let s = ((s * step.beta3)? + (&grad * step.s_coef)?)?;
        let abs = sum_f64(&s.abs()?)?;
        buffers.set("s", s);
        Ok([dot, abs, 0.0, 0.0])
    }

    fn finish_group(&self, group: &mut Scalars, totals: &Sums) -> bool {
        let [dot, abs, ..] = *totals;
        let numerator = self.beta3() * group.get("d_numerator").copied().unwrap_or(0.0) + dot;
        group.insert("d_numerator", numerator);
        if abs == 0.0 {
            return false;
        }
        let mut d = group.get("d").copied().unwrap_or(self.d0);
        let d_hat = self.d_coef * numerator / abs;
        if d == self.d0 {
            d = d.max(d_hat);
        }
        let d_max = group.get("d_max").copied().unwrap_or(self.d0).max(d_hat);
        let d = d_max.min(d * self.growth_rate.unwrap_or(f64::INFINITY));
        group.insert("d", d);
        group.insert("d_max", d_max);
        true
    }

    fn complete(&self, step: &mut ProdigyStep, group: &Scalars) {
        step.d_next = group.get("d").copied().unwrap_or(self.d0);
    }

    fn update(
        &self,
        step: &ProdigyStep,
        param: &Tensor,
        _grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let (Some(m), Some(v)) = (buffers.get("exp_avg"), buffers.get("exp_avg_sq")) else {
            return Err(Error::Unsupported(
                "prodigy: the update pass ran before the reduce pass".into(),
            ));
        };
        let param = match step.decay {
            Some(factor) => (param * factor)?,
            None => param.clone(),
        };
        let denom = (v.sqrt()? + step.d_next * step.eps)?;
        Ok((&param - ((m / denom)? * step.d_lr)?)?)
    }
}

/// Prodigy's fused kernel over `p0`, `s`, `exp_avg`, `exp_avg_sq` (in that order): the reduce
/// pass updates the moments and `s` and sums (d/d0) dγ ⟨g, θ₀ − θ⟩ and ‖s‖₁; the apply pass
/// decays and steps θ with the group's new d.
#[derive(Debug, Clone, Copy)]
pub struct ProdigyKernel;

/// Independent accumulators of each sum in the reduce pass.
const LANES: usize = 8;

impl Kernel<ProdigyStep> for ProdigyKernel {
    const REDUCES: bool = true;

    #[inline(always)]
    fn reduce<T: Elem>(step: &ProdigyStep, chunk: Chunk<'_, T>, sums: &mut Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [p0, s, m, v],
            fresh,
        } = chunk;
        let n = p.len();
        let (g, p0, s, m, v) = (&g[..n], &mut p0[..n], &mut s[..n], &mut m[..n], &mut v[..n]);
        if fresh {
            p0.copy_from_slice(p);
        }
        let sg = sign::<T>(step.maximize);
        let (b1, b2, b3) = (T::of(step.beta1), T::of(step.beta2), T::of(step.beta3));
        let (cm, cv, cs) = (T::of(step.m_coef), T::of(step.v_coef), T::of(step.s_coef));
        let (mut dot, mut abs) = ([0.0f64; LANES], [0.0f64; LANES]);
        let mut at = |i: usize, lane: usize| {
            let gi = g[i] * sg;
            dot[lane] += (gi * (p0[i] - p[i])).to_f64();
            m[i] = m[i] * b1 + gi * cm;
            v[i] = v[i] * b2 + gi * gi * cv;
            let si = s[i] * b3 + gi * cs;
            s[i] = si;
            abs[lane] += si.abs().to_f64();
        };
        let whole = n / LANES * LANES;
        for base in (0..whole).step_by(LANES) {
            for lane in 0..LANES {
                at(base + lane, lane);
            }
        }
        for i in whole..n {
            at(i, 0);
        }
        sums[0] += dot.iter().sum::<f64>() * step.dot_coef;
        sums[1] += abs.iter().sum::<f64>();
    }

    #[inline(always)]
    fn apply<T: Elem>(step: &ProdigyStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            state: [_, _, m, v],
            ..
        } = chunk;
        let n = p.len();
        let (m, v) = (&m[..n], &v[..n]);
        let (eps, lr) = (T::of(step.d_next * step.eps), T::of(step.d_lr));
        // One loop per decay case: a per-element flag keeps LLVM from vectorizing.
        match step.decay {
            Some(factor) => {
                let factor = T::of(factor);
                for i in 0..n {
                    p[i] = p[i] * factor - m[i] / (v[i].sqrt() + eps) * lr;
                }
            }
            None => {
                for i in 0..n {
                    p[i] = p[i] - m[i] / (v[i].sqrt() + eps) * lr;
                }
            }
        }
    }
}

gradus_core::register_optimizer!(
    "prodigy",
    "Prodigy, Adam with a step size learned by D-adaptation over the group (pytorch-optimizer Prodigy)",
    ProdigyConfig,
    crate::engine::build::build_rule::<ProdigyConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_steps, small_params};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1) {
            let cfg = ProdigyConfig { lr: 0.0, weight_decay: wd, ..ProdigyConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn the_first_step_moves_each_coordinate_by_d0_lr(p in small_params(), lr in 0.1f64..2.0) {
            // Step 1: θ₀ = θ, so N = 0 and d̂ = 0 ≤ d0: d stays d0, m = d0 (1 − β₁) g and
            // √v = d0 √(1 − β₂) |g|, so each coordinate moves by d0 γ (1 − β₁)/√(1 − β₂)
            // against its gradient's sign (ε d0 is negligible).
            let cfg = ProdigyConfig { lr, ..ProdigyConfig::default() };
            let (before, after) = run_steps(cfg, &p, 1);
            let expected = 1e-6 * lr * 0.1 / 0.001f64.sqrt();
            for (b, a) in before.iter().zip(&after) {
                if b.abs() > 1e-3 {
                    let moved = b - a;
                    prop_assert!((moved - expected * b.signum()).abs() <= expected * 1e-4, "moved {moved}");
                }
            }
        }

        #[test]
        fn the_estimate_never_shrinks_and_respects_growth_rate(p in small_params(), growth in 1.0f64..3.0) {
            // d = min(d_max, d · growth_rate) with d_max non-decreasing: d never decreases, and
            // once it has left d0 it grows at most by `growth_rate` per step (while d = d0 it
            // first jumps to max(d0, d̂), as in the reference).
            let vars: Vec<_> = p.iter().enumerate()
                .map(|(i, v)| gradus_core::NamedVar::new(format!("p{i}"), candle_core::Var::new(v.as_slice(), &candle_core::Device::Cpu).unwrap()))
                .collect();
            let cfg = ProdigyConfig { growth_rate: Some(growth), ..ProdigyConfig::default() };
            let mut opt = Prodigy::from_named(vars.clone(), cfg).unwrap();
            let mut d_prev = 1e-6;
            for _ in 0..8 {
                let mut grads = candle_core::backprop::GradStore::default();
                for v in &vars {
                    grads.insert(v.var.as_tensor(), (v.var.as_tensor() * 2.0).unwrap());
                }
                opt.apply(&grads).unwrap();
                let d = opt.groups[0].scalars["d"];
                prop_assert!(d >= d_prev * (1.0 - 1e-12), "d fell from {d_prev} to {d}");
                if d_prev != 1e-6 {
                    prop_assert!(d <= d_prev * growth * (1.0 + 1e-12), "d grew from {d_prev} to {d}");
                }
                d_prev = d;
            }
        }
    }

    #[test]
    fn unimplemented_options_are_refused_by_name() {
        let atan2 = ProdigyConfig {
            eps: None,
            ..ProdigyConfig::default()
        };
        let err = atan2.validate().unwrap_err().to_string();
        assert!(
            err.contains("eps") && err.contains("not implemented"),
            "{err}"
        );
        let coupled = ProdigyConfig {
            weight_decouple: false,
            weight_decay: 0.1,
            ..ProdigyConfig::default()
        };
        let err = coupled.validate().unwrap_err().to_string();
        assert!(
            err.contains("weight_decouple") && err.contains("not implemented"),
            "{err}"
        );
    }

    #[test]
    fn the_estimate_is_saved_per_group_and_restored() {
        let var = candle_core::Var::new(&[1.0f64, -2.0, 0.5], &candle_core::Device::Cpu).unwrap();
        let vars = vec![gradus_core::NamedVar::new("x", var.clone())];
        let mut opt = Prodigy::from_named(vars.clone(), ProdigyConfig::default()).unwrap();
        for _ in 0..4 {
            let mut grads = candle_core::backprop::GradStore::default();
            grads.insert(var.as_tensor(), (var.as_tensor() * 2.0).unwrap());
            opt.apply(&grads).unwrap();
        }
        let sd = opt.state_dict().unwrap();
        let d = sd
            .get("param_groups.0.d")
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d > 1e-6, "d did not grow: {d}");
        let mut fresh = Prodigy::from_named(vars, ProdigyConfig::default()).unwrap();
        fresh.load_state_dict(&sd).unwrap();
        assert_eq!(fresh.groups[0].scalars, opt.groups[0].scalars);
    }
}
