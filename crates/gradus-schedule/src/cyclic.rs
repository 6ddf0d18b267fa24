//! `cyclic`: cyclical learning rates (`torch.optim.lr_scheduler.CyclicLR`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cycled::{Curve, Cycled, Point};
use crate::driven::{default_hyperparameter, required, PerGroup};

/// Cyclical learning rate (Smith, <https://arxiv.org/abs/1506.01186>): the value goes from
/// `base_lr` up to `max_lr` in `step_size_up` steps and back in `step_size_down`, the amplitude
/// scaled per `mode`; with `cycle_momentum`, momentum (or `beta1`) goes inversely between
/// `max_momentum` and `base_momentum`.
///
/// With `S = up + down`, `r = up/S`: `cycle = ⌊1 + t/S⌋`, `x = 1 + t/S − cycle`,
/// `f = x/r` if `x ≤ r` else `(x − 1)/(r − 1)`;
/// `η_t = base + (max − base)·f·scale`, `m_t = max_m − (max_m − base_m)·f·scale`, where
/// scale is `1` (`triangular`), `1/2^(cycle−1)` (`triangular2`) or `γ^t` (`exp_range`).
/// Symbols: `γ` = `gamma`. Building sets the value to `base_lr` (as PyTorch).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CyclicConfig {
    /// Lower bound, one for all groups or one per group. Required (no default in torch.optim.lr_scheduler.CyclicLR).
    pub base_lr: Option<PerGroup>,
    /// Upper bound. Required (no default in torch.optim.lr_scheduler.CyclicLR).
    pub max_lr: Option<PerGroup>,
    /// Steps of the increasing half, positive. Default: `2000` (torch.optim.lr_scheduler.CyclicLR).
    pub step_size_up: f64,
    /// Steps of the decreasing half. Default: none, meaning `step_size_up` (torch.optim.lr_scheduler.CyclicLR).
    pub step_size_down: Option<f64>,
    /// Amplitude policy. Default: `"triangular"` (torch.optim.lr_scheduler.CyclicLR).
    pub mode: CyclicMode,
    /// Decay base of `exp_range`. Default: `1.0` (torch.optim.lr_scheduler.CyclicLR).
    pub gamma: f64,
    /// Cycle momentum (or `beta1`) inversely. Default: `true` (torch.optim.lr_scheduler.CyclicLR).
    pub cycle_momentum: bool,
    /// Lower momentum bound. Default: `0.8` (torch.optim.lr_scheduler.CyclicLR).
    pub base_momentum: PerGroup,
    /// Upper momentum bound. Default: `0.9` (torch.optim.lr_scheduler.CyclicLR).
    pub max_momentum: PerGroup,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for CyclicConfig {
    fn default() -> Self {
        CyclicConfig {
            base_lr: None,
            max_lr: None,
            step_size_up: 2000.0,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            gamma: 1.0,
            cycle_momentum: true,
            base_momentum: PerGroup::One(0.8),
            max_momentum: PerGroup::One(0.9),
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// Amplitude scaling of [`CyclicConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Constant amplitude.
    Triangular,
    /// Amplitude halved every cycle.
    Triangular2,
    /// Amplitude scaled by `gamma^t`.
    ExpRange,
}

/// The `cyclic` curve.
pub struct Cyclic {
    total_size: f64,
    step_ratio: f64,
    mode: CyclicMode,
    gamma: f64,
    lr: Vec<(f64, f64)>,
    momentum: Option<Vec<(f64, f64)>>,
}

impl Curve for Cyclic {
    const NAME: &'static str = "cyclic";

    fn at(&self, step: u64) -> Result<Point> {
        let t = step as f64;
        let cycle = (1.0 + t / self.total_size).floor();
        let x = 1.0 + t / self.total_size - cycle;
        let factor = if x <= self.step_ratio {
            x / self.step_ratio
        } else {
            (x - 1.0) / (self.step_ratio - 1.0)
        };
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => self.gamma.powf(t),
        };
        let values = self
            .lr
            .iter()
            .map(|&(base, max)| base + (max - base) * factor * scale)
            .collect();
        let momentum = self.momentum.as_ref().map(|m| {
            m.iter()
                .map(|&(base, max)| max - (max - base) * factor * scale)
                .collect()
        });
        Ok(Point { values, momentum })
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: CyclicConfig = parse_config(config, path)?;
    let groups = optimizer.group_count();
    let base = required(&config.base_lr, "base_lr", path)?.resolve(groups, "base_lr", path)?;
    let max = required(&config.max_lr, "max_lr", path)?.resolve(groups, "max_lr", path)?;
    let up = config.step_size_up;
    let down = config.step_size_down.unwrap_or(up);
    if !(up > 0.0 && up.is_finite() && down >= 0.0 && down.is_finite()) {
        return Err(Error::InvalidHyperparameter(format!(
            "Expected step_size_up > 0 and step_size_down >= 0, but got {up} and {down}"
        )));
    }
    if !config.gamma.is_finite() {
        return Err(Error::InvalidHyperparameter(format!(
            "invalid gamma: {}",
            config.gamma
        )));
    }
    let momentum = if config.cycle_momentum {
        let b = config
            .base_momentum
            .resolve(groups, "base_momentum", path)?;
        let m = config.max_momentum.resolve(groups, "max_momentum", path)?;
        Some(b.into_iter().zip(m).collect::<Vec<_>>())
    } else {
        None
    };
    let momentum_initial = momentum
        .as_ref()
        .map(|m: &Vec<(f64, f64)>| m.iter().map(|&(_, max)| max).collect());
    let curve = Cyclic {
        total_size: up + down,
        step_ratio: up / (up + down),
        mode: config.mode,
        gamma: config.gamma,
        lr: base.iter().copied().zip(max).collect(),
        momentum,
    };
    Cycled::start(
        curve,
        &config.hyperparameter,
        base,
        momentum_initial,
        optimizer,
        path,
    )
}

gradus_core::register_schedule!(
    "cyclic",
    "cyclical values between base_lr and max_lr, triangular/triangular2/exp_range (torch CyclicLR)",
    CyclicConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn unknown_mode_is_rejected_with_the_valid_ones() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let config = json!({"type": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "mode": "square"});
        let err = run(config, &mut opt, "lr", 1).unwrap_err();
        assert!(err.to_string().contains("triangular2"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn stays_between_base_and_max_with_momentum_inverse(
            base in 1e-4f64..0.1, span in 0.0f64..1.0, up in 1u32..10, down in 0u32..10,
            mode in 0usize..3, gamma in 0.5f64..=1.0,
        ) {
            let max = base + span;
            let mut opt = FakeOptimizer::sgd(&[0.1]);
            let mode = ["triangular", "triangular2", "exp_range"][mode];
            let config = json!({"type": "cyclic", "base_lr": base, "max_lr": max,
                "step_size_up": up, "step_size_down": down, "mode": mode, "gamma": gamma});
            let mut schedule = crate::build_schedule(&config, "schedule", &mut opt).unwrap();
            let tol = 1e-12;
            for _ in 0..50 {
                let (lr, m) = (opt.get(0, "lr"), opt.get(0, "momentum"));
                prop_assert!(lr >= base - tol && lr <= max + tol, "{}", lr);
                prop_assert!((0.8 - tol..=0.9 + tol).contains(&m), "{}", m);
                // Inverse: both sit at the same fraction of their ranges.
                if span > 1e-6 {
                    prop_assert!(((lr - base) / span - (0.9 - m) / 0.1).abs() < 1e-6);
                }
                schedule.step(&mut opt, None).unwrap();
            }
        }
    }
}
