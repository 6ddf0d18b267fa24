//! The shared machinery of the closed-form cyclical schedules (`one_cycle`, `cyclic`): a curve
//! gives the value of every group at each step, optionally with a momentum that moves inversely.

use gradus_core::config::join_path;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::{Error, Optimizer, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::driven::{momentum_target, tagged_state, untag_state, Driven};

/// Values at one step: the driven hyperparameter and, when cycled, the momentum (per group).
pub(crate) struct Point {
    pub values: Vec<f64>,
    pub momentum: Option<Vec<f64>>,
}

/// A closed-form schedule: the values at step `epoch` (0 is construction).
pub(crate) trait Curve: Send + 'static {
    /// The registered name, used to tag saved state.
    const NAME: &'static str;
    /// The values at `epoch`.
    fn at(&self, epoch: u64) -> Result<Point>;
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CycledState {
    last_epoch: u64,
    driven: Driven,
    momentum: Option<Driven>,
}

/// A [`Curve`] driving an optimizer.
pub(crate) struct Cycled<C> {
    curve: C,
    last_epoch: u64,
    driven: Driven,
    momentum: Option<Driven>,
}

impl<C: Curve> Cycled<C> {
    /// Records the schedule's own initial values, picks the momentum hyperparameter when
    /// `momentum_initial` is given (`momentum`, else `beta1`), and writes the step-0 values.
    pub fn start(
        curve: C,
        hyperparameter: &str,
        initial: Vec<f64>,
        momentum_initial: Option<Vec<f64>>,
        optimizer: &mut dyn Optimizer,
        path: &str,
    ) -> Result<Box<dyn Schedule>> {
        let driven = Driven::with_initial(optimizer, hyperparameter, initial, path)?;
        let momentum = match momentum_initial {
            None => None,
            Some(values) => {
                let name = momentum_target(optimizer)?;
                if name == hyperparameter {
                    return Err(Error::config(
                        join_path(path, "hyperparameter"),
                        format!(
                            "`{name}` cannot be both the driven hyperparameter and the cycled \
                             momentum; set cycle_momentum to false"
                        ),
                    ));
                }
                Some(Driven::with_initial(optimizer, name, values, path)?)
            }
        };
        let mut schedule = Cycled {
            curve,
            last_epoch: 0,
            driven,
            momentum,
        };
        schedule.apply(optimizer, 0)?;
        Ok(Box::new(schedule))
    }

    fn apply(&mut self, optimizer: &mut dyn Optimizer, epoch: u64) -> Result<()> {
        let point = self.curve.at(epoch)?;
        self.driven.write(optimizer, point.values)?;
        if let (Some(driven), Some(values)) = (self.momentum.as_mut(), point.momentum) {
            driven.write(optimizer, values)?;
        }
        self.last_epoch = epoch;
        Ok(())
    }
}

impl<C: Curve> Schedule for Cycled<C> {
    fn step(&mut self, optimizer: &mut dyn Optimizer, _metric: Option<f64>) -> Result<()> {
        self.apply(optimizer, self.last_epoch + 1)
    }

    fn state(&self) -> Value {
        tagged_state(
            C::NAME,
            &CycledState {
                last_epoch: self.last_epoch,
                driven: self.driven.clone(),
                momentum: self.momentum.clone(),
            },
        )
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let saved: CycledState = untag_state(C::NAME, state)?;
        match (self.momentum.as_mut(), saved.momentum) {
            (Some(mine), Some(theirs)) => mine.load(theirs)?,
            (None, None) => {}
            _ => {
                return Err(Error::StateMismatch(format!(
                    "`{}` state and schedule disagree on cycle_momentum",
                    C::NAME
                )))
            }
        }
        self.driven.load(saved.driven)?;
        self.last_epoch = saved.last_epoch;
        Ok(())
    }
}
