//! `back_translation`: translate into a pivot language and back, to paraphrase.

use std::sync::Arc;

use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::augment::TextAugmentation;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::translator::{build_translator, Translator};
use super::{check_fraction, Protected};
use crate::params::at_path;

/// Back-translation (Sennrich et al. 2016; Xie et al. 2020, "Unsupervised Data Augmentation"):
/// with probability `p` the sequence becomes `T(T(x, source, pivot), pivot, source)` for the
/// [`Translator`] `T`. Protected tokens never reach the translator: the sequence is cut at
/// them, each run of unprotected tokens between them makes the round trip on its own, and the
/// protected tokens are put back between the results, so they keep their text and their order.
///
/// The token count is the translator's business: the `dictionary` translator keeps it (word
/// by word); a model translator may change it.
pub struct BackTranslation {
    translator: Arc<dyn Translator>,
    source: String,
    pivot: String,
    p: f64,
    protected: Protected,
}

/// Config of [`BackTranslation`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BackTranslationConfig {
    /// The translator, by registered name (`dictionary`, or one added with
    /// [`register_translator`](super::register_translator)). Default: `"dictionary"`.
    pub translator: String,
    /// The translator's own config (for `dictionary`: [`DictionaryTranslatorConfig`](super::DictionaryTranslatorConfig)).
    /// Default: `{}`.
    pub translator_options: Value,
    /// Language of the input. Default: `"en"`.
    pub source: String,
    /// Language of the round trip. Default: `"fr"` (built in: `fr`, `de`).
    pub pivot: String,
    /// Probability of back-translating a sequence. Default: `1.0` (Gradus; no PyTorch
    /// counterpart).
    pub p: f64,
    /// Tokens never translated (case-insensitive). Default: none.
    pub protected: Vec<String>,
}

impl Default for BackTranslationConfig {
    fn default() -> Self {
        BackTranslationConfig {
            translator: "dictionary".to_string(),
            translator_options: Value::Object(Map::new()),
            source: "en".to_string(),
            pivot: "fr".to_string(),
            p: 1.0,
            protected: Vec::new(),
        }
    }
}

impl std::fmt::Debug for BackTranslation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackTranslation")
            .field("source", &self.source)
            .field("pivot", &self.pivot)
            .field("p", &self.p)
            .finish_non_exhaustive()
    }
}

impl BackTranslation {
    /// Builds the named translator (`path`: the JSON path of the config, for errors) and
    /// validates the config.
    pub fn new(config: BackTranslationConfig, path: &str) -> Result<Self> {
        let translator = build_translator(&config.translator, &config.translator_options, path)?;
        Self::with_translator(config, translator)
    }

    /// Uses `translator` (e.g. a model loaded by the caller); `config.translator` and
    /// `config.translator_options` are ignored.
    pub fn with_translator(
        config: BackTranslationConfig,
        translator: Arc<dyn Translator>,
    ) -> Result<Self> {
        if config.source == config.pivot {
            return Err(Error::InvalidHyperparameter(format!(
                "back_translation needs a pivot language other than the source, got `{}` twice",
                config.source
            )));
        }
        for (from, to) in [
            (&config.source, &config.pivot),
            (&config.pivot, &config.source),
        ] {
            if !translator.supports(from, to) {
                return Err(Error::InvalidHyperparameter(format!(
                    "the translator cannot translate from `{from}` into `{to}`"
                )));
            }
        }
        Ok(BackTranslation {
            translator,
            source: config.source,
            pivot: config.pivot,
            p: check_fraction("p", config.p)?,
            protected: Protected::new(&config.protected),
        })
    }

    fn round_trip(&self, run: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        let there = self
            .translator
            .translate(run, &self.source, &self.pivot, rng)?;
        self.translator
            .translate(&there, &self.pivot, &self.source, rng)
    }
}

impl TextAugmentation for BackTranslation {
    fn apply(&self, tokens: &[String], rng: &mut SeededRng) -> Result<Vec<String>> {
        if tokens.is_empty() || rng.unit_f64() >= self.p {
            return Ok(tokens.to_vec());
        }
        let mut out = Vec::with_capacity(tokens.len());
        let mut run_start = 0;
        for (i, t) in tokens.iter().enumerate() {
            if self.protected.contains(t) {
                if run_start < i {
                    out.extend(self.round_trip(&tokens[run_start..i], rng)?);
                }
                out.push(t.clone());
                run_start = i + 1;
            }
        }
        if run_start < tokens.len() {
            out.extend(self.round_trip(&tokens[run_start..], rng)?);
        }
        Ok(out)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn TextAugmentation>> {
    let parsed: BackTranslationConfig = parse_config(config, path)?;
    let op = BackTranslation::new(parsed, path).map_err(|e| match e {
        Error::InvalidHyperparameter(m) if m.starts_with("the translator") => {
            Error::config(join_path(path, "pivot"), m)
        }
        other => other,
    });
    Ok(Box::new(at_path(path, op)?))
}

gradus_core::register_text_augmentation!(
    "back_translation",
    "translate into a pivot language and back through a Translator (dictionary built in)",
    BackTranslationConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::testing::{tokens, SENTENCE};

    fn op(json: Value) -> BackTranslation {
        BackTranslation::new(parse_config(&json, "t").unwrap(), "t").unwrap()
    }

    #[test]
    fn dictionary_round_trip_paraphrases_keeping_count_protected_words_and_seed() {
        let input = tokens(SENTENCE);
        for pivot in ["fr", "de"] {
            let bt = op(serde_json::json!({"pivot": pivot, "protected": ["story", "Paris"]}));
            let out = bt.apply(&input, &mut SeededRng::new(3)).unwrap();
            assert_eq!(out.len(), input.len());
            let changed = out.iter().zip(&input).filter(|(o, i)| o != i).count();
            assert!(changed >= 2, "{pivot}: {out:?}");
            assert_eq!(out[7], "story");
            assert_eq!(out[16], "Paris");
            assert_eq!(out[0], "The");
            assert_eq!(out, bt.apply(&input, &mut SeededRng::new(3)).unwrap());
            let others: Vec<_> = (0..8)
                .map(|s| bt.apply(&input, &mut SeededRng::new(s)).unwrap())
                .collect();
            assert!(
                others.iter().any(|o| *o != out),
                "{pivot}: seed has no effect"
            );
        }
    }

    #[test]
    fn p_zero_and_empty_input_return_the_input() {
        let input = tokens(SENTENCE);
        let bt = op(serde_json::json!({"p": 0.0}));
        assert_eq!(bt.apply(&input, &mut SeededRng::new(0)).unwrap(), input);
        assert!(op(serde_json::json!({}))
            .apply(&[], &mut SeededRng::new(0))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn invalid_configs_are_clear_errors() {
        let err = |json: Value| build(&json, "aug").err().map(|e| e.to_string());
        let unsupported = err(serde_json::json!({"pivot": "ja"})).unwrap();
        assert!(
            unsupported.contains("aug.pivot") && unsupported.contains("`ja`"),
            "{unsupported}"
        );
        assert!(err(serde_json::json!({"pivot": "en"}))
            .unwrap()
            .contains("pivot"));
        assert!(err(serde_json::json!({"p": 2.0}))
            .unwrap()
            .contains("[0, 1]"));
        assert!(err(serde_json::json!({"translator": "marian"}))
            .unwrap()
            .contains("dictionary"));
        assert!(
            err(serde_json::json!({"translator_options": {"bultin": false}}))
                .unwrap()
                .contains("builtin")
        );
    }
}
