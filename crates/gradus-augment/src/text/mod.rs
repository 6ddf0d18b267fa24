//! Random text augmentations over token sequences, one registered plugin per file: the EDA set
//! (Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques for Boosting Performance on Text
//! Classification Tasks"), token masking, character noise and back-translation through a
//! [`Translator`].
//!
//! Every op takes `protected`: tokens (compared case-insensitively) that are never replaced,
//! moved, deleted, masked, misspelled or translated, e.g. entity names or a stop list.
//!
//! Ops run on `Vec<String>` through [`TextAugmentation`](crate::TextAugmentation), and on token
//! ids through [`build_id_augmentation`] (see [`ids`] for which ops need a [`Vocabulary`]).

pub mod back_translation;
pub mod char_noise;
pub mod dictionary;
pub mod ids;
pub mod random_deletion;
pub mod random_insertion;
pub mod random_swap;
pub mod synonym_replacement;
pub mod thesaurus;
pub mod token_masking;
pub mod translator;

pub use back_translation::{BackTranslation, BackTranslationConfig};
pub use char_noise::{CharNoise, CharNoiseConfig};
pub use dictionary::{DictionaryTranslator, DictionaryTranslatorConfig};
pub use ids::{build_id_augmentation, IdAugmentation, IdOptions, Vocabulary};
pub use random_deletion::{RandomDeletion, RandomDeletionConfig};
pub use random_insertion::{RandomInsertion, RandomInsertionConfig};
pub use random_swap::{RandomSwap, RandomSwapConfig};
pub use synonym_replacement::{SynonymReplacement, SynonymReplacementConfig};
pub use thesaurus::Thesaurus;
pub use token_masking::{TokenMasking, TokenMaskingConfig};
pub use translator::{
    build_translator, register_translator, translator_names, Translator, TranslatorFactory,
};

use std::collections::HashSet;

use gradus_core::{Error, Result};

/// Protected tokens, lower-cased.
#[derive(Debug, Clone, Default)]
pub(crate) struct Protected(HashSet<String>);

impl Protected {
    pub(crate) fn new(words: &[String]) -> Self {
        Protected(words.iter().map(|w| w.to_lowercase()).collect())
    }

    pub(crate) fn contains(&self, token: &str) -> bool {
        !self.0.is_empty() && self.0.contains(&token.to_lowercase())
    }
}

/// The number of operations for a sequence of `len` tokens: `n` when given, else EDA's
/// `max(1, floor(fraction * len))`.
pub(crate) fn count(n: Option<usize>, fraction: f64, len: usize) -> usize {
    n.unwrap_or_else(|| ((fraction * len as f64) as usize).max(1))
}

/// A fraction in `[0, 1]`.
pub(crate) fn check_fraction(name: &str, v: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&v) {
        return Err(Error::InvalidHyperparameter(format!(
            "{name} must be in [0, 1], got {v}"
        )));
    }
    Ok(v)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Sentences for the text tests.

    /// `text` split on whitespace.
    pub(crate) fn tokens(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    /// A sentence of common words with many thesaurus entries.
    pub(crate) const SENTENCE: &str =
        "The quick child said a big happy story about the old city and the fast car Paris";
}
