//! `gradus schema`: a JSON Schema (draft 2020-12) of the pipeline, generated from the registry,
//! so that editors autocomplete every registered component, plugins included.
//!
//! Component fields are typed from their default configuration (a number default gives a
//! number field, and so on; a `null` default accepts anything).

use gradus_core::registry::{catalog, CatalogEntry};
use gradus_core::Result;
use serde_json::{json, Map, Value};

fn field_schema(default: &Value) -> Value {
    let kind = match default {
        Value::Null => return json!({}),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    json!({"type": kind, "default": default})
}

fn component(entry: &CatalogEntry, extra: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    properties.insert("type".into(), json!({"const": entry.name}));
    if let Value::Object(fields) = &entry.defaults {
        for (k, v) in fields {
            properties.insert(k.clone(), field_schema(v));
        }
    }
    for (k, v) in extra {
        properties.insert((*k).to_string(), v.clone());
    }
    json!({
        "type": "object",
        "description": entry.summary,
        "properties": properties,
        "required": ["type"],
        "additionalProperties": false
    })
}

fn one_of(kinds: &[&str], extra: &[(&str, Value)]) -> Result<Value> {
    let mut variants = Vec::new();
    for kind in kinds {
        for entry in catalog(Some(kind))? {
            variants.push(component(&entry, extra));
        }
    }
    Ok(json!({"oneOf": variants}))
}

/// The pipeline schema as pretty JSON.
pub fn pipeline_schema() -> Result<Value> {
    let groups = json!({"type": "array", "items": {"type": "object",
        "properties": {"params": {"type": ["string", "array"]}, "frozen": {"type": "boolean"}},
        "required": ["params"]}});
    let per = json!({"enum": ["epoch", "step"], "default": "epoch"});
    let update_path = json!({"enum": ["auto", "fused", "reference"], "default": "auto"});
    let averaging = json!({"oneOf": [
        {"type": "object", "additionalProperties": false, "required": ["type"], "properties": {
            "type": {"const": "ema"}, "decay": {"type": "number", "default": 0.999}}},
        {"type": "object", "additionalProperties": false,
         "required": ["type", "start_epoch", "swa_lr"], "properties": {
            "type": {"const": "swa"}, "start_epoch": {"type": "integer", "minimum": 1},
            "swa_lr": {"type": "number", "minimum": 0},
            "anneal_epochs": {"type": "integer", "minimum": 0, "default": 10},
            "anneal_strategy": {"enum": ["cos", "linear"], "default": "cos"}}}]});
    let sam = json!({"type": "object", "additionalProperties": false, "properties": {
        "rho": {"type": "number", "minimum": 0, "default": 0.05},
        "adaptive": {"type": "boolean", "default": false},
        "perturb_eps": {"type": "number", "minimum": 0, "default": 1e-12}}});
    let loss_scale = json!({"oneOf": [
        {"const": "dynamic"},
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "object", "additionalProperties": false, "properties": {
            "init_scale": {"type": "number", "default": 65536.0},
            "growth_factor": {"type": "number", "default": 2.0},
            "backoff_factor": {"type": "number", "default": 0.5},
            "growth_interval": {"type": "integer", "minimum": 1, "default": 2000}}}]});
    let defs = json!({
        "optimizer": one_of(&["optimizer"], &[("groups", groups), ("path", update_path.clone())])?,
        "schedule": one_of(&["schedule"], &[("per", per)])?,
        "regularizer": one_of(&["regularizer"], &[])?,
        "initializer": one_of(&["initializer"], &[])?,
        "layer": one_of(&["layer", "normalization"], &[])?,
        "preprocessor": one_of(&["preprocessor"], &[])?,
        "image_augmentation": one_of(&["image_augmentation"], &[])?,
        "data_source": one_of(&["data_source"], &[])?,
        "batching": one_of(&["batching"], &[])?,
        "loss": one_of(&["loss"], &[])?,
    });
    Ok(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Gradus pipeline",
        "type": "object",
        "additionalProperties": false,
        "required": ["model", "optimizer"],
        "properties": {
            "name": {"type": "string"},
            "seed": {"type": "integer", "minimum": 0, "default": 42},
            "device": {"type": "string", "default": "cpu",
                "pattern": "^(cpu|cuda(:[0-9]+)?|metal(:[0-9]+)?)$",
                "description": "Where the model trains (the --device flag overrides it)"},
            "data": {"type": "object", "additionalProperties": false, "properties": {
                "source": {"$ref": "#/$defs/data_source"},
                "split": {"type": "object", "additionalProperties": false, "properties": {
                    "val": {"type": "number"}, "test": {"type": "number"},
                    "val_count": {"type": ["integer", "null"]}, "test_count": {"type": ["integer", "null"]},
                    "stratify": {"type": "boolean"}}},
                "preprocess": {"type": "array", "items": {"$ref": "#/$defs/preprocessor"}}}},
            "augment": {"type": "array", "items": {"$ref": "#/$defs/image_augmentation"}},
            "model": {"type": "object", "additionalProperties": false, "required": ["layers"], "properties": {
                "input": {"type": "array", "items": {"type": "integer"}},
                "layers": {"type": "array", "items": {"$ref": "#/$defs/layer"}},
                "dtype": {"enum": ["f32", "f64"], "default": "f32"}}},
            "loss": {"$ref": "#/$defs/loss"},
            "optimizer": {"$ref": "#/$defs/optimizer"},
            "schedule": {"$ref": "#/$defs/schedule"},
            "clip": {"type": "object", "properties": {
                "max_norm": {"type": "number"}, "norm_type": {"type": ["number", "string"]},
                "error_if_nonfinite": {"type": "boolean"}, "clip_value": {"type": "number"},
                "path": update_path}},
            "regularizers": {"type": "array", "items": {"$ref": "#/$defs/regularizer"}},
            "batching": {"$ref": "#/$defs/batching"},
            "train": {"type": "object", "additionalProperties": false, "properties": {
                "epochs": {"type": "integer", "minimum": 1, "default": 20},
                "accumulate": {"type": "integer", "minimum": 1, "default": 1},
                "non_finite": {"oneOf": [{"enum": ["error", "skip", "rollback"]}, {"type": "object"}]},
                "early_stopping": {"type": "object"},
                "eval_batch_size": {"type": "integer", "minimum": 1, "default": 512},
                "averaging": averaging,
                "sam": sam,
                "loss_scale": loss_scale}},
            "output": {"type": "object", "additionalProperties": false, "properties": {
                "dir": {"type": "string"},
                "checkpoint_every": {"type": "integer", "minimum": 0, "default": 1},
                "plots": {"type": "boolean", "default": true}}}
        },
        "$defs": defs
    }))
}
