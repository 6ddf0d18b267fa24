//! `cross_entropy`: cross-entropy of logits with label smoothing, as
//! `torch.nn.CrossEntropyLoss(label_smoothing=)`, against class indices or probabilities.

use candle_core::{DType, Tensor, D};
use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::loss::Loss;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Cross-entropy of logits `(N, C)`, as `torch.nn.CrossEntropyLoss(label_smoothing=eps)` (no
/// class weights, mean reduction):
///
/// ```text
/// log p = log_softmax(logits, dim=1)
/// class indices y (N,):    loss = mean_n [ (1 - eps) (-log p[n, y_n]) + eps / C sum_c (-log p[n, c]) ]
/// probabilities t (N, C):  loss = mean_n [ -sum_c ((1 - eps) t[n, c] + eps / C) log p[n, c] ]
/// ```
///
/// i.e. the cross-entropy against the target distribution smoothed towards the uniform one.
/// `eps` = `label_smoothing`. Integer targets (`u8`, `u32`, `i64`) are class indices ([`cross_entropy`]);
/// float targets of the logits' shape are probabilities, e.g. after mixup ([`cross_entropy_soft`]).
/// Label smoothing: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision"
/// (CVPR 2016).
#[derive(Debug, Clone)]
pub struct CrossEntropy {
    config: CrossEntropyConfig,
}

/// Configuration of [`CrossEntropy`] (PyTorch's keyword names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CrossEntropyConfig {
    /// Mass `eps` in `[0, 1]` moved from the target to the uniform distribution.
    /// Default: `0.0` (torch.nn.CrossEntropyLoss).
    pub label_smoothing: f64,
}

impl CrossEntropy {
    /// The loss for `config`; `label_smoothing` outside `[0, 1]` is an error (PyTorch's
    /// wording).
    pub fn new(config: CrossEntropyConfig) -> Result<Self> {
        check_smoothing(config.label_smoothing)?;
        Ok(CrossEntropy { config })
    }

    /// The configuration.
    pub fn config(&self) -> &CrossEntropyConfig {
        &self.config
    }
}

/// Mean cross-entropy of `logits` `(N, C)` against class indices `targets` `(N)` with label
/// smoothing `eps`, exactly PyTorch's `F.cross_entropy(logits, targets, label_smoothing=eps)`
/// (no class weights, mean reduction):
///
/// ```text
/// log p = log_softmax(logits, dim=1)
/// loss  = mean_n [ (1 - eps) * (-log p[n, y_n]) + eps / C * sum_c (-log p[n, c]) ]
/// ```
///
/// i.e. the cross-entropy against the target distribution `(1 - eps) * onehot(y) + eps / C`.
/// `eps` must lie in `[0, 1]` (PyTorch's check; default in PyTorch `0.0`). Targets may be
/// `u8`, `u32` or `i64` and must be `< C`; an empty batch is an error (PyTorch returns NaN).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let (n, c) = check_logits(logits, label_smoothing)?;
    if targets.dims() != [n] {
        return Err(Error::ShapeMismatch {
            context: "cross_entropy targets".to_string(),
            expected: vec![n],
            actual: targets.dims().to_vec(),
        });
    }
    let targets = match targets.dtype() {
        DType::U32 => targets.clone(),
        DType::U8 | DType::I64 => targets.to_dtype(DType::U32)?,
        other => {
            return Err(Error::Unsupported(format!(
                "cross_entropy targets must be class indices (u8, u32 or i64), got {other:?}"
            )))
        }
    };
    let host = targets.to_vec1::<u32>()?;
    if let Some((i, t)) = host.iter().enumerate().find(|(_, &t)| t as usize >= c) {
        return Err(Error::InvalidHyperparameter(format!(
            "cross_entropy target {t} at index {i} is out of bounds for {c} classes"
        )));
    }
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let nll = picked.neg()?.mean_all()?;
    if label_smoothing == 0.0 {
        return Ok(nll);
    }
    let smooth = log_p.sum(1)?.neg()?.mean_all()?;
    Ok((nll.affine(1.0 - label_smoothing, 0.0)?
        + smooth.affine(label_smoothing / c as f64, 0.0)?)?)
}

/// Mean cross-entropy of `logits` `(N, C)` against probability targets `(N, C)` with label
/// smoothing `eps`, as PyTorch with floating-point targets:
///
/// ```text
/// t'   = (1 - eps) * t + eps / C
/// loss = mean_n [ -sum_c t'[n, c] * log_softmax(logits)[n, c] ]
/// ```
pub fn cross_entropy_soft(
    logits: &Tensor,
    target_probs: &Tensor,
    label_smoothing: f64,
) -> Result<Tensor> {
    let (_, c) = check_logits(logits, label_smoothing)?;
    if target_probs.dims() != logits.dims() {
        return Err(Error::ShapeMismatch {
            context: "cross_entropy soft targets".to_string(),
            expected: logits.dims().to_vec(),
            actual: target_probs.dims().to_vec(),
        });
    }
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let t = target_probs
        .to_dtype(logits.dtype())?
        .affine(1.0 - label_smoothing, label_smoothing / c as f64)?;
    Ok((t * log_p)?.sum(1)?.neg()?.mean_all()?)
}

fn check_smoothing(eps: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::InvalidHyperparameter(format!(
            "label_smoothing must be between 0.0 and 1.0. Got: {eps}"
        )));
    }
    Ok(())
}

fn check_logits(logits: &Tensor, eps: f64) -> Result<(usize, usize)> {
    check_smoothing(eps)?;
    let &[n, c] = logits.dims() else {
        return Err(Error::Unsupported(format!(
            "cross_entropy expects (N, C) logits, got shape {:?}",
            logits.dims()
        )));
    };
    if n == 0 || c == 0 {
        return Err(Error::Unsupported(format!(
            "cross_entropy of an empty batch (logits shape {:?}) is undefined",
            logits.dims()
        )));
    }
    Ok((n, c))
}

impl Loss for CrossEntropy {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let eps = self.config.label_smoothing;
        if targets.dtype().is_float() {
            cross_entropy_soft(output, targets, eps)
        } else {
            cross_entropy(output, targets, eps)
        }
    }

    fn name(&self) -> &str {
        "cross_entropy"
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Loss>> {
    let config: CrossEntropyConfig = parse_config(config, path)?;
    let loss = CrossEntropy::new(config)
        .map_err(|e| Error::config(join_path(path, "label_smoothing"), e.to_string()))?;
    Ok(Box::new(loss))
}

gradus_core::register_loss!(
    "cross_entropy",
    "cross-entropy of logits with label smoothing, class indices or probabilities (torch.nn.CrossEntropyLoss)",
    CrossEntropyConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    fn logits() -> Tensor {
        Tensor::new(&[[2.0f64, 0.5, -1.0], [0.1, 0.2, 0.3]], &Device::Cpu).unwrap()
    }

    /// Hand-computed from PyTorch's definition of
    /// `F.cross_entropy(torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64),
    /// torch.tensor([0, 2]), label_smoothing=0.1)` in f64 (plain Python, `math.log`/`math.exp`):
    /// row 0: lse = 2.241311296657157, -log p = [0.241311296657157, 1.741311296657157, 3.241311296657157];
    /// row 1: lse = 1.301942848229244, -log p = [1.201942848229244, 1.101942848229244, 1.001942848229244];
    /// loss = mean_n(0.9 * (-log p[n, y_n]) + 0.1 / 3 * sum_c(-log p[n, c])) = 0.7016270724432006.
    #[test]
    fn matches_hand_computed_pytorch_value() {
        let targets = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let loss = cross_entropy(&logits(), &targets, 0.1)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let want = 0.7016270724432006;
        assert!((loss - want).abs() <= 1e-10 * want, "{loss} vs {want}");
        let plain = cross_entropy(&logits(), &targets, 0.0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let want_plain = (0.241311296657157 + 1.001942848229244) / 2.0;
        assert!((plain - want_plain).abs() <= 1e-10 * want_plain, "{plain}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let bad = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
        assert!(cross_entropy(&logits(), &bad, 0.1)
            .unwrap_err()
            .to_string()
            .contains("out of bounds"));
        let ok = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        assert!(cross_entropy(&logits(), &ok, 1.5)
            .unwrap_err()
            .to_string()
            .contains("label_smoothing"));
        let short = Tensor::new(&[0u32], &Device::Cpu).unwrap();
        let err = cross_entropy(&logits(), &short, 0.0).unwrap_err();
        assert!(err.to_string().contains("expected [2], got [1]"), "{err}");
        let err = CrossEntropy::new(CrossEntropyConfig {
            label_smoothing: -0.1,
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "label_smoothing must be between 0.0 and 1.0. Got: -0.1"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Hard targets equal soft one-hot targets, for any smoothing.
        #[test]
        fn hard_equals_one_hot_soft(seed in any::<u64>(), eps in 0.0f64..=1.0, n in 1usize..6, c in 2usize..6) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let x = rng.normal_tensor(&[n, c], 0.0, 2.0, DType::F64, &Device::Cpu).unwrap();
            let t: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
            let mut onehot = vec![0.0f64; n * c];
            for (i, &k) in t.iter().enumerate() { onehot[i * c + k as usize] = 1.0; }
            let hard = cross_entropy(&x, &Tensor::new(t.as_slice(), &Device::Cpu).unwrap(), eps).unwrap().to_scalar::<f64>().unwrap();
            let soft = cross_entropy_soft(&x, &Tensor::from_vec(onehot, (n, c), &Device::Cpu).unwrap(), eps).unwrap().to_scalar::<f64>().unwrap();
            prop_assert!((hard - soft).abs() <= 1e-12 * (1.0 + hard.abs()));
        }

        /// The loss is at least the entropy floor 0, and shifting every logit of a row by the
        /// same constant leaves it unchanged (softmax invariance).
        #[test]
        fn non_negative_and_shift_invariant(seed in any::<u64>(), eps in 0.0f64..=1.0, n in 1usize..6, c in 2usize..6, shift in -50.0f64..50.0) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let x = rng.normal_tensor(&[n, c], 0.0, 3.0, DType::F64, &Device::Cpu).unwrap();
            let t: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
            let t = Tensor::new(t.as_slice(), &Device::Cpu).unwrap();
            let a = cross_entropy(&x, &t, eps).unwrap().to_scalar::<f64>().unwrap();
            let b = cross_entropy(&(x + shift).unwrap(), &t, eps).unwrap().to_scalar::<f64>().unwrap();
            prop_assert!(a >= 0.0);
            prop_assert!((a - b).abs() <= 1e-10 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
    }
}
