//! `mse`: mean squared error, as `torch.nn.MSELoss()`.

use candle_core::Tensor;
use gradus_core::config::parse_config;
use gradus_core::plugin::loss::Loss;
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::targets::aligned_targets;

/// Mean squared error, as `torch.nn.MSELoss()` (mean reduction):
///
/// ```text
/// loss = mean_i (output_i - target_i)^2
/// ```
///
/// Targets have the output's shape, or `(N)` for an output `(N, 1)`; integer targets are
/// converted to the output's dtype.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mse;

/// Configuration of [`Mse`]: no fields (mean reduction, as torch.nn.MSELoss's default;
/// `reduction` is not implemented, so naming it is an error).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MseConfig {}

impl Loss for Mse {
    fn compute(&self, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let t = aligned_targets("mse", output, targets)?;
        Ok((output - t)?.sqr()?.mean_all()?)
    }

    fn name(&self) -> &str {
        "mse"
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Loss>> {
    let _: MseConfig = parse_config(config, path)?;
    Ok(Box::new(Mse))
}

gradus_core::register_loss!(
    "mse",
    "mean squared error (torch.nn.MSELoss)",
    MseConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Zero exactly when the output equals the target, positive otherwise, and the gradient
        /// is `2 (output - target) / n`.
        #[test]
        fn zero_at_the_target_and_gradient_by_formula(seed in any::<u64>(), n in 1usize..6, k in 1usize..4) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let t = rng.normal_tensor(&[n, k], 0.0, 2.0, DType::F64, &Device::Cpu).unwrap();
            let at = Mse.compute(&t, &t).unwrap().to_scalar::<f64>().unwrap();
            prop_assert_eq!(at, 0.0);
            let out = Var::from_tensor(&rng.normal_tensor(&[n, k], 0.0, 2.0, DType::F64, &Device::Cpu).unwrap()).unwrap();
            let loss = Mse.compute(out.as_tensor(), &t).unwrap();
            prop_assert!(loss.to_scalar::<f64>().unwrap() > 0.0);
            let grads = loss.backward().unwrap();
            let g = grads.get(out.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let o = out.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let tv = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for i in 0..g.len() {
                let want = 2.0 * (o[i] - tv[i]) / (n * k) as f64;
                prop_assert!((g[i] - want).abs() <= 1e-12 * (1.0 + want.abs()));
            }
        }
    }
}
