//! The hyperparameter a schedule drives, per-group values, and state helpers shared by every
//! schedule.

use gradus_core::config::join_path;
use gradus_core::{Error, Optimizer, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The name of the hyperparameter a schedule drives unless its config says otherwise.
pub(crate) fn default_hyperparameter() -> String {
    "lr".to_string()
}

/// A value given once for every parameter group, or once per group (as PyTorch's `max_lr`,
/// `base_lr`, `min_lr`, ... accept a float or a list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "a number or an array with one number per parameter group"
)]
pub enum PerGroup {
    /// The same value for every group.
    One(f64),
    /// One value per group, in group order.
    Each(Vec<f64>),
}

impl PerGroup {
    /// The value of every group; `name` and `path` locate errors.
    pub fn resolve(&self, groups: usize, name: &str, path: &str) -> Result<Vec<f64>> {
        let values = match self {
            PerGroup::One(v) => vec![*v; groups],
            PerGroup::Each(values) if values.len() == groups => values.clone(),
            // PyTorch's wording (lr_scheduler._format_param).
            PerGroup::Each(values) => {
                return Err(Error::config(
                    join_path(path, name),
                    format!("expected {groups} values for {name}, got {}", values.len()),
                ))
            }
        };
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::config(
                join_path(path, name),
                format!("expected finite values, got {bad}"),
            ));
        }
        Ok(values)
    }
}

/// A required config value: `Some` or an error naming the field.
pub(crate) fn required<T: Clone>(value: &Option<T>, name: &str, path: &str) -> Result<T> {
    value.clone().ok_or_else(|| {
        Error::config(
            join_path(path, name),
            format!("missing field `{name}` (it has no default, as in PyTorch)"),
        )
    })
}

/// One hyperparameter of every group, as driven by a schedule.
///
/// `initial` is PyTorch's `group["initial_lr"]` (the value when the schedule was built, or the
/// value the schedule defines as its start); `last` is the value last written (`_last_lr`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Driven {
    /// Name of the hyperparameter (`lr`, `momentum`, `beta1`, ...).
    pub hyperparameter: String,
    /// Per-group initial values.
    pub initial: Vec<f64>,
    /// Per-group values last written.
    pub last: Vec<f64>,
    /// Set by a state load: the next step starts from `last`, not from the optimizer, so that a
    /// schedule continues identically even when the optimizer's state does not carry its
    /// hyperparameters.
    #[serde(skip)]
    resumed: bool,
}

impl Driven {
    /// Records the current value of `name` in every group of `optimizer`; `path` is the
    /// schedule's JSON path.
    pub fn capture(optimizer: &dyn Optimizer, name: &str, path: &str) -> Result<Self> {
        check_name(optimizer, name, &join_path(path, "hyperparameter"))?;
        let initial = (0..optimizer.group_count())
            .map(|g| optimizer.hyperparameter(g, name))
            .collect::<Result<Vec<_>>>()?;
        Ok(Driven {
            hyperparameter: name.to_string(),
            last: initial.clone(),
            initial,
            resumed: false,
        })
    }

    /// Like [`Driven::capture`] with initial values set by the schedule itself (one-cycle's
    /// `max_lr / div_factor`, cyclic's `base_lr`).
    pub fn with_initial(
        optimizer: &dyn Optimizer,
        name: &str,
        initial: Vec<f64>,
        path: &str,
    ) -> Result<Self> {
        let mut driven = Self::capture(optimizer, name, path)?;
        driven.initial = initial;
        Ok(driven)
    }

    /// The values a chainable rule starts from: the optimizer's (as PyTorch reads
    /// `group["lr"]`), or the saved ones right after a state load.
    pub fn current(&self, optimizer: &dyn Optimizer) -> Result<Vec<f64>> {
        self.check_groups(optimizer)?;
        if self.resumed {
            return Ok(self.last.clone());
        }
        (0..self.initial.len())
            .map(|g| optimizer.hyperparameter(g, &self.hyperparameter))
            .collect()
    }

    /// Writes `values` (one per group) into the optimizer.
    pub fn write(&mut self, optimizer: &mut dyn Optimizer, values: Vec<f64>) -> Result<()> {
        self.check_groups(optimizer)?;
        for (g, v) in values.iter().enumerate() {
            optimizer.set_hyperparameter(g, &self.hyperparameter, *v)?;
        }
        self.last = values;
        self.resumed = false;
        Ok(())
    }

    /// Replaces this state by a saved one, which must drive the same hyperparameter of as many
    /// groups.
    pub fn load(&mut self, saved: Driven) -> Result<()> {
        if saved.hyperparameter != self.hyperparameter
            || saved.initial.len() != self.initial.len()
            || saved.last.len() != self.initial.len()
        {
            return Err(Error::StateMismatch(format!(
                "schedule state drives `{}` of {} groups, this schedule drives `{}` of {} groups",
                saved.hyperparameter,
                saved.initial.len(),
                self.hyperparameter,
                self.initial.len()
            )));
        }
        *self = Driven {
            resumed: true,
            ..saved
        };
        Ok(())
    }

    fn check_groups(&self, optimizer: &dyn Optimizer) -> Result<()> {
        if optimizer.group_count() != self.initial.len() {
            return Err(Error::StateMismatch(format!(
                "schedule built for {} parameter groups, optimizer has {}",
                self.initial.len(),
                optimizer.group_count()
            )));
        }
        Ok(())
    }
}

/// Checks that `optimizer` exposes the hyperparameter `name`; `path` locates the error.
pub(crate) fn check_name(optimizer: &dyn Optimizer, name: &str, path: &str) -> Result<()> {
    let names = optimizer.hyperparameter_names();
    if names.contains(&name) {
        return Ok(());
    }
    Err(Error::config(
        path,
        format!(
            "optimizer `{}` has no hyperparameter `{name}`; it has: {}",
            optimizer.algorithm(),
            names.join(", ")
        ),
    ))
}

/// Serializes a schedule's state with its type name, so that loading it into another kind of
/// schedule is an error.
pub(crate) fn tagged_state<S: Serialize>(kind: &str, state: &S) -> Value {
    serde_json::json!({ "type": kind, "state": state })
}

/// Reads a state written by [`tagged_state`] for a schedule of type `kind`.
pub(crate) fn untag_state<S: DeserializeOwned>(kind: &str, value: &Value) -> Result<S> {
    let found = value.get("type").and_then(Value::as_str);
    if found != Some(kind) {
        return Err(Error::StateMismatch(format!(
            "expected the state of a `{kind}` schedule, got {}",
            found.map_or("an untagged value".to_string(), |k| format!("`{k}`"))
        )));
    }
    let inner = value.get("state").cloned().unwrap_or(Value::Null);
    serde_json::from_value(inner)
        .map_err(|e| Error::StateMismatch(format!("invalid `{kind}` schedule state: {e}")))
}

/// Serde for an `f64` that may be infinite or NaN: `gradus_core::json_float`.
pub(crate) use gradus_core::json_float as any_f64;

/// The hyperparameter that momentum cycling drives: `momentum` where the optimizer has one
/// (SGD, RMSprop), else `beta1` (Adam family); PyTorch's `cycle_momentum` rule.
pub(crate) fn momentum_target(optimizer: &dyn Optimizer) -> Result<&'static str> {
    let names = optimizer.hyperparameter_names();
    ["momentum", "beta1"]
        .into_iter()
        .find(|n| names.contains(n))
        .ok_or_else(|| {
            Error::InvalidHyperparameter(format!(
                "optimizer must support momentum or beta1 with `cycle_momentum` option enabled \
                 (optimizer `{}` has: {})",
                optimizer.algorithm(),
                names.join(", ")
            ))
        })
}
