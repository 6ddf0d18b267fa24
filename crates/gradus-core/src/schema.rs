//! JSON Schemas of typed configs: what `gradus schema` is made of.
//!
//! Every registered config derives [`schemars::JsonSchema`] next to its `Deserialize`, so its
//! schema follows serde's own attributes: `rename`/`rename_all`, `default` (each field's default
//! is the config's `Default`), `deny_unknown_fields` (`"additionalProperties": false`), and
//! doc comments become descriptions; integers are `"integer"` (unsigned ones with
//! `"minimum": 0`), enums are `"enum"`s.
//!
//! schemars does not see serde's `alias`es. A field with an alias says so once more for the
//! schema, `#[schemars(extend("x-aliases" = ["out_features"]))]`, and [`config_schema`] then
//! adds each alias as a property with the field's schema and forbids giving both names (as
//! serde does: a duplicate field). So a schema accepts exactly what the config's parser accepts.
//!
//! A plugin crate derives the schema through the re-export, without a dependency of its own:
//!
//! ```
//! use gradus_core::schemars;
//!
//! /// Settings of a plugin component.
//! #[derive(Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! #[schemars(crate = "gradus_core::schemars")]
//! #[serde(deny_unknown_fields, default)]
//! struct MyConfig {
//!     /// Step size. Default: `0.01`.
//!     lr: f64,
//!     /// Number of inner steps. Default: `0`.
//!     #[serde(alias = "steps")]
//!     #[schemars(extend("x-aliases" = ["steps"]))]
//!     inner_steps: usize,
//! }
//!
//! let schema = gradus_core::schema::config_schema::<MyConfig>();
//! assert_eq!(schema["properties"]["inner_steps"]["type"], "integer");
//! assert_eq!(schema["properties"]["steps"]["type"], "integer");
//! assert_eq!(schema["additionalProperties"], false);
//! ```

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// The key a field's `#[schemars(extend(...))]` uses to list its serde aliases.
pub const ALIASES_KEY: &str = "x-aliases";

/// The schema of config `T` (draft 2020-12, subschemas inlined, no `$schema` key), with
/// serde aliases made properties (see the module docs).
///
/// Self-contained: a schema whose types recurse keeps its `$defs` at its root, and
/// the runner moves them to the root of the pipeline schema.
pub fn config_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.remove("title");
    }
    accept_aliases(&mut schema);
    schema
}

/// A reference to the pipeline schema's `$defs` entry of one component kind (`"initializer"`,
/// `"layer"` (layers and normalization layers), `"schedule"`, `"image_augmentation"`, ...).
///
/// For a config field that holds a component as JSON, such as `linear.init`: in `gradus
/// schema` the field then accepts exactly the registered components of that kind (on its own,
/// a component's schema leaves the reference to the pipeline schema that embeds it).
pub fn component(def: &str) -> Schema {
    json_schema!({"$ref": format!("#/$defs/{def}")})
}

/// `#[schemars(schema_with = "gradus_core::schema::initializer")]`: one initializer.
pub fn initializer(_: &mut SchemaGenerator) -> Schema {
    component("initializer")
}

/// `#[schemars(schema_with = "gradus_core::schema::layers")]`: a list of layers.
pub fn layers(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": component("layer")})
}

/// `#[schemars(schema_with = "gradus_core::schema::optional_layer")]`: a layer, or `null`.
pub fn optional_layer(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [component("layer"), {"type": "null"}]})
}

/// `#[schemars(schema_with = "gradus_core::schema::schedules")]`: a list of schedules.
pub fn schedules(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": component("schedule")})
}

/// `#[schemars(schema_with = "gradus_core::schema::image_augmentations")]`: a list of image
/// augmentations.
pub fn image_augmentations(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": component("image_augmentation")})
}

/// The schema of an optimizer's `groups`, given the schema of its config: each group names its parameters (`params`), may freeze them, and
/// overrides any of the optimizer's own fields (their defaults are the optimizer's values).
pub fn parameter_groups(config: &Value) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "params".into(),
        json!({
            "description": "Parameter name pattern(s) of the group (glob, e.g. \"*.bias\").",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        }),
    );
    properties.insert(
        "frozen".into(),
        json!({"description": "Leave the group's parameters unchanged.", "type": "boolean",
               "default": false}),
    );
    if let Some(Value::Object(fields)) = config.get("properties") {
        for (name, field) in fields {
            let mut field = field.clone();
            if let Value::Object(f) = &mut field {
                f.remove("default");
            }
            properties.insert(name.clone(), field);
        }
    }
    let mut group = json!({"type": "object", "properties": properties, "required": ["params"],
                           "additionalProperties": false});
    if let Some(all_of @ Value::Array(_)) = config.get("allOf") {
        group["allOf"] = all_of.clone();
    }
    json!({
        "description": "Parameter groups; parameters no group matches keep the base values.",
        "type": "array",
        "items": group
    })
}

/// Adds every alias listed under [`ALIASES_KEY`] in an object's properties as a property of
/// its own (same schema), and forbids an object to hold a field under two of its names;
/// recursively, in every subschema.
pub fn accept_aliases(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for value in map.values_mut() {
                accept_aliases(value);
            }
            add_alias_properties(map);
        }
        Value::Array(items) => items.iter_mut().for_each(accept_aliases),
        _ => {}
    }
}

fn add_alias_properties(map: &mut Map<String, Value>) {
    let Some(Value::Object(properties)) = map.get_mut("properties") else {
        return;
    };
    let mut added = Vec::new();
    for (name, field) in properties.iter_mut() {
        let Some(Value::Array(aliases)) = field.as_object_mut().and_then(|f| f.remove(ALIASES_KEY))
        else {
            continue;
        };
        for alias in aliases.iter().filter_map(Value::as_str) {
            added.push((name.clone(), alias.to_string(), field.clone()));
        }
    }
    let mut exclusive = Vec::new();
    for (name, alias, field) in added {
        properties.insert(alias.clone(), field);
        exclusive.push(json!({"not": {"required": [name, alias]}}));
    }
    if !exclusive.is_empty() {
        let all_of = map.entry("allOf").or_insert_with(|| json!([]));
        if let Value::Array(list) = all_of {
            list.extend(exclusive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as the registered ones are written.
    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields, default)]
    struct Probe {
        /// Output width.
        #[serde(alias = "out_features")]
        #[schemars(extend("x-aliases" = ["out_features"]))]
        out: usize,
        /// Rate.
        p: f64,
        /// Mode.
        mode: Mode,
        /// Optional bound.
        bound: Option<i32>,
    }

    /// A choice.
    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        /// First.
        Min,
        /// Second.
        Max,
    }

    impl Default for Probe {
        fn default() -> Self {
            Probe {
                out: 3,
                p: 0.5,
                mode: Mode::Max,
                bound: None,
            }
        }
    }

    #[test]
    fn schema_is_exact_typed_with_defaults_descriptions_and_aliases() {
        let s = config_schema::<Probe>();
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        assert!(s.get("$defs").is_none(), "{s}");
        let p = &s["properties"];
        assert_eq!(p["out"]["type"], "integer");
        assert_eq!(p["out"]["minimum"], 0);
        assert_eq!(p["out"]["default"], 3);
        assert_eq!(p["out"]["description"], "Output width.");
        assert_eq!(p["out_features"]["type"], "integer");
        assert!(p["out"].get(ALIASES_KEY).is_none());
        assert_eq!(p["p"]["type"], "number");
        assert_eq!(p["p"]["default"], 0.5);
        assert_eq!(p["mode"]["default"], "max");
        let modes = serde_json::to_string(&p["mode"]).unwrap();
        assert!(
            modes.contains("\"min\"") && modes.contains("\"max\""),
            "{modes}"
        );
        assert_eq!(p["bound"]["type"], json!(["integer", "null"]));
        assert_eq!(
            s["allOf"],
            json!([{"not": {"required": ["out", "out_features"]}}])
        );
    }
}
