//! `synonym_replacement` (EDA's SR): replace up to `n` distinct words by a random synonym.

use std::collections::BTreeMap;
use std::sync::Arc;

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::thesaurus::{match_case, Thesaurus};
use super::{check_fraction, count, Protected};
use crate::params::at_path;

/// Synonym replacement (Wei & Zou 2019). The distinct unprotected words of the sequence
/// (compared lower-cased, in first-occurrence order) are shuffled; walking through them, each word with synonyms gets a
/// synonym picked uniformly, and every occurrence of it is replaced, until `k` words are
/// replaced, `k = n` or `max(1, floor(fraction * len))`. The token count never changes (a
/// synonym is one token even if it holds a space). Each occurrence keeps the case of its first
/// letter.
#[derive(Debug, Clone)]
pub struct SynonymReplacement {
    n: Option<usize>,
    fraction: f64,
    thesaurus: Arc<Thesaurus>,
    protected: Protected,
}

/// Config of [`SynonymReplacement`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SynonymReplacementConfig {
    /// Number of words to replace; overrides `fraction`. Default: none.
    pub n: Option<usize>,
    /// Share of the tokens to replace (EDA's `alpha_sr`). Default: `0.1` (EDA).
    pub fraction: f64,
    /// Thesaurus file: `.json` (`{"word": ["synonym", ...]}`) or TSV
    /// (`word<TAB>synonym...`). Default: none (the built-in English thesaurus unless
    /// `synonyms` is given).
    pub thesaurus: Option<String>,
    /// Inline thesaurus entries, added to the file's. Default: none.
    pub synonyms: Option<BTreeMap<String, Vec<String>>>,
    /// Tokens never replaced (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for SynonymReplacementConfig {
    fn default() -> Self {
        SynonymReplacementConfig {
            n: None,
            fraction: 0.1,
            thesaurus: None,
            synonyms: None,
            protected: Vec::new(),
        }
    }
}

impl SynonymReplacement {
    /// Validates the config and loads the thesaurus.
    pub fn new(config: SynonymReplacementConfig) -> Result<Self> {
        Ok(SynonymReplacement {
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

impl TextAugmentation for SynonymReplacement {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        let mut out = tokens.to_vec();
        let k = count(self.n, self.fraction, tokens.len());
        // Distinct words, compared lower-cased, in first-occurrence order.
        let mut words: Vec<String> = Vec::new();
        for t in tokens {
            let lower = t.to_lowercase();
            if !self.protected.contains(t) && !words.contains(&lower) {
                words.push(lower);
            }
        }
        let order = rng.permutation(words.len());
        let mut replaced = 0;
        for &w in &order {
            if replaced >= k {
                break;
            }
            let word = &words[w as usize];
            let synonyms = self.thesaurus.synonyms(word);
            if synonyms.is_empty() {
                continue;
            }
            let synonym = &synonyms[rng.below(synonyms.len())];
            for (o, t) in out.iter_mut().zip(tokens) {
                if t.to_lowercase() == *word {
                    *o = match_case(t, synonym);
                }
            }
            replaced += 1;
        }
        Ok(out)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let op = SynonymReplacement::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "synonym_replacement",
    "replace n (or a fraction of) words by thesaurus synonyms (EDA)",
    SynonymReplacementConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    #[test]
    fn replaces_words_keeps_length_and_protected_words() {
        let input = tokens(SENTENCE);
        let op = SynonymReplacement::new(SynonymReplacementConfig {
            n: Some(20),
            protected: vec!["story".to_string()],
            ..Default::default()
        })
        .unwrap();
        let out = op.apply(&input, &mut SeededRng::new(1)).unwrap();
        assert_eq!(out.len(), input.len());
        assert_ne!(out, input);
        assert_eq!(out[7], "story");
        assert_eq!(out[0], "The");
        assert_eq!(out, op.apply(&input, &mut SeededRng::new(1)).unwrap());
    }

    #[test]
    fn inline_thesaurus_replaces_all_occurrences() {
        let op = SynonymReplacement::new(
            parse_config(
                &serde_json::json!({"n": 1, "synonyms": {"cat": ["feline"]}}),
                "t",
            )
            .unwrap(),
        )
        .unwrap();
        let out = op
            .apply(&tokens("Cat sees cat"), &mut SeededRng::new(0))
            .unwrap();
        assert_eq!(out, tokens("Feline sees feline"));
    }
}
