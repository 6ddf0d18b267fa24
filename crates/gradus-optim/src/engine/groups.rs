//! Parameter groups from JSON: `{"params": "*.bias", "weight_decay": 0.0, "frozen": false}`.

use gradus_core::config::{index_path, join_path, parse_config, take_field};
use gradus_core::{Error, Result};
use serde_json::Value;

use crate::engine::rule::Rule;

/// A parameter group: which parameters it takes, whether it is frozen, and its hyperparameters.
#[derive(Debug, Clone)]
pub struct GroupSpec<R> {
    /// Glob patterns over parameter names (`*.bias`, `layers.0.*`); a parameter joins the first
    /// group that has a matching pattern.
    pub patterns: Vec<glob::Pattern>,
    /// A frozen group is skipped entirely: no state, no update.
    pub frozen: bool,
    /// The group's hyperparameters.
    pub hyper: R,
}

impl<R: Rule> GroupSpec<R> {
    /// A group matching `patterns` with hyperparameters `hyper`.
    pub fn new(patterns: &[&str], hyper: R) -> Result<Self> {
        let patterns = patterns
            .iter()
            .map(|p| compile(p, "params"))
            .collect::<Result<_>>()?;
        Ok(GroupSpec {
            patterns,
            frozen: false,
            hyper,
        })
    }

    /// Marks the group frozen.
    pub fn frozen(mut self) -> Self {
        self.frozen = true;
        self
    }

    /// True when `name` matches one of the group's patterns.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }
}

fn compile(pattern: &str, path: &str) -> Result<glob::Pattern> {
    glob::Pattern::new(pattern)
        .map_err(|e| Error::config(path, format!("invalid parameter pattern `{pattern}`: {e}")))
}

/// Parses an optimizer config (without `type`) at `path` into its base hyperparameters and
/// its groups. Each group's hyperparameters are the base ones overridden by the group's keys,
/// parsed strictly so that a misspelled key names `path.groups[i]`.
pub fn parse_with_groups<R: Rule>(config: &Value, path: &str) -> Result<(R, Vec<GroupSpec<R>>)> {
    let mut config = config.clone();
    let groups = take_field(&mut config, "groups");
    let base: R = parse_config(&config, path)?;
    base.validate()?;
    let groups_path = join_path(path, "groups");
    let groups = match groups {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_group(&base, item, &index_path(&groups_path, i)))
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::config(groups_path, "expected an array of groups")),
    };
    Ok((base, groups))
}

fn parse_group<R: Rule>(base: &R, item: &Value, path: &str) -> Result<GroupSpec<R>> {
    let mut item = item.clone();
    if !item.is_object() {
        return Err(Error::config(path, "expected a group object"));
    }
    let params_path = join_path(path, "params");
    let patterns = match take_field(&mut item, "params") {
        Some(Value::String(p)) => vec![compile(&p, &params_path)?],
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::String(p) => compile(p, &index_path(&params_path, i)),
                _ => Err(Error::config(
                    index_path(&params_path, i),
                    "expected a string pattern",
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(Error::config(
                params_path,
                "expected a pattern or a list of patterns",
            ))
        }
        None => {
            return Err(Error::config(
                path,
                "missing field `params` (a name pattern such as \"*.bias\")",
            ))
        }
    };
    let frozen = match take_field(&mut item, "frozen") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(Error::config(
                join_path(path, "frozen"),
                "expected true or false",
            ))
        }
    };
    let mut merged = serde_json::to_value(base)
        .map_err(|e| Error::config(path, format!("cannot merge group: {e}")))?;
    if let (Some(target), Some(overrides)) = (merged.as_object_mut(), item.as_object()) {
        for (k, v) in overrides {
            target.insert(k.clone(), v.clone());
        }
    }
    // Strict parse of the group's own keys first, so unknown keys are reported where written.
    parse_config::<R>(&item, path)?;
    let hyper: R = parse_config(&merged, path)?;
    hyper.validate()?;
    Ok(GroupSpec {
        patterns,
        frozen,
        hyper,
    })
}
