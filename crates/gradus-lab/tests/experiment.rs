//! The experiment JSON: strict parsing with JSON paths, and the output folder.

use gradus_core::Error;
use gradus_lab::output::OUTPUT_FILES;
use gradus_lab::{run_to_folder, Experiment};
use serde_json::{json, Value};

fn parse(value: Value) -> Result<Experiment, Error> {
    Experiment::from_json(&value, "test")
}

fn base() -> Value {
    json!({
        "problem": {"type": "quadratic"},
        "steps": 5,
        "runs": [{"name": "gd", "optimizer": {"type": "sgd", "lr": 0.1}}]
    })
}

fn error_text(value: Value) -> String {
    parse(value).unwrap_err().to_string()
}

#[test]
fn defaults_fill_start_tolerance_and_title() {
    let e = parse(base()).unwrap();
    assert_eq!(e.start, e.problem.default_start());
    assert_eq!(e.tolerance, 1e-3);
    assert_eq!(e.title, "test");
    assert!(e.skipped.is_empty());
}

#[test]
fn the_view_is_the_problems_widened_to_the_start_or_the_experiments_own() {
    let e = parse(base()).unwrap();
    assert_eq!(e.view, e.problem.view());
    let mut v = base();
    v["start"] = json!([-9.0, 1.0]);
    let e = parse(v.clone()).unwrap();
    assert!(e.view.contains(e.start) && e.view.x[0] < -9.0);
    assert_eq!(e.view.y, e.problem.view().y);
    v["view"] = json!([-10.0, 2.0, -1.0, 1.0]);
    let e = parse(v.clone()).unwrap();
    assert_eq!((e.view.x, e.view.y), ([-10.0, 2.0], [-1.0, 1.0]));
    v["view"] = json!([1.0, 0.0, -1.0, 1.0]);
    assert!(error_text(v).contains("invalid config at view"));
}

#[test]
fn unknown_keys_name_their_path_and_suggest() {
    let mut v = base();
    v["step"] = json!(3);
    let text = error_text(v);
    assert!(text.contains("unknown field `step` at <root>"), "{text}");
    assert!(text.contains("did you mean `steps`?"), "{text}");

    let mut v = base();
    v["runs"][0]["optimiser"] = json!({});
    let text = error_text(v);
    assert!(text.contains("at runs[0]"), "{text}");
    assert!(text.contains("did you mean `optimizer`?"), "{text}");

    let mut v = base();
    v["runs"][0]["optimizer"] = json!({"type": "sgd", "lr": 0.1, "momentun": 0.9});
    let text = error_text(v);
    assert!(text.contains("runs[0].optimizer"), "{text}");

    let mut v = base();
    v["runs"][0]["optimizer"]["type"] = json!("adamm");
    let err = parse(v).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownName { path, .. } if path == "runs[0].optimizer.type"),
        "{err}"
    );

    let mut v = base();
    v["noise"] = json!({"std": 0.1, "sede": 1});
    assert!(error_text(v).contains("at noise"));

    let mut v = base();
    v["runs"][0]["clip"] = json!({"max_norm": 1.0, "norm": 2});
    assert!(error_text(v).contains("runs[0].clip"));

    let mut v = base();
    v["runs"][0]["schedule"] = json!({"type": "cosine", "t_maxx": 3});
    assert!(error_text(v).contains("runs[0].schedule"));
}

#[test]
fn values_are_validated() {
    let mut v = base();
    v["steps"] = json!(0);
    assert!(error_text(v).contains("invalid config at steps"));
    let mut v = base();
    v["start"] = json!([1.0]);
    assert!(error_text(v).contains("start"));
    let mut v = base();
    v["tolerance"] = json!(-1.0);
    assert!(error_text(v).contains("tolerance"));
    let mut v = base();
    v["noise"] = json!({"std": -1.0});
    assert!(error_text(v).contains("noise.std"));
    let mut v = base();
    v["runs"] = json!([]);
    assert!(error_text(v).contains("runs"));
    let mut v = base();
    v["runs"][0]["optimizer"]["lr"] = json!(-1.0);
    assert!(error_text(v).contains("Invalid learning rate"));
    let mut v = base();
    let run = v["runs"][0].clone();
    v["runs"] = json!([run.clone(), run]);
    assert!(error_text(v).contains("runs[1].name: duplicate run name `gd`"));
}

#[test]
fn batching_applies_to_data_problems_only_and_mini_batches_need_a_size() {
    let mut v = base();
    v["runs"][0]["batching"] = json!("stochastic");
    assert!(error_text(v).contains("has no data set"));

    let mut v = base();
    v["problem"] = json!({"type": "least_squares", "samples": 16});
    v["runs"][0]["batching"] = json!("mini_batch");
    assert!(error_text(v.clone()).contains("needs a `batch_size`"));
    v["runs"][0]["batch_size"] = json!(17);
    assert!(error_text(v.clone()).contains("runs[0].batch_size"));
    v["runs"][0]["batch_size"] = json!(4);
    assert!(parse(v.clone()).is_ok());
    v["runs"][0]["batching"] = json!("minibatch");
    let text = error_text(v.clone());
    assert!(text.contains("did you mean `mini_batch`?"), "{text}");
    v["runs"][0]["batching"] = json!("full");
    assert!(error_text(v).contains("applies to `\"batching\": \"mini_batch\"` only"));
}

#[test]
fn skip_unregistered_drops_runs_whose_optimizer_is_missing() {
    let mut v = base();
    v["runs"] = json!([
        {"name": "gd", "optimizer": {"type": "sgd", "lr": 0.1}},
        {"name": "sophia", "optimizer": {"type": "sophia"}, "skip_unregistered": true}
    ]);
    let e = parse(v.clone()).unwrap();
    assert_eq!(e.runs.len(), 1);
    assert_eq!(e.skipped, ["sophia"]);
    v["runs"][1]["skip_unregistered"] = json!(false);
    assert!(error_text(v).contains("unknown optimizer `sophia`"));
}

#[test]
fn a_run_writes_every_output_file_and_traces_in_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = base();
    v["runs"] = json!([
        {"name": "gd", "optimizer": {"type": "sgd", "lr": 0.1}},
        {"name": "too fast", "optimizer": {"type": "sgd", "lr": 0.5}}
    ]);
    let e = parse(v).unwrap();
    let report = run_to_folder(&e, dir.path()).unwrap();
    for file in OUTPUT_FILES {
        let meta = std::fs::metadata(dir.path().join(file)).unwrap();
        assert!(meta.len() > 0, "{file}");
    }
    let traces: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("traces.json")).unwrap()).unwrap();
    assert_eq!(traces["problem"]["type"], "quadratic");
    let run = &traces["runs"][0];
    assert_eq!(
        run.as_object().unwrap().len(),
        3,
        "name, points, loss: {run}"
    );
    assert_eq!(run["points"].as_array().unwrap().len(), 6);
    assert_eq!(run["loss"].as_array().unwrap().len(), 6);
    assert_eq!(run["points"][0], json!([-4.0, 1.5]));
    // lr 0.5 on curvature 10 multiplies the steep coordinate by -4 per step: out of view.
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(summary.contains("| too fast |"), "{summary}");
    assert!(summary.contains("left the view at step"), "{summary}");
    assert_eq!(report.summaries.len(), 2);
    let png = std::fs::read(dir.path().join("paths.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
}

#[test]
fn a_diverging_run_stops_at_the_first_non_finite_point() {
    let v = json!({
        "problem": {"type": "quadratic", "kappa": 10},
        "steps": 2000,
        "runs": [{"name": "boom", "optimizer": {"type": "sgd", "lr": 1.0}}]
    });
    let e = parse(v).unwrap();
    let traces = gradus_lab::run_experiment(&e).unwrap();
    let t = &traces.runs[0];
    let at = t.diverged_at.expect("diverges");
    assert_eq!(t.points.len(), at);
    assert!(t
        .points
        .iter()
        .all(|p| p[0].is_finite() && p[1].is_finite()));
    let s = gradus_lab::summarize(&e, &traces.runs);
    assert!(s[0].notes().iter().any(|n| n.contains("diverged")));
    let dir = tempfile::tempdir().unwrap();
    gradus_lab::output::write_folder(&e, traces, dir.path()).unwrap();
}

#[test]
fn the_example_experiments_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lab");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            Experiment::from_text(&text, "example")
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 3);
}

#[test]
fn wild_runs_on_every_problem_are_drawn_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let wild = |name: &str| {
        let v = json!({
            "problem": {"type": name},
            "steps": 25,
            "noise": {"std": 1.0, "seed": 1},
            "runs": [
                {"name": "huge lr", "optimizer": {"type": "sgd", "lr": 1e3}},
                {"name": "momentum", "optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.99}},
                {"name": "adam", "optimizer": {"type": "adam", "lr": 5.0}},
                {"name": "tiny", "optimizer": {"type": "sgd", "lr": 1e-12}}
            ]
        });
        let e = parse(v).unwrap();
        let report =
            run_to_folder(&e, &dir.path().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(report.summaries.len(), 4);
    };
    for entry in gradus_lab::problem::entries().unwrap() {
        wild(entry.name);
    }
}
