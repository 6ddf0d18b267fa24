//! `ema`: the exponential moving average of the weights, as
//! `torch.optim.swa_utils.get_ema_multi_avg_fn(decay)`.

use candle_core::Tensor;
use gradus_core::config::join_path;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Exponential moving average of the weights (Polyak averaging with exponential weights), as
/// `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))` of PyTorch 2.15:
///
/// ```text
/// W_0^EMA     = W_0                                  (the first update copies)
/// W_{t+1}^EMA = decay W_t^EMA + (1 - decay) W_{t+1}
/// ```
///
/// computed as PyTorch does, with `torch._foreach_lerp_(ema, params, w)`, `w = 1 - decay`, and
/// `torch.lerp`'s two branches:
///
/// ```text
/// |w| <  0.5:  ema + w (param - ema)
/// |w| >= 0.5:  param - (param - ema) (1 - w)
/// ```
///
/// in the parameters' dtype (PyTorch's vectorized CPU kernel fuses the multiply-add; Candle's
/// ops round the product first: the two agree within about 1 ulp per update, see
/// `tests/averaging.rs`). Updated after every optimizer step. `decay` in `[0, 1]`
/// (PyTorch's check and wording).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EmaConfig {
    /// Weight of the running average. Default: `0.999`
    /// (torch.optim.swa_utils.get_ema_multi_avg_fn).
    pub decay: f64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        EmaConfig { decay: 0.999 }
    }
}

impl EmaConfig {
    /// Checks `decay` as PyTorch does; `path` is the config's JSON path.
    pub fn validate(&self, path: &str) -> Result<()> {
        if !(0.0..=1.0).contains(&self.decay) {
            return Err(Error::config(
                join_path(path, "decay"),
                format!(
                    "Invalid decay value {} provided. Please provide a value in [0,1] range.",
                    self.decay
                ),
            ));
        }
        Ok(())
    }
}

/// One EMA update of `average` towards `param` with factor `decay` (after the first update).
pub fn ema_update(average: &Tensor, param: &Tensor, decay: f64) -> Result<Tensor> {
    let weight = 1.0 - decay;
    let diff = (param - average)?;
    Ok(if weight.abs() < 0.5 {
        (average + (diff * weight)?)?
    } else {
        (param - (diff * (1.0 - weight))?)?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use proptest::prelude::*;

    #[test]
    fn decay_outside_the_unit_interval_is_an_error_naming_it() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let err = EmaConfig { decay: bad }
                .validate("train.averaging")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("invalid config at train.averaging.decay: Invalid decay value"),
                "{err}"
            );
        }
        assert!(EmaConfig { decay: 1.0 }.validate("x").is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Each update stays between the average and the parameter (a convex combination), equals
        /// `decay avg + (1 - decay) param` within rounding on both lerp branches, and decay 1
        /// keeps the average, decay 0 takes the parameter.
        #[test]
        fn a_convex_combination_on_both_branches(
            seed in any::<u64>(), decay in 0.0f64..=1.0, n in 1usize..20,
        ) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let avg = rng.normal_tensor(&[n], 0.0, 3.0, DType::F64, &Device::Cpu).unwrap();
            let p = rng.normal_tensor(&[n], 0.0, 3.0, DType::F64, &Device::Cpu).unwrap();
            let new = ema_update(&avg, &p, decay).unwrap().to_vec1::<f64>().unwrap();
            let (a, q) = (avg.to_vec1::<f64>().unwrap(), p.to_vec1::<f64>().unwrap());
            for i in 0..n {
                let (lo, hi) = (a[i].min(q[i]), a[i].max(q[i]));
                let tol = 1e-12 * (1.0 + hi.abs().max(lo.abs()));
                prop_assert!(new[i] >= lo - tol && new[i] <= hi + tol);
                let textbook = decay * a[i] + (1.0 - decay) * q[i];
                prop_assert!((new[i] - textbook).abs() <= tol, "{} vs {}", new[i], textbook);
            }
            prop_assert_eq!(ema_update(&avg, &p, 1.0).unwrap().to_vec1::<f64>().unwrap(), a);
            prop_assert_eq!(ema_update(&avg, &p, 0.0).unwrap().to_vec1::<f64>().unwrap(), q);
        }
    }
}
