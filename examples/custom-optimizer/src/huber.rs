//! A loss plugin written outside Gradus: the Huber loss (`torch.nn.HuberLoss`), registered with
//! one macro line, usable by name from a pipeline's `loss` object.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::plugin::loss::Loss;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Huber loss, as `torch.nn.HuberLoss(delta=δ)` (mean reduction): quadratic near the
/// target, linear far from it, so outliers pull less than with `mse`.
///
/// ```text
/// z_i  = |output_i - target_i|
/// l_i  = 0.5 z_i^2              if z_i < δ
///        δ (z_i - 0.5 δ)        otherwise
/// loss = mean_i l_i
/// ```
///
/// δ = `delta` (> 0). Targets as for `mse` (the output's shape, or `(N)` for an output
/// `(N, 1)`), aligned with `gradus_loss::aligned_targets`. Huber, "Robust Estimation of a
/// Location Parameter" (Annals of Mathematical Statistics, 1964).
#[derive(Debug, Clone)]
pub struct Huber {
    delta: f64,
}

/// Configuration of [`Huber`] (PyTorch's keyword names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, gradus_core::schemars::JsonSchema)]
// The schema of `gradus schema`, through gradus-core's re-export (no schemars dependency).
#[schemars(crate = "gradus_core::schemars")]
#[serde(deny_unknown_fields, default)]
pub struct HuberConfig {
    /// Where the loss turns from quadratic to linear. Default: `1.0` (torch.nn.HuberLoss).
    pub delta: f64,
}

impl Default for HuberConfig {
    fn default() -> Self {
        HuberConfig { delta: 1.0 }
    }
}

impl Huber {
    /// The loss for `config`; a `delta` that is not positive (PyTorch's check and wording) or
    /// not finite is an error.
    pub fn new(config: HuberConfig) -> Result<Self> {
        if !config.delta.is_finite() || config.delta <= 0.0 {
            return Err(Error::InvalidHyperparameter(format!(
                "huber_loss does not support non-positive values for delta. Got: {}",
                config.delta
            )));
        }
        Ok(Huber {
            delta: config.delta,
        })
    }
}

impl Loss for Huber {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let t = gradus_loss::aligned_targets("huber", output, targets)?;
        let z = (output - t)?.abs()?;
        // PyTorch's element order: 0.5 * z * z, delta * (z - 0.5 * delta).
        let quadratic = (z.affine(0.5, 0.0)? * &z)?;
        let linear = z.affine(self.delta, -0.5 * self.delta * self.delta)?;
        let near = z.lt(self.delta)?;
        Ok(near.where_cond(&quadratic, &linear)?.mean_all()?)
    }

    fn name(&self) -> &str {
        "huber"
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Loss>> {
    let config: HuberConfig = parse_config(config, path)?;
    let loss = Huber::new(config)
        .map_err(|e| Error::config(gradus_core::config::join_path(path, "delta"), e.to_string()))?;
    Ok(Box::new(loss))
}

gradus_core::register_loss!(
    "huber",
    "Huber loss, quadratic within delta and linear beyond (torch.nn.HuberLoss) - example plugin",
    HuberConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `torch.nn.HuberLoss(delta=d)(x, t)` and its gradient in x, PyTorch 2.15.0, float64, for
    /// x = [[0.3], [-1.5], [2.0], [0.9]], t = [[1.0], [0.0], [-0.5], [0.9]].
    #[test]
    fn matches_pytorch_values_and_gradients() {
        let cases = [
            (1.0, 0.81125, [-0.175, -0.25, 0.25, 0.0]),
            (0.5, 0.49375, [-0.125, -0.125, 0.125, 0.0]),
            (2.0, 1.0925, [-0.175, -0.375, 0.5, 0.0]),
        ];
        let t = Tensor::new(&[[1.0f64], [0.0], [-0.5], [0.9]], &Device::Cpu).unwrap();
        for (delta, loss, grad) in cases {
            let x = Var::new(&[[0.3f64], [-1.5], [2.0], [0.9]], &Device::Cpu).unwrap();
            let huber = Huber::new(HuberConfig { delta }).unwrap();
            let l = huber.compute(x.as_tensor(), &t).unwrap();
            let got = l.to_scalar::<f64>().unwrap();
            assert!(
                (got - loss).abs() <= 1e-12,
                "delta {delta}: {got} vs {loss}"
            );
            let g = l.backward().unwrap();
            let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
            for (a, b) in g.to_vec1::<f64>().unwrap().iter().zip(grad) {
                assert!((a - b).abs() <= 1e-12, "delta {delta}: grad {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_non_positive_delta_is_an_error_naming_it() {
        let err = build(&serde_json::json!({"delta": 0.0}), "loss")
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("invalid config at loss.delta"), "{err}");
        assert!(err.contains("non-positive values for delta"), "{err}");
        let err = build(
            &serde_json::json!({"delta": 1.0, "reduction": "sum"}),
            "loss",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("unknown field `reduction` at loss"), "{err}");
    }
}
