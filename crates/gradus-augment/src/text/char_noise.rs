//! `char_noise`: typos inside tokens: swapped, dropped and inserted characters.

use gradus_core::config::parse_config;
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{check_fraction, Protected};
use crate::params::at_path;

/// Character noise. Walking through each unprotected token, a character is hit with
/// probability `rate`; a hit picks uniformly one of the enabled typos: `swap` (exchange with
/// the next character; none at the last one), `drop` (delete it, unless it is the token's only
/// remaining character) or `insert` (a random character of `alphabet` before it). The token
/// count never changes and no token becomes empty.
#[derive(Debug, Clone)]
pub struct CharNoise {
    rate: f64,
    typos: Vec<Typo>,
    alphabet: Vec<char>,
    protected: Protected,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Typo {
    Swap,
    Drop,
    Insert,
}

/// Config of [`CharNoise`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CharNoiseConfig {
    /// Probability of a typo at each character. Default: `0.05` (Gradus; no PyTorch
    /// counterpart).
    pub rate: f64,
    /// Allow swapping adjacent characters. Default: `true`.
    pub swap: bool,
    /// Allow dropping characters. Default: `true`.
    pub drop: bool,
    /// Allow inserting characters. Default: `true`.
    pub insert: bool,
    /// Characters that insertions draw from. Default: `"abcdefghijklmnopqrstuvwxyz"`.
    pub alphabet: String,
    /// Tokens never changed (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for CharNoiseConfig {
    fn default() -> Self {
        CharNoiseConfig {
            rate: 0.05,
            swap: true,
            drop: true,
            insert: true,
            alphabet: "abcdefghijklmnopqrstuvwxyz".to_string(),
            protected: Vec::new(),
        }
    }
}

impl CharNoise {
    /// Validates the config.
    pub fn new(config: CharNoiseConfig) -> Result<Self> {
        let typos: Vec<Typo> = [
            (config.swap, Typo::Swap),
            (config.drop, Typo::Drop),
            (config.insert, Typo::Insert),
        ]
        .into_iter()
        .filter_map(|(on, t)| on.then_some(t))
        .collect();
        let invalid = |m: &str| Error::InvalidHyperparameter(m.to_string());
        if typos.is_empty() {
            return Err(invalid(
                "char_noise needs at least one of swap, drop, insert",
            ));
        }
        let alphabet: Vec<char> = config.alphabet.chars().collect();
        if config.insert && alphabet.is_empty() {
            return Err(invalid("char_noise: insert needs a non-empty alphabet"));
        }
        Ok(CharNoise {
            rate: check_fraction("rate", config.rate)?,
            typos,
            alphabet,
            protected: Protected::new(&config.protected),
        })
    }

    fn noisy(&self, token: &str, rng: &mut SeededRng) -> String {
        let chars: Vec<char> = token.chars().collect();
        let mut out = String::with_capacity(token.len() + 4);
        let mut i = 0;
        while i < chars.len() {
            if rng.unit_f64() < self.rate {
                match self.typos[rng.below(self.typos.len())] {
                    Typo::Swap if i + 1 < chars.len() => {
                        out.push(chars[i + 1]);
                        out.push(chars[i]);
                        i += 2;
                        continue;
                    }
                    Typo::Drop if !out.is_empty() || i + 1 < chars.len() => {
                        i += 1;
                        continue;
                    }
                    Typo::Insert => out.push(self.alphabet[rng.below(self.alphabet.len())]),
                    _ => {}
                }
            }
            out.push(chars[i]);
            i += 1;
        }
        out
    }
}

impl TextAugmentation for CharNoise {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        Ok(tokens
            .iter()
            .map(|t| {
                if self.protected.contains(t) {
                    t.clone()
                } else {
                    self.noisy(t, rng)
                }
            })
            .collect())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let op = CharNoise::new(parse_config(config, path)?);
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "char_noise",
    "typos at a rate: swap, drop or insert characters inside tokens",
    CharNoiseConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    #[test]
    fn typos_keep_token_count_and_non_empty_tokens() {
        let input = tokens(SENTENCE);
        let op = CharNoise::new(CharNoiseConfig {
            rate: 0.5,
            protected: vec!["story".to_string()],
            ..Default::default()
        })
        .unwrap();
        let out = op.apply(&input, &mut SeededRng::new(6)).unwrap();
        assert_eq!(out.len(), input.len());
        assert_ne!(out, input);
        assert!(out.iter().all(|t| !t.is_empty()));
        assert_eq!(out[7], "story");
        let drop_only = CharNoise::new(CharNoiseConfig {
            rate: 1.0,
            swap: false,
            insert: false,
            ..Default::default()
        })
        .unwrap();
        let out = drop_only.apply(&input, &mut SeededRng::new(0)).unwrap();
        assert!(out.iter().all(|t| t.chars().count() == 1), "{out:?}");
        assert!(CharNoise::new(CharNoiseConfig {
            swap: false,
            drop: false,
            insert: false,
            ..Default::default()
        })
        .is_err());
    }
}
