//! Text augmentation on token ids (`&[u32]`), as a tokenizer produces them.
//!
//! Two ways, chosen per op by [`build_id_augmentation`]:
//! - **on the ids themselves**: `random_swap`, `random_deletion` and `token_masking` only move,
//!   drop or mask tokens, so they run on ids with no vocabulary (protected tokens given as
//!   `protected_ids`; masking needs the mask's id). Same seed and same draws as on strings.
//! - **through a [`Vocabulary`]**: every other op (`synonym_replacement`,
//!   `random_insertion`, `back_translation`, `char_noise`, plugins) works on words; the ids
//!   are decoded, the op runs on the strings, and the result is encoded again. A word the
//!   vocabulary lacks becomes `unk_id` when given, else is an error naming the word (a
//!   misspelling from `char_noise` is seldom in a vocabulary: give `unk_id` or do not use it
//!   on ids). Without a vocabulary these ops are an [`Error::Unsupported`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use gradus_core::config::{join_path, parse_config, split_type};
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::registry::{lookup, TextAugmentationKind};
use gradus_core::{Error, Result, SeededRng};
use serde_json::Value;

use super::{
    Protected, RandomDeletion, RandomDeletionConfig, RandomSwap, RandomSwapConfig, TokenMasking,
    TokenMaskingConfig,
};
use crate::params::at_path;

/// A random transform of a sequence of token ids.
pub trait IdAugmentation: Send + Sync {
    /// Returns the transformed ids.
    fn apply_ids(&self, ids: &[u32], rng: &mut SeededRng) -> Result<Vec<u32>>;
}

/// Token <-> id, with `id` = the token's position in the list (as in a BERT `vocab.txt`).
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// A vocabulary of `tokens` (id = index); duplicates and more than `u32::MAX` tokens are
    /// errors.
    pub fn new(tokens: Vec<String>) -> Result<Self> {
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let id = u32::try_from(i).map_err(|_| {
                Error::InvalidHyperparameter("a vocabulary holds at most 2^32 tokens".to_string())
            })?;
            if let Some(first) = ids.insert(t.clone(), id) {
                return Err(Error::InvalidHyperparameter(format!(
                    "vocabulary token `{t}` appears twice (ids {first} and {id})"
                )));
            }
        }
        Ok(Vocabulary { tokens, ids })
    }

    /// One token per line (a trailing `\r` is dropped); a duplicate line is
    /// [`Error::CorruptFile`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let tokens = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        Vocabulary::new(tokens).map_err(|e| Error::CorruptFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The id of `token` (exact match).
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The token of `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether it has no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The ids of `tokens`; a token without an id becomes `unk_id`, or is an error without it.
    pub fn encode(&self, tokens: &[String], unk_id: Option<u32>) -> Result<Vec<u32>> {
        tokens
            .iter()
            .map(|t| {
                self.id(t).or(unk_id).ok_or_else(|| {
                    Error::Unsupported(format!(
                        "token `{t}` is not in the vocabulary of {} tokens (set an unk_id to map it)",
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// The tokens of `ids`; an id out of range is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter()
            .map(|&id| {
                self.token(id).map(str::to_string).ok_or_else(|| {
                    Error::InvalidHyperparameter(format!(
                        "token id {id} is out of range for a vocabulary of {} tokens",
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// The ids of every token that `protected` (case-insensitive words) names.
    fn ids_of(&self, protected: &Protected) -> HashSet<u32> {
        (0u32..)
            .zip(&self.tokens)
            .filter(|(_, t)| protected.contains(t))
            .map(|(id, _)| id)
            .collect()
    }
}

/// What the id path needs besides the op's config.
#[derive(Debug, Clone, Default)]
pub struct IdOptions {
    /// Ids never changed, moved or deleted (added to the ids of the config's `protected`
    /// words).
    pub protected_ids: Vec<u32>,
    /// The id `token_masking` writes; default: the vocabulary's id of its `mask_token`.
    pub mask_id: Option<u32>,
    /// The vocabulary: needed by the ops that work on words, and to map `protected` words.
    pub vocabulary: Option<Arc<Vocabulary>>,
    /// The id of words the vocabulary lacks; without it such a word is an error.
    pub unk_id: Option<u32>,
}

/// Builds the text op of `config` (`{"type": ..., ...}`, as for strings) to run on token ids;
/// see the module docs for which ops need `options.vocabulary`. `path` is the config's JSON
/// path, for errors.
pub fn build_id_augmentation(
    config: &Value,
    path: &str,
    options: &IdOptions,
) -> Result<Box<dyn IdAugmentation>> {
    let (name, rest) = split_type(config, path)?;
    let entry = lookup::<TextAugmentationKind>(&name, &join_path(path, "type"))?;
    let vocab = options.vocabulary.as_deref();
    let protected = |words: &[String]| -> Result<HashSet<u32>> {
        let mut ids: HashSet<u32> = options.protected_ids.iter().copied().collect();
        match vocab {
            Some(v) => ids.extend(v.ids_of(&Protected::new(words))),
            None if !words.is_empty() => {
                return Err(Error::config(
                    join_path(path, "protected"),
                    format!("`{name}` on token ids maps protected words through a vocabulary; give one, or use protected_ids"),
                ))
            }
            None => {}
        }
        Ok(ids)
    };
    match name.as_str() {
        "random_swap" => {
            let c: RandomSwapConfig = parse_config(&rest, path)?;
            let protected = protected(&c.protected)?;
            let op = at_path(path, RandomSwap::new(c))?;
            Ok(Box::new(Native(move |ids: &[u32], rng: &mut SeededRng| {
                op.apply_ids(ids, &protected, rng)
            })))
        }
        "random_deletion" => {
            let c: RandomDeletionConfig = parse_config(&rest, path)?;
            let protected = protected(&c.protected)?;
            let op = at_path(path, RandomDeletion::new(c))?;
            Ok(Box::new(Native(move |ids: &[u32], rng: &mut SeededRng| {
                op.apply_ids(ids, &protected, rng)
            })))
        }
        "token_masking" => {
            let c: TokenMaskingConfig = parse_config(&rest, path)?;
            let protected = protected(&c.protected)?;
            let op = at_path(path, TokenMasking::new(c))?;
            let mask_id = options
                .mask_id
                .or_else(|| vocab.and_then(|v| v.id(op.mask_token())))
                .ok_or_else(|| {
                    Error::config(
                        join_path(path, "mask_token"),
                        format!(
                            "token_masking on token ids needs a mask id: `{}` is not in the vocabulary and no mask_id is given",
                            op.mask_token()
                        ),
                    )
                })?;
            Ok(Box::new(Native(move |ids: &[u32], rng: &mut SeededRng| {
                op.apply_ids(ids, mask_id, &protected, rng)
            })))
        }
        _ => {
            let vocabulary = options.vocabulary.clone().ok_or_else(|| {
                Error::Unsupported(format!(
                    "`{name}` works on words: on token ids it needs a vocabulary (IdOptions::vocabulary); \
                     only random_swap, random_deletion and token_masking run on bare ids"
                ))
            })?;
            let mut rest = rest;
            if !options.protected_ids.is_empty() {
                // The op protects words: add the words of the protected ids to its list.
                let mut words: Vec<Value> = match rest.get("protected") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                for &id in &options.protected_ids {
                    words.extend(vocabulary.token(id).map(|t| Value::from(t.to_string())));
                }
                rest["protected"] = Value::Array(words);
            }
            Ok(Box::new(ThroughVocabulary {
                op: (entry.build)(&rest, path)?,
                vocabulary,
                unk_id: options.unk_id,
            }))
        }
    }
}

/// An op running on the ids themselves.
struct Native<F>(F);

impl<F> IdAugmentation for Native<F>
where
    F: Fn(&[u32], &mut SeededRng) -> Vec<u32> + Send + Sync,
{
    fn apply_ids(&self, ids: &[u32], rng: &mut SeededRng) -> Result<Vec<u32>> {
        Ok((self.0)(ids, rng))
    }
}

/// A word op run on decoded ids, its output encoded again.
struct ThroughVocabulary {
    op: Box<dyn TextAugmentation>,
    vocabulary: Arc<Vocabulary>,
    unk_id: Option<u32>,
}

impl IdAugmentation for ThroughVocabulary {
    fn apply_ids(&self, ids: &[u32], rng: &mut SeededRng) -> Result<Vec<u32>> {
        let words = self.vocabulary.decode(ids)?;
        let out = self.op.apply(&words, rng)?;
        self.vocabulary.encode(&out, self.unk_id)
    }
}

#[cfg(test)]
#[path = "ids_tests.rs"]
mod tests;
