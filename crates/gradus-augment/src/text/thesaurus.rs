//! Synonym tables for `synonym_replacement` and `random_insertion`: the built-in English
//! thesaurus, a JSON or TSV file, or an inline map.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use gradus_core::{Error, Result};

/// The built-in English thesaurus: about 950 common words (no stop words), each with 1-10
/// synonyms, built from hand-written synonym groups.
const BUILTIN: &str = include_str!("../../data/thesaurus_en.json");

/// Lower-case word -> synonyms.
#[derive(Debug, Clone, Default)]
pub struct Thesaurus {
    map: HashMap<String, Vec<String>>,
}

impl Thesaurus {
    /// The built-in English thesaurus (parsed once, shared).
    pub fn builtin() -> Arc<Thesaurus> {
        static CELL: OnceLock<Arc<Thesaurus>> = OnceLock::new();
        CELL.get_or_init(|| {
            let map: BTreeMap<String, Vec<String>> =
                serde_json::from_str(BUILTIN).unwrap_or_default();
            Arc::new(Thesaurus::from_map(map))
        })
        .clone()
    }

    /// A thesaurus from a map word -> synonyms (keys are lower-cased; empty lists dropped).
    pub fn from_map(map: impl IntoIterator<Item = (String, Vec<String>)>) -> Self {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for (word, synonyms) in map {
            let entry = out.entry(word.to_lowercase()).or_default();
            for s in synonyms {
                if !s.is_empty() && !entry.contains(&s) {
                    entry.push(s);
                }
            }
        }
        out.retain(|_, v| !v.is_empty());
        Thesaurus { map: out }
    }

    /// Loads a file: JSON `{"word": ["synonym", ...]}` when the name ends in `.json`, else TSV
    /// lines `word<TAB>synonym<TAB>synonym...` (empty lines and `#` comments skipped).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let corrupt = |message: String| Error::CorruptFile {
            path: path.to_path_buf(),
            message,
        };
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            let map: BTreeMap<String, Vec<String>> = serde_json::from_str(&text)
                .map_err(|e| corrupt(format!("expected {{\"word\": [\"synonym\", ...]}}: {e}")))?;
            return Ok(Thesaurus::from_map(map));
        }
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split('\t').map(str::trim);
            let word = fields.next().unwrap_or_default().to_string();
            let synonyms: Vec<String> =
                fields.filter(|s| !s.is_empty()).map(String::from).collect();
            if word.is_empty() || synonyms.is_empty() {
                return Err(corrupt(format!(
                    "line {}: expected `word<TAB>synonym[<TAB>synonym...]`",
                    i + 1
                )));
            }
            entries.push((word, synonyms));
        }
        Ok(Thesaurus::from_map(entries))
    }

    /// The table a text op uses: the file and the inline map merged when either is given
    /// (inline entries add to the file's), else the built-in thesaurus.
    pub fn from_config(
        file: Option<&str>,
        inline: Option<&BTreeMap<String, Vec<String>>>,
    ) -> Result<Arc<Thesaurus>> {
        if file.is_none() && inline.is_none() {
            return Ok(Thesaurus::builtin());
        }
        let mut t = match file {
            Some(p) => Thesaurus::load(Path::new(p))?,
            None => Thesaurus::default(),
        };
        if let Some(m) = inline {
            let extra = Thesaurus::from_map(m.clone());
            for (word, synonyms) in extra.map {
                let entry = t.map.entry(word).or_default();
                for s in synonyms {
                    if !entry.contains(&s) {
                        entry.push(s);
                    }
                }
            }
        }
        Ok(Arc::new(t))
    }

    /// The synonyms of `word` (looked up lower-cased), possibly empty.
    pub fn synonyms(&self, word: &str) -> &[String] {
        self.map
            .get(&word.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// Number of words with synonyms.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no word has synonyms.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `synonym` with the capitalisation of `original`'s first letter.
pub(crate) fn match_case(original: &str, synonym: &str) -> String {
    let upper = original.chars().next().is_some_and(char::is_uppercase);
    let mut chars = synonym.chars();
    match (upper, chars.next()) {
        (true, Some(first)) => first.to_uppercase().chain(chars).collect(),
        _ => synonym.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_hundreds_of_common_words() {
        let t = Thesaurus::builtin();
        assert!(t.len() > 300, "{}", t.len());
        assert!(t.synonyms("Happy").contains(&"glad".to_string()));
        assert!(t.synonyms("the").is_empty());
    }

    #[test]
    fn loads_json_and_tsv_files_and_merges_inline_entries() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("t.json");
        std::fs::write(&json, r#"{"Cat": ["feline"], "dog": []}"#).unwrap();
        let t = Thesaurus::load(&json).unwrap();
        assert_eq!(t.synonyms("cat"), ["feline".to_string()]);
        assert_eq!(t.len(), 1);
        let tsv = dir.path().join("t.tsv");
        std::fs::write(&tsv, "# comment\ncat\tfeline\tkitty\n\ndog\thound\n").unwrap();
        let inline = BTreeMap::from([("dog".to_string(), vec!["pup".to_string()])]);
        let t = Thesaurus::from_config(tsv.to_str(), Some(&inline)).unwrap();
        assert_eq!(t.synonyms("dog"), ["hound".to_string(), "pup".to_string()]);
        assert_eq!(t.synonyms("cat").len(), 2);
        std::fs::write(&tsv, "cat\n").unwrap();
        assert!(matches!(
            Thesaurus::load(&tsv),
            Err(Error::CorruptFile { .. })
        ));
        assert!(matches!(
            Thesaurus::load(&dir.path().join("missing.tsv")),
            Err(Error::Io { .. })
        ));
        assert_eq!(match_case("Happy", "glad"), "Glad");
    }
}
