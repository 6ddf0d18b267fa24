//! Muon, momentum orthogonalized by Newton–Schulz (`torch.optim.Muon`), for matrices.

use candle_core::{DType, Tensor};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::grouped::GroupedOptimizer;
use crate::engine::kernel::NoKernel;
use crate::engine::rule::{Buffers, Rule, Scalars};
use crate::rules::adafactor::lerp;

/// How Muon scales its learning rate by the matrix's shape `[A, B]` (`adjust_lr_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustLr {
    /// Keller Jordan's `√max(1, A/B)` (also what `null` means).
    Original,
    /// Moonshot's `0.2 √max(A, B)`, matching AdamW's update RMS.
    MatchRmsAdamw,
}

/// Muon: SGD momentum whose update matrix is orthogonalized by a quintic Newton–Schulz iteration.
///
/// Per matrix parameter θ (shape `[A, B]`) with gradient G (PyTorch's formulation):
///
/// ```text
/// B ← lerp(B, G, 1 − μ)                            (momentum_buffer, starts at 0)
/// U ← lerp(G, B, μ)   if nesterov,   else  U ← B
/// X ← bf16(U)ᵀ if A > B;   X ← X / max(‖X‖_F, ε)
/// repeat ns_steps:  M ← X Xᵀ;  M ← b M + c M M;  X ← a X + M X     (in bfloat16)
/// O ← X (transposed back)
/// θ ← θ (1 − γ λ)
/// θ ← θ − γ' O,   γ' = γ √max(1, A/B)  (original)   or   γ · 0.2 √max(A, B)  (match_rms_adamw)
/// ```
///
/// γ = `lr`, λ = `weight_decay`, μ = `momentum`, (a, b, c) = `ns_coefficients`, ε = `eps`.
/// As in PyTorch the iteration runs in bfloat16 (`grad.bfloat16()`, then `torch.addmm` for the
/// two fused products, each rounded once to bfloat16): here in f32 tensors holding bfloat16
/// values, rounded through Candle's bf16 conversion after every operation PyTorch rounds, so
/// the update is PyTorch's on any device. Defaults are `torch.optim.Muon`'s (PyTorch 2.15): lr
/// `1e-3`, weight_decay `0.1`, momentum `0.95`, nesterov `true`, ns_coefficients
/// `(3.4445, -4.775, 2.0315)`, eps `1e-7`, ns_steps `5`, adjust_lr_fn `null` (original).
/// References: Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024,
/// kellerjordan.github.io/posts/muon); Liu et al., "Muon is Scalable for LLM Training"
/// (arXiv:2502.16982).
///
/// This rule updates matrices only (PyTorch refuses other parameters). The registered `muon`
/// optimizer routes every other parameter, and those matching `adamw_params`, to an auxiliary
/// AdamW: see [`MuonWithAuxAdamW`](crate::rules::muon_aux::MuonWithAuxAdamW). Muon runs on the
/// reference path only ([`NoKernel`]): the iteration is matrix products over the whole tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MuonConfig {
    /// Learning rate γ. Default: `1e-3`.
    pub lr: f64,
    /// Decoupled weight decay λ (θ ← θ(1 − γλ)). Default: `0.1`.
    pub weight_decay: f64,
    /// Momentum factor μ. Default: `0.95`.
    pub momentum: f64,
    /// Nesterov momentum. Default: `true`.
    pub nesterov: bool,
    /// Coefficients (a, b, c) of the Newton–Schulz polynomial. Default: `[3.4445, -4.775, 2.0315]`.
    pub ns_coefficients: (f64, f64, f64),
    /// ε bounding the Frobenius norm the iteration divides by. Default: `1e-7`.
    pub eps: f64,
    /// Newton–Schulz iterations (< 100). Default: `5`.
    pub ns_steps: u32,
    /// Learning-rate scaling by shape: `null` / `"original"` or `"match_rms_adamw"`.
    /// Default: `null`.
    pub adjust_lr_fn: Option<AdjustLr>,
}

impl Default for MuonConfig {
    fn default() -> Self {
        MuonConfig {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: (3.4445, -4.775, 2.0315),
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr_fn: None,
        }
    }
}

/// Muon over matrices only, as `torch.optim.Muon` (a parameter of another rank fails its step).
pub type Muon = GroupedOptimizer<MuonConfig>;

/// The coefficients of one Muon step.
#[derive(Debug, Clone, Copy)]
pub struct MuonStep {
    lr: f64,
    weight_decay: f64,
    momentum: f64,
    nesterov: bool,
    ns_coefficients: (f64, f64, f64),
    eps: f64,
    ns_steps: u32,
    adjust_lr_fn: Option<AdjustLr>,
}

/// `t` rounded to bfloat16, held in f32 (PyTorch's bfloat16 ops compute in f32 and round).
fn bf16(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::BF16)?.to_dtype(DType::F32)?)
}

/// PyTorch's `_zeropower_via_newtonschulz` of a matrix, in bfloat16 arithmetic; returns f32
/// holding bfloat16 values.
pub(crate) fn newton_schulz(
    update: &Tensor,
    (a, b, c): (f64, f64, f64),
    steps: u32,
    eps: f64,
) -> Result<Tensor> {
    let (rows, cols) = update.dims2()?;
    // PyTorch converts to bfloat16 through float (double rounding for f64 input).
    let mut x = bf16(&update.to_dtype(DType::F32)?)?;
    let transposed = rows > cols;
    if transposed {
        x = x.t()?.contiguous()?;
    }
    let norm = bf16(&x.sqr()?.sum_all()?.sqrt()?)?;
    let norm = bf16(&norm.maximum(eps)?)?;
    x = bf16(&x.broadcast_div(&norm)?)?;
    for _ in 0..steps {
        let gram = bf16(&x.matmul(&x.t()?)?)?;
        // torch.addmm(M, M, M, beta=b, alpha=c): c·(M M) + b·M, rounded once.
        let gram_update = bf16(&((gram.matmul(&gram)? * c)? + (&gram * b)?)?)?;
        // torch.addmm(X, M, X, beta=a): (M X) + a·X, rounded once.
        x = bf16(&(gram_update.matmul(&x)? + (&x * a)?)?)?;
    }
    if transposed {
        x = x.t()?.contiguous()?;
    }
    Ok(x)
}

/// PyTorch's `_adjust_lr` for a matrix of shape `[rows, cols]`.
pub(crate) fn adjusted_lr(lr: f64, how: Option<AdjustLr>, rows: usize, cols: usize) -> f64 {
    let (a, b) = (rows as f64, cols as f64);
    let ratio = match how {
        None | Some(AdjustLr::Original) => (a / b).max(1.0).sqrt(),
        Some(AdjustLr::MatchRmsAdamw) => 0.2 * a.max(b).sqrt(),
    };
    lr * ratio
}

fn invalid(message: String) -> Error {
    Error::InvalidHyperparameter(message)
}

/// `value >= low`, false for NaN.
fn at_least(value: f64, low: f64) -> bool {
    value >= low
}

impl Rule for MuonConfig {
    const NAME: &'static str = "muon";
    crate::hyperparameters!(
        "lr" => lr,
        "weight_decay" => weight_decay,
        "momentum" => momentum,
        "eps" => eps,
    );
    type Step = MuonStep;
    type Kernel = NoKernel;

    fn validate(&self) -> Result<()> {
        if !at_least(self.lr, 0.0) {
            return Err(invalid(format!(
                "Learning rate should be >= 0 but is: {}",
                self.lr
            )));
        }
        if !at_least(self.momentum, 0.0) {
            return Err(invalid(format!(
                "momentum should be >= 0 but is: {}",
                self.momentum
            )));
        }
        if !at_least(self.weight_decay, 0.0) {
            return Err(invalid(format!(
                "weight decay should be >= 0 but is: {}",
                self.weight_decay
            )));
        }
        if self.ns_steps >= 100 {
            return Err(invalid(
                "Number of steps must be less than 100 for computational efficiency".to_string(),
            ));
        }
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["momentum_buffer"]
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> MuonStep {
        MuonStep {
            lr: self.lr,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            nesterov: self.nesterov,
            ns_coefficients: self.ns_coefficients,
            eps: self.eps,
            ns_steps: self.ns_steps,
            adjust_lr_fn: self.adjust_lr_fn,
        }
    }

    fn update(
        &self,
        step: &MuonStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let dims = param.dims();
        if dims.len() != 2 {
            return Err(Error::Unsupported(format!(
                "Muon only supports 2D parameters whereas we found a parameter with size: \
                 {dims:?} (the registered `muon` optimizer routes it to its auxiliary AdamW)"
            )));
        }
        let (rows, cols) = (dims[0], dims[1]);
        if rows * cols == 0 {
            return Ok(param.clone());
        }
        let buf = buffers.get_or("momentum_buffer", || Ok(param.zeros_like()?))?;
        let buf = lerp(&buf, grad, 1.0 - step.momentum)?;
        let update = if step.nesterov {
            lerp(grad, &buf, step.momentum)?
        } else {
            buf.clone()
        };
        buffers.set("momentum_buffer", buf);
        let ortho = newton_schulz(&update, step.ns_coefficients, step.ns_steps, step.eps)?
            .to_dtype(param.dtype())?;
        let lr = adjusted_lr(step.lr, step.adjust_lr_fn, rows, cols);
        let param = (param * (1.0 - step.lr * step.weight_decay))?;
        Ok((param + (ortho * -lr)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use gradus_core::NamedVar;
    use proptest::prelude::*;

    fn matrix(values: &[f64], rows: usize) -> Tensor {
        Tensor::new(values, &Device::Cpu)
            .unwrap()
            .reshape((rows, values.len() / rows))
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn lr_zero_leaves_params_unchanged(values in prop::collection::vec(-3.0f64..3.0, 6)) {
            let var = Var::from_tensor(&matrix(&values, 2)).unwrap();
            let cfg = MuonConfig { lr: 0.0, ..MuonConfig::default() };
            let mut opt = Muon::from_named(vec![NamedVar::new("w", var.clone())], cfg).unwrap();
            for _ in 0..3 {
                let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.apply(&loss.backward().unwrap()).unwrap();
            }
            let after = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            prop_assert_eq!(after, values);
        }

        /// Newton–Schulz maps any full-rank matrix to singular values near 1 (Muon's iteration
        /// lands them in roughly [0.5, 1.5]), whatever its scale.
        #[test]
        fn newton_schulz_orthogonalizes(values in prop::collection::vec(-3.0f64..3.0, 6), scale in 1e-3f64..1e3) {
            let g = (matrix(&values, 3) * scale).unwrap();
            let o = newton_schulz(&g, MuonConfig::default().ns_coefficients, 5, 1e-7).unwrap();
            // OᵀO is 2x2; its eigenvalues are the squared singular values.
            let m = o.t().unwrap().matmul(&o).unwrap().to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
            let (tr, det) = (m[0][0] + m[1][1], m[0][0] * m[1][1] - m[0][1] * m[1][0]);
            let disc = (tr * tr / 4.0 - det).max(0.0).sqrt();
            let (hi, lo) = (tr / 2.0 + disc, tr / 2.0 - disc);
            // Skip nearly rank-deficient draws, whose small direction NS cannot lift in 5 steps.
            prop_assume!(lo > 1e-3 * hi);
            prop_assert!(hi.sqrt() < 1.6 && lo.sqrt() > 0.2, "singular values {} {}", hi.sqrt(), lo.sqrt());
        }
    }

    #[test]
    fn adjusted_lr_follows_pytorch() {
        assert_eq!(adjusted_lr(0.02, None, 4, 3), 0.02 * (4.0f64 / 3.0).sqrt());
        assert_eq!(adjusted_lr(0.02, Some(AdjustLr::Original), 2, 6), 0.02);
        assert_eq!(
            adjusted_lr(0.02, Some(AdjustLr::MatchRmsAdamw), 2, 6),
            0.02 * (0.2 * 6f64.sqrt())
        );
    }

    #[test]
    fn vectors_are_refused_by_the_bare_rule() {
        let var = Var::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
        let mut opt =
            Muon::from_named(vec![NamedVar::new("b", var.clone())], MuonConfig::default()).unwrap();
        let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        let err = opt.apply(&loss.backward().unwrap()).unwrap_err();
        assert!(err.to_string().contains("Muon only supports 2D parameters"));
    }
}
