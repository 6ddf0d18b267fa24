//! `swa`: stochastic weight averaging, the equal average of the weights, as
//! `torch.optim.swa_utils.AveragedModel(model)` with the `SWALR` learning-rate schedule.

use candle_core::Tensor;
use gradus_core::config::join_path;
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stochastic Weight Averaging (Izmailov et al., "Averaging Weights Leads to Wider Optima and
/// Better Generalization", UAI 2018), as `AveragedModel(model)` of PyTorch 2.15 on the CPU
/// (`get_swa_avg_fn`):
///
/// ```text
/// W_1^SWA     = W_1                                      (the first update copies)
/// W_{n+1}^SWA = W_n^SWA + (W_{n+1} - W_n^SWA) / (n + 1)   (n = n_averaged)
/// ```
///
/// in the parameters' dtype, with a true division as PyTorch's (not a multiplication by the
/// reciprocal). The weights are averaged at the end of every epoch from `start_epoch` on
/// (epochs count from 1), and from that epoch the learning rate follows PyTorch's `SWALR`
/// towards `swa_lr` over `anneal_epochs` epochs ([`SwaConfig::schedule`], the registered
/// `swalr` schedule of `gradus-schedule`). Batch-norm statistics for the averaged weights are
/// recomputed with [`update_bn`](super::update_bn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SwaConfig {
    /// First epoch (from 1) at whose end the weights are averaged and from which `SWALR` drives
    /// the learning rate. Required (PyTorch's examples pass it as `swa_start`).
    pub start_epoch: Option<u64>,
    /// Learning rate that `SWALR` anneals to, `>= 0`. Required (torch.optim.swa_utils.SWALR
    /// has no default).
    pub swa_lr: Option<f64>,
    /// Epochs of the annealing from the current learning rate to `swa_lr`. Default: `10`
    /// (torch.optim.swa_utils.SWALR).
    pub anneal_epochs: u64,
    /// `"cos"` or `"linear"` annealing. Default: `"cos"` (torch.optim.swa_utils.SWALR).
    pub anneal_strategy: AnnealStrategy,
}

/// How `SWALR` moves from the current learning rate to `swa_lr` (the same names as the
/// `swalr` schedule's `anneal_strategy`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AnnealStrategy {
    /// `alpha(t) = (1 - cos(pi t)) / 2`.
    #[default]
    Cos,
    /// `alpha(t) = t`.
    Linear,
}

impl Default for SwaConfig {
    fn default() -> Self {
        SwaConfig {
            start_epoch: None,
            swa_lr: None,
            anneal_epochs: 10,
            anneal_strategy: AnnealStrategy::Cos,
        }
    }
}

impl SwaConfig {
    /// Checks the required fields and ranges; `path` is the config's JSON path.
    pub fn validate(&self, path: &str) -> Result<()> {
        match self.start_epoch {
            None => return Err(missing(path, "start_epoch")),
            Some(0) => {
                return Err(Error::config(
                    join_path(path, "start_epoch"),
                    "start_epoch must be at least 1 (epochs count from 1)",
                ))
            }
            Some(_) => {}
        }
        match self.swa_lr {
            None => Err(missing(path, "swa_lr")),
            Some(lr) if !(lr.is_finite() && lr >= 0.0) => Err(Error::config(
                join_path(path, "swa_lr"),
                format!("Invalid swa_lr: {lr} (a finite learning rate >= 0)"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// The first averaging epoch (validated configs only; 1 otherwise).
    pub fn first_epoch(&self) -> u64 {
        self.start_epoch.unwrap_or(1)
    }

    /// The `SWALR` schedule of this config as the JSON of the registered `swalr` schedule
    /// (`gradus_schedule::build_schedule(&config.schedule(), path, optimizer)`), stepped once
    /// at the end of every averaging epoch.
    pub fn schedule(&self) -> Value {
        serde_json::json!({
            "type": "swalr",
            "swa_lr": self.swa_lr.unwrap_or(0.0),
            "anneal_epochs": self.anneal_epochs,
            "anneal_strategy": self.anneal_strategy,
        })
    }
}

fn missing(path: &str, name: &str) -> Error {
    Error::config(
        join_path(path, name),
        format!("missing field `{name}` (it has no default, as in PyTorch)"),
    )
}

/// One SWA update of `average` with `param`, `n` models averaged so far (`n >= 1`).
pub fn swa_update(average: &Tensor, param: &Tensor, n: u64) -> Result<Tensor> {
    let count = Tensor::new(n as f64 + 1.0, average.device())?.to_dtype(average.dtype())?;
    Ok((average + (param - average)?.broadcast_div(&count)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use proptest::prelude::*;

    #[test]
    fn required_fields_and_ranges_are_checked_with_their_paths() {
        let err = |c: SwaConfig| c.validate("train.averaging").unwrap_err().to_string();
        let ok = SwaConfig {
            start_epoch: Some(3),
            swa_lr: Some(0.05),
            ..Default::default()
        };
        assert!(ok.validate("train.averaging").is_ok());
        assert!(err(SwaConfig {
            start_epoch: None,
            ..ok.clone()
        })
        .starts_with("invalid config at train.averaging.start_epoch: missing field"));
        assert!(err(SwaConfig {
            start_epoch: Some(0),
            ..ok.clone()
        })
        .contains("at least 1"));
        assert!(err(SwaConfig {
            swa_lr: None,
            ..ok.clone()
        })
        .starts_with("invalid config at train.averaging.swa_lr: missing field"));
        assert!(err(SwaConfig {
            swa_lr: Some(-1.0),
            ..ok.clone()
        })
        .contains("Invalid swa_lr: -1"));
        assert_eq!(
            ok.schedule(),
            serde_json::json!({"type": "swalr", "swa_lr": 0.05, "anneal_epochs": 10,
                "anneal_strategy": "cos"})
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Feeding k parameter values one after another gives their arithmetic mean.
        #[test]
        fn repeated_updates_give_the_arithmetic_mean(
            seed in any::<u64>(), k in 1usize..12, n in 1usize..10,
        ) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let values: Vec<Tensor> = (0..k)
                .map(|_| rng.normal_tensor(&[n], 0.0, 2.0, DType::F64, &Device::Cpu).unwrap())
                .collect();
            let mut avg = values[0].clone();
            for (i, v) in values.iter().enumerate().skip(1) {
                avg = swa_update(&avg, v, i as u64).unwrap();
            }
            let got = avg.to_vec1::<f64>().unwrap();
            let host: Vec<Vec<f64>> = values.iter().map(|v| v.to_vec1::<f64>().unwrap()).collect();
            for (j, g) in got.iter().enumerate() {
                let mean = host.iter().map(|v| v[j]).sum::<f64>() / k as f64;
                prop_assert!((g - mean).abs() <= 1e-12 * (1.0 + mean.abs()), "{} vs {}", g, mean);
            }
        }
    }
}
