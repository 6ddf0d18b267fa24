//! The [`Translator`] trait behind `back_translation`, and the table of translators that a
//! config picks by name (`"translator": "dictionary"`).
//!
//! Gradus ships one translator, [`DictionaryTranslator`](super::DictionaryTranslator) (word
//! lists, for tests and out-of-the-box use). A real model (e.g. a Candle Marian MT model) lives
//! in the user's crate: implement [`Translator`] for it and either hand it to
//! [`BackTranslation::with_translator`](super::BackTranslation::with_translator) or make it
//! selectable from JSON with [`register_translator`]. Gradus never depends on a model.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use gradus_core::config::{display_path, join_path};
use gradus_core::suggest::nearest;
use gradus_core::{Error, Result, SeededRng};
use serde_json::Value;

/// Translates a token sequence from one language to another.
///
/// Language codes are the translator's own (the built-in dictionary uses ISO 639-1: `"en"`,
/// `"fr"`, `"de"`). The output may have any number of tokens. `rng` is for translators that
/// sample (the dictionary picks among candidate translations; a model may sample its decoder);
/// a deterministic translator (greedy or beam decoding) ignores it. Draw only from `rng` so
/// that the same seed gives the same text.
pub trait Translator: Send + Sync {
    /// `tokens` (in language `from`) translated into language `to`.
    fn translate(
        &self,
        tokens: &[String],
        from: &str,
        to: &str,
        rng: &mut SeededRng,
    ) -> Result<Vec<String>>;

    /// Whether the translator can translate from `from` into `to`; `back_translation` checks
    /// both directions when it is built. Default: `true`.
    fn supports(&self, from: &str, to: &str) -> bool {
        let _ = (from, to);
        true
    }
}

/// Builds a translator from the `translator_options` of a `back_translation` config; `path`
/// is the JSON path of those options, for errors.
pub type TranslatorFactory = Arc<dyn Fn(&Value, &str) -> Result<Arc<dyn Translator>> + Send + Sync>;

type Table = RwLock<BTreeMap<String, TranslatorFactory>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let dictionary: TranslatorFactory = Arc::new(super::dictionary::build);
        RwLock::new(BTreeMap::from([("dictionary".to_string(), dictionary)]))
    })
}

/// Makes `name` selectable as `"translator": name` in `back_translation` configs. Call it once
/// at start-up, before building pipelines. A name registered twice (or `"dictionary"`) is an
/// [`Error::DuplicateName`].
pub fn register_translator<F>(name: &str, factory: F) -> Result<()>
where
    F: Fn(&Value, &str) -> Result<Arc<dyn Translator>> + Send + Sync + 'static,
{
    let mut map = table()
        .write()
        .map_err(|_| Error::Unsupported("the translator table is poisoned".to_string()))?;
    if map.contains_key(name) {
        return Err(Error::DuplicateName {
            kind: "translator",
            name: name.to_string(),
            first: if name == "dictionary" {
                "gradus_augment (built in)".to_string()
            } else {
                "an earlier register_translator call".to_string()
            },
            second: "register_translator".to_string(),
        });
    }
    map.insert(name.to_string(), Arc::new(factory));
    Ok(())
}

/// The names usable as `"translator"`, sorted.
pub fn translator_names() -> Vec<String> {
    table()
        .read()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Builds the translator registered as `name` from `options`; `path` is the JSON path of the
/// config holding `translator` and `translator_options`, for errors.
pub fn build_translator(name: &str, options: &Value, path: &str) -> Result<Arc<dyn Translator>> {
    let factory = {
        let map = table()
            .read()
            .map_err(|_| Error::Unsupported("the translator table is poisoned".to_string()))?;
        match map.get(name) {
            Some(f) => Arc::clone(f),
            None => {
                return Err(Error::UnknownName {
                    kind: "translator",
                    name: name.to_string(),
                    path: display_path(&join_path(path, "translator")),
                    valid: map.keys().cloned().collect(),
                    suggestion: nearest(name, map.keys()),
                })
            }
        }
    };
    factory(options, &join_path(path, "translator_options"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper-cases every token "into" any language: a stand-in for a model.
    struct Shout;

    impl Translator for Shout {
        fn translate(
            &self,
            t: &[String],
            _: &str,
            _: &str,
            _: &mut SeededRng,
        ) -> Result<Vec<String>> {
            Ok(t.iter().map(|s| s.to_uppercase()).collect())
        }
    }

    #[test]
    fn registered_translators_are_built_by_name_and_names_are_unique() {
        register_translator("shout_test", |_: &Value, _: &str| {
            Ok(Arc::new(Shout) as Arc<dyn Translator>)
        })
        .unwrap();
        assert!(translator_names().contains(&"shout_test".to_string()));
        let t = build_translator("shout_test", &Value::Null, "augment").unwrap();
        let out = t
            .translate(&["hi".to_string()], "en", "xx", &mut SeededRng::new(0))
            .unwrap();
        assert_eq!(out, ["HI"]);
        assert!(t.supports("en", "xx"));
        let dup = register_translator("dictionary", |_: &Value, _: &str| {
            Ok(Arc::new(Shout) as Arc<dyn Translator>)
        });
        assert!(matches!(dup, Err(Error::DuplicateName { .. })));
        match build_translator("dictionnary", &Value::Null, "augment") {
            Err(Error::UnknownName {
                suggestion, path, ..
            }) => {
                assert_eq!(suggestion.as_deref(), Some("dictionary"));
                assert_eq!(path, "augment.translator");
            }
            other => panic!("expected UnknownName, got {:?}", other.err()),
        }
    }
}
