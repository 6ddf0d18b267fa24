//! Registry glue: building any registered optimizer from its JSON config.

use gradus_core::config::{join_path, parse_config, take_field};
use gradus_core::registry::{resolve, OptimizerKind};
use gradus_core::{NamedVar, Optimizer, Result};
use serde_json::Value;

use crate::engine::grouped::GroupedOptimizer;
use crate::engine::groups::parse_with_groups;
use crate::engine::path::UpdatePath;
use crate::engine::precision::take_precision;
use crate::engine::rule::Rule;

/// The registered constructor of every [`Rule`], built-in or plugin: config (without `type`)
/// at `path`, with the optional `"path": "auto" | "fused" | "reference"` (default `auto`) and
/// the precision fields of bf16/f16 parameters (`state_dtype`, `master_weights`, `rounding`,
/// `rounding_seed`; see [`precision`](crate::engine::precision)).
pub fn build_rule<R: Rule>(
    config: &Value,
    path: &str,
    params: &[NamedVar],
) -> Result<Box<dyn Optimizer>> {
    let mut config = config.clone();
    let update_path = take_update_path(&mut config, path)?;
    let precision = take_precision(&mut config, path)?;
    let (base, groups) = parse_with_groups::<R>(&config, path)?;
    let mut optimizer = GroupedOptimizer::with_groups(params.to_vec(), base, groups)?;
    optimizer.set_precision(precision)?;
    // Through the trait: a rule without a kernel refuses `"path": "fused"` here, at build time.
    Optimizer::set_update_path(&mut optimizer, update_path)
        .map_err(|e| gradus_core::Error::config(join_path(path, "path"), e.to_string()))?;
    Ok(Box::new(optimizer))
}

/// Removes and parses the `"path"` field of an optimizer config at `path` (absent: `auto`).
pub fn take_update_path(config: &mut Value, path: &str) -> Result<UpdatePath> {
    match take_field(config, "path") {
        None | Some(Value::Null) => Ok(UpdatePath::Auto),
        Some(value) => parse_config(&value, &join_path(path, "path")),
    }
}

/// Builds the optimizer described by `config` (`{"type": "adam", "lr": 1e-3, ...}`, found at
/// JSON path `path`) over `params`, through the registry, so plugin optimizers work too.
pub fn build_optimizer(
    config: &Value,
    path: &str,
    params: &[NamedVar],
) -> Result<Box<dyn Optimizer>> {
    let (entry, rest) = resolve::<OptimizerKind>(config, path)?;
    (entry.build)(&rest, path, params).map_err(|e| e.at(path))
}
