//! `model.dtype` bf16 and f16 end to end: the two example pipelines reach 0.96 test accuracy,
//! keep their parameters in the model's dtype and the optimizer state and master weights in
//! f32, f16 scales its loss dynamically by default and resumes a killed run bit for bit, and a
//! wrong dtype names the field and the nearest valid one.

mod common;
use common::{bits, gradus, run_and_kill_after_first_checkpoint, text, write};

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use gradus_core::StateDict;
use serde_json::{json, Value};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");

fn run_example(name: &str, out: &Path) -> Value {
    let pipeline = PathBuf::from(EXAMPLES).join(name);
    let result = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn load(run: &Path, file: &str) -> StateDict {
    StateDict::load(run.join("checkpoints/last").join(file), &Device::Cpu).unwrap()
}

/// Parameters in `dtype`; optimizer state (moments, master copies) in f32, with a master copy
/// of every parameter.
fn check_dtypes(run: &Path, dtype: DType) {
    let model = load(run, "model.safetensors");
    let optimizer = load(run, "optimizer.safetensors");
    let mut params = 0;
    for (name, t) in model.iter() {
        if name.ends_with("weight") || name.ends_with("bias") {
            assert_eq!(t.dtype(), dtype, "{name}");
            params += 1;
            let master = format!("{name}.master_weight");
            let copy = optimizer
                .get(&master)
                .unwrap_or_else(|| panic!("no {master}"));
            assert_eq!(copy.dtype(), DType::F32, "{master}");
        } else if name.contains("running_") {
            assert_eq!(t.dtype(), DType::F32, "batch-norm statistics {name}");
        }
    }
    assert!(params >= 4, "{params} parameters");
    for (name, t) in optimizer.iter() {
        assert!(
            !matches!(t.dtype(), DType::BF16 | DType::F16),
            "optimizer state {name} is {:?}",
            t.dtype()
        );
    }
}

#[test]
fn the_bf16_digits_mlp_reaches_096() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("bf16");
    let report = run_example("digits-mlp-bf16.json", &run);
    let accuracy = report["test_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.96, "bf16 test accuracy {accuracy}");
    check_dtypes(&run, DType::BF16);
    assert!(!run.join("checkpoints/last/loss_scale.safetensors").exists());
}

#[test]
fn the_f16_digits_mlp_with_dynamic_loss_scaling_reaches_096() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("f16");
    let report = run_example("digits-mlp-f16.json", &run);
    let accuracy = report["test_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.96, "f16 test accuracy {accuracy}");
    check_dtypes(&run, DType::F16);
    let scale = load(&run, "loss_scale.safetensors");
    assert!(scale.names().count() > 0);
}

fn small_f16(epochs: usize, train: Value) -> Value {
    let mut train = train;
    train["epochs"] = json!(epochs);
    json!({
        "name": "small-f16",
        "seed": 9,
        "data": {"source": {"type": "digits", "layout": "flat"},
                 "split": {"val": 0.2, "test": 0.2, "stratify": true},
                 "preprocess": [{"type": "standardize"}]},
        "model": {"dtype": "f16",
                  "layers": [{"type": "linear", "out": 32}, {"type": "batch_norm"},
                             {"type": "relu"}, {"type": "linear", "out": 10}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam", "lr": 0.003, "master_weights": true},
        "batching": {"type": "mini_batch", "batch_size": 4, "drop_last": true},
        "train": train,
        "output": {"checkpoint_every": 1, "plots": false}
    })
}

#[test]
fn an_f16_model_scales_its_loss_dynamically_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    for (name, dtype, scaled) in [("f16", "f16", true), ("f32", "f32", false)] {
        let mut pipeline = small_f16(1, json!({}));
        pipeline["model"]["dtype"] = json!(dtype);
        let pipeline = write(dir.path(), &format!("{name}.json"), &pipeline);
        let run = dir.path().join(name);
        let out = gradus(&[
            "run",
            pipeline.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let saved = run.join("checkpoints/last/loss_scale.safetensors");
        assert_eq!(saved.exists(), scaled, "{name}");
        if scaled {
            // GradScaler's init_scale, unchanged or backed off: a power of two up to 65536.
            let scale = load(&run, "loss_scale.safetensors");
            let values: Vec<f64> = scale
                .iter()
                .map(|(_, t)| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap())
                .flat_map(|t| t.to_vec1::<f64>().unwrap())
                .collect();
            assert!(
                values.iter().any(|v| *v > 1.0 && *v <= 65536.0),
                "{values:?}"
            );
        }
    }
}

fn files_equal(a: &Path, b: &Path, file: &str) {
    let (a, b) = (load(a, file), load(b, file));
    for (name, t) in a.iter() {
        let other = b.get(name).unwrap_or_else(|| panic!("{file}: no {name}"));
        assert_eq!(bits(t), bits(other), "{file}: {name}");
    }
}

#[test]
fn a_killed_f16_run_resumes_bit_for_bit_with_its_loss_scale() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(dir.path(), "p.json", &small_f16(3, json!({})));
    let whole = dir.path().join("whole");
    let out = gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        whole.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let killed = dir.path().join("killed");
    run_and_kill_after_first_checkpoint(&pipeline, &killed);
    let out = gradus(&["resume", killed.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for file in [
        "model.safetensors",
        "optimizer.safetensors",
        "loss_scale.safetensors",
    ] {
        files_equal(&whole, &killed, file);
    }
}

#[test]
fn a_wrong_model_dtype_names_the_field_and_the_nearest_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = small_f16(1, json!({}));
    pipeline["model"]["dtype"] = json!("bf61");
    let path = write(dir.path(), "bad.json", &pipeline);
    let out = gradus(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let message = text(&out.stderr);
    assert!(
        message.contains("model.dtype") && message.contains("bf16"),
        "{message}"
    );
}
