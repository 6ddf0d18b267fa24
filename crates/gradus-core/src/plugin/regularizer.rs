//! Regularizers: loss penalties, post-step constraints and decoupled decay.

use candle_core::Tensor;
use serde_json::Value;

use crate::error::Result;
use crate::plugin::optimizer::NamedVar;

/// A regularizer acts through a penalty added to the loss, a correction after each optimizer
/// step, or both.
pub trait Regularizer: Send {
    /// The penalty to add to the loss (a scalar tensor), or `None` when it adds none.
    fn penalty(&self, params: &[NamedVar]) -> Result<Option<Tensor>>;

    /// Runs after each optimizer step (proximal steps, norm constraints, decoupled decay);
    /// `lr` is the learning rate of that step.
    fn after_step(&mut self, params: &[NamedVar], lr: f64) -> Result<()>;
}

/// Builds a regularizer from its JSON config.
pub type RegularizerBuild = fn(config: &Value, path: &str) -> Result<Box<dyn Regularizer>>;
