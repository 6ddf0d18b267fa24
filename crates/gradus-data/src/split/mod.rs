//! Train / validation / test splits.

mod apportion;

use gradus_core::plugin::data::Dataset;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};

use crate::gather::gather;
use crate::tensors::{labels, num_samples};

/// How to split a data set, as scikit-learn's `train_test_split` (with a validation part).
///
/// A fraction `f` of `n` samples is `ceil(f * n)` samples (scikit-learn's rounding for the test
/// part; a product within `1e-9` above an integer counts as that integer, so `0.7 * 10` is 7).
/// Counts may be given instead of fractions. The training part gets the rest and must not be
/// empty. Without `stratify`, one seeded permutation is cut into test, validation and train.
/// With `stratify`, each class is split on its own, so that each part holds every class's
/// exact share `n_class * n_part / n` rounded down or up: class proportions are kept within
/// one sample in every part.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Fraction of the samples for validation, in `[0, 1)`. Default: `0.0` (no validation part).
    pub val: f64,
    /// Fraction of the samples for testing, in `[0, 1)`. Default: `0.0` (no test part).
    pub test: f64,
    /// Number of validation samples, instead of `val`. Default: `null`.
    pub val_count: Option<usize>,
    /// Number of test samples, instead of `test`. Default: `null`.
    pub test_count: Option<usize>,
    /// Split each class in proportion (classification only). Default: `false`
    /// (scikit-learn `stratify=None`).
    pub stratify: bool,
}

/// The sample indices of each part, each part in a seeded random order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    /// Training samples.
    pub train: Vec<u32>,
    /// Validation samples (empty when none were asked for).
    pub val: Vec<u32>,
    /// Test samples (empty when none were asked for).
    pub test: Vec<u32>,
}

/// The parts of a data set; each keeps the whole set's [`Task`](gradus_core::plugin::data::Task).
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training part.
    pub train: Dataset,
    /// Validation part, if asked for.
    pub val: Option<Dataset>,
    /// Test part, if asked for.
    pub test: Option<Dataset>,
    /// Which samples of the original set went where.
    pub indices: SplitIndices,
}

/// Splits `dataset` as `config` says, drawing from `rng`.
pub fn split(dataset: &Dataset, config: &SplitConfig, rng: &mut SeededRng) -> Result<Splits> {
    let n = num_samples(dataset)?;
    let classes = if config.stratify {
        Some(labels(dataset)?)
    } else {
        None
    };
    let indices = split_indices(n, classes.as_deref(), config, rng)?;
    let part = |idx: &[u32]| -> Result<Dataset> {
        let (features, targets) = gather(dataset, idx)?;
        Ok(Dataset {
            features,
            targets,
            task: dataset.task,
        })
    };
    let optional = |idx: &[u32]| {
        if idx.is_empty() {
            Ok(None)
        } else {
            part(idx).map(Some)
        }
    };
    Ok(Splits {
        train: part(&indices.train)?,
        val: optional(&indices.val)?,
        test: optional(&indices.test)?,
        indices,
    })
}

/// The index form of [`split`]: `labels` (one class per sample) is required with `stratify`.
pub fn split_indices(
    n: usize,
    labels: Option<&[u32]>,
    config: &SplitConfig,
    rng: &mut SeededRng,
) -> Result<SplitIndices> {
    if n > u32::MAX as usize {
        return Err(Error::Unsupported(format!(
            "{n} samples: sample indices are u32"
        )));
    }
    let n_val = part_size("val", config.val, config.val_count, n)?;
    let n_test = part_size("test", config.test, config.test_count, n)?;
    if n_val + n_test >= n {
        return Err(Error::InvalidHyperparameter(format!(
            "split of {n} samples into {n_val} validation and {n_test} test samples leaves the training split empty"
        )));
    }
    if !config.stratify {
        let order = rng.permutation(n);
        let (test, rest) = order.split_at(n_test);
        let (val, train) = rest.split_at(n_val);
        return Ok(SplitIndices {
            train: train.to_vec(),
            val: val.to_vec(),
            test: test.to_vec(),
        });
    }
    let labels =
        labels.ok_or_else(|| Error::Unsupported("stratify needs class labels".to_string()))?;
    if labels.len() != n {
        return Err(Error::ShapeMismatch {
            context: "split labels (one per sample)".to_string(),
            expected: vec![n],
            actual: vec![labels.len()],
        });
    }
    let num_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); num_classes];
    for (i, &y) in labels.iter().enumerate() {
        members[y as usize].push(i as u32);
    }
    members.retain(|m| !m.is_empty());
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let counts = apportion::apportion(&sizes, &[n_test, n_val, n - n_test - n_val], rng)?;
    let mut parts = SplitIndices {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
    };
    for (class, count) in members.iter().zip(&counts) {
        let shuffled: Vec<u32> = rng
            .permutation(class.len())
            .iter()
            .map(|&k| class[k as usize])
            .collect();
        let (test, rest) = shuffled.split_at(count[0]);
        let (val, train) = rest.split_at(count[1]);
        parts.test.extend_from_slice(test);
        parts.val.extend_from_slice(val);
        parts.train.extend_from_slice(train);
    }
    // Interleave the classes, so that an unshuffled pass does not see them in blocks.
    for part in [&mut parts.test, &mut parts.val, &mut parts.train] {
        *part = rng
            .permutation(part.len())
            .iter()
            .map(|&k| part[k as usize])
            .collect();
    }
    Ok(parts)
}

/// The size of one part from its fraction or count.
fn part_size(name: &str, fraction: f64, count: Option<usize>, n: usize) -> Result<usize> {
    match count {
        Some(_) if fraction != 0.0 => Err(Error::InvalidHyperparameter(format!(
            "give either `{name}` or `{name}_count`, not both"
        ))),
        Some(0) => Err(Error::InvalidHyperparameter(format!(
            "{name}_count=0 leaves the {name} split empty (leave it null for no {name} split)"
        ))),
        Some(k) => Ok(k),
        None if !(0.0..1.0).contains(&fraction) => Err(Error::InvalidHyperparameter(format!(
            "{name} should be a float in the [0, 1) range, got {name}={fraction}"
        ))),
        None if fraction == 0.0 => Ok(0),
        None => {
            let k = (fraction * n as f64 - 1e-9).ceil().max(0.0) as usize;
            if k == 0 {
                return Err(Error::InvalidHyperparameter(format!(
                    "{name}={fraction} of {n} samples leaves the {name} split empty"
                )));
            }
            Ok(k)
        }
    }
}

#[cfg(test)]
mod tests;
