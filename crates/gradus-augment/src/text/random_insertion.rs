//! `random_insertion` (EDA's RI): insert synonyms of random words at random places.

use std::collections::BTreeMap;
use std::sync::Arc;

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::thesaurus::Thesaurus;
use super::{check_fraction, count, Protected};
use crate::params::at_path;

/// Random insertion (Wei & Zou 2019), repeated `k = n` or `max(1, floor(fraction * len))`
/// times: pick a random unprotected token that has synonyms (up to 10 tries, else skip this
/// insertion), pick one of its synonyms uniformly, and insert it at a uniform position
/// `0..=len` (EDA's own code never inserts at the end). The output has between `len` and
/// `len + k` tokens; existing tokens are never changed.
#[derive(Debug, Clone)]
pub struct RandomInsertion {
    n: Option<usize>,
    fraction: f64,
    thesaurus: Arc<Thesaurus>,
    protected: Protected,
}

/// Config of [`RandomInsertion`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomInsertionConfig {
    /// Number of insertions; overrides `fraction`. Default: none.
    pub n: Option<usize>,
    /// Insertions per token (EDA's `alpha_ri`). Default: `0.1` (EDA).
    pub fraction: f64,
    /// Thesaurus file (`.json` or TSV). Default: none (built-in unless `synonyms` is given).
    pub thesaurus: Option<String>,
    /// Inline thesaurus entries, added to the file's. Default: none.
    pub synonyms: Option<BTreeMap<String, Vec<String>>>,
    /// Tokens whose synonyms are never inserted (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for RandomInsertionConfig {
    fn default() -> Self {
        RandomInsertionConfig {
            n: None,
            fraction: 0.1,
            thesaurus: None,
            synonyms: None,
            protected: Vec::new(),
        }
    }
}

impl RandomInsertion {
    /// Validates the config and loads the thesaurus.
    pub fn new(config: RandomInsertionConfig) -> Result<Self> {
        Ok(RandomInsertion {
            n: config.n,
            fraction: check_fraction("fraction", config.fraction)?,
            thesaurus: Thesaurus::from_config(
                config.thesaurus.as_deref(),
                config.synonyms.as_ref(),
            )?,
            protected: Protected::new(&config.protected),
        })
    }
}

impl TextAugmentation for RandomInsertion {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        let mut out = tokens.to_vec();
        if tokens.is_empty() {
            return Ok(out);
        }
        for _ in 0..count(self.n, self.fraction, tokens.len()) {
            let found = (0..10).find_map(|_| {
                let word = &out[rng.below(out.len())];
                let synonyms = self.thesaurus.synonyms(word);
                (!synonyms.is_empty() && !self.protected.contains(word)).then_some(synonyms)
            });
            if let Some(synonyms) = found {
                let synonym = synonyms[rng.below(synonyms.len())].clone();
                let at = rng.below(out.len() + 1);
                out.insert(at, synonym);
            }
        }
        Ok(out)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let op = RandomInsertion::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "random_insertion",
    "insert synonyms of random words at random positions (EDA)",
    RandomInsertionConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    #[test]
    fn inserts_up_to_n_tokens_keeping_the_originals_in_order() {
        let input = tokens(SENTENCE);
        let op = RandomInsertion::new(RandomInsertionConfig {
            n: Some(3),
            ..Default::default()
        })
        .unwrap();
        let out = op.apply(&input, &mut SeededRng::new(2)).unwrap();
        assert!(out.len() > input.len() && out.len() <= input.len() + 3);
        let mut it = out.iter();
        assert!(input.iter().all(|t| it.any(|o| o == t)), "{out:?}");
        assert_eq!(out, op.apply(&input, &mut SeededRng::new(2)).unwrap());
        assert!(op.apply(&[], &mut SeededRng::new(0)).unwrap().is_empty());
    }
}
