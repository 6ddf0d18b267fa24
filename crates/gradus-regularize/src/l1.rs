//! `l1`: the lasso penalty `lambda * sum |w|`, or its proximal step.

use candle_core::Tensor;
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{NamedVar, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::penalty::{check_coefficient, check_lr, sum_abs, total, PenaltyLog};
use crate::select::ParamFilter;

/// L1 regularization (lasso).
///
/// Penalty added to the loss (`proximal: false`):
///
/// ```text
/// R(w) = lambda * sum_i |w_i|        dR/dw_i = lambda * sign(w_i)   (0 at w_i = 0)
/// ```
///
/// With `proximal: true` nothing is added to the loss; after each optimizer step with learning
/// rate `lr` every selected weight takes the proximal (soft-thresholding) step of `lambda*|w|`:
///
/// ```text
/// w <- sign(w) * max(|w| - lr * lambda, 0)
/// ```
///
/// which sets small weights to exactly zero, where the subgradient only makes them oscillate
/// around zero. Symbols: `lambda` = `lambda`. PyTorch has no built-in L1 term; the convention
/// (no factor 1/2) and the default `0.01` are Keras' `keras.regularizers.L1`.
#[derive(Debug)]
pub struct L1 {
    config: L1Config,
    filter: ParamFilter,
    path: String,
    log: PenaltyLog,
}

/// Configuration of [`L1`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct L1Config {
    /// Penalty coefficient `lambda`. Default: `0.01` (keras.regularizers.L1).
    pub lambda: f64,
    /// Apply soft-thresholding after each step instead of adding the penalty. Default: `false`.
    pub proximal: bool,
    /// Name patterns of the parameters to regularize; empty = weights only (see
    /// [`ParamFilter`]). Default: `[]`.
    pub params: Vec<String>,
    /// Name patterns to leave out. Default: `[]`.
    pub exclude: Vec<String>,
}

impl Default for L1Config {
    fn default() -> Self {
        L1Config {
            lambda: 0.01,
            proximal: false,
            params: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl L1 {
    /// Validates `config`; `path` names it in errors.
    pub fn new(config: L1Config, path: &str) -> Result<Self> {
        check_coefficient(path, "lambda", config.lambda)?;
        let filter = ParamFilter::new(config.params.clone(), config.exclude.clone());
        Ok(L1 {
            config,
            filter,
            path: path.to_string(),
            log: PenaltyLog::default(),
        })
    }

    /// The value of `lambda * sum |w|` at the last [`Regularizer::penalty`] call (also computed,
    /// for logging, in proximal mode).
    pub fn last_value(&self) -> Result<Option<f64>> {
        self.log.last_value()
    }

    /// The penalty value without recording it.
    fn value(&self, params: &[NamedVar]) -> Result<Option<Tensor>> {
        let selected = self.filter.select(params, &self.path)?;
        total(&selected, self.config.lambda, sum_abs)
    }
}

impl Regularizer for L1 {
    fn penalty(&self, params: &[NamedVar]) -> Result<Option<Tensor>> {
        let value = self.value(params)?;
        if let Some(v) = &value {
            self.log.record(v);
        }
        if self.config.proximal {
            Ok(None)
        } else {
            Ok(value)
        }
    }

    fn after_step(&mut self, params: &[NamedVar], lr: f64) -> Result<()> {
        check_lr(lr)?;
        if !self.config.proximal {
            return Ok(());
        }
        let threshold = lr * self.config.lambda;
        for p in self.filter.select(params, &self.path)? {
            let w = p.var.as_tensor().detach();
            let shrunk = w.abs()?.affine(1.0, -threshold)?.relu()?;
            p.var.set(&shrunk.mul(&w.sign()?)?)?;
        }
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Regularizer>> {
    let config: L1Config = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(L1::new(config, path)?))
}

gradus_core::register_regularizer!(
    "l1",
    "L1 (lasso) penalty lambda*sum|w|, or its proximal soft-thresholding step",
    L1Config,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{named, values};
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    fn l1(lambda: f64, proximal: bool) -> L1 {
        let config = L1Config {
            lambda,
            proximal,
            ..L1Config::default()
        };
        L1::new(config, "regularizers[0]").unwrap()
    }

    #[test]
    fn negative_lambda_is_rejected_with_its_path() {
        let err = build(&serde_json::json!({"lambda": -1.0}), "regularizers[0]")
            .err()
            .unwrap();
        assert!(err.to_string().contains("regularizers[0].lambda"), "{err}");
        let err = build(&serde_json::json!({"lamda": 1.0}), "regularizers[0]")
            .err()
            .unwrap();
        assert!(err.to_string().contains("did you mean `lambda`"), "{err}");
    }

    #[test]
    fn value_is_logged_even_in_proximal_mode() {
        let p = [named("fc.weight", &[1.0, -2.0, 0.0, 0.5], &[2, 2])];
        let reg = l1(0.1, true);
        assert!(reg.penalty(&p).unwrap().is_none());
        let v = reg.last_value().unwrap().unwrap();
        assert!((v - 0.35).abs() < 1e-12, "{v}");
    }

    #[test]
    fn proximal_step_soft_thresholds() {
        let p = [named("fc.weight", &[0.3, -0.05, 0.0, -1.0], &[2, 2])];
        let mut reg = l1(1.0, true);
        reg.after_step(&p, 0.1).unwrap();
        let got = values(&p[0].var);
        let want = [0.2, 0.0, 0.0, -0.9];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert!(reg.after_step(&p, f64::NAN).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// d/dw (lambda * sum|w|) = lambda * sign(w), exactly 0 at w = 0.
        #[test]
        fn gradient_is_lambda_sign(
            ws in prop::collection::vec(prop_oneof![Just(0.0f64), -5.0f64..5.0], 1..24),
            lambda in 0.0f64..3.0,
        ) {
            let n = ws.len();
            let var = Var::from_vec(ws.clone(), (1, n), &Device::Cpu).unwrap();
            let p = [NamedVar::new("fc.weight", var.clone())];
            let penalty = l1(lambda, false).penalty(&p).unwrap().unwrap();
            let grads = penalty.backward().unwrap();
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (gi, wi) in g.iter().zip(&ws) {
                let want = if *wi == 0.0 { 0.0 } else { lambda * wi.signum() };
                prop_assert!((gi - want).abs() <= 1e-12 * (1.0 + want.abs()), "w {} grad {} want {}", wi, gi, want);
            }
            let value = penalty.to_scalar::<f64>().unwrap();
            let want: f64 = lambda * ws.iter().map(|w| w.abs()).sum::<f64>();
            prop_assert!((value - want).abs() <= 1e-10 * (1.0 + want));
        }
    }
}
