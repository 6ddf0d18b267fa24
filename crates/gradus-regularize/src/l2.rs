//! `l2`: the ridge penalty `lambda * sum w^2` (or `lambda/2 * sum w^2`), coupled to the loss.

use candle_core::Tensor;
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{NamedVar, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::penalty::{check_coefficient, check_lr, sum_sq, total, PenaltyLog};
use crate::select::ParamFilter;

/// L2 regularization (ridge), added to the loss.
///
/// ```text
/// R(w) = lambda * sum_i w_i^2          dR/dw_i = 2 * lambda * w_i      (half: false)
/// R(w) = lambda / 2 * sum_i w_i^2      dR/dw_i = lambda * w_i          (half: true)
/// ```
///
/// Symbols: `lambda` = `lambda`, the factor 1/2 = `half`. The default convention (no 1/2) and
/// the default `0.01` are Keras' `keras.regularizers.L2`; `half: true` is the convention under
/// which the gradient term equals PyTorch's coupled `weight_decay` in `torch.optim.SGD`
/// (`g <- g + weight_decay * w`). Because the term goes through the gradient, adaptive
/// optimizers rescale it; see [`WeightDecay`](crate::WeightDecay) for the decoupled form.
#[derive(Debug)]
pub struct L2 {
    config: L2Config,
    filter: ParamFilter,
    path: String,
    log: PenaltyLog,
}

/// Configuration of [`L2`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct L2Config {
    /// Penalty coefficient `lambda`. Default: `0.01` (keras.regularizers.L2).
    pub lambda: f64,
    /// Use `lambda / 2 * sum w^2` (gradient `lambda * w`). Default: `false` (Keras convention).
    pub half: bool,
    /// Name patterns of the parameters to regularize; empty = weights only. Default: `[]`.
    pub params: Vec<String>,
    /// Name patterns to leave out. Default: `[]`.
    pub exclude: Vec<String>,
}

impl Default for L2Config {
    fn default() -> Self {
        L2Config {
            lambda: 0.01,
            half: false,
            params: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl L2 {
    /// Validates `config`; `path` names it in errors.
    pub fn new(config: L2Config, path: &str) -> Result<Self> {
        check_coefficient(path, "lambda", config.lambda)?;
        let filter = ParamFilter::new(config.params.clone(), config.exclude.clone());
        Ok(L2 {
            config,
            filter,
            path: path.to_string(),
            log: PenaltyLog::default(),
        })
    }

    /// The penalty value at the last [`Regularizer::penalty`] call.
    pub fn last_value(&self) -> Result<Option<f64>> {
        self.log.last_value()
    }
}

impl Regularizer for L2 {
    fn penalty(&self, params: &[NamedVar]) -> Result<Option<Tensor>> {
        let selected = self.filter.select(params, &self.path)?;
        let scale = if self.config.half {
            self.config.lambda / 2.0
        } else {
            self.config.lambda
        };
        let value = total(&selected, scale, sum_sq)?;
        if let Some(v) = &value {
            self.log.record(v);
        }
        Ok(value)
    }

    fn after_step(&mut self, _params: &[NamedVar], lr: f64) -> Result<()> {
        check_lr(lr)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Regularizer>> {
    let config: L2Config = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(L2::new(config, path)?))
}

gradus_core::register_regularizer!(
    "l2",
    "L2 (ridge) penalty lambda*sum w^2 added to the loss (half: lambda/2)",
    L2Config,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::named;
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    #[test]
    fn biases_are_not_penalized_by_default() {
        let p = [
            named("fc.weight", &[1.0, 2.0], &[1, 2]),
            named("fc.bias", &[10.0], &[1]),
        ];
        let reg = L2::new(L2Config::default(), "r").unwrap();
        let v = reg
            .penalty(&p)
            .unwrap()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((v - 0.05).abs() < 1e-15, "{v}");
        assert!((reg.last_value().unwrap().unwrap() - 0.05).abs() < 1e-15);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// d/dw (lambda * sum w^2) = 2 * lambda * w, and lambda * w with `half`.
        #[test]
        fn gradient_is_two_lambda_w(
            ws in prop::collection::vec(-5.0f64..5.0, 1..24),
            lambda in 0.0f64..3.0,
            half in any::<bool>(),
        ) {
            let n = ws.len();
            let var = Var::from_vec(ws.clone(), (n, 1), &Device::Cpu).unwrap();
            let p = [NamedVar::new("fc.weight", var.clone())];
            let config = L2Config { lambda, half, ..L2Config::default() };
            let penalty = L2::new(config, "r").unwrap().penalty(&p).unwrap().unwrap();
            let grads = penalty.backward().unwrap();
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let factor = if half { 1.0 } else { 2.0 };
            for (gi, wi) in g.iter().zip(&ws) {
                let want = factor * lambda * wi;
                prop_assert!((gi - want).abs() <= 1e-12 * (1.0 + want.abs()), "w {} grad {} want {}", wi, gi, want);
            }
        }
    }
}
