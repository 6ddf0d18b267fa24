//! `reduce_on_plateau`: reduce when a metric stops improving
//! (`torch.optim.lr_scheduler.ReduceLROnPlateau`).

use gradus_core::config::parse_config;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driven::{any_f64, default_hyperparameter, tagged_state, untag_state, Driven, PerGroup};

/// Multiplies the hyperparameter by `factor` once the metric has not improved for more than
/// `patience` steps, then waits `cooldown` steps before counting again.
///
/// Improvement of metric `a` over the best `b` (PyTorch's `is_better`): `min`/`rel`:
/// `a < b·(1 − threshold)`; `min`/`abs`: `a < b − threshold`; `max`/`rel`:
/// `a > b·(1 + threshold)`; `max`/`abs`: `a > b + threshold`. A reduction sets
/// `η ← max(η·factor, min_lr)`, skipped when it would change `η` by no more than `eps`.
/// Every [`Schedule::step`] needs the metric; building changes nothing (as PyTorch). A NaN
/// metric counts as no improvement (as PyTorch).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReduceOnPlateauConfig {
    /// `"min"` (lower is better) or `"max"`. Default: `"min"` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub mode: PlateauMode,
    /// Reduction factor, below 1. Default: `0.1` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub factor: f64,
    /// Steps without improvement tolerated before reducing. Default: `10` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub patience: u64,
    /// Least significant improvement. Default: `1e-4` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub threshold: f64,
    /// `"rel"` or `"abs"` comparison. Default: `"rel"` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub threshold_mode: ThresholdMode,
    /// Steps to wait after a reduction. Default: `0` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub cooldown: u64,
    /// Floor, one for all groups or one per group. Default: `0` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub min_lr: PerGroup,
    /// Smallest change applied. Default: `1e-8` (torch.optim.lr_scheduler.ReduceLROnPlateau).
    pub eps: f64,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

impl Default for ReduceOnPlateauConfig {
    fn default() -> Self {
        ReduceOnPlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: PerGroup::One(0.0),
            eps: 1e-8,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// Whether lower or higher metrics are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` compares metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// Relative to the best value.
    Rel,
    /// Absolute difference.
    Abs,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlateauState {
    last_epoch: u64,
    #[serde(with = "any_f64")]
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    driven: Driven,
}

/// The `reduce_on_plateau` schedule.
pub struct ReduceOnPlateau {
    config: ReduceOnPlateauConfig,
    min_lrs: Vec<f64>,
    state: PlateauState,
}

impl ReduceOnPlateau {
    fn is_better(&self, a: f64, best: f64) -> bool {
        let t = self.config.threshold;
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    fn reduce(&mut self, optimizer: &mut dyn Optimizer) -> Result<()> {
        let current = self.state.driven.current(optimizer)?;
        let values = current
            .iter()
            .zip(&self.min_lrs)
            .map(|(&old, &floor)| {
                let new = (old * self.config.factor).max(floor);
                if old - new > self.config.eps {
                    new
                } else {
                    old
                }
            })
            .collect();
        self.state.driven.write(optimizer, values)
    }
}

impl Schedule for ReduceOnPlateau {
    fn step(&mut self, optimizer: &mut dyn Optimizer, metric: Option<f64>) -> Result<()> {
        let current = metric.ok_or_else(|| {
            Error::Unsupported(
                "reduce_on_plateau needs a metric at every step (the monitored value)".into(),
            )
        })?;
        let saved = self.state.clone();
        self.state.last_epoch += 1;
        if self.is_better(current, self.state.best) {
            self.state.best = current;
            self.state.num_bad_epochs = 0;
        } else {
            self.state.num_bad_epochs += 1;
        }
        if self.state.cooldown_counter > 0 {
            self.state.cooldown_counter -= 1;
            // Bad steps during cooldown are ignored.
            self.state.num_bad_epochs = 0;
        }
        if self.state.num_bad_epochs > self.config.patience {
            if let Err(e) = self.reduce(optimizer) {
                self.state = saved;
                return Err(e);
            }
            self.state.cooldown_counter = self.config.cooldown;
            self.state.num_bad_epochs = 0;
        }
        Ok(())
    }

    fn state(&self) -> Value {
        tagged_state("reduce_on_plateau", &self.state)
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let saved: PlateauState = untag_state("reduce_on_plateau", state)?;
        let mut driven = self.state.driven.clone();
        driven.load(saved.driven.clone())?;
        self.state = PlateauState { driven, ..saved };
        Ok(())
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: ReduceOnPlateauConfig = parse_config(config, path)?;
    if config.factor >= 1.0 || config.factor.is_nan() {
        return Err(Error::InvalidHyperparameter(format!(
            "Factor should be < 1.0, got {}",
            config.factor
        )));
    }
    let min_lrs = config
        .min_lr
        .resolve(optimizer.group_count(), "min_lr", path)?;
    let driven = Driven::capture(optimizer, &config.hyperparameter, path)?;
    let worst = match config.mode {
        PlateauMode::Min => f64::INFINITY,
        PlateauMode::Max => f64::NEG_INFINITY,
    };
    Ok(Box::new(ReduceOnPlateau {
        config,
        min_lrs,
        state: PlateauState {
            last_epoch: 0,
            best: worst,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            driven,
        },
    }))
}

gradus_core::register_schedule!(
    "reduce_on_plateau",
    "reduce by factor when a metric stops improving (torch ReduceLROnPlateau)",
    ReduceOnPlateauConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::FakeOptimizer;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_step_without_metric_is_an_error_and_changes_nothing() {
        let mut opt = FakeOptimizer::sgd(&[0.1]);
        let mut s =
            crate::build_schedule(&json!({"type": "reduce_on_plateau"}), "s", &mut opt).unwrap();
        let before = s.state();
        assert!(s.step(&mut opt, None).is_err());
        assert_eq!(s.state(), before);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn never_increases_and_never_goes_below_min_lr(
            metrics in proptest::collection::vec(-10.0f64..10.0, 1..40),
            factor in 0.0f64..0.99, patience in 0u64..4, cooldown in 0u64..3,
            min_frac in 0.0f64..1.0, max_mode: bool,
        ) {
            let lr = 0.1;
            let min_lr = lr * min_frac;
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let config = json!({"type": "reduce_on_plateau", "factor": factor,
                "patience": patience, "cooldown": cooldown, "min_lr": min_lr,
                "mode": if max_mode { "max" } else { "min" }});
            let mut s = crate::build_schedule(&config, "s", &mut opt).unwrap();
            let mut previous = lr;
            for m in metrics {
                s.step(&mut opt, Some(m)).unwrap();
                let now = opt.get(0, "lr");
                prop_assert!(now <= previous && now >= min_lr.min(lr));
                previous = now;
            }
        }
    }
}
