//! Splits partition the data exactly, stratification keeps class proportions within one
//! sample, and bad fractions are errors.

use super::*;
use crate::tensors::classification;
use proptest::prelude::*;

fn config(val: f64, test: f64, stratify: bool) -> SplitConfig {
    SplitConfig {
        val,
        test,
        stratify,
        ..Default::default()
    }
}

fn check_partition(parts: &SplitIndices, n: usize) -> std::result::Result<(), TestCaseError> {
    let mut all: Vec<u32> = [&parts.train[..], &parts.val[..], &parts.test[..]].concat();
    all.sort_unstable();
    prop_assert_eq!(all, (0..n as u32).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn sizes_follow_scikit_learn_rounding() {
    let mut rng = SeededRng::new(0);
    let parts = split_indices(10, None, &config(0.25, 0.7 / 7.0 * 2.0, false), &mut rng).unwrap();
    assert_eq!(
        (parts.train.len(), parts.val.len(), parts.test.len()),
        (5, 3, 2)
    );
    let counts = SplitConfig {
        val_count: Some(4),
        test_count: Some(1),
        ..Default::default()
    };
    let parts = split_indices(10, None, &counts, &mut rng).unwrap();
    assert_eq!(
        (parts.train.len(), parts.val.len(), parts.test.len()),
        (5, 4, 1)
    );
    let none = split_indices(10, None, &SplitConfig::default(), &mut rng).unwrap();
    assert_eq!(
        (none.train.len(), none.val.len(), none.test.len()),
        (10, 0, 0)
    );
}

#[test]
fn bad_fractions_and_counts_are_errors() {
    let mut rng = SeededRng::new(0);
    let mut err = |c: SplitConfig, n: usize| {
        split_indices(n, None, &c, &mut rng)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(config(0.5, 0.5, false), 10),
        "split of 10 samples into 5 validation and 5 test samples leaves the training split empty"
    );
    assert!(err(config(1.0, 0.0, false), 10).contains("val should be a float in the [0, 1) range"));
    assert!(err(config(0.0, -0.1, false), 10).contains("test=-0.1"));
    assert!(err(config(1e-12, 0.0, false), 5).contains("leaves the val split empty"));
    let both = SplitConfig {
        val: 0.1,
        val_count: Some(2),
        ..Default::default()
    };
    assert!(err(both, 10).contains("not both"));
    let zero = SplitConfig {
        test_count: Some(0),
        ..Default::default()
    };
    assert!(err(zero, 10).contains("test_count=0"));
    let regression = crate::tensors::regression(vec![0.0; 4], &[4, 1], vec![0.0; 4]).unwrap();
    assert!(split(
        &regression,
        &config(0.25, 0.0, true),
        &mut SeededRng::new(0)
    )
    .is_err());
}

#[test]
fn split_datasets_hold_the_indexed_samples() {
    let features: Vec<f32> = (0..20).map(|v| v as f32).collect();
    let labels: Vec<u32> = (0..20).map(|v| v % 3).collect();
    let data = classification(features, &[20, 1], labels.clone()).unwrap();
    let parts = split(&data, &config(0.2, 0.3, true), &mut SeededRng::new(4)).unwrap();
    for (part, idx) in [
        (&parts.train, &parts.indices.train),
        (parts.val.as_ref().unwrap(), &parts.indices.val),
        (parts.test.as_ref().unwrap(), &parts.indices.test),
    ] {
        let x = part
            .features
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y = part.targets.to_vec1::<u32>().unwrap();
        assert_eq!(x, idx.iter().map(|&i| i as f32).collect::<Vec<_>>());
        assert_eq!(
            y,
            idx.iter().map(|&i| labels[i as usize]).collect::<Vec<_>>()
        );
        assert_eq!(part.task, data.task);
    }
    let same = split(&data, &config(0.2, 0.3, true), &mut SeededRng::new(4)).unwrap();
    assert_eq!(same.indices, parts.indices);
}

/// `ceil(f * n)`, tolerant of float rounding.
fn expected_size(fraction: f64, n: usize) -> usize {
    (fraction * n as f64 - 1e-9).ceil().max(0.0) as usize
}

/// No part, or a fraction large enough to be at least one sample of any `n >= 3`.
fn fraction() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.001f64..0.45]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn plain_splits_partition_the_data(n in 3usize..500, val in fraction(), test in fraction(), seed in any::<u64>()) {
        let result = split_indices(n, None, &config(val, test, false), &mut SeededRng::new(seed));
        let (n_val, n_test) = (expected_size(val, n), expected_size(test, n));
        if n_val + n_test >= n {
            prop_assert!(result.unwrap_err().to_string().contains("leaves the training split empty"));
            return Ok(());
        }
        let parts = result.unwrap();
        check_partition(&parts, n)?;
        prop_assert_eq!((parts.val.len(), parts.test.len()), (n_val, n_test));
    }

    #[test]
    fn stratified_splits_keep_proportions_within_one(
        labels in prop::collection::vec(0u32..6, 3..400),
        val in fraction(),
        test in fraction(),
        seed in any::<u64>(),
    ) {
        let n = labels.len();
        let result = split_indices(n, Some(&labels), &config(val, test, true), &mut SeededRng::new(seed));
        if expected_size(val, n) + expected_size(test, n) >= n {
            prop_assert!(result.is_err());
            return Ok(());
        }
        let parts = result.unwrap();
        check_partition(&parts, n)?;
        for class in 0..6 {
            let size = labels.iter().filter(|&&y| y == class).count() as f64;
            for part in [&parts.train, &parts.val, &parts.test] {
                let k = part.iter().filter(|&&i| labels[i as usize] == class).count() as f64;
                let exact = size * part.len() as f64 / n as f64;
                prop_assert!((k - exact).abs() < 1.0, "class {}: {} vs {}", class, k, exact);
            }
        }
    }
}
