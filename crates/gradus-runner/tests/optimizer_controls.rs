//! The runner's optimizer controls: weight averaging (`train.averaging`, EMA and SWA), SAM
//! (`train.sam`), the schedule-free eval point and L-BFGS over the full batch. Each is checked
//! against the library it drives, resumed after a SIGKILL to bit-identical files, and refused
//! with exit code 2 at the right path where it cannot compose.

mod common;
use common::{gradus, metrics_without_time, run_and_kill_after_first_checkpoint, text, write};

use std::path::{Path, PathBuf};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device};
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::{SeededRng, StateDict};
use gradus_optim::clip::ClipConfig;
use gradus_optim::sam::{Sam, SamConfig};
use gradus_runner::experiment::{build, Experiment};
use gradus_runner::pipeline::Pipeline;
use gradus_runner::train::step::{train_step, StepOutcome};
use gradus_runner::train::{fresh_state, StepTiming};
use serde_json::{json, Value};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");

/// Digits (flat, standardized) through a small MLP, with `train` and `optimizer` given.
fn digits(optimizer: Value, train: Value, batch_size: usize, batch_norm: bool) -> Value {
    let mut layers = vec![json!({"type": "linear", "out": 16})];
    if batch_norm {
        layers.push(json!({"type": "batch_norm"}));
    }
    layers.push(json!({"type": "relu"}));
    layers.push(json!({"type": "linear", "out": 10}));
    json!({
        "name": "controls",
        "seed": 9,
        "data": {"source": {"type": "digits", "layout": "flat"},
                 "split": {"val": 0.2, "test": 0.2, "stratify": true},
                 "preprocess": [{"type": "standardize"}]},
        "model": {"layers": layers},
        "optimizer": optimizer,
        "regularizers": [{"type": "l2", "lambda": 0.001}],
        "batching": {"type": "mini_batch", "batch_size": batch_size, "drop_last": true},
        "train": train,
        "output": {"checkpoint_every": 1, "plots": false}
    })
}

fn run_quiet(pipeline: &Path, out: &Path) -> std::process::Output {
    gradus(&[
        "run",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
}

fn report(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap()
}

/// Every tensor of a safetensors file as its f64 bit patterns, by name.
fn bits(file: &Path) -> Vec<(String, Vec<u64>)> {
    let sd = StateDict::load(file, &Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<u64>)> = sd
        .iter()
        .map(|(name, t)| {
            let v = t
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            (name.to_string(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect();
    out.sort();
    out
}

/// Runs `pipeline` whole, and again killed (SIGKILL) once its first checkpoint exists, then
/// resumed; asserts identical metrics (but `seconds`), test metrics and checkpoint `files`.
fn assert_resume_is_bit_identical(
    pipeline: &Value,
    files: &[&str],
) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", pipeline);
    let whole = dir.path().join("whole");
    let out = run_quiet(&path, &whole);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let killed = dir.path().join("killed");
    run_and_kill_after_first_checkpoint(&path, &killed);
    let out = gradus(&["resume", killed.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    assert_eq!(metrics_without_time(&whole), metrics_without_time(&killed));
    for file in files {
        assert_eq!(
            bits(&whole.join(file)),
            bits(&killed.join(file)),
            "{file} differs after resume"
        );
    }
    for key in ["test_loss", "test_accuracy", "evaluated_weights"] {
        assert_eq!(report(&whole)[key], report(&killed)[key], "{key}");
    }
    (whole, dir)
}

const AVERAGED_FILES: [&str; 6] = [
    "checkpoints/last/model.safetensors",
    "checkpoints/last/optimizer.safetensors",
    "checkpoints/last/averaged.safetensors",
    "checkpoints/best/model.safetensors",
    "checkpoints/best/averaged.safetensors",
    "checkpoints/best/optimizer.safetensors",
];

#[test]
fn swa_with_batch_norm_resumes_bit_identically_and_says_which_weights_it_evaluated() {
    let pipeline = digits(
        json!({"type": "sgd", "lr": 0.05, "momentum": 0.9}),
        json!({"epochs": 4, "averaging": {"type": "swa", "start_epoch": 2, "swa_lr": 0.01,
               "anneal_epochs": 2}}),
        4,
        true,
    );
    let (whole, _dir) = assert_resume_is_bit_identical(&pipeline, &AVERAGED_FILES);
    assert_eq!(report(&whole)["evaluated_weights"], "swa");
    let lines: Vec<Value> = std::fs::read_to_string(whole.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Epoch 1 is before start_epoch: the training weights; from epoch 2 the SWA average.
    assert!(lines[0].get("weights").is_none(), "{}", lines[0]);
    assert!(lines[1..].iter().all(|l| l["weights"] == "swa"));
    // SWALR anneals from the lr in force to swa_lr over 2 epochs (cos), then holds it.
    let lr: Vec<f64> = lines.iter().map(|l| l["lr"].as_f64().unwrap()).collect();
    assert_eq!(lr[0], 0.05);
    assert!((lr[1] - (0.01 * 0.5 + 0.05 * 0.5)).abs() < 1e-12, "{lr:?}");
    assert!(
        (lr[2] - 0.01).abs() < 1e-12 && (lr[3] - 0.01).abs() < 1e-12,
        "{lr:?}"
    );
    // averaged.safetensors: 3 epochs averaged, and it loads as a model (weights by name).
    let avg = StateDict::load(
        whole.join("checkpoints/last/averaged.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let n = avg.get("n_averaged").unwrap().to_scalar::<i64>().unwrap();
    assert_eq!(n, 3);
    let model = StateDict::load(
        whole.join("checkpoints/last/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    for (name, t) in model.iter() {
        let a = avg.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(a.dims(), t.dims(), "{name}");
    }
}

#[test]
fn ema_and_sam_resume_bit_identically() {
    let pipeline = digits(
        json!({"type": "adam", "lr": 0.003}),
        json!({"epochs": 3, "sam": {"rho": 0.05},
               "averaging": {"type": "ema", "decay": 0.99}}),
        4,
        false,
    );
    let (whole, _dir) = assert_resume_is_bit_identical(&pipeline, &AVERAGED_FILES);
    assert_eq!(report(&whole)["evaluated_weights"], "ema");
}

#[test]
fn schedule_free_resumes_bit_identically_at_its_eval_point() {
    let pipeline = digits(
        json!({"type": "adamw_schedule_free", "lr": 0.005, "warmup_steps": 10}),
        json!({"epochs": 3}),
        4,
        true,
    );
    let files = [
        "checkpoints/last/model.safetensors",
        "checkpoints/last/optimizer.safetensors",
        "checkpoints/best/model.safetensors",
    ];
    let (whole, _dir) = assert_resume_is_bit_identical(&pipeline, &files);
    assert_eq!(report(&whole)["evaluated_weights"], "eval_point");
}

fn experiment(pipeline: &Value) -> Experiment {
    build(Pipeline::from_value(pipeline).unwrap()).unwrap()
}

/// The batch `indices` of the training split, and the loss with the L2 penalty and its
/// gradients at the current weights: what the library's closure computes.
fn objective(exp: &mut Experiment, indices: &[u32]) -> gradus_core::Result<(f64, GradStore)> {
    let (x, y) = gradus_data::gather(exp.loader.dataset(), indices)?;
    let x = x.to_dtype(exp.dtype)?;
    let mut rng = SeededRng::new(0);
    let mut ctx = ForwardContext {
        train: true,
        rng: &mut rng,
    };
    let out = exp.model.forward(&x, &mut ctx)?;
    let mut loss = exp.loss.compute(&out, &y)?;
    for r in &exp.regularizers {
        if let Some(p) = r.penalty(&exp.params)? {
            loss = (loss + p.to_dtype(out.dtype())?)?;
        }
    }
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok((value, loss.backward()?))
}

fn weights(exp: &Experiment) -> Vec<(String, Vec<u64>)> {
    exp.params
        .iter()
        .map(|p| {
            let v = p
                .var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            (p.name.clone(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// The runner's SAM step (with clipping of the second pass) equals the library's
/// `Sam::step_with_closure` whose closure clips the gradients of its second call, bit for bit,
/// over three batches.
#[test]
fn the_runners_sam_step_is_the_librarys_step_with_closure() {
    for clip in [None, Some(json!({"max_norm": 0.05}))] {
        let mut pipeline = digits(
            json!({"type": "sgd", "lr": 0.1, "momentum": 0.9}),
            json!({"epochs": 1, "sam": {"rho": 0.1, "adaptive": true}}),
            32,
            false,
        );
        if let Some(c) = &clip {
            pipeline["clip"] = c.clone();
        }
        let mut runner = experiment(&pipeline);
        let mut library = experiment(&pipeline);
        assert_eq!(weights(&runner), weights(&library));
        let batches = runner.loader.epoch_indices(0).unwrap();
        let mut state = fresh_state(9);
        let mut timing = StepTiming::default();
        let optimizer =
            gradus_optim::build_optimizer(&pipeline["optimizer"], "optimizer", &library.params)
                .unwrap();
        let config = SamConfig::parse(&pipeline["train"]["sam"], "train.sam").unwrap();
        let mut sam = Sam::new(optimizer, config).unwrap();
        let clip = clip.map(|c| ClipConfig::parse(&c, "clip").unwrap());
        for indices in batches.iter().take(3) {
            let outcome = train_step(&mut runner, &mut state, indices, &mut timing).unwrap();
            assert!(matches!(outcome, StepOutcome::Trained(_)));
            let mut calls = 0;
            let lib = &mut library;
            let loss = sam
                .step_with_closure(|| {
                    calls += 1;
                    let (loss, mut grads) = objective(lib, indices)?;
                    if calls == 2 {
                        if let Some(c) = &clip {
                            c.apply(&lib.params, &mut grads)?;
                        }
                    }
                    Ok((loss, grads))
                })
                .unwrap();
            assert!(loss.is_finite());
            assert_eq!(calls, 2);
            assert_eq!(weights(&runner), weights(&library), "clip {clip:?}");
        }
    }
}

/// The model a schedule-free run saves is the library optimizer's eval point after the same
/// steps (`eval()` after every epoch, `train()` before the next, as the runner does).
#[test]
fn schedule_free_saves_the_librarys_eval_point() {
    let pipeline = digits(
        json!({"type": "sgd_schedule_free", "lr": 0.05, "warmup_steps": 5}),
        json!({"epochs": 2}),
        64,
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", &pipeline);
    let out = run_quiet(&path, &dir.path().join("run"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut lib = experiment(&pipeline);
    let mut optimizer =
        gradus_optim::build_optimizer(&pipeline["optimizer"], "optimizer", &lib.params).unwrap();
    assert!(optimizer.has_eval_point());
    for epoch in 0..2 {
        optimizer.train().unwrap();
        for indices in lib.loader.epoch_indices(epoch).unwrap() {
            let (_, grads) = objective(&mut lib, &indices).unwrap();
            optimizer.step(&grads).unwrap();
        }
        optimizer.eval().unwrap();
    }
    let saved = bits(&dir.path().join("run/checkpoints/last/model.safetensors"));
    let expected = weights(&lib);
    for (name, value) in &expected {
        let (_, got) = saved.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(got, value, "{name}");
    }
    // Not the training point: the two differ once the optimizer has stepped.
    optimizer.train().unwrap();
    assert_ne!(weights(&lib), expected);
}

#[test]
fn lbfgs_example_reaches_a_near_exact_fit_over_the_full_batch() {
    let dir = tempfile::tempdir().unwrap();
    let example = format!("{EXAMPLES}/linear-regression-lbfgs.json");
    let run = dir.path().join("run");
    let out = run_quiet(Path::new(&example), &run);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = report(&run);
    let test_loss = r["test_loss"].as_f64().unwrap();
    assert!(test_loss < 1e-8, "{r}");
    let first: f64 = metrics_without_time(&run)[1]
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first > 1.0,
        "the first epoch starts from the initial weights: {first}"
    );
}

/// One L-BFGS epoch of the runner is one `step_with_closure` of the library over the whole
/// training set with the same objective.
#[test]
fn the_runners_lbfgs_epoch_is_one_library_step_over_the_training_set() {
    let mut pipeline: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{EXAMPLES}/linear-regression-lbfgs.json")).unwrap(),
    )
    .unwrap();
    pipeline["regularizers"] = json!([{"type": "l2", "lambda": 0.01}]);
    pipeline["train"]["epochs"] = json!(1);
    let mut runner = experiment(&pipeline);
    let mut lib = experiment(&pipeline);
    let mut state = fresh_state(3);
    let batches = runner.loader.epoch_indices(0).unwrap();
    assert_eq!(batches.len(), 1);
    train_step(
        &mut runner,
        &mut state,
        &batches[0],
        &mut StepTiming::default(),
    )
    .unwrap();
    let mut optimizer =
        gradus_optim::build_optimizer(&pipeline["optimizer"], "optimizer", &lib.params).unwrap();
    let lib_ref = &mut lib;
    optimizer
        .step_with_closure(&mut || objective(lib_ref, &batches[0]))
        .unwrap();
    assert_eq!(weights(&runner), weights(&lib));
    let state_of = |o: &dyn gradus_core::Optimizer| o.state_dict().unwrap().len();
    assert_eq!(
        state_of(runner.optimizer.as_ref()),
        state_of(optimizer.as_ref())
    );
}

fn refused(pipeline: &Value, path: &str, words: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "p.json", pipeline);
    for command in ["validate", "run"] {
        let run = dir.path().join("run");
        let out = match command {
            "run" => gradus(&[
                command,
                file.to_str().unwrap(),
                "--out",
                run.to_str().unwrap(),
            ]),
            _ => gradus(&[command, file.to_str().unwrap()]),
        };
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains(&format!("at {path}")), "{command}: {err}");
        for w in words {
            assert!(err.contains(w), "{command}: `{w}` not in {err}");
        }
        assert!(
            !run.exists(),
            "a pipeline that fails to build creates no run folder"
        );
    }
}

#[test]
fn controls_that_cannot_compose_are_config_errors_at_their_path() {
    let lbfgs = |batching: Value| {
        let mut p = digits(json!({"type": "lbfgs"}), json!({"epochs": 1}), 32, false);
        p["batching"] = batching;
        p
    };
    refused(
        &lbfgs(json!({"type": "mini_batch", "batch_size": 32})),
        "batching",
        &["lbfgs", "\"full\""],
    );
    refused(&lbfgs(json!({"type": "stochastic"})), "batching", &["full"]);
    let mut p = lbfgs(json!({"type": "full"}));
    p["clip"] = json!({"max_norm": 1.0});
    refused(&p, "clip", &["lbfgs"]);
    let mut p = lbfgs(json!({"type": "full"}));
    p["train"]["sam"] = json!({});
    refused(&p, "train.sam", &["lbfgs"]);

    let sgd = json!({"type": "sgd", "lr": 0.1});
    refused(
        &digits(
            sgd.clone(),
            json!({"accumulate": 2, "sam": {"rho": 0.1}}),
            32,
            false,
        ),
        "train.sam",
        &["accumulate"],
    );
    refused(
        &digits(sgd.clone(), json!({"sam": {"rh": 0.1}}), 32, false),
        "train.sam",
        &["rho"],
    );
    refused(
        &digits(
            sgd.clone(),
            json!({"averaging": {"type": "emma"}}),
            32,
            false,
        ),
        "train.averaging.type",
        &["ema"],
    );
    refused(
        &digits(
            sgd,
            json!({"averaging": {"type": "swa", "swa_lr": 0.1}}),
            32,
            false,
        ),
        "train.averaging.start_epoch",
        &["missing"],
    );
    refused(
        &digits(
            json!({"type": "adamw_schedule_free"}),
            json!({"averaging": {"type": "ema"}}),
            32,
            false,
        ),
        "train.averaging",
        &["adamw_schedule_free"],
    );
}

#[test]
fn a_pipeline_schedule_runs_before_swa_and_swalr_from_start_epoch() {
    let mut pipeline = digits(
        json!({"type": "sgd", "lr": 0.1}),
        json!({"epochs": 4, "averaging": {"type": "swa", "start_epoch": 3, "swa_lr": 0.02,
               "anneal_epochs": 0}}),
        128,
        false,
    );
    pipeline["schedule"] = json!({"type": "step", "step_size": 1, "gamma": 0.5});
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", &pipeline);
    let run = dir.path().join("run");
    let out = run_quiet(&path, &run);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lr: Vec<f64> = metrics_without_time(&run)[1..]
        .iter()
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    // step: 0.05, 0.025 after epochs 1 and 2; SWALR (no annealing) from the end of epoch 3.
    assert_eq!(lr, [0.05, 0.025, 0.02, 0.02]);
}

/// A power-of-two loss scale changes no bit of an f32 run (scaling and unscaling are exact);
/// `report.json` gives the final scale.
#[test]
fn dynamic_loss_scaling_by_a_power_of_two_trains_bit_identically() {
    let plain = digits(
        json!({"type": "adam", "lr": 0.003}),
        json!({"epochs": 2}),
        64,
        true,
    );
    let mut scaled = plain.clone();
    scaled["train"]["loss_scale"] = json!({"init_scale": 1024.0, "growth_interval": 5});
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<PathBuf> = [("plain", &plain), ("scaled", &scaled)]
        .iter()
        .map(|(name, p)| {
            let path = write(dir.path(), &format!("{name}.json"), p);
            let run = dir.path().join(name);
            let out = run_quiet(&path, &run);
            assert!(out.status.success(), "{}", text(&out.stderr));
            run
        })
        .collect();
    assert_eq!(
        metrics_without_time(&runs[0]),
        metrics_without_time(&runs[1])
    );
    let model = "checkpoints/last/model.safetensors";
    assert_eq!(bits(&runs[0].join(model)), bits(&runs[1].join(model)));
    // 2 epochs of 16 updates, growing x2 every 5 good steps: 1024 · 2^6.
    assert_eq!(report(&runs[1])["loss_scale"], json!(65536.0));
    assert!(report(&runs[0]).get("loss_scale").is_none());
}

/// A scale that overflows the loss skips steps and backs off until the gradients are finite;
/// the scale resumes bit-identically from `loss_scale.safetensors`.
#[test]
fn an_overflowing_loss_scale_skips_steps_backs_off_and_resumes_bit_identically() {
    let pipeline = digits(
        json!({"type": "sgd", "lr": 0.05}),
        json!({"epochs": 3, "loss_scale": {"init_scale": 1e38, "growth_interval": 10000}}),
        4,
        false,
    );
    let mut files = vec!["checkpoints/last/loss_scale.safetensors"];
    files.extend(&AVERAGED_FILES[..2]);
    let (whole, _dir) = assert_resume_is_bit_identical(&pipeline, &files);
    let first = &metrics_without_time(&whole)[1];
    let skipped: usize = first.split(',').nth(8).unwrap().parse().unwrap();
    assert!(skipped > 0, "{first}");
    let scale = report(&whole)["loss_scale"].as_f64().unwrap();
    assert!(scale < 1e38, "{scale}");
    let dir = tempfile::tempdir().unwrap();
    let mut bad = pipeline.clone();
    bad["train"]["sam"] = json!({});
    let file = write(dir.path(), "bad.json", &bad);
    let out = gradus(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at train.loss_scale"),
        "{}",
        text(&out.stderr)
    );
}

/// SAM's applied gradients (the second pass's) go through the non-finite guard: a diverging
/// SAM run skips its non-finite steps and keeps finite weights.
#[test]
fn the_guard_checks_sams_second_pass() {
    let pipeline = digits(
        json!({"type": "sgd", "lr": 1e30}),
        json!({"epochs": 1, "sam": {"rho": 0.05}, "non_finite": "skip"}),
        64,
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.json", &pipeline);
    let run = dir.path().join("run");
    let out = run_quiet(&path, &run);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = &metrics_without_time(&run)[1];
    let skipped: usize = row.split(',').nth(8).unwrap().parse().unwrap();
    assert!(skipped > 0, "{row}");
    for (name, values) in bits(&run.join("checkpoints/last/model.safetensors")) {
        assert!(
            values.iter().all(|b| f64::from_bits(*b).is_finite()),
            "{name} is not finite"
        );
    }
}
