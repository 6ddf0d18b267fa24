//! `weight_decay`: decoupled weight decay applied after the optimizer step.

use candle_core::Tensor;
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{NamedVar, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::penalty::{check_coefficient, check_lr};
use crate::select::ParamFilter;

/// Decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019),
/// usable with any optimizer.
///
/// After each optimizer step with learning rate `lr`, every selected parameter shrinks:
///
/// ```text
/// w <- w - lr * wd * w  =  (1 - lr * wd) * w
/// ```
///
/// The decay never enters the gradient, so adaptive optimizers (Adam, RMSprop, ...) do not
/// rescale it, unlike the coupled [`L2`](crate::L2) term. Symbols: `wd` = `weight_decay`.
/// Default `0.01` is `torch.optim.AdamW`'s. Differences from AdamW: AdamW shrinks before its
/// update (`w <- w(1 - lr wd) - lr u`), this regularizer after it (`w <- (w - lr u)(1 - lr wd)`),
/// a difference of `lr^2 * wd * u`; and by default biases and normalization parameters are not
/// decayed (AdamW decays every parameter of its group).
#[derive(Debug)]
pub struct WeightDecay {
    config: WeightDecayConfig,
    filter: ParamFilter,
    path: String,
}

/// Configuration of [`WeightDecay`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WeightDecayConfig {
    /// Decay coefficient `wd`. Default: `0.01` (torch.optim.AdamW).
    pub weight_decay: f64,
    /// Name patterns of the parameters to decay; empty = weights only. Default: `[]`.
    pub params: Vec<String>,
    /// Name patterns to leave out. Default: `[]`.
    pub exclude: Vec<String>,
}

impl Default for WeightDecayConfig {
    fn default() -> Self {
        WeightDecayConfig {
            weight_decay: 0.01,
            params: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl WeightDecay {
    /// Validates `config`; `path` names it in errors.
    pub fn new(config: WeightDecayConfig, path: &str) -> Result<Self> {
        check_coefficient(path, "weight_decay", config.weight_decay)?;
        let filter = ParamFilter::new(config.params.clone(), config.exclude.clone());
        Ok(WeightDecay {
            config,
            filter,
            path: path.to_string(),
        })
    }
}

impl Regularizer for WeightDecay {
    fn penalty(&self, _params: &[NamedVar]) -> Result<Option<Tensor>> {
        Ok(None)
    }

    fn after_step(&mut self, params: &[NamedVar], lr: f64) -> Result<()> {
        check_lr(lr)?;
        // As torch.optim.AdamW: param.mul_(1 - lr * weight_decay), the factor formed in f64.
        let factor = 1.0 - lr * self.config.weight_decay;
        for p in self.filter.select(params, &self.path)? {
            let w = p.var.as_tensor().detach();
            p.var.set(&w.affine(factor, 0.0)?)?;
        }
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Regularizer>> {
    let config: WeightDecayConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(WeightDecay::new(config, path)?))
}

gradus_core::register_regularizer!(
    "weight_decay",
    "decoupled weight decay w <- (1 - lr*weight_decay)*w after each step (AdamW-style)",
    WeightDecayConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{named, values};
    use proptest::prelude::*;

    #[test]
    fn bias_is_left_alone_by_default() {
        let p = [
            named("fc.weight", &[1.0, 2.0], &[1, 2]),
            named("fc.bias", &[3.0], &[1]),
        ];
        WeightDecay::new(WeightDecayConfig::default(), "r")
            .unwrap()
            .after_step(&p, 0.5)
            .unwrap();
        assert_eq!(values(&p[1].var), vec![3.0]);
        assert_eq!(values(&p[0].var), vec![1.0 * 0.995, 2.0 * 0.995]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Decay alone shrinks each weight by exactly (1 - lr * wd).
        #[test]
        fn shrinks_by_exactly_one_minus_lr_wd(
            ws in prop::collection::vec(-100.0f64..100.0, 1..20),
            lr in 0.0f64..1.0,
            wd in 0.0f64..1.0,
        ) {
            let n = ws.len();
            let p = [named("layer.weight", &ws, &[n, 1])];
            let config = WeightDecayConfig { weight_decay: wd, ..WeightDecayConfig::default() };
            WeightDecay::new(config, "r").unwrap().after_step(&p, lr).unwrap();
            let factor = 1.0 - lr * wd;
            for (got, w) in values(&p[0].var).iter().zip(&ws) {
                prop_assert_eq!(*got, w * factor);
            }
        }
    }
}
