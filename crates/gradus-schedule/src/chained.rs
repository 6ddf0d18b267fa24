//! The shared machinery of PyTorch's chainable schedules: a rule maps (epoch, current value,
//! initial value) to the next value, and [`Chained`] walks the epochs, per group.

use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driven::{tagged_state, untag_state, Driven};

/// One chainable schedule's update, as PyTorch's `get_lr`: the value at `epoch` from the value
/// now in force (`group["lr"]`) and the group's initial value (`base_lr`).
pub(crate) trait Rule: Send + 'static {
    /// The registered name, used to tag saved state.
    const NAME: &'static str;
    /// The value at `epoch` (0 is construction).
    fn value(&self, epoch: u64, current: f64, initial: f64) -> f64;
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainedState {
    last_epoch: u64,
    driven: Driven,
}

/// A [`Rule`] driving one hyperparameter of every group of an optimizer.
pub(crate) struct Chained<R> {
    rule: R,
    last_epoch: u64,
    driven: Driven,
}

impl<R: Rule> Chained<R> {
    /// Records the initial values of `hyperparameter` and writes the step-0 values (PyTorch's
    /// `_initial_step`).
    pub fn start(
        rule: R,
        hyperparameter: &str,
        optimizer: &mut dyn Optimizer,
        path: &str,
    ) -> Result<Box<dyn Schedule>> {
        let driven = Driven::capture(optimizer, hyperparameter, path)?;
        let mut schedule = Chained {
            rule,
            last_epoch: 0,
            driven,
        };
        schedule.apply(optimizer, 0)?;
        Ok(Box::new(schedule))
    }

    fn apply(&mut self, optimizer: &mut dyn Optimizer, epoch: u64) -> Result<()> {
        let current = self.driven.current(optimizer)?;
        let values = current
            .iter()
            .zip(&self.driven.initial)
            .map(|(&c, &i)| self.rule.value(epoch, c, i))
            .collect();
        self.driven.write(optimizer, values)?;
        self.last_epoch = epoch;
        Ok(())
    }
}

impl<R: Rule> Schedule for Chained<R> {
    fn step(&mut self, optimizer: &mut dyn Optimizer, _metric: Option<f64>) -> Result<()> {
        self.apply(optimizer, self.last_epoch + 1)
    }

    fn state(&self) -> Value {
        tagged_state(
            R::NAME,
            &ChainedState {
                last_epoch: self.last_epoch,
                driven: self.driven.clone(),
            },
        )
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let saved: ChainedState = untag_state(R::NAME, state)?;
        self.driven.load(saved.driven)?;
        self.last_epoch = saved.last_epoch;
        Ok(())
    }
}
