//! The controls between the backward pass and the optimizer update, one method each: loss
//! scaling (scale before backward, unscale before clipping, the scale's update), gradient
//! accumulation, clipping (which also measures the gradient norm the metrics record) and the
//! non-finite guard around the update.

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use gradus_core::{NamedVar, Optimizer, Result};
use gradus_optim::accumulate::{AccumulateConfig, GradAccumulator};
use gradus_optim::clip::{total_norm, ClipConfig, NormType};
use gradus_optim::guard::{NonFiniteGuard, Verdict};
use gradus_optim::loss_scale::GradScaler;
use gradus_optim::UpdatePath;

/// Accumulation, clipping and the non-finite guard of a pipeline's training steps.
pub struct Controls {
    /// Gradient clipping (`clip`).
    pub clip: Option<ClipConfig>,
    /// Sums `train.accumulate` micro-batches' gradients before an update (`None` for 1).
    pub accumulator: Option<GradAccumulator>,
    /// What a non-finite loss or gradient does to the update (`train.non_finite`).
    pub guard: NonFiniteGuard,
    /// Loss scaling (`train.loss_scale`, torch.amp.GradScaler semantics).
    pub scaler: Option<GradScaler>,
}

impl Controls {
    /// Controls over `params`: `accumulate` micro-batches per update (1: every batch updates).
    pub fn new(
        clip: Option<ClipConfig>,
        accumulate: usize,
        guard: NonFiniteGuard,
        params: &[NamedVar],
    ) -> Result<Controls> {
        let accumulator = if accumulate > 1 {
            let config = AccumulateConfig {
                steps: accumulate,
                ..AccumulateConfig::default()
            };
            Some(GradAccumulator::new(params.to_vec(), &config)?)
        } else {
            None
        };
        Ok(Controls {
            clip,
            accumulator,
            guard,
            scaler: None,
        })
    }

    /// The loss the backward pass differentiates: `loss · S` with loss scaling, else `loss`.
    pub fn scale(&self, loss: Tensor) -> Result<Tensor> {
        match &self.scaler {
            Some(scaler) => scaler.scale(&loss),
            None => Ok(loss),
        }
    }

    /// Divides the gradients to apply by the loss scale (before clipping, as torch's
    /// `scaler.unscale_`); `true` when one of them is not finite, so that the step is skipped.
    pub fn unscale(&mut self, optimizer: &dyn Optimizer, grads: &mut GradStore) -> Result<bool> {
        match self.scaler.as_mut() {
            Some(scaler) => scaler.unscale(optimizer, grads),
            None => Ok(false),
        }
    }

    /// After an update (taken or skipped): the dynamic loss scale backs off or grows.
    pub fn update_scale(&mut self) -> Result<()> {
        match self.scaler.as_mut() {
            Some(scaler) => scaler.update(),
            None => Ok(()),
        }
    }

    /// Takes one micro-batch's gradients; returns the gradients to apply once enough have been
    /// accumulated (at once without accumulation), `None` while still accumulating.
    pub fn accumulate(&mut self, grads: GradStore) -> Result<Option<GradStore>> {
        let Some(acc) = self.accumulator.as_mut() else {
            return Ok(Some(grads));
        };
        if acc.add(&grads)? {
            Ok(Some(acc.take()?))
        } else {
            Ok(None)
        }
    }

    /// Clips `grads` in place and returns their global L2 norm before clipping.
    pub fn clip(&self, params: &[NamedVar], grads: &mut GradStore) -> Result<f64> {
        match &self.clip {
            // L2 norm clipping already computes the norm the metrics record.
            Some(clip @ ClipConfig::Norm(c)) if c.norm_type == NormType::P(2.0) => {
                Ok(clip.apply(params, grads)?.unwrap_or(0.0))
            }
            other => {
                let path = other.as_ref().map_or(UpdatePath::Auto, |c| c.path());
                let before = total_norm(params, grads, NormType::P(2.0), path)?;
                if let Some(clip) = other {
                    clip.apply(params, grads)?;
                }
                Ok(before)
            }
        }
    }

    /// Updates through the non-finite guard: `Proceed` when the optimizer stepped.
    pub fn update(
        &mut self,
        loss: f64,
        grads: &GradStore,
        optimizer: &mut dyn Optimizer,
    ) -> Result<Verdict> {
        self.guard.step(Some(loss), grads, optimizer)
    }
}
