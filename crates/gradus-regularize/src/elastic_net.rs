//! `elastic_net`: `l1 * sum |w| + l2 * sum w^2`.

use candle_core::Tensor;
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{NamedVar, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::penalty::{add_opt, check_coefficient, check_lr, sum_abs, sum_sq, total, PenaltyLog};
use crate::select::ParamFilter;

/// Elastic net: the sum of an L1 and an L2 penalty.
///
/// ```text
/// R(w) = l1 * sum_i |w_i| + c * l2 * sum_i w_i^2,     c = 1 (half: false) or 1/2 (half: true)
/// dR/dw_i = l1 * sign(w_i) + 2 * c * l2 * w_i
/// ```
///
/// Symbols: `l1` = `l1`, `l2` = `l2`. Defaults `0.01` / `0.01` are Keras'
/// `keras.regularizers.l1_l2`; note that scikit-learn's `ElasticNet` parametrizes the same family
/// by `alpha` and `l1_ratio` with an implicit 1/2 on the squared term.
#[derive(Debug)]
pub struct ElasticNet {
    config: ElasticNetConfig,
    filter: ParamFilter,
    path: String,
    log: PenaltyLog,
}

/// Configuration of [`ElasticNet`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticNetConfig {
    /// Coefficient of `sum |w|`. Default: `0.01` (keras.regularizers.l1_l2).
    pub l1: f64,
    /// Coefficient of `sum w^2`. Default: `0.01` (keras.regularizers.l1_l2).
    pub l2: f64,
    /// Halve the squared term. Default: `false`.
    pub half: bool,
    /// Name patterns of the parameters to regularize; empty = weights only. Default: `[]`.
    pub params: Vec<String>,
    /// Name patterns to leave out. Default: `[]`.
    pub exclude: Vec<String>,
}

impl Default for ElasticNetConfig {
    fn default() -> Self {
        ElasticNetConfig {
            l1: 0.01,
            l2: 0.01,
            half: false,
            params: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl ElasticNet {
    /// Validates `config`; `path` names it in errors.
    pub fn new(config: ElasticNetConfig, path: &str) -> Result<Self> {
        check_coefficient(path, "l1", config.l1)?;
        check_coefficient(path, "l2", config.l2)?;
        let filter = ParamFilter::new(config.params.clone(), config.exclude.clone());
        Ok(ElasticNet {
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

impl Regularizer for ElasticNet {
    fn penalty(&self, params: &[NamedVar]) -> Result<Option<Tensor>> {
        let selected = self.filter.select(params, &self.path)?;
        let c = if self.config.half { 0.5 } else { 1.0 };
        let value = add_opt(
            total(&selected, self.config.l1, sum_abs)?,
            total(&selected, c * self.config.l2, sum_sq)?,
        )?;
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
    let config: ElasticNetConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(ElasticNet::new(config, path)?))
}

gradus_core::register_regularizer!(
    "elastic_net",
    "elastic net penalty l1*sum|w| + l2*sum w^2",
    ElasticNetConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The gradient is the sum of the L1 and L2 gradients.
        #[test]
        fn gradient_is_sum_of_parts(
            ws in prop::collection::vec(prop_oneof![Just(0.0f64), -5.0f64..5.0], 1..16),
            l1 in 0.0f64..2.0,
            l2 in 0.0f64..2.0,
        ) {
            let n = ws.len();
            let var = Var::from_vec(ws.clone(), (1, n), &Device::Cpu).unwrap();
            let p = [NamedVar::new("w.weight", var.clone())];
            let config = ElasticNetConfig { l1, l2, ..ElasticNetConfig::default() };
            let penalty = ElasticNet::new(config, "r").unwrap().penalty(&p).unwrap().unwrap();
            let g = penalty.backward().unwrap().get(var.as_tensor()).unwrap()
                .flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (gi, wi) in g.iter().zip(&ws) {
                let sign = if *wi == 0.0 { 0.0 } else { wi.signum() };
                let want = l1 * sign + 2.0 * l2 * wi;
                prop_assert!((gi - want).abs() <= 1e-12 * (1.0 + want.abs()));
            }
        }
    }
}
