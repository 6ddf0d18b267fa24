//! Registry glue: building any registered optimizer from its JSON config.

use gradus_core::registry::{resolve, OptimizerKind};
use gradus_core::{NamedVar, Optimizer, Result};
use serde_json::Value;

use crate::grouped::GroupedOptimizer;
use crate::groups::parse_with_groups;
use crate::rule::Rule;

/// The registered constructor of every built-in optimizer: config (without `type`) at `path`.
pub fn build_rule<R: Rule>(
    config: &Value,
    path: &str,
    params: &[NamedVar],
) -> Result<Box<dyn Optimizer>> {
    let (base, groups) = parse_with_groups::<R>(config, path)?;
    Ok(Box::new(GroupedOptimizer::with_groups(
        params.to_vec(),
        base,
        groups,
    )?))
}

/// Builds the optimizer described by `config` (`{"type": "adam", "lr": 1e-3, ...}`, found at
/// JSON path `path`) over `params`, through the registry, so plugin optimizers work too.
pub fn build_optimizer(
    config: &Value,
    path: &str,
    params: &[NamedVar],
) -> Result<Box<dyn Optimizer>> {
    let (entry, rest) = resolve::<OptimizerKind>(config, path)?;
    (entry.build)(&rest, path, params)
}
