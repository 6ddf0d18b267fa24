//! Adafactor (`torch.optim.Adafactor`).

use candle_core::{DType, Tensor};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::{sign, Chunk, Kernel, Sums};
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::decay;

/// Adafactor: a second-moment estimate factored into row and column statistics for matrices
/// (memory O(n + m) instead of O(nm)), relative step sizes and update clipping.
///
/// Per parameter θ with gradient G at step t (PyTorch's single-tensor formulation; for a tensor
/// of rank > 2 the last two dimensions are factored, batched over the others):
///
/// ```text
/// G ← −G                                           if maximize
/// w ← t^τ                                          (1 − β̂₂ₜ)
/// ρ ← min(γ, 1/√t)
/// α ← max(ε₂, RMS(θ)) ρ                            (θ before the decay)
/// θ ← θ (1 − γ λ)                                  if λ ≠ 0
/// rank ≥ 2:  R ← lerp(R, mean_cols(G²), w)         (row_var, shape [..., n, 1])
///            C ← lerp(C, mean_rows(G²), w)         (col_var, shape [..., 1, m])
///            V̂ ← R C / max(mean(R), ε₁)
/// else:      V ← lerp(V, G², w);  V̂ ← V            (variance)
/// U ← G / √max(V̂, ε₁²)
/// θ ← θ − α / max(1, RMS(U)/d) · U
/// ```
///
/// γ = `lr`, τ = `beta2_decay`, (ε₁, ε₂) = `eps` (ε₁ `null`: the machine epsilon of the
/// parameter's dtype), d = `d`, λ = `weight_decay`. `lerp(a, b, w)` is PyTorch's (`a + w(b − a)`
/// for |w| < ½, else `b − (1 − w)(b − a)`), so the first step takes the statistics as they
/// are. State: `row_var` and `col_var` for parameters of rank ≥ 2, `variance` for vectors
/// and scalars (PyTorch's names and shapes). Defaults are `torch.optim.Adafactor`'s (PyTorch
/// 2.15): lr `1e-2`, beta2_decay `-0.8`, eps `[null, 1e-3]`, d `1`, weight_decay `0`. Paper:
/// Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost" (ICML 2018);
/// PyTorch's variant uses lr as the cap of ρ and for decoupled weight decay, and applies ε₁
/// after the factored estimate.
///
/// Paths: vectors and scalars (the unfactored second moment) have a fused CPU kernel,
/// [`AdafactorKernel`], in two passes: the reduce pass updates V and sums θ² (before the decay)
/// and U², the apply pass takes α and the clipping from those sums. Parameters of rank ≥ 2 take
/// the reference path on every path ([`Rule::kernel_applies`]): their row and column statistics
/// are reductions along the matrix's dimensions over state that is not of its shape, which
/// stays on Candle ops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdafactorConfig {
    /// Learning rate γ: the cap of the relative step size ρ, and the decay's factor.
    /// Default: `1e-2`.
    pub lr: f64,
    /// Decay rate τ ≤ 0 of β₂ (1 − β̂₂ₜ = t^τ). Default: `-0.8`.
    pub beta2_decay: f64,
    /// (ε₁, ε₂): ε₁ bounds the variance estimate (`null`: the dtype's machine epsilon), ε₂
    /// the parameter scale. Default: `[null, 1e-3]`.
    pub eps: (Option<f64>, f64),
    /// Clipping threshold d ≥ 1 of the update's RMS. Default: `1`.
    pub d: f64,
    /// Decoupled weight decay λ (θ ← θ(1 − γλ)). Default: `0`.
    pub weight_decay: f64,
    /// PyTorch's choice of implementation; accepted and ignored (both compute the same
    /// update). Default: `null`.
    pub foreach: Option<bool>,
    /// Maximize the objective instead of minimizing. Default: `false`.
    pub maximize: bool,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        AdafactorConfig {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps: (None, 1e-3),
            d: 1.0,
            weight_decay: 0.0,
            foreach: None,
            maximize: false,
        }
    }
}

/// Adafactor as an optimizer (also a `candle_nn::Optimizer`).
pub type Adafactor = GroupedOptimizer<AdafactorConfig>;

/// The coefficients of one Adafactor step.
#[derive(Debug, Clone, Copy)]
pub struct AdafactorStep {
    /// 1 − β̂₂ₜ = t^τ, the weight of the new statistics.
    weight: f64,
    /// ρ = min(γ, 1/√t).
    rho: f64,
    /// 1 − γλ.
    shrink: f64,
    weight_decay: f64,
    eps1: Option<f64>,
    eps2: f64,
    d: f64,
    maximize: bool,
    /// Elements of the parameter (the RMS values' n).
    count: usize,
}

/// `value >= low`, false for NaN (PyTorch's `not low <= value` rejects NaN).
fn at_least(value: f64, low: f64) -> bool {
    value >= low
}

fn invalid(message: String) -> Error {
    Error::InvalidHyperparameter(message)
}

/// `t / v` as a true division (Candle's `t / f64` multiplies by the reciprocal).
fn div_scalar(t: &Tensor, v: f64) -> Result<Tensor> {
    let v = Tensor::new(v, t.device())?.to_dtype(t.dtype())?;
    Ok(t.broadcast_div(&v)?)
}

/// PyTorch's `a.lerp(b, w)` for a scalar weight.
pub(crate) fn lerp(a: &Tensor, b: &Tensor, w: f64) -> Result<Tensor> {
    let diff = (b - a)?;
    Ok(if w.abs() < 0.5 {
        (a + (diff * w)?)?
    } else {
        (b - (diff * (1.0 - w))?)?
    })
}

/// ‖t‖₂ as an f64.
fn norm(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?
        .sum_all()?
        .sqrt()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// The machine epsilon of `dtype` (PyTorch's `torch.finfo(dtype).eps`).
fn machine_eps(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 9.765625e-4,
        DType::BF16 => 7.8125e-3,
        DType::F32 => f32::EPSILON as f64,
        _ => f64::EPSILON,
    }
}

/// The factored dimensions' sizes (rows, columns) of a parameter of rank ≥ 2.
fn factored(dims: &[usize]) -> Option<(usize, usize)> {
    (dims.len() >= 2).then(|| (dims[dims.len() - 2], dims[dims.len() - 1]))
}

impl Rule for AdafactorConfig {
    const NAME: &'static str = "adafactor";
    crate::hyperparameters!(
        "lr" => lr,
        "beta2_decay" => beta2_decay,
        "eps2" => eps.1,
        "d" => d,
        "weight_decay" => weight_decay,
    );
    type Step = AdafactorStep;
    type Kernel = AdafactorKernel;

    fn validate(&self) -> Result<()> {
        if !at_least(self.lr, 0.0) {
            return Err(invalid(format!(
                "Learning rate should be >= 0 but is: {}",
                self.lr
            )));
        }
        if !at_least(0.0, self.beta2_decay) {
            return Err(invalid(format!(
                "beta2_decay should be <= 0 but is: {}",
                self.beta2_decay
            )));
        }
        if let Some(eps1) = self.eps.0 {
            if !at_least(eps1, 0.0) {
                return Err(invalid(format!("epsilon1 should be >= 0 but is: {eps1}")));
            }
        }
        if !at_least(self.eps.1, 0.0) {
            return Err(invalid(format!(
                "epsilon2 should be >= 0 but is: {}",
                self.eps.1
            )));
        }
        if !at_least(self.d, 1.0) {
            return Err(invalid(format!(
                "Clipping threshold d should be >= 1 but is: {}",
                self.d
            )));
        }
        if !at_least(self.weight_decay, 0.0) {
            return Err(invalid(format!(
                "weight_decay should be >= 0 but is: {}",
                self.weight_decay
            )));
        }
        Ok(())
    }

    /// The buffers of a vector or scalar parameter; see [`Rule::buffer_shapes`] for matrices.
    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["variance"]
    }

    /// `row_var` (`[..., n, 1]`) and `col_var` (`[..., 1, m]`) for a parameter of rank ≥ 2,
    /// else `variance` of the parameter's shape.
    fn buffer_shapes(&self, dims: &[usize]) -> Vec<(&'static str, Vec<usize>)> {
        if factored(dims).is_some() {
            let mut row = dims.to_vec();
            let mut col = dims.to_vec();
            let rank = dims.len();
            row[rank - 1] = 1;
            col[rank - 2] = 1;
            vec![("row_var", row), ("col_var", col)]
        } else {
            vec![("variance", dims.to_vec())]
        }
    }

    fn plan(&self, t: u64, _scalars: &mut Scalars) -> AdafactorStep {
        let t = t as f64;
        AdafactorStep {
            weight: t.powf(self.beta2_decay),
            rho: self.lr.min(1.0 / t.powf(0.5)),
            shrink: 1.0 - self.lr * self.weight_decay,
            weight_decay: self.weight_decay,
            eps1: self.eps.0,
            eps2: self.eps.1,
            d: self.d,
            maximize: self.maximize,
            count: 0,
        }
    }

    fn plan_shaped(&self, t: u64, scalars: &mut Scalars, dims: &[usize]) -> AdafactorStep {
        AdafactorStep {
            count: dims.iter().product(),
            ..self.plan(t, scalars)
        }
    }

    /// The kernel steps vectors and scalars; matrices keep factored statistics.
    fn kernel_applies(&self, dims: &[usize]) -> bool {
        factored(dims).is_none()
    }

    fn update(
        &self,
        step: &AdafactorStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let count = param.elem_count();
        if count == 0 {
            return Ok(param.clone());
        }
        let grad = decay::signed(grad, step.maximize)?;
        let eps1 = step.eps1.unwrap_or_else(|| machine_eps(param.dtype()));
        let sqrt_count = (count as f64).powf(0.5);
        // Python's max(ε₂, RMS): ε₂ unless the RMS is larger.
        let rms = norm(param)? / sqrt_count;
        let alpha = (if rms > step.eps2 { rms } else { step.eps2 }) * step.rho;
        let param = if step.weight_decay != 0.0 {
            (param * step.shrink)?
        } else {
            param.clone()
        };
        let dims = grad.dims().to_vec();
        let estimate = if let Some((rows, cols)) = factored(&dims) {
            let rank = dims.len();
            let shapes = self.buffer_shapes(&dims);
            let sq = grad.sqr()?;
            // PyTorch's ‖G‖² along a dimension, over its size: (√Σ G²)² / n.
            let row_mean = div_scalar(&sq.sum_keepdim(rank - 1)?.sqrt()?.sqr()?, cols as f64)?;
            let col_mean = div_scalar(&sq.sum_keepdim(rank - 2)?.sqrt()?.sqr()?, rows as f64)?;
            let (dtype, device) = (param.dtype(), param.device().clone());
            let row = buffers.get_or("row_var", || {
                Ok(Tensor::zeros(shapes[0].1.as_slice(), dtype, &device)?)
            })?;
            let col = buffers.get_or("col_var", || {
                Ok(Tensor::zeros(shapes[1].1.as_slice(), dtype, &device)?)
            })?;
            let row = lerp(&row, &row_mean, step.weight)?;
            let col = lerp(&col, &col_mean, step.weight)?;
            let row_level = div_scalar(&row.sum_keepdim(rank - 2)?, rows as f64)?.maximum(eps1)?;
            let estimate = row.broadcast_mul(&col)?.broadcast_div(&row_level)?;
            buffers.set("row_var", row);
            buffers.set("col_var", col);
            estimate
        } else {
            let variance = buffers.get_or("variance", || Ok(param.zeros_like()?))?;
            let variance = lerp(&variance, &(&grad * &grad)?, step.weight)?;
            buffers.set("variance", variance.clone());
            variance
        };
        let update = (estimate.maximum(eps1 * eps1)?.sqrt()?.recip()? * &grad)?;
        let ratio = norm(&update)? / (sqrt_count * step.d);
        let denom = if ratio > 1.0 { ratio } else { 1.0 };
        Ok((&param + (update * (-alpha / denom))?)?)
    }
}

/// Adafactor's fused kernel for parameters of rank < 2, in the reference update's operations
/// and order (`1/√max(V, ε₁²) · G`, PyTorch's `lerp`); the RMS values come from f64 sums over
/// the whole tensor, added in the engine's fixed order.
pub struct AdafactorKernel;

impl AdafactorStep {
    /// ε₁², ε₁ defaulting to the machine epsilon of the kernel's element type.
    fn eps1_squared<T: Elem>(&self) -> T {
        let eps1 = self.eps1.unwrap_or_else(|| T::epsilon().to_f64());
        T::of(eps1 * eps1)
    }
}

impl Kernel<AdafactorStep> for AdafactorKernel {
    const REDUCES: bool = true;

    /// V ← lerp(V, G², w); sums Σθ² (before the decay) and ΣU², U = G/√max(V, ε₁²).
    #[inline(always)]
    fn reduce<T: Elem>(step: &AdafactorStep, chunk: Chunk<'_, T>, sums: &mut Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [v, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, v) = (&g[..n], &mut v[..n]);
        let sg = sign::<T>(step.maximize);
        let near = step.weight.abs() < 0.5;
        let (w, rest) = (T::of(step.weight), T::of(1.0 - step.weight));
        let (floor, one) = (step.eps1_squared::<T>(), T::of(1.0));
        let (mut param_sq, mut update_sq) = (0.0, 0.0);
        for i in 0..n {
            let theta = p[i].to_f64();
            param_sq += theta * theta;
            let gi = g[i] * sg;
            let sq = gi * gi;
            let diff = sq - v[i];
            let vi = if near {
                v[i] + diff * w
            } else {
                sq - diff * rest
            };
            v[i] = vi;
            let u = (one / T::max_of(vi, floor).sqrt() * gi).to_f64();
            update_sq += u * u;
        }
        sums[0] += param_sq;
        sums[1] += update_sq;
    }

    /// θ ← θ(1 − γλ) − α / max(1, RMS(U)/d) · U, with α = max(ε₂, RMS(θ)) ρ.
    #[inline(always)]
    fn apply<T: Elem>(step: &AdafactorStep, chunk: Chunk<'_, T>, sums: &Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [v, ..],
            ..
        } = chunk;
        let n = p.len();
        let (g, v) = (&g[..n], &v[..n]);
        let sqrt_count = (step.count as f64).powf(0.5);
        let rms = sums[0].sqrt() / sqrt_count;
        let alpha = (if rms > step.eps2 { rms } else { step.eps2 }) * step.rho;
        let ratio = sums[1].sqrt() / (sqrt_count * step.d);
        let denom = if ratio > 1.0 { ratio } else { 1.0 };
        let scale = T::of(-alpha / denom);
        let sg = sign::<T>(step.maximize);
        let (floor, one) = (step.eps1_squared::<T>(), T::of(1.0));
        let decays = step.weight_decay != 0.0;
        let shrink = T::of(step.shrink);
        for i in 0..n {
            let u = one / T::max_of(v[i], floor).sqrt() * (g[i] * sg);
            let theta = if decays { p[i] * shrink } else { p[i] };
            p[i] = theta + u * scale;
        }
    }
}

gradus_core::register_optimizer!(
    "adafactor",
    "Adafactor, factored second moments with relative step sizes (torch.optim.Adafactor)",
    AdafactorConfig,
    crate::engine::build::build_rule::<AdafactorConfig>
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::path::UpdatePath;
    use crate::testing::{run_steps, small_params};
    use candle_core::{Device, Var};
    use gradus_core::NamedVar;
    use proptest::prelude::*;

    fn matrix(values: &[f64], rows: usize) -> Var {
        let t = Tensor::new(values, &Device::Cpu).unwrap();
        Var::from_tensor(&t.reshape((rows, values.len() / rows)).unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn lr_zero_leaves_params_unchanged(p in small_params(), wd in 0.0f64..0.1) {
            let cfg = AdafactorConfig { lr: 0.0, weight_decay: wd, ..AdafactorConfig::default() };
            let (before, after) = run_steps(cfg, &p, 3);
            prop_assert_eq!(before, after);
        }

        /// The clipped update has RMS at most d, so no step moves θ by more than α·√n·d in norm.
        #[test]
        fn step_is_bounded_by_the_relative_step_size(values in prop::collection::vec(-3.0f64..3.0, 6), scale in 0.1f64..100.0) {
            let var = matrix(&values, 2);
            let before = var.as_tensor().clone().detach();
            let cfg = AdafactorConfig { lr: 0.05, ..AdafactorConfig::default() };
            let mut opt = Adafactor::from_named(vec![NamedVar::new("w", var.clone())], cfg).unwrap();
            let grads = {
                let loss = (var.as_tensor().sqr().unwrap().sum_all().unwrap() * scale).unwrap();
                loss.backward().unwrap()
            };
            opt.apply(&grads).unwrap();
            let moved = norm(&(var.as_tensor() - &before).unwrap()).unwrap();
            let rms = norm(&before).unwrap() / 6f64.sqrt();
            let alpha = rms.max(1e-3) * 0.05;
            prop_assert!(moved <= alpha * 6f64.sqrt() * (1.0 + 1e-12), "moved {} > {}", moved, alpha * 6f64.sqrt());
        }
    }

    /// Vectors over `steps` steps of the gradient of Σ θ⁴/4 − θ on `path`: the values.
    fn vector_run(
        values: &[f64],
        cfg: &AdafactorConfig,
        path: UpdatePath,
        steps: usize,
    ) -> Vec<f64> {
        let var = Var::new(values, &Device::Cpu).unwrap();
        let mut opt =
            Adafactor::from_named(vec![NamedVar::new("b", var.clone())], cfg.clone()).unwrap();
        opt.set_update_path(path);
        for _ in 0..steps {
            let t = var.as_tensor();
            let loss = ((t.powf(4.0).unwrap() * 0.25).unwrap() - t)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.apply(&loss.backward().unwrap()).unwrap();
        }
        var.as_tensor().to_vec1::<f64>().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The fused kernel of the unfactored part agrees with the reference update (f64, 1e-12
        /// relative), with decay, maximize, ε₁ given or not and both branches of `lerp`.
        #[test]
        fn fused_vector_steps_match_the_reference(
            values in prop::collection::vec(-3.0f64..3.0, 1..40),
            weight_decay in prop::sample::select(vec![0.0, 0.05]),
            beta2_decay in prop::sample::select(vec![-0.8, -0.3]),
            eps1 in prop::sample::select(vec![None, Some(1e-20)]),
            maximize: bool,
        ) {
            let cfg = AdafactorConfig {
                lr: 0.05,
                weight_decay,
                beta2_decay,
                eps: (eps1, 1e-3),
                maximize,
                ..AdafactorConfig::default()
            };
            let fused = vector_run(&values, &cfg, UpdatePath::Fused, 6);
            let reference = vector_run(&values, &cfg, UpdatePath::Reference, 6);
            for (f, r) in fused.iter().zip(&reference) {
                prop_assert!((f - r).abs() <= 1e-12 * r.abs().max(1e-3), "{} vs {}", f, r);
            }
        }
    }

    #[test]
    fn the_fused_path_steps_vectors_and_leaves_matrices_to_the_reference_update() {
        // A matrix under "fused" is not an error: its factored step has no fused form.
        let w = matrix(&[1.0, -2.0, 3.0, 0.5, 0.25, -1.0], 2);
        let b = Var::new(&[1.0f64, 2.0, -0.5], &Device::Cpu).unwrap();
        let run = |path: UpdatePath| {
            let (w, b) = (
                Var::from_tensor(&w.as_tensor().copy().unwrap()).unwrap(),
                Var::from_tensor(&b.as_tensor().copy().unwrap()).unwrap(),
            );
            let mut opt = Adafactor::from_named(
                vec![NamedVar::new("w", w.clone()), NamedVar::new("b", b.clone())],
                AdafactorConfig::default(),
            )
            .unwrap();
            opt.set_update_path(path);
            for _ in 0..3 {
                let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap()
                    + b.as_tensor().sqr().unwrap().sum_all().unwrap())
                .unwrap();
                opt.apply(&loss.backward().unwrap()).unwrap();
            }
            let state = opt.state_dict().unwrap();
            let keys: Vec<String> = state.names().map(str::to_string).collect();
            (
                w.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap(),
                keys,
            )
        };
        let (fused_w, fused_keys) = run(UpdatePath::Fused);
        let (reference_w, reference_keys) = run(UpdatePath::Reference);
        assert_eq!(
            fused_w, reference_w,
            "the matrix took the reference update on both"
        );
        assert_eq!(fused_keys, reference_keys);
        assert!(fused_keys.contains(&"b.variance".to_string()));
    }

    #[test]
    fn matrices_keep_factored_state_with_pytorch_shapes() {
        let var = matrix(&[1.0, -2.0, 3.0, 0.5, 0.25, -1.0], 2);
        let vec = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let mut opt = Adafactor::from_named(
            vec![
                NamedVar::new("w", var.clone()),
                NamedVar::new("b", vec.clone()),
            ],
            AdafactorConfig::default(),
        )
        .unwrap();
        let loss = (var.as_tensor().sqr().unwrap().sum_all().unwrap()
            + vec.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap();
        opt.apply(&loss.backward().unwrap()).unwrap();
        let w = opt.param_state("w").unwrap();
        assert_eq!(w.buffers.get("row_var").unwrap().dims(), &[2, 1]);
        assert_eq!(w.buffers.get("col_var").unwrap().dims(), &[1, 3]);
        assert!(w.buffers.get("variance").is_none());
        let b = opt.param_state("b").unwrap();
        assert_eq!(b.buffers.get("variance").unwrap().dims(), &[2]);
        // The first step takes the statistics as they are (weight 1): row means of G².
        let row = w.buffers.get("row_var").unwrap().flatten_all().unwrap();
        let row = row.to_vec1::<f64>().unwrap();
        assert!((row[0] - 4.0 * (1.0 + 4.0 + 9.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn invalid_hyperparameters_are_rejected_with_pytorch_wording() {
        let err = AdafactorConfig {
            beta2_decay: 0.5,
            ..AdafactorConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.to_string(), "beta2_decay should be <= 0 but is: 0.5");
        let err = AdafactorConfig {
            d: 0.5,
            ..AdafactorConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Clipping threshold d should be >= 1 but is: 0.5"
        );
    }
}
