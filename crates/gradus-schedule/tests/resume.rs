//! Saving a schedule's state mid-run and loading it into a freshly built schedule continues
//! bit-identically, for every registered schedule.

#[path = "../src/testing.rs"]
#[allow(dead_code)]
mod testing;

use gradus_core::Optimizer;
pub(crate) use gradus_schedule::build_schedule;
use serde_json::{json, Value};
use testing::FakeOptimizer;

fn configs() -> Vec<Value> {
    vec![
        json!({"type": "constant_factor", "factor": 0.5, "total_iters": 7}),
        json!({"type": "step", "step_size": 3, "gamma": 0.7}),
        json!({"type": "multi_step", "milestones": [2, 9, 14], "gamma": 0.3}),
        json!({"type": "exponential", "gamma": 0.93}),
        json!({"type": "cosine", "t_max": 7, "eta_min": 0.001}),
        json!({"type": "cosine_warm_restarts", "t_0": 3, "t_mult": 2, "eta_min": 0.001}),
        json!({"type": "linear", "start_factor": 0.1, "total_iters": 12}),
        json!({"type": "polynomial", "total_iters": 15, "power": 1.5}),
        json!({"type": "one_cycle", "max_lr": [0.5, 0.3], "total_steps": 30, "three_phase": true}),
        json!({"type": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3,
               "step_size_down": 5, "mode": "exp_range", "gamma": 0.97}),
        json!({"type": "sequential", "milestones": [4, 11], "schedules": [
            {"type": "linear", "start_factor": 0.2, "total_iters": 4},
            {"type": "cosine", "t_max": 6},
            {"type": "exponential", "gamma": 0.9, "hyperparameter": "momentum"}]}),
        json!({"type": "reduce_on_plateau", "patience": 1, "cooldown": 1, "factor": 0.5}),
        json!({"type": "exponential", "gamma": 0.9, "hyperparameter": "momentum"}),
        json!({"type": "multiplicative", "factor": 0.95}),
        json!({"type": "wsd", "total_steps": 20, "warmup_steps": 3, "decay_fraction": 0.3, "decay": "1-sqrt"}),
        json!({"type": "swalr", "swa_lr": [0.01, 0.002], "anneal_epochs": 6, "anneal_strategy": "linear"}),
        json!({"type": "swalr", "swa_lr": 0.03, "anneal_epochs": 9}),
        json!({"type": "chained", "schedules": [
            {"type": "linear", "start_factor": 0.2, "total_iters": 4},
            {"type": "exponential", "gamma": 0.9}]}),
    ]
}

fn metric(k: usize) -> f64 {
    // Improves, then plateaus with noise.
    if k < 5 {
        1.0 / (k + 1) as f64
    } else {
        0.2 + 0.01 * (k % 3) as f64
    }
}

fn bits(opt: &FakeOptimizer) -> Vec<u64> {
    opt.groups.iter().flatten().map(|v| v.to_bits()).collect()
}

/// Runs `config` for 30 steps; at `split`, saves, and continues a second copy from the saved
/// state (through a JSON string, as a checkpoint file would). `restore_optimizer` says whether
/// the optimizer's own state (with its hyperparameters) is restored too.
fn check(config: &Value, split: usize, restore_optimizer: bool) {
    let mut opt = FakeOptimizer::sgd(&[0.1, 0.05]);
    let mut schedule = build_schedule(config, "schedule", &mut opt).expect("build");
    for k in 0..split {
        schedule.step(&mut opt, Some(metric(k))).expect("step");
    }
    let saved = serde_json::to_string(&schedule.state()).expect("json");
    let saved_optimizer = opt.state_dict().expect("state dict");

    // A fresh process: the same optimizer config, the schedule built again, then both loaded.
    let mut opt2 = FakeOptimizer::sgd(&[0.1, 0.05]);
    let mut schedule2 = build_schedule(config, "schedule", &mut opt2).expect("build");
    if restore_optimizer {
        opt2.load_state_dict(&saved_optimizer)
            .expect("load optimizer");
    }
    let loaded: Value = serde_json::from_str(&saved).expect("json");
    schedule2.load_state(&loaded).expect("load schedule");
    assert_eq!(schedule2.state(), schedule.state(), "{config}");

    for k in split..30 {
        schedule.step(&mut opt, Some(metric(k))).expect("step");
        schedule2.step(&mut opt2, Some(metric(k))).expect("step");
        assert_eq!(bits(&opt), bits(&opt2), "{config} split {split} step {k}");
    }
}

#[test]
fn every_schedule_continues_identically_after_save_and_load() {
    for config in configs() {
        for split in [0, 1, 4, 5, 11, 17] {
            check(&config, split, true);
            // The optimizer's state carries its hyperparameters and must be restored for the
            // first resumed optimizer step; still, a schedule that writes at every step goes
            // on from its own saved values (from its next step) when it is not.
            if config["type"] != "sequential" && config["type"] != "reduce_on_plateau" {
                check(&config, split, false);
            }
        }
    }
}

#[test]
fn state_of_one_kind_does_not_load_into_another() {
    let mut opt = FakeOptimizer::sgd(&[0.1, 0.05]);
    let step = build_schedule(&json!({"type": "step", "step_size": 2}), "s", &mut opt).unwrap();
    let mut exp =
        build_schedule(&json!({"type": "exponential", "gamma": 0.5}), "s", &mut opt).unwrap();
    let err = exp.load_state(&step.state()).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected the state of a `exponential`"),
        "{err}"
    );
    // A state for another number of groups is refused too.
    let mut one = FakeOptimizer::sgd(&[0.1]);
    let mut exp1 =
        build_schedule(&json!({"type": "exponential", "gamma": 0.5}), "s", &mut one).unwrap();
    assert!(exp1.load_state(&exp.state()).is_err());
}

#[test]
fn registry_lists_every_schedule_and_rejects_unknown_names() {
    let names: Vec<&str> = gradus_core::registry::entries::<gradus_core::registry::ScheduleKind>()
        .unwrap()
        .iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "chained",
            "constant_factor",
            "cosine",
            "cosine_warm_restarts",
            "cyclic",
            "exponential",
            "linear",
            "multi_step",
            "multiplicative",
            "one_cycle",
            "polynomial",
            "reduce_on_plateau",
            "sequential",
            "step",
            "swalr",
            "wsd"
        ]
    );
    let mut opt = FakeOptimizer::sgd(&[0.1]);
    let err = build_schedule(&json!({"type": "cosine_anealing"}), "schedule", &mut opt)
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown schedule"), "{err}");
    let err = build_schedule(&json!({"type": "cosine", "T_max": 5}), "schedule", &mut opt)
        .err()
        .unwrap();
    assert!(err.to_string().contains("did you mean `t_max`"), "{err}");
    let err = build_schedule(
        &json!({"type": "exponential", "gamma": 0.5, "hyperparameter": "beta1"}),
        "schedule",
        &mut opt,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("schedule.hyperparameter"), "{err}");
}
