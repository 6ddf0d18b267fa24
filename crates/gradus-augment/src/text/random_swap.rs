//! `random_swap` (EDA's RS): swap random pairs of tokens.

use std::collections::HashSet;

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_fraction, count, Protected};
use crate::params::at_path;

/// Random swap (Wei & Zou 2019), repeated `k = n` or `max(1, floor(fraction * len))` times:
/// pick two distinct positions uniformly among the unprotected tokens and swap them.
/// Protected tokens never move; the token count never changes.
#[derive(Debug, Clone)]
pub struct RandomSwap {
    n: Option<usize>,
    fraction: f64,
    protected: Protected,
}

/// Config of [`RandomSwap`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomSwapConfig {
    /// Number of swaps; overrides `fraction`. Default: none.
    pub n: Option<usize>,
    /// Swaps per token (EDA's `alpha_rs`). Default: `0.1` (EDA).
    pub fraction: f64,
    /// Tokens that never move (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for RandomSwapConfig {
    fn default() -> Self {
        RandomSwapConfig {
            n: None,
            fraction: 0.1,
            protected: Vec::new(),
        }
    }
}

impl RandomSwap {
    /// Validates the config.
    pub fn new(config: RandomSwapConfig) -> Result<Self> {
        Ok(RandomSwap {
            n: config.n,
            fraction: check_fraction("fraction", config.fraction)?,
            protected: Protected::new(&config.protected),
        })
    }
}

impl RandomSwap {
    /// The same swaps on token ids: `protected_ids` never move. With the ids of a vocabulary
    /// and the ids of the protected words, the result maps to what [`TextAugmentation::apply`]
    /// gives for the same seed.
    pub fn apply_ids(
        &self,
        ids: &[u32],
        protected_ids: &HashSet<u32>,
        rng: &mut SeededRng,
    ) -> Vec<u32> {
        self.swap(ids, |id| protected_ids.contains(id), rng)
    }

    fn swap<T: Clone>(
        &self,
        tokens: &[T],
        protected: impl Fn(&T) -> bool,
        rng: &mut SeededRng,
    ) -> Vec<T> {
        let mut out = tokens.to_vec();
        let free: Vec<usize> = (0..tokens.len())
            .filter(|&i| !protected(&tokens[i]))
            .collect();
        if free.len() < 2 {
            return out;
        }
        for _ in 0..count(self.n, self.fraction, tokens.len()) {
            let a = rng.below(free.len());
            // A uniform second position among the other free ones.
            let b = (a + 1 + rng.below(free.len() - 1)) % free.len();
            out.swap(free[a], free[b]);
        }
        out
    }
}

impl TextAugmentation for RandomSwap {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        Ok(self.swap(tokens, |t| self.protected.contains(t), rng))
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let op = RandomSwap::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "random_swap",
    "swap n (or a fraction of) random token pairs (EDA)",
    RandomSwapConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    #[test]
    fn swaps_keep_the_multiset_and_protected_positions() {
        let input = tokens(SENTENCE);
        let op = RandomSwap::new(RandomSwapConfig {
            n: Some(5),
            protected: vec!["paris".to_string(), "the".to_string()],
            ..Default::default()
        })
        .unwrap();
        let out = op.apply(&input, &mut SeededRng::new(3)).unwrap();
        assert_ne!(out, input);
        let (mut a, mut b) = (out.clone(), input.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b);
        for (i, t) in input.iter().enumerate() {
            if t.eq_ignore_ascii_case("the") || t == "Paris" {
                assert_eq!(&out[i], t);
            }
        }
        assert_eq!(
            op.apply(&tokens("one"), &mut SeededRng::new(0)).unwrap(),
            tokens("one")
        );
    }
}
