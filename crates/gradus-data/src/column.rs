//! Naming a CSV column by header name or by index.

use std::fmt;

use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A column of a CSV file: its header name, or its 0-based index (negative counts from the
/// end, as in Python: `-1` is the last column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Column {
    /// 0-based position; negative from the end.
    Index(i64),
    /// Header name (needs `header: true`).
    Name(String),
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Index(i) => write!(f, "{i}"),
            Column::Name(name) => write!(f, "`{name}`"),
        }
    }
}

impl Column {
    /// The 0-based index of this column among `width` columns named `header` (if any);
    /// `path` is the config path named in errors.
    pub(crate) fn resolve(
        &self,
        header: Option<&[String]>,
        width: usize,
        path: &str,
    ) -> Result<usize> {
        match self {
            Column::Index(i) => {
                let index = if *i < 0 {
                    (width as i64).checked_add(*i)
                } else {
                    Some(*i)
                };
                index
                    .filter(|&k| k >= 0 && (k as usize) < width)
                    .map(|k| k as usize)
                    .ok_or_else(|| {
                        Error::config(
                            path,
                            format!("column index {i} is out of range for {width} columns"),
                        )
                    })
            }
            Column::Name(name) => {
                let header = header.ok_or_else(|| {
                    Error::config(path, format!("column name `{name}` needs `header: true`"))
                })?;
                let mut found = header.iter().enumerate().filter(|(_, h)| *h == name);
                match (found.next(), found.next()) {
                    (Some((k, _)), None) => Ok(k),
                    (Some(_), Some(_)) => Err(Error::config(
                        path,
                        format!("column name `{name}` appears more than once in the header; use an index"),
                    )),
                    (None, _) => Err(Error::config(
                        path,
                        format!("no column `{name}`; the header has {}", header.join(", ")),
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_names_and_negative_positions_resolve() {
        let header: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let h = Some(header.as_slice());
        assert_eq!(Column::Index(1).resolve(h, 3, "x").unwrap(), 1);
        assert_eq!(Column::Index(-1).resolve(h, 3, "x").unwrap(), 2);
        assert_eq!(Column::Name("c".into()).resolve(h, 3, "x").unwrap(), 2);
        assert!(Column::Index(3).resolve(h, 3, "x").is_err());
        assert!(Column::Index(-4).resolve(h, 3, "x").is_err());
        let err = Column::Name("d".into()).resolve(h, 3, "label").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config at label: no column `d`; the header has a, b, c"
        );
        assert!(Column::Name("a".into()).resolve(None, 3, "x").is_err());
    }

    #[test]
    fn json_numbers_are_indices_and_strings_names() {
        let cols: Vec<Column> = serde_json::from_value(serde_json::json!([0, -2, "y"])).unwrap();
        assert_eq!(
            cols,
            [
                Column::Index(0),
                Column::Index(-2),
                Column::Name("y".into())
            ]
        );
    }
}
