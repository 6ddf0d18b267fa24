//! `swalr`: anneal the learning rate to a fixed value for stochastic weight averaging
//! (`torch.optim.swa_utils.SWALR`).

use std::f64::consts::PI;

use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driven::{
    default_hyperparameter, required, tagged_state, untag_state, Driven, PerGroup,
};

/// Moves each group's learning rate from its current value to `swa_lr` over `anneal_epochs`
/// steps, then keeps it there: the schedule of SWA's averaging phase (Izmailov et al., 2018),
/// as PyTorch 2.15's `SWALR`.
///
/// Chainable form (PyTorch's `SWALR.get_lr`), at step `s` (0 at construction), with
/// `A = anneal_epochs`, `s' = max(1, s)` when `A = 0` (else `s' = s`) and `η` the value now in
/// force:
///
/// ```text
/// α(t)  = (1 - cos(π t)) / 2   ("cos")   or   t   ("linear")
/// α⁻    = α(clamp((s' - 1) / max(1, A), 0, 1))
/// η₀    = swa_lr                       if α⁻ = 1
///         (η - α⁻ swa_lr) / (1 - α⁻)   otherwise        (the value annealing started from)
/// α     = α(clamp(s' / max(1, A), 0, 1))
/// η_s   = swa_lr α + η₀ (1 - α)
/// ```
///
/// so that, when nothing else writes the learning rate, `η_s = swa_lr α(s/A) + η_start
/// (1 - α(s/A))`. Building it leaves the value unchanged (except for `A = 0`, which sets
/// `swa_lr` at once, as PyTorch). Step it once per epoch of the averaging phase. It is built
/// by name like any schedule; `gradus_optim::averaging::SwaConfig::schedule` gives its JSON
/// for a `train.averaging` SWA config. Symbols: `swa_lr` (per group or one for all),
/// `A` = `anneal_epochs`, `α` = `anneal_strategy`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SwalrConfig {
    /// Target value, one for every group or one per group. Required
    /// (torch.optim.swa_utils.SWALR has no default).
    pub swa_lr: Option<PerGroup>,
    /// Steps of the annealing. Default: `10` (torch.optim.swa_utils.SWALR).
    pub anneal_epochs: u64,
    /// `"cos"` or `"linear"`. Default: `"cos"` (torch.optim.swa_utils.SWALR).
    pub anneal_strategy: AnnealStrategy,
    /// Hyperparameter driven. Default: `"lr"` (PyTorch schedulers drive `lr`).
    pub hyperparameter: String,
}

/// The shape of the annealing (the same names as `gradus_optim::averaging::AnnealStrategy`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AnnealStrategy {
    /// `α(t) = (1 - cos(π t)) / 2`.
    #[default]
    Cos,
    /// `α(t) = t`.
    Linear,
}

impl Default for SwalrConfig {
    fn default() -> Self {
        SwalrConfig {
            swa_lr: None,
            anneal_epochs: 10,
            anneal_strategy: AnnealStrategy::Cos,
            hyperparameter: default_hyperparameter(),
        }
    }
}

/// The `swalr` schedule.
pub struct Swalr {
    swa_lr: Vec<f64>,
    anneal_epochs: u64,
    strategy: AnnealStrategy,
    step: u64,
    driven: Driven,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwalrState {
    step: u64,
    driven: Driven,
}

impl Swalr {
    fn anneal(&self, t: f64) -> f64 {
        match self.strategy {
            AnnealStrategy::Cos => (1.0 - (PI * t).cos()) / 2.0,
            AnnealStrategy::Linear => t,
        }
    }

    /// PyTorch's `get_lr` for one group: `lr` in force, target `swa`, at `step`.
    fn value(&self, step: u64, lr: f64, swa: f64) -> f64 {
        let step = if self.anneal_epochs == 0 {
            step.max(1)
        } else {
            step
        };
        let span = self.anneal_epochs.max(1) as f64;
        let prev_alpha = self.anneal(((step as f64 - 1.0) / span).clamp(0.0, 1.0));
        let start = if prev_alpha == 1.0 {
            swa
        } else {
            (lr - prev_alpha * swa) / (1.0 - prev_alpha)
        };
        let alpha = self.anneal((step as f64 / span).clamp(0.0, 1.0));
        swa * alpha + start * (1.0 - alpha)
    }

    fn apply(&mut self, optimizer: &mut dyn Optimizer, step: u64) -> Result<()> {
        let current = self.driven.current(optimizer)?;
        let values = current
            .iter()
            .zip(&self.swa_lr)
            .map(|(&lr, &swa)| self.value(step, lr, swa))
            .collect();
        self.driven.write(optimizer, values)?;
        self.step = step;
        Ok(())
    }
}

impl Schedule for Swalr {
    fn step(&mut self, optimizer: &mut dyn Optimizer, _metric: Option<f64>) -> Result<()> {
        self.apply(optimizer, self.step + 1)
    }

    fn state(&self) -> Value {
        tagged_state(
            "swalr",
            &SwalrState {
                step: self.step,
                driven: self.driven.clone(),
            },
        )
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let saved: SwalrState = untag_state("swalr", state)?;
        self.driven.load(saved.driven)?;
        self.step = saved.step;
        Ok(())
    }
}

fn build(config: &Value, path: &str, optimizer: &mut dyn Optimizer) -> Result<Box<dyn Schedule>> {
    let config: SwalrConfig = parse_config(config, path)?;
    let swa_lr = required(&config.swa_lr, "swa_lr", path)?.resolve(
        optimizer.group_count(),
        "swa_lr",
        path,
    )?;
    if let Some(bad) = swa_lr.iter().find(|v| **v < 0.0) {
        return Err(Error::config(
            join_path(path, "swa_lr"),
            format!("Invalid swa_lr: {bad} (a learning rate >= 0)"),
        ));
    }
    let driven = Driven::capture(optimizer, &config.hyperparameter, path)?;
    let mut schedule = Swalr {
        swa_lr,
        anneal_epochs: config.anneal_epochs,
        strategy: config.anneal_strategy,
        step: 0,
        driven,
    };
    schedule.apply(optimizer, 0)?;
    Ok(Box::new(schedule))
}

gradus_core::register_schedule!(
    "swalr",
    "anneal to swa_lr over anneal_epochs, cos or linear, for weight averaging (torch SWALR)",
    SwalrConfig,
    build
);

#[cfg(test)]
mod tests {
    use crate::testing::{run, FakeOptimizer};
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn bad_configs_are_errors_naming_the_field() {
        let mut opt = FakeOptimizer::sgd(&[0.1, 0.2]);
        let err = |config| {
            run(config, &mut opt.clone(), "lr", 1)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err(json!({"type": "swalr"}))
            .starts_with("invalid config at schedule.swa_lr: missing field `swa_lr`"));
        assert!(err(json!({"type": "swalr", "swa_lr": [0.1]}))
            .contains("expected 2 values for swa_lr, got 1"));
        assert!(err(json!({"type": "swalr", "swa_lr": -0.1})).contains("Invalid swa_lr: -0.1"));
        assert!(
            err(json!({"type": "swalr", "swa_lr": 0.1, "anneal_strategy": "exp"}))
                .contains("unknown variant `exp`")
        );
        assert!(
            err(json!({"type": "swalr", "swa_lr": 0.1, "anneal_epochs": 2.5}))
                .starts_with("invalid config at schedule.anneal_epochs")
        );
        assert!(run(json!({"type": "swalr", "swa_lr": 0.1}), &mut opt, "lr", 3).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Starting from lr, the value follows `swa α(s/A) + lr (1 - α(s/A))`: it moves
        /// monotonically towards swa_lr, reaches it at step A and stays.
        #[test]
        fn anneals_monotonically_to_swa_lr_and_stays(
            lr in 1e-3f64..1.0, swa in 0.0f64..1.0, a in 0u64..15, linear in any::<bool>(),
        ) {
            let strategy = if linear { "linear" } else { "cos" };
            let mut opt = FakeOptimizer::sgd(&[lr]);
            let seen = run(json!({"type": "swalr", "swa_lr": swa, "anneal_epochs": a,
                "anneal_strategy": strategy}), &mut opt, "lr", a as usize + 6).unwrap();
            let tol = 1e-12;
            for (s, v) in seen.iter().enumerate() {
                let t = if a == 0 { 1.0 } else { (s as f64 / a as f64).min(1.0) };
                let alpha = if linear { t } else { (1.0 - (std::f64::consts::PI * t).cos()) / 2.0 };
                let closed = swa * alpha + lr * (1.0 - alpha);
                prop_assert!((v - closed).abs() <= tol, "s={} {} vs {}", s, v, closed);
                if s > 0 {
                    prop_assert!((v - swa).abs() <= (seen[s - 1] - swa).abs() + tol);
                }
                if s as u64 >= a {
                    prop_assert!((v - swa).abs() <= tol);
                }
            }
        }
    }
}
