//! `update_bn`: batch-norm running statistics recomputed for (averaged) weights, as
//! `torch.optim.swa_utils.update_bn`.

use std::borrow::Borrow;

use candle_core::Tensor;
use gradus_core::plugin::layer::{ForwardContext, Layer};
use gradus_core::{Result, SeededRng};

/// Recomputes the running statistics of every batch-norm layer of `model` from one pass over
/// `batches` (model inputs), as `torch.optim.swa_utils.update_bn(loader, model)` of PyTorch
/// 2.15:
///
/// 1. reset every batch norm's statistics (mean 0, variance 1, no batches tracked:
///    [`Layer::reset_running_stats`]); with none, return `0` without a forward pass;
/// 2. switch them to a cumulative average ([`Layer::set_cumulative_stats`], PyTorch's
///    `momentum = None`), so that after `B` batches `running_mean` is the mean of the `B`
///    batch means and `running_var` the mean of the `B` unbiased batch variances;
/// 3. run the model in training mode on every batch (stochastic layers draw from `rng`);
/// 4. restore each layer's momentum, also when a forward pass failed.
///
/// Returns the number of batch-norm layers updated. Weights are not touched: call it with the
/// averaged weights in place ([`AveragedModel::with_averaged`](super::AveragedModel::with_averaged)
/// or [`copy_into`](super::AveragedModel::copy_into)); to keep the training model's own
/// statistics, save [`Layer::buffers`] before and load them back after.
pub fn update_bn<B: Borrow<Tensor>>(
    model: &mut dyn Layer,
    batches: impl IntoIterator<Item = B>,
    rng: &mut SeededRng,
) -> Result<usize> {
    let count = model.reset_running_stats()?;
    if count == 0 {
        return Ok(0);
    }
    model.set_cumulative_stats(true)?;
    let mut ctx = ForwardContext { train: true, rng };
    let pass = batches
        .into_iter()
        .try_for_each(|batch| model.forward(batch.borrow(), &mut ctx).map(drop));
    let restored = model.set_cumulative_stats(false);
    pass?;
    restored?;
    Ok(count)
}
