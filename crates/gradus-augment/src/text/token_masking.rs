//! `token_masking`: replace tokens by a mask token with probability `p`.

use std::collections::HashSet;

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_fraction, Protected};
use crate::params::at_path;

/// Token masking: each unprotected token becomes `mask_token` when `u < p`. The token count
/// never changes.
#[derive(Debug, Clone)]
pub struct TokenMasking {
    p: f64,
    mask_token: String,
    protected: Protected,
}

/// Config of [`TokenMasking`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TokenMaskingConfig {
    /// Masking probability per token. Default: `0.15` (BERT's masking rate).
    pub p: f64,
    /// The replacement token. Default: `"[MASK]"` (BERT).
    pub mask_token: String,
    /// Tokens never masked (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for TokenMaskingConfig {
    fn default() -> Self {
        TokenMaskingConfig {
            p: 0.15,
            mask_token: "[MASK]".to_string(),
            protected: Vec::new(),
        }
    }
}

impl TokenMasking {
    /// Validates the config.
    pub fn new(config: TokenMaskingConfig) -> Result<Self> {
        Ok(TokenMasking {
            p: check_fraction("p", config.p)?,
            mask_token: config.mask_token,
            protected: Protected::new(&config.protected),
        })
    }
}

impl TokenMasking {
    /// The mask token of the config (look its id up in the vocabulary for
    /// [`TokenMasking::apply_ids`]).
    pub fn mask_token(&self) -> &str {
        &self.mask_token
    }

    /// The same masking on token ids: unprotected ids become `mask_id`. With the ids of a
    /// vocabulary, `mask_id` the id of the mask token and the ids of the protected words, the
    /// result maps to what [`TextAugmentation::apply`] gives for the same seed.
    pub fn apply_ids(
        &self,
        ids: &[u32],
        mask_id: u32,
        protected_ids: &HashSet<u32>,
        rng: &mut SeededRng,
    ) -> Vec<u32> {
        self.mask(ids, &mask_id, |id| protected_ids.contains(id), rng)
    }

    fn mask<T: Clone>(
        &self,
        tokens: &[T],
        mask: &T,
        protected: impl Fn(&T) -> bool,
        rng: &mut SeededRng,
    ) -> Vec<T> {
        tokens
            .iter()
            .map(|t| {
                if !protected(t) && rng.unit_f64() < self.p {
                    mask.clone()
                } else {
                    t.clone()
                }
            })
            .collect()
    }
}

impl TextAugmentation for TokenMasking {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        Ok(self.mask(
            tokens,
            &self.mask_token,
            |t| self.protected.contains(t),
            rng,
        ))
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let op = TokenMasking::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "token_masking",
    "replace each token by a mask token with probability p",
    TokenMaskingConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    #[test]
    fn masks_some_tokens_keeping_length_and_protected_ones() {
        let input = tokens(SENTENCE);
        let op = TokenMasking::new(TokenMaskingConfig {
            p: 0.5,
            mask_token: "<m>".to_string(),
            protected: vec!["PARIS".to_string()],
        })
        .unwrap();
        let out = op.apply(&input, &mut SeededRng::new(5)).unwrap();
        assert_eq!(out.len(), input.len());
        assert!(out.iter().any(|t| t == "<m>"));
        assert_eq!(out.last().unwrap(), "Paris");
        for (o, i) in out.iter().zip(&input) {
            assert!(o == i || o == "<m>");
        }
    }
}
