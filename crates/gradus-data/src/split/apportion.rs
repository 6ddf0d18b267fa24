//! Controlled rounding of proportional shares: the per-class sizes of stratified splits.

use gradus_core::{Error, Result, SeededRng};

/// Splits each class of `sizes[c]` samples over the parts of `totals` (which sum to
/// `n = sum(sizes)`) so that every count is its exact share `sizes[c] * totals[j] / n` rounded
/// down or up, each class's counts sum to `sizes[c]` and each part's to `totals[j]`.
///
/// Such a rounding always exists (the fractional shares are a feasible flow, and flows with
/// integer capacities have integral optima); it is found by augmenting paths over the
/// bipartite graph "class needs one more round-up" -> "part still has round-ups to give".
/// Classes are served in a random order so that no class is always favoured.
pub(crate) fn apportion(
    sizes: &[usize],
    totals: &[usize],
    rng: &mut SeededRng,
) -> Result<Vec<Vec<usize>>> {
    let n: usize = sizes.iter().sum();
    if totals.iter().sum::<usize>() != n || n == 0 {
        return Err(Error::Unsupported(format!(
            "apportioning {sizes:?} into parts {totals:?}: sums differ or are zero"
        )));
    }
    let share = |c: usize, j: usize| (sizes[c] as u128 * totals[j] as u128, n as u128);
    let mut counts: Vec<Vec<usize>> = (0..sizes.len())
        .map(|c| {
            (0..totals.len())
                .map(|j| {
                    let (num, den) = share(c, j);
                    (num / den) as usize
                })
                .collect()
        })
        .collect();
    let fractional = |c: usize, j: usize| {
        let (num, den) = share(c, j);
        num % den != 0
    };
    let mut up = vec![vec![false; totals.len()]; sizes.len()];
    let mut spare: Vec<usize> = (0..totals.len())
        .map(|j| totals[j] - counts.iter().map(|row| row[j]).sum::<usize>())
        .collect();
    let order = rng.permutation(sizes.len());
    for &c in &order {
        let c = c as usize;
        let needed = sizes[c] - counts[c].iter().sum::<usize>();
        for _ in 0..needed {
            if !augment(c, &mut up, &mut spare, &fractional) {
                return Err(Error::Unsupported(format!(
                    "internal error: no stratified rounding of {sizes:?} into {totals:?}"
                )));
            }
        }
    }
    for (row, ups) in counts.iter_mut().zip(&up) {
        for (count, &u) in row.iter_mut().zip(ups) {
            *count += usize::from(u);
        }
    }
    Ok(counts)
}

/// Finds one more round-up for class `start` along an alternating path (breadth first):
/// class -> part it may round up in -> class already rounded up there, which moves its
/// round-up elsewhere -> ... -> a part with a spare round-up.
fn augment(
    start: usize,
    up: &mut [Vec<bool>],
    spare: &mut [usize],
    fractional: &dyn Fn(usize, usize) -> bool,
) -> bool {
    let parts = spare.len();
    // parent[r] = (class it was reached from, part that class takes over from r).
    let mut parent: Vec<Option<(usize, usize)>> = vec![None; up.len()];
    let mut seen_class = vec![false; up.len()];
    let mut seen_part = vec![false; parts];
    let mut queue = std::collections::VecDeque::from([start]);
    seen_class[start] = true;
    while let Some(r) = queue.pop_front() {
        for j in 0..parts {
            if up[r][j] || !fractional(r, j) || seen_part[j] {
                continue;
            }
            seen_part[j] = true;
            if spare[j] > 0 {
                spare[j] -= 1;
                up[r][j] = true;
                let mut cur = r;
                while let Some((prev, part)) = parent[cur] {
                    up[cur][part] = false;
                    up[prev][part] = true;
                    cur = prev;
                }
                return true;
            }
            for (k, ups) in up.iter().enumerate() {
                if ups[j] && !seen_class[k] {
                    seen_class[k] = true;
                    parent[k] = Some((r, j));
                    queue.push_back(k);
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ties_that_defeat_independent_rounding_still_partition() {
        // Three singleton classes into parts of 1, 1, 1: largest-remainder rounding per part
        // with a fixed tie-break would give the first class two samples.
        let counts = apportion(&[1, 1, 1], &[1, 1, 1], &mut SeededRng::new(0)).unwrap();
        for row in &counts {
            assert_eq!(row.iter().sum::<usize>(), 1);
        }
        for j in 0..3 {
            assert_eq!(counts.iter().map(|r| r[j]).sum::<usize>(), 1);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn rounding_keeps_sums_and_stays_within_one(
            sizes in prop::collection::vec(1usize..40, 1..12),
            cuts in (0.0f64..1.0, 0.0f64..1.0),
            seed in any::<u64>(),
        ) {
            let n: usize = sizes.iter().sum();
            let a = (cuts.0 * n as f64) as usize;
            let b = ((cuts.1 * (n - a) as f64) as usize).min(n - a);
            let totals = [a, b, n - a - b];
            let counts = apportion(&sizes, &totals, &mut SeededRng::new(seed)).unwrap();
            for (c, row) in counts.iter().enumerate() {
                prop_assert_eq!(row.iter().sum::<usize>(), sizes[c]);
                for (j, &k) in row.iter().enumerate() {
                    let exact = sizes[c] as f64 * totals[j] as f64 / n as f64;
                    prop_assert!((k as f64 - exact).abs() < 1.0, "class {} part {}: {} vs {}", c, j, k, exact);
                }
            }
            for (j, &t) in totals.iter().enumerate() {
                prop_assert_eq!(counts.iter().map(|r| r[j]).sum::<usize>(), t);
            }
        }
    }
}
