//! `one_cycle`: the 1cycle policy (`torch.optim.lr_scheduler.OneCycleLR`).

use std::f64::consts::PI;

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cycled::{Curve, Cycled, Point};
use crate::driven::{default_hyperparameter, required, PerGroup};

/// The 1cycle policy (Smith & Topin, <https://arxiv.org/abs/1708.07120>): warm up from
/// `initial = max_lr/div_factor` to `max_lr` during the first `pct_start` of `total_steps`,
/// then anneal to `min_lr = initial/final_div_factor`. With `three_phase`, the second phase
/// returns to `initial` and a third anneals to `min_lr`. With `cycle_momentum`, momentum (or
/// `beta1` for optimizers without `momentum`) moves inversely between `max_momentum` and
/// `base_momentum`.
///
/// Phase ends (in steps, as PyTorch): `pct_start·T − 1`, then `T − 1` (two phases), or
/// `pct_start·T − 1`, `2·pct_start·T − 2`, `T − 1` (three phases). Within a phase from step
/// `a` to `b`, `pct = (t − a)/(b − a)` and the value anneals from `start` to `end`:
/// cos: `end + (start − end)/2·(cos(π·pct) + 1)`; linear: `(end − start)·pct + start`.
/// Symbols: `T` = `total_steps` (or `epochs·steps_per_epoch`). Stepping past `T` is an error.
/// The optimizer's own value of the driven hyperparameter is ignored (as PyTorch).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OneCycleConfig {
    /// Peak value, one for all groups or one per group. Required (no default in torch.optim.lr_scheduler.OneCycleLR).
    pub max_lr: Option<PerGroup>,
    /// Length of the cycle in steps. Default: none, then `epochs·steps_per_epoch` (torch.optim.lr_scheduler.OneCycleLR).
    pub total_steps: Option<u64>,
    /// Epochs, with `steps_per_epoch`, when `total_steps` is not given. Default: none (torch.optim.lr_scheduler.OneCycleLR).
    pub epochs: Option<u64>,
    /// Steps per epoch, with `epochs`. Default: none (torch.optim.lr_scheduler.OneCycleLR).
    pub steps_per_epoch: Option<u64>,
    /// Fraction of the cycle spent increasing. Default: `0.3` (torch.optim.lr_scheduler.OneCycleLR).
    pub pct_start: f64,
    /// `"cos"` or `"linear"` annealing. Default: `"cos"` (torch.optim.lr_scheduler.OneCycleLR).
    pub anneal_strategy: AnnealStrategy,
    /// Cycle momentum (or `beta1`) inversely to the learning rate. Default: `true` (torch.optim.lr_scheduler.OneCycleLR).
    pub cycle_momentum: bool,
    /// Lowest momentum, reached at the peak. Default: `0.85` (torch.optim.lr_scheduler.OneCycleLR).
    pub base_momentum: PerGroup,
    /// Highest momentum, at the start and end. Default: `0.95` (torch.optim.lr_scheduler.OneCycleLR).
    pub max_momentum: PerGroup,
    /// `initial = max_lr/div_factor`. Default: `25.0` (torch.optim.lr_scheduler.OneCycleLR).
    pub div_factor: f64,
    /// `min_lr = initial/final_div_factor`. Default: `1e4` (torch.optim.lr_scheduler.OneCycleLR).
    pub final_div_factor: f64,
    /// Use the three-phase variant. Default: `false` (torch.optim.lr_scheduler.OneCycleLR).
    pub three_phase: bool,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for OneCycleConfig {
    fn default() -> Self {
        OneCycleConfig {
            max_lr: None,
            total_steps: None,
            epochs: None,
            steps_per_epoch: None,
            pct_start: 0.3,
            anneal_strategy: AnnealStrategy::Cos,
            cycle_momentum: true,
            base_momentum: PerGroup::One(0.85),
            max_momentum: PerGroup::One(0.95),
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// How a phase moves between its two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnnealStrategy {
    /// Half cosine.
    Cos,
    /// Straight line.
    Linear,
}

impl AnnealStrategy {
    fn anneal(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            AnnealStrategy::Cos => {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            }
            AnnealStrategy::Linear => (end - start) * pct + start,
        }
    }
}

// Indices into a group's lr anchors `[initial, max, min]` and momentum anchors `[max, base]`.
const INITIAL: usize = 0;
const MAX: usize = 1;
const MIN: usize = 2;
const M_MAX: usize = 0;
const M_BASE: usize = 1;

struct Phase {
    end_step: f64,
    lr: (usize, usize),
    momentum: (usize, usize),
}

/// The `one_cycle` curve.
pub struct OneCycle {
    total_steps: u64,
    phases: Vec<Phase>,
    anneal: AnnealStrategy,
    lr_anchors: Vec<[f64; 3]>,
    momentum_anchors: Option<Vec<[f64; 2]>>,
}

impl Curve for OneCycle {
    const NAME: &'static str = "one_cycle";

    fn at(&self, step: u64) -> Result<Point> {
        if step > self.total_steps {
            return Err(Error::InvalidHyperparameter(format!(
                "Tried to step {step} times. The specified number of total steps is {}",
                self.total_steps
            )));
        }
        let t = step as f64;
        let mut start_step = 0.0;
        let last = self.phases.len() - 1;
        let (phase, pct) = loop_phases(&self.phases, t, &mut start_step, last);
        if !pct.is_finite() {
            return Err(Error::InvalidHyperparameter(format!(
                "one_cycle phase {phase} has zero length at step {step} \
                 (pct_start·total_steps too small)"
            )));
        }
        let p = &self.phases[phase];
        let values = self
            .lr_anchors
            .iter()
            .map(|a| self.anneal.anneal(a[p.lr.0], a[p.lr.1], pct))
            .collect();
        let momentum = self.momentum_anchors.as_ref().map(|anchors| {
            anchors
                .iter()
                .map(|a| self.anneal.anneal(a[p.momentum.0], a[p.momentum.1], pct))
                .collect()
        });
        Ok(Point { values, momentum })
    }
}

/// The phase holding step `t` and the fraction of it done (PyTorch's `get_lr` loop).
fn loop_phases(phases: &[Phase], t: f64, start_step: &mut f64, last: usize) -> (usize, f64) {
    for (i, phase) in phases.iter().enumerate() {
        if t <= phase.end_step || i == last {
            return (i, (t - *start_step) / (phase.end_step - *start_step));
        }
        *start_step = phase.end_step;
    }
    (last, f64::NAN)
}

fn total_steps(config: &OneCycleConfig) -> Result<u64> {
    let positive = |value: u64, name: &str| {
        if value == 0 {
            Err(Error::InvalidHyperparameter(format!(
                "Expected positive integer {name}, but got 0"
            )))
        } else {
            Ok(value)
        }
    };
    match (config.total_steps, config.epochs, config.steps_per_epoch) {
        (Some(t), _, _) => positive(t, "total_steps"),
        (None, Some(e), Some(s)) => {
            Ok(positive(e, "epochs")?.saturating_mul(positive(s, "steps_per_epoch")?))
        }
        _ => Err(Error::InvalidHyperparameter(
            "You must define either total_steps OR (epochs AND steps_per_epoch)".into(),
        )),
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: OneCycleConfig = parse_config(config, path)?;
    let groups = optimizer.group_count();
    let max_lrs = required(&config.max_lr, "max_lr", path)?.resolve(groups, "max_lr", path)?;
    let total = total_steps(&config)?;
    let pct = config.pct_start;
    if !(0.0..=1.0).contains(&pct) {
        return Err(Error::InvalidHyperparameter(format!(
            "Expected float between 0 and 1 pct_start, but got {pct}"
        )));
    }
    for (name, v) in [
        ("div_factor", config.div_factor),
        ("final_div_factor", config.final_div_factor),
    ] {
        if !(v.is_finite() && v != 0.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "Expected a finite non-zero {name}, but got {v}"
            )));
        }
    }
    let t = total as f64;
    let phases = if config.three_phase {
        vec![
            Phase {
                end_step: pct * t - 1.0,
                lr: (INITIAL, MAX),
                momentum: (M_MAX, M_BASE),
            },
            Phase {
                end_step: 2.0 * pct * t - 2.0,
                lr: (MAX, INITIAL),
                momentum: (M_BASE, M_MAX),
            },
            Phase {
                end_step: t - 1.0,
                lr: (INITIAL, MIN),
                momentum: (M_MAX, M_MAX),
            },
        ]
    } else {
        vec![
            Phase {
                end_step: pct * t - 1.0,
                lr: (INITIAL, MAX),
                momentum: (M_MAX, M_BASE),
            },
            Phase {
                end_step: t - 1.0,
                lr: (MAX, MIN),
                momentum: (M_BASE, M_MAX),
            },
        ]
    };
    let lr_anchors: Vec<[f64; 3]> = max_lrs
        .iter()
        .map(|&max| {
            let initial = max / config.div_factor;
            [initial, max, initial / config.final_div_factor]
        })
        .collect();
    let momentum_anchors = if config.cycle_momentum {
        let max = config.max_momentum.resolve(groups, "max_momentum", path)?;
        let base = config
            .base_momentum
            .resolve(groups, "base_momentum", path)?;
        Some(
            max.iter()
                .zip(&base)
                .map(|(&m, &b)| [m, b])
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let initial = lr_anchors.iter().map(|a| a[INITIAL]).collect();
    let momentum_initial = momentum_anchors
        .as_ref()
        .map(|a: &Vec<[f64; 2]>| a.iter().map(|m| m[M_MAX]).collect());
    let curve = OneCycle {
        total_steps: total,
        phases,
        anneal: config.anneal_strategy,
        lr_anchors,
        momentum_anchors,
    };
    Cycled::start(
        curve,
        &config.hyperparameter,
        initial,
        momentum_initial,
        optimizer,
        path,
    )
}

gradus_core::register_schedule!(
    "one_cycle",
    "1cycle policy: warm up to max_lr, anneal far below, momentum inversely (torch OneCycleLR)",
    OneCycleConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn cycles_beta1_when_there_is_no_momentum_and_stops_after_total_steps() {
        let mut opt = FakeOptimizer::adam(&[0.1]);
        let config = json!({"type": "one_cycle", "max_lr": 1.0, "total_steps": 10});
        let betas = run(config.clone(), &mut opt, "beta1", 10).unwrap();
        assert_eq!(betas[0], 0.95);
        assert!(betas
            .iter()
            .all(|b| (0.85 - 1e-12..=0.95 + 1e-12).contains(b)));
        // Step 11 of 10 is PyTorch's ValueError.
        let err = run(config, &mut FakeOptimizer::adam(&[0.1]), "lr", 12).unwrap_err();
        assert!(err.to_string().contains("Tried to step 11 times"), "{err}");
    }

    #[test]
    fn needs_a_length_and_a_momentum_to_cycle() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let err = run(
            json!({"type": "one_cycle", "max_lr": 1.0}),
            &mut opt,
            "lr",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("either total_steps"), "{err}");
        let mut bare = FakeOptimizer {
            names: vec!["lr"],
            groups: vec![vec![0.1]],
        };
        let err = run(
            json!({"type": "one_cycle", "max_lr": 1.0, "total_steps": 5}),
            &mut bare,
            "lr",
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("momentum or beta1"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn stays_between_min_lr_and_max_lr(
            total in 10u64..60, pct in 0.1f64..0.45, max_lr in 1e-3f64..2.0,
            three_phase: bool, linear: bool,
        ) {
            let mut opt = FakeOptimizer::sgd(&[0.1]);
            let config = json!({"type": "one_cycle", "max_lr": max_lr, "total_steps": total,
                "pct_start": pct, "three_phase": three_phase,
                "anneal_strategy": if linear { "linear" } else { "cos" }});
            let seen = run(config, &mut opt, "lr", total as usize).unwrap();
            let min_lr = max_lr / 25.0 / 1e4;
            let tol = 1e-12 * max_lr;
            for v in &seen {
                prop_assert!(*v >= min_lr - tol && *v <= max_lr + tol, "{}", v);
            }
            prop_assert!((seen[0] - max_lr / 25.0).abs() <= tol);
        }
    }
}
