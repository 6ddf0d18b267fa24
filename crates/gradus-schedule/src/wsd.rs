//! `wsd`: warmup-stable-decay (linear warm-up, a constant plateau, then a short decay).

use std::f64::consts::PI;

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chained::{Chained, Rule};
use crate::driven::{default_hyperparameter, required};

/// The shape of the decay phase of [`WsdConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum WsdDecay {
    /// `1 − p`.
    #[serde(rename = "linear")]
    Linear,
    /// `(1 + cos(π p))/2`.
    #[serde(rename = "cosine")]
    Cosine,
    /// `1 − √p` (Hägele et al.'s choice).
    #[serde(rename = "1-sqrt")]
    OneMinusSqrt,
}

/// Warmup-stable-decay: the factor rises linearly over `warmup_steps`, stays at 1, and falls
/// to `min_factor` over the last `decay_fraction` of `total_steps`.
///
/// Closed form, with `W` = `warmup_steps`, `T` = `total_steps`, `D = round(f·T)` decay steps
/// (`f` = `decay_fraction`), `S = T − D` and `m` = `min_factor`:
///
/// ```text
/// t < W:        φ = t / W
/// W ≤ t < S:    φ = 1
/// S ≤ t < T:    p = (t − S)/D,   φ = m + (1 − m)·shape(p)
/// t ≥ T:        φ = m
/// η_t = initial · φ
/// ```
///
/// `shape` is `decay`: `"linear"` (1 − p), `"cosine"` ((1 + cos πp)/2) or `"1-sqrt"` (1 − √p).
/// As Hugging Face's `get_wsd_schedule`, the first step of a warm-up runs at factor 0. PyTorch
/// has no such scheduler; references: Hu et al., "MiniCPM" (arXiv:2404.06395), and Hägele et
/// al., "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"
/// (arXiv:2405.18392).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WsdConfig {
    /// Length T of the run, in steps. Required.
    pub total_steps: Option<u64>,
    /// Steps W of the linear warm-up. Default: `0`.
    pub warmup_steps: u64,
    /// Fraction f of `total_steps` spent decaying, in `[0, 1]`. Default: `0.1`.
    pub decay_fraction: f64,
    /// Shape of the decay. Default: `"linear"`.
    pub decay: WsdDecay,
    /// Factor m reached at the end of the decay, in `[0, 1]`. Default: `0.0`.
    pub min_factor: f64,
    /// Hyperparameter driven. Default: `"lr"`.
    pub hyperparameter: String,
}

impl Default for WsdConfig {
    fn default() -> Self {
        WsdConfig {
            total_steps: None,
            warmup_steps: 0,
            decay_fraction: 0.1,
            decay: WsdDecay::Linear,
            min_factor: 0.0,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `wsd` rule.
pub struct Wsd {
    warmup: u64,
    decay_start: u64,
    decay_steps: u64,
    total: u64,
    decay: WsdDecay,
    min_factor: f64,
}

impl Wsd {
    /// The factor φ at step `t`.
    pub fn factor(&self, t: u64) -> f64 {
        if t < self.warmup {
            t as f64 / self.warmup as f64
        } else if t < self.decay_start {
            1.0
        } else if t < self.total {
            let p = (t - self.decay_start) as f64 / self.decay_steps as f64;
            let shape = match self.decay {
                WsdDecay::Linear => 1.0 - p,
                WsdDecay::Cosine => 0.5 * (1.0 + (PI * p).cos()),
                WsdDecay::OneMinusSqrt => 1.0 - p.sqrt(),
            };
            self.min_factor + (1.0 - self.min_factor) * shape
        } else {
            self.min_factor
        }
    }
}

impl Rule for Wsd {
    const NAME: &'static str = "wsd";

    fn value(&self, epoch: u64, _current: f64, initial: f64) -> f64 {
        initial * self.factor(epoch)
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidHyperparameter(message)
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: WsdConfig = parse_config(config, path)?;
    let total = required(&config.total_steps, "total_steps", path)?;
    if total == 0 {
        return Err(invalid("total_steps must be positive, got 0".to_string()));
    }
    if !(0.0..=1.0).contains(&config.decay_fraction) {
        return Err(invalid(format!(
            "decay_fraction must be in [0, 1], got {}",
            config.decay_fraction
        )));
    }
    if !(0.0..=1.0).contains(&config.min_factor) {
        return Err(invalid(format!(
            "min_factor must be in [0, 1], got {}",
            config.min_factor
        )));
    }
    let decay_steps = (config.decay_fraction * total as f64).round() as u64;
    let decay_start = total - decay_steps;
    if config.warmup_steps > decay_start {
        return Err(invalid(format!(
            "warmup_steps ({}) and the decay ({decay_steps} steps) do not fit in total_steps ({total})",
            config.warmup_steps
        )));
    }
    Chained::start(
        Wsd {
            warmup: config.warmup_steps,
            decay_start,
            decay_steps,
            total,
            decay: config.decay,
            min_factor: config.min_factor,
        },
        &config.hyperparameter,
        optimizer,
        path,
    )
}

gradus_core::register_schedule!(
    "wsd",
    "warmup-stable-decay: linear warm-up, constant, then linear / cosine / 1-sqrt decay",
    WsdConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    fn formula(t: u64, w: u64, total: u64, f: f64, decay: &str, m: f64) -> f64 {
        let d = (f * total as f64).round() as u64;
        let s = total - d;
        if t < w {
            t as f64 / w as f64
        } else if t < s {
            1.0
        } else if t < total {
            let p = (t - s) as f64 / d as f64;
            let shape = match decay {
                "linear" => 1.0 - p,
                "cosine" => 0.5 * (1.0 + (PI * p).cos()),
                _ => 1.0 - p.sqrt(),
            };
            m + (1.0 - m) * shape
        } else {
            m
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn follows_its_formula(
            total in 1u64..60, w_frac in 0.0f64..0.5, f in 0.0f64..0.5, m in 0.0f64..1.0,
            decay in prop::sample::select(vec!["linear", "cosine", "1-sqrt"]), lr in 1e-4f64..1.0,
        ) {
            let w = (w_frac * total as f64) as u64;
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let config = json!({"type": "wsd", "total_steps": total, "warmup_steps": w,
                "decay_fraction": f, "decay": decay, "min_factor": m});
            let seen = run(config, &mut opt, "lr", total as usize + 5).unwrap();
            for (t, v) in seen.iter().enumerate() {
                let expected = lr * formula(t as u64, w, total, f, decay, m);
                prop_assert_eq!(*v, expected, "step {}", t);
                prop_assert!(*v <= lr && *v >= 0.0);
            }
        }
    }

    #[test]
    fn phases_of_a_small_run() {
        // T = 10, W = 2, D = 4 (S = 6), linear to 0.
        let mut opt = FakeOptimizer::sgd(&[1.0]);
        let config =
            json!({"type": "wsd", "total_steps": 10, "warmup_steps": 2, "decay_fraction": 0.4});
        let seen = run(config, &mut opt, "lr", 12).unwrap();
        assert_eq!(
            seen,
            [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
        );
    }

    #[test]
    fn warmup_and_decay_must_fit() {
        let mut opt = FakeOptimizer::sgd(&[1.0]);
        let config =
            json!({"type": "wsd", "total_steps": 10, "warmup_steps": 8, "decay_fraction": 0.5});
        assert!(run(config, &mut opt, "lr", 1).is_err());
    }
}
