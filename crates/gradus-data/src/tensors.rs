//! Building [`Dataset`]s from plain vectors, and reading back their labels.

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::data::{Dataset, Task};
use gradus_core::{Error, Result};

/// A classification data set on the CPU: `features` in row-major order with `shape`
/// (`shape[0]` samples), and one class index per sample; `num_classes = max(label) + 1`.
pub(crate) fn classification(
    features: Vec<f32>,
    shape: &[usize],
    labels: Vec<u32>,
) -> Result<Dataset> {
    check_rows(shape, labels.len())?;
    let num_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let n = labels.len();
    Ok(Dataset {
        // host-side: datasets live on the host; the runner moves each batch to the model's device.
        features: Tensor::from_vec(features, shape, &Device::Cpu)?,
        targets: Tensor::from_vec(labels, n, &Device::Cpu)?,
        task: Task::Classification { num_classes },
    })
}

/// A regression data set on the CPU with one real target per sample: targets `(N, 1)`.
pub(crate) fn regression(
    features: Vec<f32>,
    shape: &[usize],
    targets: Vec<f32>,
) -> Result<Dataset> {
    check_rows(shape, targets.len())?;
    let n = targets.len();
    Ok(Dataset {
        // host-side: datasets live on the host; the runner moves each batch to the model's device.
        features: Tensor::from_vec(features, shape, &Device::Cpu)?,
        targets: Tensor::from_vec(targets, (n, 1), &Device::Cpu)?,
        task: Task::Regression,
    })
}

fn check_rows(shape: &[usize], targets: usize) -> Result<()> {
    if shape.first() != Some(&targets) {
        return Err(Error::ShapeMismatch {
            context: "features vs targets (first dimension = samples)".to_string(),
            expected: vec![targets],
            actual: shape.to_vec(),
        });
    }
    if targets == 0 {
        return Err(Error::Unsupported("a data set with no samples".to_string()));
    }
    Ok(())
}

/// Number of samples of `dataset` (first dimension of its features), checked against the targets.
pub(crate) fn num_samples(dataset: &Dataset) -> Result<usize> {
    let n = dataset.features.dims().first().copied().unwrap_or(0);
    let m = dataset.targets.dims().first().copied().unwrap_or(0);
    if n != m {
        return Err(Error::ShapeMismatch {
            context: "data set features vs targets (first dimension = samples)".to_string(),
            expected: dataset.features.dims().to_vec(),
            actual: dataset.targets.dims().to_vec(),
        });
    }
    Ok(n)
}

/// The class index of every sample of a classification data set.
pub(crate) fn labels(dataset: &Dataset) -> Result<Vec<u32>> {
    if !matches!(dataset.task, Task::Classification { .. }) {
        return Err(Error::Unsupported(
            "class labels of a regression data set (stratify needs a classification task)"
                .to_string(),
        ));
    }
    Ok(dataset
        .targets
        .flatten_all()?
        .to_dtype(DType::U32)?
        .to_vec1::<u32>()?)
}
