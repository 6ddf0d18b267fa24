//! Gradient batching for data problems: `full`, `mini_batch` and `stochastic`.
//!
//! A run of a data problem (`least_squares`) chooses `"batching": "full" | "mini_batch" |
//! "stochastic"` (default `full`); `mini_batch` needs `"batch_size": B` (at least 1, at most
//! the number of samples), and `"seed"` fixes the shuffling. Each optimizer step takes the next
//! batch of a permutation of the samples, drawn afresh at the start of every epoch; the last
//! batch of an epoch holds what is left (fewer than `B` when `B` does not divide `n`).

use gradus_core::config::join_path;
use gradus_core::suggest::nearest;
use gradus_core::{Error, Result, SeededRng};

use crate::problem::Problem;

/// The names `batching` accepts.
pub const BATCHING_NAMES: [&str; 3] = ["full", "mini_batch", "stochastic"];

/// How a run's gradients are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// The full gradient (every sample) at every step: batch gradient descent.
    Full,
    /// Batches of `batch_size` samples, shuffled per epoch with `seed`.
    MiniBatch {
        /// Samples per step.
        batch_size: usize,
        /// Seed of the shuffling.
        seed: u64,
    },
    /// One sample per step, shuffled per epoch with `seed`.
    Stochastic {
        /// Seed of the shuffling.
        seed: u64,
    },
}

impl Batching {
    /// Parses a run's `batching`, `batch_size` and `seed` (run at JSON path `path`) against
    /// `problem`'s data.
    pub fn parse(
        name: Option<&str>,
        batch_size: Option<usize>,
        seed: u64,
        problem: &dyn Problem,
        path: &str,
    ) -> Result<Self> {
        let at = join_path(path, "batching");
        let batching = match name.unwrap_or("full") {
            "full" => Batching::Full,
            "stochastic" => Batching::Stochastic { seed },
            "mini_batch" => Batching::MiniBatch {
                batch_size: batch_size.ok_or_else(|| {
                    Error::config(&at, "`mini_batch` needs a `batch_size` in the run")
                })?,
                seed,
            },
            other => {
                return Err(Error::UnknownName {
                    kind: "batching",
                    name: other.to_string(),
                    path: at,
                    valid: BATCHING_NAMES.iter().map(|s| s.to_string()).collect(),
                    suggestion: nearest(other, &BATCHING_NAMES),
                })
            }
        };
        batching.check(batch_size, problem, path)?;
        Ok(batching)
    }

    fn check(&self, batch_size: Option<usize>, problem: &dyn Problem, path: &str) -> Result<()> {
        let n = problem.sample_count();
        if !matches!(self, Batching::MiniBatch { .. }) && batch_size.is_some() {
            return Err(Error::config(
                join_path(path, "batch_size"),
                "`batch_size` applies to `\"batching\": \"mini_batch\"` only",
            ));
        }
        if *self != Batching::Full && n == 0 {
            return Err(Error::config(
                join_path(path, "batching"),
                format!(
                    "problem `{}` has no data set: only `full` gradients apply",
                    problem.name()
                ),
            ));
        }
        if let Batching::MiniBatch { batch_size, .. } = self {
            if *batch_size == 0 || *batch_size > n {
                return Err(Error::config(
                    join_path(path, "batch_size"),
                    format!("expected 1 to {n} (the number of samples), got {batch_size}"),
                ));
            }
        }
        Ok(())
    }

    /// A short label: `full`, `mini_batch(8)`, `stochastic`.
    pub fn label(&self) -> String {
        match self {
            Batching::Full => "full".into(),
            Batching::MiniBatch { batch_size, .. } => format!("mini_batch({batch_size})"),
            Batching::Stochastic { .. } => "stochastic".into(),
        }
    }
}

/// Yields the sample indices of each step for one run.
#[derive(Debug)]
pub struct Batcher {
    size: usize,
    samples: usize,
    rng: Option<SeededRng>,
    order: Vec<u32>,
    next: usize,
}

impl Batcher {
    /// A batcher for `batching` over `samples` samples.
    pub fn new(batching: Batching, samples: usize) -> Self {
        let (size, rng) = match batching {
            Batching::Full => (samples, None),
            Batching::MiniBatch { batch_size, seed } => {
                (batch_size, Some(SeededRng::new(seed).derive("batching")))
            }
            Batching::Stochastic { seed } => (1, Some(SeededRng::new(seed).derive("batching"))),
        };
        Batcher {
            size,
            samples,
            rng,
            order: Vec::new(),
            next: 0,
        }
    }

    /// The indices of the next step's batch; `None` for full gradients.
    pub fn next_batch(&mut self) -> Option<Vec<usize>> {
        let rng = self.rng.as_mut()?;
        if self.next >= self.order.len() {
            self.order = rng.permutation(self.samples);
            self.next = 0;
        }
        let end = (self.next + self.size).min(self.order.len());
        let batch = self.order[self.next..end]
            .iter()
            .map(|&i| i as usize)
            .collect();
        self.next = end;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_of_mini_batches_covers_every_sample_once() {
        let mut b = Batcher::new(
            Batching::MiniBatch {
                batch_size: 3,
                seed: 1,
            },
            10,
        );
        let mut seen: Vec<usize> = (0..4).flat_map(|_| b.next_batch().unwrap()).collect();
        assert_eq!(seen.len(), 10);
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(b.next_batch().unwrap().len(), 3);
        assert!(Batcher::new(Batching::Full, 10).next_batch().is_none());
    }
}
