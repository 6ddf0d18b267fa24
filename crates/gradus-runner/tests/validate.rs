//! `gradus validate` catches what `gradus run` would reject on configuration: each case is a
//! pipeline that builds, but fails at a batch, a step or late in the run; validate exits 2 and
//! names the JSON path of the part that fails; `run` tries the same before it creates a run
//! folder, so it exits 2 too and leaves nothing behind.

mod common;
use common::{gradus, text, write};

use serde_json::{json, Value};

/// The shipped digits MLP (batch norm, dropout, cosine schedule, l2), for 3 epochs.
fn shipped() -> Value {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");
    let text = std::fs::read_to_string(format!("{examples}/digits-mlp.json")).unwrap();
    let mut p: Value = serde_json::from_str(&text).unwrap();
    p["train"]["epochs"] = json!(3);
    p["schedule"]["t_max"] = json!(3);
    p
}

/// `validate` on `p` exits 2 with `path` and every `needles` in its message.
fn rejected_at(p: &Value, path: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", p);
    let out = gradus(&["validate", file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{path}: {err}");
    assert!(err.contains(&format!("at {path}:")), "wanted {path}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "wanted `{needle}`: {err}");
    }
}

#[test]
fn a_one_sample_batch_under_batch_norm_is_found_and_the_layer_named() {
    let mut p = shipped();
    // 1257 training samples in batches of 8 leave a last batch of 1.
    p["batching"] = json!({"type": "mini_batch", "batch_size": 8, "shuffle": true});
    rejected_at(
        &p,
        "model.layers[1]",
        &["smallest training batch (1 sample)", "`batch_norm`"],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", &p);
    let run = dir.path().join("run");
    let out = gradus(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!run.exists(), "run created its folder before failing");
    // With drop_last the smallest batch has 8 samples, and it validates.
    p["batching"]["drop_last"] = json!(true);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", &p);
    let out = gradus(&["validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Stochastic batching (batches of one) under batch norm, likewise.
    p["batching"] = json!({"type": "stochastic"});
    rejected_at(&p, "model.layers[1]", &["`batch_norm`"]);
}

#[test]
fn losses_that_do_not_fit_class_labels_are_rejected_at_loss() {
    for loss in ["mse", "bce_with_logits"] {
        let mut p = shipped();
        p["loss"] = json!({"type": loss});
        rejected_at(
            &p,
            "loss",
            &[&format!("`{loss}` does not fit the training targets")],
        );
    }
}

#[test]
fn a_schedule_too_short_for_the_run_is_rejected_at_schedule() {
    let mut p = shipped();
    // 3 epochs of 20 batches step a per-step schedule 60 times.
    p["schedule"] = json!({"type": "one_cycle", "max_lr": 0.01, "total_steps": 59, "per": "step"});
    rejected_at(&p, "schedule", &["60 times", "step 60 fails"]);
    p["schedule"]["total_steps"] = json!(60);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", &p);
    let out = gradus(&["validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // With accumulation over 4 batches the run updates 60 / 4 = 15 times.
    p["train"]["accumulate"] = json!(4);
    p["schedule"]["total_steps"] = json!(14);
    rejected_at(&p, "schedule", &["15 times (optimizer updates)"]);
}

#[test]
fn a_regularizer_selecting_no_parameter_is_rejected_at_its_path() {
    let mut p = shipped();
    p["regularizers"] = json!([{"type": "l2", "lambda": 1e-4}, {"type": "l1", "lambda": 1e-4, "params": ["encoder.*"]}]);
    rejected_at(
        &p,
        "regularizers[1]",
        &["selects no parameter", "layers.0.weight"],
    );
}

#[test]
fn an_augmentation_that_changes_the_sample_shape_is_rejected() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");
    let text = std::fs::read_to_string(format!("{examples}/digits-cnn.json")).unwrap();
    let mut p: Value = serde_json::from_str(&text).unwrap();
    p["augment"] = json!([{"type": "center_crop", "size": 6}]);
    rejected_at(&p, "augment", &["from [1, 8, 8] to [1, 6, 6]"]);
}

#[test]
fn hyperparameter_range_errors_name_their_json_path() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("optimizer", json!(-0.5), "Invalid learning rate"),
        ("schedule", json!(0), "T_max"),
    ];
    for (path, value, needle) in cases {
        let mut p = shipped();
        match path {
            "optimizer" => p["optimizer"]["lr"] = value,
            _ => p["schedule"]["t_max"] = value,
        }
        rejected_at(&p, path, &[needle]);
    }
    let mut p = shipped();
    p["model"]["layers"][0]["init"] = json!({"type": "normal", "std": -1.0});
    rejected_at(&p, "model.layers[0].init", &["std"]);
    let mut p = shipped();
    p["optimizer"]["groups"][0]["weight_decay"] = json!(-1);
    rejected_at(&p, "optimizer", &["weight_decay"]);
}
