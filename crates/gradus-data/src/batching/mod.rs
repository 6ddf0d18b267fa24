//! Batching strategies: how one epoch over `n` samples is cut into optimizer steps.
//!
//! | strategy | batch | steps per epoch | gradient |
//! | --- | --- | --- | --- |
//! | [`FullBatch`] (`full`) | all `n` samples | 1 | exact, stable; one step costs a pass over the data |
//! | [`Stochastic`] (`stochastic`) | 1 sample | `n` | cheap but noisy; no vectorisation |
//! | [`MiniBatch`] (`mini_batch`) | `batch_size` samples | `ceil(n / batch_size)` (floor with `drop_last`) | the compromise: variance falls as `1 / batch_size`, batches fill the hardware |
//!
//! Shuffling draws one permutation per epoch from the generator passed to
//! [`Batching::epoch`](gradus_core::plugin::data::Batching::epoch); the same generator state
//! gives the same order ([`Loader`](crate::Loader) derives it from a seed and the epoch number).

mod full;
mod mini_batch;
mod stochastic;

pub use full::{FullBatch, FullConfig};
pub use mini_batch::{MiniBatch, MiniBatchConfig};
pub use stochastic::{Stochastic, StochasticConfig};

use gradus_core::{Error, Result, SeededRng};

/// The visiting order of one epoch: a fresh permutation of `0..n`, or `0..n` in order.
pub(crate) fn order(n: usize, shuffle: bool, rng: &mut SeededRng) -> Result<Vec<u32>> {
    if n == 0 {
        return Err(Error::Unsupported("batching an empty data set".to_string()));
    }
    if n > u32::MAX as usize {
        return Err(Error::Unsupported(format!(
            "{n} samples: sample indices are u32"
        )));
    }
    Ok(if shuffle {
        rng.permutation(n)
    } else {
        (0..n as u32).collect()
    })
}

/// Cuts `order` into consecutive batches of `batch_size`; the last, shorter batch is dropped
/// with `drop_last`. An epoch left with no batch at all is an error.
pub(crate) fn chunk(order: &[u32], batch_size: usize, drop_last: bool) -> Result<Vec<Vec<u32>>> {
    let batches: Vec<Vec<u32>> = order
        .chunks(batch_size.max(1))
        .filter(|b| !drop_last || b.len() == batch_size)
        .map(<[u32]>::to_vec)
        .collect();
    if batches.is_empty() {
        return Err(Error::InvalidHyperparameter(format!(
            "drop_last with batch_size={batch_size} leaves no batch from {} samples",
            order.len()
        )));
    }
    Ok(batches)
}

#[cfg(test)]
mod tests;
