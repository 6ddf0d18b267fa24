//! Iterating over the batches of an epoch without the runner.

use candle_core::Tensor;
use gradus_core::plugin::data::{Batching, Dataset};
use gradus_core::{Result, SeededRng};

use crate::gather::gather;
use crate::tensors::num_samples;

/// A data set, a batching strategy and a seed: `loader.epoch(e)` yields the batches of epoch
/// `e` as `(features, targets)` tensors.
///
/// Epoch `e` shuffles with `SeededRng::new(seed).derive("shuffle/epoch/{e}")`, so its order
/// depends on the seed and the epoch number alone: the same seed gives the same order, and a
/// run resumed at epoch `e` sees the batches it would have seen.
pub struct Loader {
    dataset: Dataset,
    batching: Box<dyn Batching>,
    seed: u64,
}

impl Loader {
    /// A loader over `dataset`.
    pub fn new(dataset: Dataset, batching: Box<dyn Batching>, seed: u64) -> Self {
        Loader {
            dataset,
            batching,
            seed,
        }
    }

    /// The data set.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The sample indices of each batch of epoch `epoch`.
    pub fn epoch_indices(&self, epoch: usize) -> Result<Vec<Vec<u32>>> {
        let mut rng = SeededRng::new(self.seed).derive(&format!("shuffle/epoch/{epoch}"));
        self.batching.epoch(num_samples(&self.dataset)?, &mut rng)
    }

    /// The batches of epoch `epoch`; its `len()` is the number of batches, known up front.
    pub fn epoch(&self, epoch: usize) -> Result<Epoch<'_>> {
        Ok(Epoch {
            dataset: &self.dataset,
            batches: self.epoch_indices(epoch)?.into_iter(),
        })
    }
}

/// The batches of one epoch, gathered lazily: `Item = Result<(features, targets)>`.
pub struct Epoch<'a> {
    dataset: &'a Dataset,
    batches: std::vec::IntoIter<Vec<u32>>,
}

impl Iterator for Epoch<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next().map(|b| gather(self.dataset, &b))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.batches.size_hint()
    }
}

impl ExactSizeIterator for Epoch<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::{MiniBatch, MiniBatchConfig};
    use crate::tensors::regression;

    fn loader(seed: u64) -> Loader {
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let data = regression(x.clone(), &[10, 1], x).unwrap();
        let config = MiniBatchConfig {
            batch_size: 4,
            ..Default::default()
        };
        Loader::new(data, Box::new(MiniBatch::new(config).unwrap()), seed)
    }

    #[test]
    fn epochs_yield_every_sample_once_with_matching_targets() {
        let loader = loader(1);
        let epoch = loader.epoch(0).unwrap();
        assert_eq!(epoch.len(), 3);
        let mut seen = Vec::new();
        for batch in epoch {
            let (x, y) = batch.unwrap();
            assert_eq!(x.to_vec2::<f32>().unwrap(), y.to_vec2::<f32>().unwrap());
            seen.extend(x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        seen.sort_by(f32::total_cmp);
        assert_eq!(seen, (0..10).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn order_depends_on_seed_and_epoch_only() {
        let (a, b) = (loader(7), loader(7));
        assert_eq!(a.epoch_indices(3).unwrap(), b.epoch_indices(3).unwrap());
        assert_ne!(a.epoch_indices(3).unwrap(), a.epoch_indices(4).unwrap());
        assert_ne!(
            a.epoch_indices(3).unwrap(),
            loader(8).epoch_indices(3).unwrap()
        );
    }
}
