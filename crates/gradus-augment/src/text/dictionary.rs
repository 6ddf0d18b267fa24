//! The `dictionary` translator: word-by-word translation through bilingual word lists.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use gradus_core::config::{join_path, parse_config};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::thesaurus::match_case;
use super::translator::Translator;

/// English -> French, about 560 words (see the file's header).
const EN_FR: &str = include_str!("../../data/dict_en_fr.tsv");
/// English -> German, about 440 words.
const EN_DE: &str = include_str!("../../data/dict_en_de.tsv");

/// Word -> candidate translations, for one direction.
type Table = HashMap<String, Vec<String>>;

/// A word list as read: `(word, translations)` in file order.
type WordList = Vec<(String, Vec<String>)>;

/// Word-by-word translation. Each token is split into leading punctuation, a core (first to
/// last alphanumeric character) and trailing punctuation; the lower-cased core is looked up in
/// the table of the direction, one of its candidates is picked uniformly with the seeded RNG
/// (no draw when there is only one), given the case of the core's first letter, and the
/// punctuation put back. Tokens without an entry pass through unchanged, so the output always
/// has as many tokens as the input.
///
/// A word list `a -> b` gives both directions: `b -> a` is its inverse (every `a` word listing
/// a `b` word). Since synonyms share translations (big, large, tall -> grand), the round trip
/// `a -> b -> a` paraphrases. Built in: `en <-> fr` and `en <-> de`. A word left untranslated
/// that happens to be a word of the other language comes back translated (a false friend);
/// the built-in lists translate the common cases (`but -> mais`, `pain -> douleur`).
#[derive(Debug, Clone, Default)]
pub struct DictionaryTranslator {
    tables: HashMap<(String, String), Table>,
}

/// Config of [`DictionaryTranslator`]: the `translator_options` of `back_translation` when
/// `"translator": "dictionary"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DictionaryTranslatorConfig {
    /// Include the built-in `en-fr` and `en-de` word lists. Default: `true`.
    pub builtin: bool,
    /// Word-list files by language pair, e.g. `{"en-es": "en_es.tsv"}`: TSV lines
    /// `word<TAB>translation[<TAB>translation...]` (`#` comments), or `.json`
    /// `{"word": ["translation", ...]}`. Default: none.
    pub files: BTreeMap<String, String>,
    /// Inline word lists by language pair, e.g. `{"en-fr": {"cat": ["chat", "minou"]}}`, added
    /// to the others. Default: none.
    pub entries: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Default for DictionaryTranslatorConfig {
    fn default() -> Self {
        DictionaryTranslatorConfig {
            builtin: true,
            files: BTreeMap::new(),
            entries: BTreeMap::new(),
        }
    }
}

impl DictionaryTranslator {
    /// The built-in `en <-> fr` and `en <-> de` translator (parsed once, shared).
    pub fn builtin() -> Arc<DictionaryTranslator> {
        static CELL: OnceLock<Arc<DictionaryTranslator>> = OnceLock::new();
        CELL.get_or_init(|| {
            let mut t = DictionaryTranslator::default();
            for (to, text) in [("fr", EN_FR), ("de", EN_DE)] {
                // The embedded lists are tested to parse; an error here cannot happen.
                let words = parse_tsv(text).unwrap_or_default();
                t.add_pair("en", to, words);
            }
            Arc::new(t)
        })
        .clone()
    }

    /// Builds from a config, reading the word-list files.
    pub fn new(config: DictionaryTranslatorConfig) -> Result<Self> {
        let mut t = if config.builtin {
            DictionaryTranslator::clone(&DictionaryTranslator::builtin())
        } else {
            DictionaryTranslator::default()
        };
        let mut lists: BTreeMap<(String, String), WordList> = BTreeMap::new();
        for (pair, file) in &config.files {
            lists
                .entry(split_pair(pair)?)
                .or_default()
                .extend(load(Path::new(file))?);
        }
        for (pair, words) in config.entries {
            lists.entry(split_pair(&pair)?).or_default().extend(words);
        }
        for ((from, to), words) in lists {
            t.add_pair(&from, &to, words);
        }
        Ok(t)
    }

    /// Adds the word list `from -> to` and its inverse `to -> from` (merged with existing
    /// entries; keys lower-cased, empty candidates dropped).
    pub fn add_pair(
        &mut self,
        from: &str,
        to: &str,
        words: impl IntoIterator<Item = (String, Vec<String>)>,
    ) {
        // BTreeMap: the inverse lists come out in a fixed order, whatever the hashing.
        let mut forward: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (word, translations) in words {
            let entry = forward.entry(word.to_lowercase()).or_default();
            for tr in translations {
                let tr = tr.to_lowercase();
                if !tr.is_empty() && !entry.contains(&tr) {
                    entry.push(tr);
                }
            }
        }
        forward.retain(|_, v| !v.is_empty());
        let mut inverse: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (word, translations) in &forward {
            for tr in translations {
                let entry = inverse.entry(tr.clone()).or_default();
                if !entry.contains(word) {
                    entry.push(word.clone());
                }
            }
        }
        for (key, table) in [((from, to), forward), ((to, from), inverse)] {
            let existing = self
                .tables
                .entry((key.0.to_string(), key.1.to_string()))
                .or_default();
            for (word, candidates) in table {
                let entry = existing.entry(word).or_default();
                for c in candidates {
                    if !entry.contains(&c) {
                        entry.push(c);
                    }
                }
            }
        }
    }

    /// The candidate translations of `word` (looked up lower-cased) from `from` into `to`.
    pub fn candidates(&self, word: &str, from: &str, to: &str) -> &[String] {
        self.tables
            .get(&(from.to_string(), to.to_string()))
            .and_then(|t| t.get(&word.to_lowercase()))
            .map_or(&[], Vec::as_slice)
    }

    /// The language pairs `(from, to)` it translates, sorted.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = self.tables.keys().cloned().collect();
        pairs.sort();
        pairs
    }
}

impl Translator for DictionaryTranslator {
    fn translate(
        &self,
        tokens: &[String],
        from: &str,
        to: &str,
        rng: &mut SeededRng,
    ) -> Result<Vec<String>> {
        let table = self
            .tables
            .get(&(from.to_string(), to.to_string()))
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "the dictionary translator has no {from} -> {to} word list (it has {})",
                    pair_list(&self.pairs())
                ))
            })?;
        Ok(tokens
            .iter()
            .map(|token| {
                let (start, end) = core_bounds(token);
                let core = &token[start..end];
                match table.get(&core.to_lowercase()) {
                    Some(c) if !core.is_empty() => {
                        let pick = if c.len() > 1 { rng.below(c.len()) } else { 0 };
                        let word = match_case(core, &c[pick]);
                        format!("{}{word}{}", &token[..start], &token[end..])
                    }
                    _ => token.clone(),
                }
            })
            .collect())
    }

    fn supports(&self, from: &str, to: &str) -> bool {
        self.tables
            .contains_key(&(from.to_string(), to.to_string()))
    }
}

/// Byte range of the token's core: from its first to its last alphanumeric character.
fn core_bounds(token: &str) -> (usize, usize) {
    let start = token
        .char_indices()
        .find(|(_, c)| c.is_alphanumeric())
        .map_or(token.len(), |(i, _)| i);
    let end = token
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_alphanumeric())
        .map_or(start, |(i, c)| i + c.len_utf8());
    (start, end.max(start))
}

fn pair_list(pairs: &[(String, String)]) -> String {
    let list: Vec<String> = pairs.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

/// `"en-fr"` -> `("en", "fr")`.
fn split_pair(pair: &str) -> Result<(String, String)> {
    match pair.split_once('-') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && a != b && !b.contains('-') => {
            Ok((a.to_string(), b.to_string()))
        }
        _ => Err(Error::InvalidHyperparameter(format!(
            "a language pair is written `from-to` with two different codes, e.g. `en-fr`; got `{pair}`"
        ))),
    }
}

/// TSV lines `word<TAB>translation...`; `#` comments and blank lines skipped.
fn parse_tsv(text: &str) -> std::result::Result<WordList, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split('\t').map(str::trim);
        let word = fields.next().unwrap_or_default().to_string();
        let translations: Vec<String> =
            fields.filter(|s| !s.is_empty()).map(String::from).collect();
        if word.is_empty() || translations.is_empty() {
            return Err(format!(
                "line {}: expected `word<TAB>translation[<TAB>translation...]`",
                i + 1
            ));
        }
        out.push((word, translations));
    }
    Ok(out)
}

/// A word-list file: JSON when the name ends in `.json`, else TSV.
fn load(path: &Path) -> Result<WordList> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let corrupt = |message: String| Error::CorruptFile {
        path: path.to_path_buf(),
        message,
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        let map: BTreeMap<String, Vec<String>> = serde_json::from_str(&text).map_err(|e| {
            corrupt(format!(
                "expected {{\"word\": [\"translation\", ...]}}: {e}"
            ))
        })?;
        return Ok(map.into_iter().collect());
    }
    parse_tsv(&text).map_err(corrupt)
}

/// The [`TranslatorFactory`](super::TranslatorFactory) of `"translator": "dictionary"`.
pub(crate) fn build(options: &Value, path: &str) -> Result<Arc<dyn Translator>> {
    let config: DictionaryTranslatorConfig = parse_config(options, path)?;
    if config.builtin && config.files.is_empty() && config.entries.is_empty() {
        return Ok(DictionaryTranslator::builtin());
    }
    let t = DictionaryTranslator::new(config).map_err(|e| match e {
        Error::InvalidHyperparameter(m) => Error::config(join_path(path, "files"), m),
        other => other,
    })?;
    Ok(Arc::new(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn builtin_lists_parse_and_have_hundreds_of_words_in_each_direction() {
        for text in [EN_FR, EN_DE] {
            assert!(parse_tsv(text).unwrap().len() > 400);
        }
        let t = DictionaryTranslator::builtin();
        let pairs = t.pairs();
        assert_eq!(pairs.len(), 4, "{pairs:?}");
        assert_eq!(t.candidates("Big", "en", "fr"), ["grand", "gros"]);
        let back = t.candidates("grand", "fr", "en");
        assert!(["big", "large", "tall", "great"]
            .iter()
            .all(|w| back.contains(&w.to_string())));
        assert!(t
            .candidates("groß", "de", "en")
            .contains(&"large".to_string()));
    }

    #[test]
    fn translates_word_by_word_keeping_case_punctuation_and_unknown_words() {
        let t = DictionaryTranslator::builtin();
        let out = t
            .translate(
                &words("The Dog, said: xyzzy!"),
                "en",
                "fr",
                &mut SeededRng::new(0),
            )
            .unwrap();
        assert_eq!(out, words("The Chien, dit: xyzzy!"));
        assert!(matches!(
            t.translate(&words("a"), "en", "es", &mut SeededRng::new(0)),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(core_bounds("..."), (3, 3));
        assert_eq!(core_bounds("«été»"), (2, 7));
    }

    #[test]
    fn config_adds_pairs_from_files_and_inline_entries() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("en_es.tsv");
        std::fs::write(&tsv, "# test\ncat\tgato\ndog\tperro\n").unwrap();
        let config: DictionaryTranslatorConfig = parse_config(
            &serde_json::json!({
                "builtin": false,
                "files": {"en-es": tsv.to_str().unwrap()},
                "entries": {"en-es": {"kitty": ["gato"]}}
            }),
            "t",
        )
        .unwrap();
        let t = DictionaryTranslator::new(config).unwrap();
        assert_eq!(t.candidates("gato", "es", "en"), ["cat", "kitty"]);
        assert!(!t.supports("en", "fr"));
        let bad = serde_json::json!({"files": {"english": tsv.to_str().unwrap()}});
        assert!(matches!(build(&bad, "x"), Err(Error::Config { .. })));
        std::fs::write(&tsv, "cat\n").unwrap();
        let broken = serde_json::json!({"files": {"en-es": tsv.to_str().unwrap()}});
        assert!(matches!(
            build(&broken, "x"),
            Err(Error::CorruptFile { .. })
        ));
    }
}
