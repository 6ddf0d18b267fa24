//! Gathering a batch of samples into tensors.

use candle_core::Tensor;
use gradus_core::plugin::data::Dataset;
use gradus_core::{Error, Result};

use crate::tensors::num_samples;

/// The features and targets of the samples `indices` of `dataset`, in that order.
///
/// Built with one `index_select` on each tensor, so a batch costs a copy of the batch only,
/// never of the data set. An empty batch or an index past the end is an error.
pub fn gather(dataset: &Dataset, indices: &[u32]) -> Result<(Tensor, Tensor)> {
    let n = num_samples(dataset)?;
    if indices.is_empty() {
        return Err(Error::Unsupported("gathering an empty batch".to_string()));
    }
    if let Some(bad) = indices.iter().find(|&&i| i as usize >= n) {
        return Err(Error::Unsupported(format!(
            "batch index {bad} is out of range for a data set of {n} samples"
        )));
    }
    let ids = Tensor::from_slice(indices, indices.len(), dataset.features.device())?;
    Ok((
        dataset.features.index_select(&ids, 0)?,
        dataset.targets.index_select(&ids, 0)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::classification;

    #[test]
    fn gathers_rows_in_the_order_asked() {
        let features: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let data = classification(features, &[4, 1, 3], vec![0, 1, 2, 3]).unwrap();
        let (x, y) = gather(&data, &[2, 0, 2]).unwrap();
        assert_eq!(x.dims(), [3, 1, 3]);
        assert_eq!(
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 6.0, 7.0, 8.0]
        );
        assert_eq!(y.to_vec1::<u32>().unwrap(), [2, 0, 2]);
        let err = gather(&data, &[1, 4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported: batch index 4 is out of range for a data set of 4 samples"
        );
        assert!(gather(&data, &[]).is_err());
    }
}
