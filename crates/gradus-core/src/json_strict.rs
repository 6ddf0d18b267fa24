//! Reading JSON text strictly: a key given twice in one object is an error naming its path
//! (`serde_json` keeps the last one silently, so `"type": "nonexistent", "type": "sgd"` would
//! pass as `sgd`).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::config::{display_path, elide, index_path, join_path, MESSAGE_LIMIT};
use crate::error::{Error, Result};

/// Parses `text` (from `origin`, for messages) into a JSON value, rejecting duplicate keys with
/// their JSON path; other syntax errors name the line and column.
pub fn parse_json(text: &str, origin: &str) -> Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = AtPath(String::new())
        .deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v))
        .map_err(|e| {
            Error::config(
                origin,
                format!("not valid JSON: {}", elide(&e.to_string(), MESSAGE_LIMIT)),
            )
        })?;
    Ok(value)
}

/// A JSON value being read at a path.
struct AtPath(String);

impl<'de> DeserializeSeed<'de> for AtPath {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AtPath {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(AtPath(index_path(&self.0, items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join_path(&self.0, &key);
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}` at `{}`",
                    elide(&key, 60),
                    display_path(&elide(&path, MESSAGE_LIMIT))
                )));
            }
            let value = map.next_value_seed(AtPath(path))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_json;

    #[test]
    fn duplicate_keys_are_rejected_with_their_path() {
        let err = parse_json(
            r#"{"optimizer": {"type": "nonexistent", "type": "sgd"}}"#,
            "p.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("duplicate key `type` at `optimizer.type`"),
            "{err}"
        );
        let err = parse_json(
            r#"{"model": {"layers": [{"out": 1}, {"out": 2, "out": 3}]}}"#,
            "p.json",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("model.layers[1].out"), "{err}");
        let ok = parse_json(
            r#"{"a": [1, 2.5, "x", null, true, {"b": {}}], "c": -3}"#,
            "p.json",
        )
        .unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"a": [1, 2.5, "x", null, true, {"b": {}}], "c": -3})
        );
        assert!(parse_json("{} trailing", "p.json").is_err());
    }
}
