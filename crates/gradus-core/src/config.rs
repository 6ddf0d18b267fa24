//! Strict, path-aware parsing of JSON configuration.
//!
//! Every Gradus config type derives `Deserialize` with `#[serde(deny_unknown_fields, default)]`.
//! [`parse_config`] turns serde's errors into [`Error`]s that carry the full JSON path
//! (`optimizer.betas[1]`) and, for an unknown key, the nearest valid key.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::suggest::nearest;

/// Joins a parent JSON path and a child key: `join_path("optimizer", "betas") == "optimizer.betas"`.
pub fn join_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.starts_with('[')) {
        (true, _) => child.to_string(),
        (false, true) => format!("{parent}{child}"),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// Joins a parent JSON path and an array index: `index_path("layers", 2) == "layers[2]"`.
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A path for messages: the root is shown as `<root>`.
pub fn display_path(path: &str) -> String {
    if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    }
}

/// Longest message text [`parse_config`] repeats from the input: longer values (a 1 MB CSV cell,
/// a huge string) are elided, so that an error stays readable.
pub const MESSAGE_LIMIT: usize = 200;

/// `text` cut to at most `limit` characters, with the number of characters left out.
pub fn elide(text: &str, limit: usize) -> String {
    let count = text.chars().count();
    if count <= limit {
        return text.to_string();
    }
    let kept: String = text.chars().take(limit).collect();
    format!("{kept}... ({} more characters)", count - limit)
}

/// Parses `value` (found at JSON path `path`) into `T`, strictly.
pub fn parse_config<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(value.clone()).map_err(|err| {
        let inner_path = err.path().to_string();
        let message = err.inner().to_string();
        let at = if inner_path == "." {
            path.to_string()
        } else {
            join_path(path, &inner_path)
        };
        match parse_unknown_field(&message) {
            Some((field, expected)) => {
                // serde_path_to_error's path ends at the unknown key itself; report its parent.
                let parent = at
                    .strip_suffix(field.as_str())
                    .map(|p| p.trim_end_matches('.').to_string())
                    .unwrap_or(at.clone());
                let suggestion = nearest(&field, &expected);
                Error::UnknownField {
                    path: display_path(&parent),
                    field,
                    expected,
                    suggestion,
                }
            }
            None => Error::config(display_path(&at), elide(&message, MESSAGE_LIMIT)),
        }
    })
}

/// The JSON form of `T::default()`: a component's default configuration.
pub fn default_json<T: Default + Serialize>() -> Value {
    serde_json::to_value(T::default()).unwrap_or(Value::Null)
}

/// Splits a component config `{"type": "adam", ...rest}` into its type name and the rest.
///
/// `path` is where the object sits; errors name `path.type`.
pub fn split_type(value: &Value, path: &str) -> Result<(String, Value)> {
    let object = value.as_object().ok_or_else(|| {
        Error::config(
            display_path(path),
            format!(
                "expected an object with a \"type\" field, found {}",
                kind_of(value)
            ),
        )
    })?;
    let name = match object.get("type") {
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(Error::config(
                join_path(path, "type"),
                format!("expected a string, found {}", kind_of(other)),
            ))
        }
        None => {
            return Err(Error::config(
                display_path(path),
                "missing field `type`".to_string(),
            ))
        }
    };
    let rest: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| k.as_str() != "type")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((name, Value::Object(rest)))
}

/// Removes `key` from a JSON object config, returning its value (used for fields such as
/// `groups` that the generic machinery handles before the typed config is parsed).
pub fn take_field(value: &mut Value, key: &str) -> Option<Value> {
    value.as_object_mut().and_then(|o| o.remove(key))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" message.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct AdamLike {
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
    }

    impl Default for AdamLike {
        fn default() -> Self {
            AdamLike {
                lr: 1e-3,
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 0.0,
            }
        }
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let parsed: AdamLike = parse_config(&serde_json::json!({"lr": 0.1}), "optimizer").unwrap();
        assert_eq!(parsed.lr, 0.1);
        assert_eq!(parsed.betas, (0.9, 0.999));
    }

    #[test]
    fn unknown_field_names_path_and_suggests() {
        let err = parse_config::<AdamLike>(&serde_json::json!({"beta": [0.9, 0.99]}), "optimizer")
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(
            text,
            "unknown field `beta` at optimizer, expected one of lr, betas, eps, weight_decay; did you mean `betas`?"
        );
        match err {
            Error::UnknownField {
                path, suggestion, ..
            } => {
                assert_eq!(path, "optimizer");
                assert_eq!(suggestion.as_deref(), Some("betas"));
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn unknown_field_in_nested_object_names_full_path() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            #[allow(dead_code)]
            groups: Vec<AdamLike>,
        }
        let value = serde_json::json!({"groups": [{"lr": 1.0}, {"eps": 1.0, "wd": 0.1}]});
        let err = parse_config::<Outer>(&value, "optimizer").unwrap_err();
        match err {
            Error::UnknownField { path, field, .. } => {
                assert_eq!(path, "optimizer.groups[1]");
                assert_eq!(field, "wd");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn wrong_type_names_element_path() {
        let value = serde_json::json!({"betas": [0.9, "x"]});
        let err = parse_config::<AdamLike>(&value, "optimizer").unwrap_err();
        match err {
            Error::Config { path, message } => {
                assert_eq!(path, "optimizer.betas[1]");
                assert!(message.contains("invalid type"), "{message}");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn split_type_separates_name_and_rest() {
        let (name, rest) =
            split_type(&serde_json::json!({"type": "adam", "lr": 0.1}), "optimizer").unwrap();
        assert_eq!(name, "adam");
        assert_eq!(rest, serde_json::json!({"lr": 0.1}));
        let err = split_type(&serde_json::json!({"lr": 0.1}), "optimizer").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config at optimizer: missing field `type`"
        );
    }
}
