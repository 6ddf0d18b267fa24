//! `--set PATH=VALUE`: changes to a pipeline given on the command line (`run`, `validate`).
//!
//! `PATH` is dotted, array indices are numbers (`optimizer.lr`, `train.epochs`,
//! `model.layers.0.out`); `VALUE` is parsed as JSON (`0.01`, `true`, `[0.9, 0.99]`,
//! `{"type": "cosine"}`), and taken as a string when it is not JSON (`model.dtype=f64`). The
//! overrides are applied in order to the resolved pipeline (the file with every default filled
//! in, as `pipeline.json` of a run folder records it), and the result is parsed and validated
//! exactly as a file would be: a key that does not exist is written where the path says, so the
//! strict parse rejects it with the nearest valid name (`--set train.epoch=5`: "unknown field
//! `epoch` at train, ... did you mean `epochs`?").

use std::str::FromStr;

use gradus_core::config::display_path;
use gradus_core::{Error, Result};
use serde_json::{Map, Value};

/// One `--set PATH=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted path as given (`model.layers.0.out`).
    pub path: String,
    /// The value: the JSON `VALUE` parses to, else `VALUE` as a string.
    pub value: Value,
}

impl FromStr for Override {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (path, raw) = text
            .split_once('=')
            .ok_or_else(|| format!("expected PATH=VALUE (e.g. optimizer.lr=0.01), got {text:?}"))?;
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!(
                "{path:?} is not a dotted path (e.g. train.epochs or model.layers.0.out)"
            ));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        Ok(Override {
            path: path.to_string(),
            value,
        })
    }
}

impl Override {
    /// The JSON path of the override in the pipeline's error notation (`model.layers[0].out`).
    fn json_path(&self, depth: usize, indices: &[bool]) -> String {
        let mut out = String::new();
        for (i, part) in self.path.split('.').take(depth).enumerate() {
            if indices.get(i).copied().unwrap_or(false) {
                out.push_str(&format!("[{part}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(part);
            }
        }
        display_path(&out)
    }

    /// Writes the value into `pipeline`. Missing object keys (and `null` sections) on the way
    /// are created, so that the strict parse that follows names them; an index must exist.
    pub fn apply(&self, pipeline: &mut Value) -> Result<()> {
        let parts: Vec<&str> = self.path.split('.').collect();
        let mut indices = Vec::with_capacity(parts.len());
        let mut node = pipeline;
        for (depth, part) in parts.iter().enumerate() {
            let last = depth + 1 == parts.len();
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            let here = self.json_path(depth, &indices);
            node = match node {
                Value::Object(map) => {
                    indices.push(false);
                    if last {
                        map.insert(part.to_string(), self.value.clone());
                        return Ok(());
                    }
                    map.entry(part.to_string()).or_insert(Value::Null)
                }
                Value::Array(items) => {
                    indices.push(true);
                    let len = items.len();
                    let index = part.parse::<usize>().ok().filter(|i| *i < len);
                    let Some(index) = index else {
                        return Err(self.error(
                            &here,
                            format!("{here} is a list of {len}: `{part}` is not an index of it (0 to {})", len.saturating_sub(1)),
                        ));
                    };
                    if last {
                        items[index] = self.value.clone();
                        return Ok(());
                    }
                    &mut items[index]
                }
                other => {
                    let kind = match other {
                        Value::Bool(_) => "a boolean",
                        Value::Number(_) => "a number",
                        _ => "a string",
                    };
                    return Err(self.error(
                        &here,
                        format!("{here} is {kind}, it has no field `{part}`; set {here} itself"),
                    ));
                }
            };
        }
        Ok(())
    }

    fn error(&self, at: &str, message: String) -> Error {
        Error::config(at, format!("--set {}: {message}", self.path))
    }
}

/// Applies `overrides` in order to `pipeline`.
pub fn apply_all(pipeline: &mut Value, overrides: &[Override]) -> Result<()> {
    overrides.iter().try_for_each(|o| o.apply(pipeline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(text: &str) -> Override {
        text.parse().unwrap()
    }

    #[test]
    fn values_are_json_with_a_string_fallback() {
        assert_eq!(set("optimizer.lr=0.01").value, json!(0.01));
        assert_eq!(set("train.epochs=5").value, json!(5));
        assert_eq!(set("optimizer.betas=[0.8, 0.9]").value, json!([0.8, 0.9]));
        assert_eq!(set("model.dtype=f64").value, json!("f64"));
        assert_eq!(set("name=\"a=b\"").value, json!("a=b"));
        assert_eq!(set("name=").value, json!(""));
        assert!("optimizer.lr".parse::<Override>().is_err());
        assert!("optimizer..lr=1".parse::<Override>().is_err());
        assert!("=1".parse::<Override>().is_err());
    }

    #[test]
    fn paths_reach_keys_indices_and_missing_sections() {
        let mut p = json!({
            "model": {"layers": [{"type": "linear", "out": 8}, {"type": "relu"}]},
            "optimizer": {"type": "adam"},
            "schedule": null
        });
        let all = [
            set("model.layers.0.out=64"),
            set("optimizer.lr=0.01"),
            set("schedule.type=cosine"),
            set("train.epochs=5"),
            set("model.layers.1={\"type\": \"tanh\"}"),
        ];
        apply_all(&mut p, &all).unwrap();
        assert_eq!(p["model"]["layers"][0]["out"], 64);
        assert_eq!(p["model"]["layers"][1], json!({"type": "tanh"}));
        assert_eq!(p["optimizer"], json!({"type": "adam", "lr": 0.01}));
        assert_eq!(p["schedule"], json!({"type": "cosine"}));
        assert_eq!(p["train"], json!({"epochs": 5}));
    }

    #[test]
    fn a_bad_index_or_a_path_through_a_scalar_names_where() {
        let mut p = json!({"model": {"layers": [{"type": "relu"}]}, "optimizer": {"lr": 0.1}});
        let err = set("model.layers.3.out=1").apply(&mut p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config at model.layers: --set model.layers.3.out: model.layers is a list \
             of 1: `3` is not an index of it (0 to 0)"
        );
        let err = set("model.layers.x=1").apply(&mut p).unwrap_err();
        assert!(err.to_string().contains("`x` is not an index"), "{err}");
        let err = set("optimizer.lr.max=1").apply(&mut p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config at optimizer.lr: --set optimizer.lr.max: optimizer.lr is a number, \
             it has no field `max`; set optimizer.lr itself"
        );
        let err = set("model.layers.0.type.name=1").apply(&mut p).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid config at model.layers[0].type: --set model.layers.0.type.name"
            ),
            "{err}"
        );
    }
}
