//! `gradus schema` checked with a real JSON Schema validator (the `jsonschema` crate): it is a
//! valid draft 2020-12 schema; every example pipeline, the built-in one and every registered
//! component's defaults validate; aliases validate; and a set of invalid pipelines is rejected
//! by both the schema and `gradus validate` (exit code 2).

mod common;
use common::{gradus, text, write};

use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::{json, Value};

fn schema() -> Value {
    let out = gradus(&["schema"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validator(schema: &Value) -> Validator {
    jsonschema::meta::validate(schema).unwrap();
    jsonschema::validator_for(schema).unwrap()
}

/// Every validation error of `instance`, one per line (empty when it validates).
fn errors(validator: &Validator, instance: &Value) -> String {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at `{}`", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn builtin() -> Value {
    serde_json::from_str(gradus_runner::pipeline::DEFAULT_PIPELINE).unwrap()
}

#[test]
fn every_example_pipeline_and_the_builtin_one_validate() {
    let schema = schema();
    let validator = validator(&schema);
    let mut files = Vec::new();
    json_files(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/pipelines"
        )),
        &mut files,
    );
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    for file in &files {
        let pipeline: Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let problems = errors(&validator, &pipeline);
        assert!(problems.is_empty(), "{}:\n{problems}", file.display());
    }
    assert_eq!(errors(&validator, &builtin()), "");
    // The resolved form (what a run folder's `pipeline.json` holds, every default written
    // out) validates too.
    let resolved = gradus_runner::pipeline::Pipeline::from_value(&builtin())
        .unwrap()
        .resolved();
    assert_eq!(errors(&validator, &resolved), "");
}

#[test]
fn every_registered_components_defaults_validate_against_its_kind() {
    let schema = schema();
    let defs = schema["$defs"].as_object().unwrap();
    let mut checked = 0;
    for (def, kinds) in [
        ("optimizer", &["optimizer"][..]),
        ("schedule", &["schedule"]),
        ("regularizer", &["regularizer"]),
        ("initializer", &["initializer"]),
        ("layer", &["layer", "normalization"]),
        ("preprocessor", &["preprocessor"]),
        ("image_augmentation", &["image_augmentation"]),
        ("data_source", &["data_source"]),
        ("batching", &["batching"]),
        ("loss", &["loss"]),
    ] {
        let one = json!({"$defs": defs, "$ref": format!("#/$defs/{def}")});
        let validator = validator(&one);
        for kind in kinds {
            for entry in gradus_core::registry::catalog(Some(kind)).unwrap() {
                let mut instance = entry.defaults.clone();
                instance["type"] = json!(entry.name);
                let problems = errors(&validator, &instance);
                assert!(problems.is_empty(), "{kind} {}: {problems}", entry.name);
                let mut unknown = instance.clone();
                unknown["no_such_field"] = json!(1);
                assert!(!validator.is_valid(&unknown), "{kind} {}", entry.name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 100, "{checked}");
}

#[test]
fn integers_enums_defaults_and_descriptions_are_exact() {
    let schema = schema();
    let train = &schema["properties"]["train"]["properties"];
    assert_eq!(train["epochs"]["type"], "integer");
    assert_eq!(train["epochs"]["minimum"], 1);
    assert_eq!(train["epochs"]["default"], 20);
    assert_eq!(
        train["epochs"]["description"],
        "Number of epochs. Default: `20`."
    );
    assert_eq!(schema["properties"]["seed"]["type"], "integer");
    assert_eq!(schema["properties"]["seed"]["minimum"], 0);
    assert_eq!(
        schema["properties"]["model"]["properties"]["dtype"]["enum"],
        json!(["f32", "f64", "bf16", "f16"])
    );
    let variant = |def: &str, name: &str| -> Value {
        schema["$defs"][def]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["properties"]["type"]["const"] == name)
            .unwrap_or_else(|| panic!("no {def} {name}"))
            .clone()
    };
    let linear = variant("layer", "linear");
    assert_eq!(
        linear["properties"]["out"]["type"],
        json!(["integer", "null"])
    );
    assert_eq!(
        linear["properties"]["out_features"],
        linear["properties"]["out"]
    );
    assert_eq!(linear["properties"]["init"]["$ref"], "#/$defs/initializer");
    let adam = variant("optimizer", "adam");
    assert_eq!(adam["properties"]["lr"]["default"], 0.001);
    assert_eq!(adam["properties"]["amsgrad"]["type"], "boolean");
    assert_eq!(
        adam["properties"]["groups"]["items"]["required"],
        json!(["params"])
    );
    let group = &adam["properties"]["groups"]["items"]["properties"];
    assert_eq!(group["betas"], {
        let mut betas = adam["properties"]["betas"].clone();
        betas.as_object_mut().unwrap().remove("default");
        betas
    });
    assert!(
        group.get("type").is_none() && group.get("groups").is_none(),
        "{group}"
    );
    // L-BFGS is not a grouped optimizer: `groups` and `path` are not accepted.
    let lbfgs = variant("optimizer", "lbfgs");
    assert!(lbfgs["properties"].get("groups").is_none(), "{lbfgs}");
    assert!(lbfgs.get("x-grouped").is_none());
    assert!(lbfgs["properties"].get("path").is_none(), "{lbfgs}");
    // Lookahead takes no groups of its own (its inner optimizer does) but passes `path` on.
    let lookahead = variant("optimizer", "lookahead");
    assert!(
        lookahead["properties"].get("groups").is_none(),
        "{lookahead}"
    );
    assert!(lookahead["properties"].get("path").is_some(), "{lookahead}");
    assert!(lookahead.get("x-update-path").is_none());
    // The bf16/f16 precision fields, wherever `path` is taken.
    let consts = |v: &Value| -> Vec<String> {
        v["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["const"].as_str().unwrap().to_string())
            .collect()
    };
    for name in ["adam", "lookahead", "muon"] {
        let props = &variant("optimizer", name)["properties"];
        assert_eq!(consts(&props["state_dtype"]), ["f32", "param"], "{name}");
        assert_eq!(props["state_dtype"]["default"], "f32");
        assert_eq!(props["master_weights"]["type"], "boolean");
        assert_eq!(consts(&props["rounding"]), ["nearest", "stochastic"]);
        assert_eq!(props["rounding_seed"]["minimum"], 0);
    }
    assert!(lbfgs["properties"].get("master_weights").is_none());
    let cosine = variant("schedule", "cosine");
    assert_eq!(
        cosine["properties"]["per"]["enum"],
        json!(["epoch", "step"])
    );
}

/// Writes `p` and runs `gradus validate` on it: the exit code and stderr.
fn validate(p: &Value) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", p);
    let out = gradus(&["validate", file.to_str().unwrap()]);
    (out.status.code(), text(&out.stderr))
}

/// The built-in pipeline with `edit` applied, for 2 epochs (kept short for `validate`).
fn edited(edit: impl FnOnce(&mut Value)) -> Value {
    let mut p = builtin();
    p["train"]["epochs"] = json!(2);
    p["schedule"]["t_max"] = json!(2);
    edit(&mut p);
    p
}

#[test]
fn aliases_validate_in_the_schema_and_in_gradus_validate() {
    let schema = schema();
    let validator = validator(&schema);
    let linear = edited(|p| {
        p["model"]["layers"][0] = json!({"type": "linear", "out_features": 128});
    });
    let drop_connect = edited(|p| {
        p["model"]["layers"][0] = json!({"type": "drop_connect", "out": 128, "p": 0.1});
    });
    // Image augmentations need image samples: the CNN example's.
    let cnn = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/pipelines/digits-cnn.json"
    );
    let mut noise: Value = serde_json::from_str(&std::fs::read_to_string(cnn).unwrap()).unwrap();
    noise["train"]["epochs"] = json!(1);
    noise["augment"] = json!([{"type": "gaussian_noise", "std": 0.1}]);
    for p in [&linear, &drop_connect, &noise] {
        assert_eq!(errors(&validator, p), "", "{p}");
        let (code, err) = validate(p);
        assert_eq!(code, Some(0), "{err}");
    }
    // Both names of one field are a duplicate for serde, and for the schema.
    let both = edited(|p| {
        p["model"]["layers"][0] = json!({"type": "linear", "out": 128, "out_features": 128});
    });
    assert!(!validator.is_valid(&both));
    assert_eq!(validate(&both).0, Some(2));
}

#[test]
fn invalid_pipelines_are_rejected_by_the_schema_and_by_gradus_validate() {
    let schema = schema();
    let validator = validator(&schema);
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "unknown top-level field",
            Box::new(|p| p["epoch"] = json!(3)),
        ),
        (
            "unknown train field",
            Box::new(|p| p["train"]["epoch"] = json!(3)),
        ),
        (
            "unknown split field",
            Box::new(|p| p["data"]["split"]["vall"] = json!(0.1)),
        ),
        (
            "unknown optimizer field",
            Box::new(|p| p["optimizer"]["learning_rate"] = json!(0.1)),
        ),
        (
            "unknown field in an optimizer group",
            Box::new(|p| p["optimizer"]["groups"][0]["weight_decy"] = json!(0.0)),
        ),
        (
            "unknown layer field",
            Box::new(|p| p["model"]["layers"][1]["momentun"] = json!(0.1)),
        ),
        (
            "unknown initializer field",
            Box::new(|p| p["model"]["layers"][0]["init"]["nonlinearty"] = json!("relu")),
        ),
        (
            "unknown optimizer type",
            Box::new(|p| p["optimizer"]["type"] = json!("adamm")),
        ),
        (
            "unknown initializer type",
            Box::new(|p| p["model"]["layers"][0]["init"]["type"] = json!("kaiming")),
        ),
        (
            "boolean as a string",
            Box::new(|p| p["output"]["plots"] = json!("yes")),
        ),
        (
            "string where an integer",
            Box::new(|p| p["train"]["epochs"] = json!("3")),
        ),
        (
            "float where an integer",
            Box::new(|p| p["train"]["epochs"] = json!(2.5)),
        ),
        (
            "float where an integer in a layer",
            Box::new(|p| p["model"]["layers"][0]["out"] = json!(12.5)),
        ),
        ("zero epochs", Box::new(|p| p["train"]["epochs"] = json!(0))),
        ("negative seed", Box::new(|p| p["seed"] = json!(-1))),
        (
            "negative layer width",
            Box::new(|p| p["model"]["layers"][0]["out"] = json!(-5)),
        ),
        (
            "schedule.per not an allowed value",
            Box::new(|p| p["schedule"]["per"] = json!("batch")),
        ),
        (
            "model.dtype not an allowed value",
            Box::new(|p| p["model"]["dtype"] = json!("f8")),
        ),
        (
            "non_finite policy not allowed",
            Box::new(|p| p["train"]["non_finite"] = json!("ignore")),
        ),
        (
            "early stopping mode not allowed",
            Box::new(|p| p["train"]["early_stopping"]["mode"] = json!("maximum")),
        ),
        (
            "optimizer path not allowed",
            Box::new(|p| p["optimizer"]["path"] = json!("fast")),
        ),
        (
            "norm_type a word",
            Box::new(|p| p["clip"]["norm_type"] = json!("two")),
        ),
        (
            "clip by norm and by value",
            Box::new(|p| p["clip"]["clip_value"] = json!(1.0)),
        ),
        (
            "group without params",
            Box::new(|p| p["optimizer"]["groups"] = json!([{"lr": 0.1}])),
        ),
        (
            "missing optimizer",
            Box::new(|p| {
                p.as_object_mut().unwrap().remove("optimizer");
            }),
        ),
        (
            "lbfgs with groups",
            Box::new(|p| {
                p["optimizer"] = json!({"type": "lbfgs", "groups": [{"params": "*.bias"}]});
            }),
        ),
    ];
    assert!(cases.len() >= 10);
    for (what, edit) in &cases {
        let p = edited(edit);
        assert!(
            !validator.is_valid(&p),
            "{what}: the schema accepts {}",
            serde_json::to_string(&p).unwrap()
        );
        let (code, err) = validate(&p);
        assert_eq!(code, Some(2), "{what}: gradus validate: {err}");
    }
    // The unedited pipeline is valid for both, so each case fails for its own edit.
    let p = edited(|_| {});
    assert_eq!(errors(&validator, &p), "");
    assert_eq!(validate(&p).0, Some(0));
}
