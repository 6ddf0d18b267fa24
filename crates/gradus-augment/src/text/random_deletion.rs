//! `random_deletion` (EDA's RD): drop each token with probability `p`.

use std::collections::HashSet;

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_fraction, Protected};
use crate::params::at_path;

/// Random deletion (Wei & Zou 2019): each unprotected token is dropped when `u < p`. A
/// sequence of one token is returned unchanged; if every token would go, one random token is
/// kept (EDA). The output has between 1 and `len` tokens (0 only for empty input).
#[derive(Debug, Clone)]
pub struct RandomDeletion {
    p: f64,
    protected: Protected,
}

/// Config of [`RandomDeletion`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomDeletionConfig {
    /// Deletion probability per token (EDA's `p_rd`). Default: `0.1` (EDA).
    pub p: f64,
    /// Tokens never deleted (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for RandomDeletionConfig {
    fn default() -> Self {
        RandomDeletionConfig {
            p: 0.1,
            protected: Vec::new(),
        }
    }
}

impl RandomDeletion {
    /// Validates the config.
    pub fn new(config: RandomDeletionConfig) -> Result<Self> {
        Ok(RandomDeletion {
            p: check_fraction("p", config.p)?,
            protected: Protected::new(&config.protected),
        })
    }
}

impl RandomDeletion {
    /// The same deletions on token ids: `protected_ids` are never deleted. With the ids of a
    /// vocabulary and the ids of the protected words, the result maps to what
    /// [`TextAugmentation::apply`] gives for the same seed.
    pub fn apply_ids(
        &self,
        ids: &[u32],
        protected_ids: &HashSet<u32>,
        rng: &mut SeededRng,
    ) -> Vec<u32> {
        self.delete(ids, |id| protected_ids.contains(id), rng)
    }

    fn delete<T: Clone>(
        &self,
        tokens: &[T],
        protected: impl Fn(&T) -> bool,
        rng: &mut SeededRng,
    ) -> Vec<T> {
        if tokens.len() <= 1 {
            return tokens.to_vec();
        }
        let out: Vec<T> = tokens
            .iter()
            .filter(|t| protected(t) || rng.unit_f64() >= self.p)
            .cloned()
            .collect();
        if out.is_empty() {
            return vec![tokens[rng.below(tokens.len())].clone()];
        }
        out
    }
}

impl TextAugmentation for RandomDeletion {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        Ok(self.delete(tokens, |t| self.protected.contains(t), rng))
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let op = RandomDeletion::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "random_deletion",
    "delete each token with probability p, keeping at least one (EDA)",
    RandomDeletionConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    #[test]
    fn deletes_unprotected_tokens_and_keeps_at_least_one() {
        let input = tokens(SENTENCE);
        let op = RandomDeletion::new(RandomDeletionConfig {
            p: 0.5,
            protected: vec!["paris".to_string()],
        })
        .unwrap();
        let out = op.apply(&input, &mut SeededRng::new(4)).unwrap();
        assert!(out.len() < input.len() && out.contains(&"Paris".to_string()));
        let all = RandomDeletion::new(RandomDeletionConfig {
            p: 1.0,
            protected: Vec::new(),
        })
        .unwrap();
        assert_eq!(all.apply(&input, &mut SeededRng::new(0)).unwrap().len(), 1);
        assert!(RandomDeletion::new(RandomDeletionConfig {
            p: 1.5,
            protected: Vec::new()
        })
        .is_err());
    }
}
