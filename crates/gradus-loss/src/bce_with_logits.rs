//! `bce_with_logits`: binary cross-entropy on logits, as `torch.nn.BCEWithLogitsLoss()`.

use candle_core::{DType, Tensor};
use gradus_core::config::parse_config;
use gradus_core::plugin::loss::Loss;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::targets::aligned_targets;

/// Binary cross-entropy on logits, as `torch.nn.BCEWithLogitsLoss()` (mean reduction), in the
/// stable form
///
/// ```text
/// loss = mean_i [ max(x_i, 0) - x_i t_i + log(1 + exp(-|x_i|)) ]
/// ```
///
/// (`= -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]`), `x` the output (logits), `t` the
/// targets. Targets are floats of the output's shape, or class indices `0`/`1` as integers
/// `(N)` for an output `(N, 1)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BceWithLogits;

/// Configuration of [`BceWithLogits`]: no fields (mean reduction; `weight`, `pos_weight` and
/// `reduction` are not implemented, so naming one is an error).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BceWithLogitsConfig {}

impl Loss for BceWithLogits {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if !targets.dtype().is_float() {
            let labels = targets
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            if let Some((i, v)) = labels
                .iter()
                .enumerate()
                .find(|(_, v)| **v != 0.0 && **v != 1.0)
            {
                return Err(Error::InvalidHyperparameter(format!(
                    "bce_with_logits integer target {v} at index {i} is not 0 or 1"
                )));
            }
        }
        let t = aligned_targets("bce_with_logits", output, targets)?;
        let x = output;
        let softplus_neg_abs = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
        Ok(((x.relu()? - (x * t)?)? + softplus_neg_abs)?.mean_all()?)
    }

    fn name(&self) -> &str {
        "bce_with_logits"
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Loss>> {
    let _: BceWithLogitsConfig = parse_config(config, path)?;
    Ok(Box::new(BceWithLogits))
}

gradus_core::register_loss!(
    "bce_with_logits",
    "binary cross-entropy on logits, stable form (torch.nn.BCEWithLogitsLoss)",
    BceWithLogitsConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// For moderate logits the stable form equals the textbook
        /// `-[t log s(x) + (1 - t) log(1 - s(x))]`, and it is never negative.
        #[test]
        fn stable_form_equals_the_definition(xs in proptest::collection::vec(-15.0f64..15.0, 1..8), seed in any::<u64>()) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let ts: Vec<f64> = xs.iter().map(|_| rng.below(1001) as f64 / 1000.0).collect();
            let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
            let t = Tensor::new(ts.as_slice(), &Device::Cpu).unwrap();
            let got = BceWithLogits.compute(&x, &t).unwrap().to_scalar::<f64>().unwrap();
            let s = |x: f64| 1.0 / (1.0 + (-x).exp());
            let want = xs.iter().zip(&ts).map(|(&x, &t)| -(t * s(x).ln() + (1.0 - t) * (1.0 - s(x)).ln())).sum::<f64>() / xs.len() as f64;
            prop_assert!(got >= 0.0);
            prop_assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()), "{} vs {}", got, want);
        }
    }
}
