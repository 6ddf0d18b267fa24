//! `gradus schema`: a JSON Schema (draft 2020-12) of the pipeline, generated from the typed
//! configs, so that editors autocomplete every registered component, plugins included, and a
//! validator accepts exactly the pipelines that `gradus validate` parses.
//!
//! Two sources, both typed:
//! - the runner's own sections (`data`, `data.split`, `model`, `clip`, `train`, `output`, ...)
//!   are the `JsonSchema` derive of [`Pipeline`] and its section structs, which are what
//!   [`Pipeline::from_value`] parses; a field that stays JSON there (a component, `clip`,
//!   `train.non_finite`) names its schema with `#[schemars(schema_with = "schema::...")]` or
//!   `#[schemars(with = "Type")]`, so a new section field is one field with its doc comment
//!   (plus that one attribute when its type is `Value`);
//! - each component kind is a `$defs` entry, the `oneOf` of its registered components: each
//!   registry entry's schema (its config's `JsonSchema` derive, see [`gradus_core::schema`])
//!   with `"type": {"const": name}` added, plus what the runner takes out before the config
//!   is parsed: an optimizer's `groups` and `path` (unless its config says `"x-grouped":
//!   false`, as `lbfgs`) and a schedule's `per`.
//!
//! Integers are integers (unsigned ones with `"minimum": 0`), enums are enums, aliases are
//! properties, and every field has its default and its rustdoc as description.

use gradus_core::registry::{catalog, CatalogEntry};
use gradus_core::schema::{config_schema, parameter_groups};
use gradus_core::Result;
use gradus_optim::averaging::{EmaConfig, SwaConfig};
use gradus_optim::clip::{ClipNormConfig, ClipValueConfig};
use gradus_optim::guard::{GuardConfig, NonFinitePolicy};
use gradus_optim::loss_scale::DynamicScaleConfig;
use gradus_optim::precision::{Rounding, StateDtype};
use gradus_optim::sam::SamConfig;
use gradus_optim::UpdatePath;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::pipeline::Pipeline;

/// The key of a config schema that keeps `groups` and `path` out of an optimizer's schema.
pub const GROUPED_KEY: &str = "x-grouped";

/// The key (`true`) of a config schema that is kept out of `groups` by [`GROUPED_KEY`] but still
/// takes the update `path` (a wrapper passing it to its inner optimizer, as `lookahead`).
pub const PATH_KEY: &str = "x-update-path";

/// Each `$defs` entry: its name and the registry kinds whose components it lists.
const COMPONENT_DEFS: &[(&str, &[&str])] = &[
    ("optimizer", &["optimizer"]),
    ("schedule", &["schedule"]),
    ("regularizer", &["regularizer"]),
    ("initializer", &["initializer"]),
    ("layer", &["layer", "normalization"]),
    ("preprocessor", &["preprocessor"]),
    ("image_augmentation", &["image_augmentation"]),
    ("data_source", &["data_source"]),
    ("batching", &["batching"]),
    ("loss", &["loss"]),
];

fn reference(def: &str) -> Schema {
    json_schema!({"$ref": format!("#/$defs/{def}")})
}

fn array_of(def: &str) -> Schema {
    json_schema!({"type": "array", "items": {"$ref": format!("#/$defs/{def}")}})
}

/// `optimizer`: one registered optimizer.
pub fn optimizer(_: &mut SchemaGenerator) -> Schema {
    reference("optimizer")
}

/// `schedule`: one registered schedule, or `null` (none).
pub fn schedule(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"anyOf": [{"$ref": "#/$defs/schedule"}, {"type": "null"}]})
}

/// `loss`: one registered loss.
pub fn loss(_: &mut SchemaGenerator) -> Schema {
    reference("loss")
}

/// `batching`: one registered batching strategy.
pub fn batching(_: &mut SchemaGenerator) -> Schema {
    reference("batching")
}

/// `data.source`: one registered data source.
pub fn data_source(_: &mut SchemaGenerator) -> Schema {
    reference("data_source")
}

/// `data.preprocess`: registered preprocessors.
pub fn preprocessors(_: &mut SchemaGenerator) -> Schema {
    array_of("preprocessor")
}

/// `augment`: registered image augmentations.
pub fn image_augmentations(_: &mut SchemaGenerator) -> Schema {
    array_of("image_augmentation")
}

/// `regularizers`: registered regularizers.
pub fn regularizers(_: &mut SchemaGenerator) -> Schema {
    array_of("regularizer")
}

/// `model.layers`: registered layers and normalization layers.
pub fn layers(_: &mut SchemaGenerator) -> Schema {
    array_of("layer")
}

/// `clip`: by global norm or by value (`ClipConfig::parse` picks by the keys), or `null`.
pub fn clip(generator: &mut SchemaGenerator) -> Schema {
    let norm = generator.subschema_for::<ClipNormConfig>();
    let value = generator.subschema_for::<ClipValueConfig>();
    json_schema!({"anyOf": [norm, value, {"type": "null"}]})
}

/// `train.non_finite`: a policy name, or a whole guard config.
pub fn non_finite(generator: &mut SchemaGenerator) -> Schema {
    let policy = generator.subschema_for::<NonFinitePolicy>();
    let guard = generator.subschema_for::<GuardConfig>();
    json_schema!({"anyOf": [policy, guard]})
}

/// The precision fields of bf16/f16 parameters that every optimizer taking `path` takes too
/// (see `gradus_optim::precision`).
fn insert_precision(properties: &mut Map<String, Value>) {
    let mut state_dtype = config_schema::<StateDtype>();
    state_dtype["description"] = json!(
        "The dtype of a bf16/f16 parameter's optimizer state: \"f32\" (the update then never \
         loses small increments) or \"param\" (the parameter's dtype, for memory). f32/f64 \
         parameters keep their own dtype."
    );
    state_dtype["default"] = json!("f32");
    properties.insert("state_dtype".into(), state_dtype);
    properties.insert(
        "master_weights".into(),
        json!({"type": "boolean", "default": false,
               "description": "Keep an f32 copy of each bf16/f16 parameter, update it, and write \
                               its rounding into the parameter (saved as <param>.master_weight)."}),
    );
    let mut rounding = config_schema::<Rounding>();
    rounding["description"] = json!(
        "How updated values are rounded into bf16/f16 parameters: \"nearest\" (ties to even) \
         or \"stochastic\" (unbiased, seeded by rounding_seed)."
    );
    rounding["default"] = json!("nearest");
    properties.insert("rounding".into(), rounding);
    properties.insert(
        "rounding_seed".into(),
        json!({"type": "integer", "minimum": 0, "default": 0,
               "description": "Seed of stochastic rounding (only with \"rounding\": \"stochastic\")."}),
    );
}

/// `schema` with a `"type": name` tag, which the config's parser takes off first.
fn tagged(name: &str, mut schema: Value) -> Value {
    schema["properties"]["type"] = json!({"const": name});
    schema["required"] = json!(["type"]);
    schema
}

/// `train.averaging`: `{"type": "ema", ...}` or `{"type": "swa", ...}`.
pub fn averaging(_: &mut SchemaGenerator) -> Schema {
    let ema = tagged("ema", config_schema::<EmaConfig>());
    let swa = tagged("swa", config_schema::<SwaConfig>());
    json_schema!({"anyOf": [ema, swa, {"type": "null"}]})
}

/// `train.sam`: SAM's settings.
pub fn sam(_: &mut SchemaGenerator) -> Schema {
    let sam = config_schema::<SamConfig>();
    json_schema!({"anyOf": [sam, {"type": "null"}]})
}

/// `train.loss_scale`: `"dynamic"`, the dynamic scaler's settings, or a fixed scale.
pub fn loss_scale(_: &mut SchemaGenerator) -> Schema {
    let dynamic = config_schema::<DynamicScaleConfig>();
    json_schema!({"anyOf": [
        {"const": "dynamic"},
        dynamic,
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "null"}
    ]})
}

/// One registered component: its config's schema with `type` (and the runner's own keys).
fn component(kind: &str, entry: &CatalogEntry, defs: &mut Map<String, Value>) -> Value {
    let mut object = match entry.schema.clone() {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    if let Some(Value::Object(own)) = object.remove("$defs") {
        defs.extend(own);
    }
    let grouped = object.remove(GROUPED_KEY) != Some(Value::Bool(false));
    // A wrapper (lookahead) takes no groups of its own but passes `path` to its inner optimizer.
    let takes_path = grouped || object.remove(PATH_KEY) == Some(Value::Bool(true));
    let mut properties = match object.remove("properties") {
        Some(Value::Object(properties)) => properties,
        _ => Map::new(),
    };
    match kind {
        "optimizer" if takes_path => {
            if grouped {
                let mut own = object.clone();
                own.insert("properties".into(), Value::Object(properties.clone()));
                properties.insert("groups".into(), parameter_groups(&Value::Object(own)));
            }
            let mut path = config_schema::<UpdatePath>();
            path["description"] = json!(
                "Update implementation: \"auto\" (fused kernel where eligible), \"fused\" or \
                 \"reference\" (Candle ops)."
            );
            path["default"] = json!("auto");
            properties.insert("path".into(), path);
            insert_precision(&mut properties);
        }
        "schedule" => {
            properties.insert(
                "per".into(),
                json!({"description": "Step the schedule once per epoch or once per optimizer step.",
                       "enum": ["epoch", "step"], "default": "epoch"}),
            );
        }
        _ => {}
    }
    properties.insert("type".into(), json!({"const": entry.name}));
    let mut required = match object.remove("required") {
        Some(Value::Array(required)) => required,
        _ => Vec::new(),
    };
    required.insert(0, json!("type"));
    object.insert("type".into(), json!("object"));
    object.insert("title".into(), json!(entry.name));
    object.insert("description".into(), json!(entry.summary));
    object.insert("properties".into(), Value::Object(properties));
    object.insert("required".into(), Value::Array(required));
    Value::Object(object)
}

/// The `$defs` entry of one component kind: the `oneOf` of its registered components.
fn kind_def(kinds: &[&str], defs: &mut Map<String, Value>) -> Result<Value> {
    let mut variants = Vec::new();
    for kind in kinds {
        for entry in catalog(Some(kind))? {
            variants.push(component(kind, &entry, defs));
        }
    }
    Ok(json!({"oneOf": variants}))
}

/// The pipeline schema: [`Pipeline`]'s, with one `$defs` entry per component kind.
pub fn pipeline_schema() -> Result<Value> {
    let mut schema = config_schema::<Pipeline>();
    let mut defs = match schema.as_object_mut().and_then(|s| s.remove("$defs")) {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    for (name, kinds) in COMPONENT_DEFS {
        let def = kind_def(kinds, &mut defs)?;
        defs.insert((*name).to_string(), def);
    }
    let mut root = Map::new();
    root.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    root.insert("title".into(), json!("Gradus pipeline"));
    if let Value::Object(fields) = schema {
        root.extend(fields);
    }
    root.insert("$defs".into(), Value::Object(defs));
    Ok(Value::Object(root))
}
