//! The lecture's claims, checked on the traces of the shipped presets (not on pictures).

use gradus_lab::{preset, run_experiment, summarize, Experiment, Trace, Traces};

fn run(name: &str) -> (Experiment, Traces) {
    let experiment = preset(name).unwrap();
    let traces = run_experiment(&experiment).unwrap();
    (experiment, traces)
}

fn trace<'a>(traces: &'a Traces, name: &str) -> &'a Trace {
    traces.runs.iter().find(|t| t.name == name).unwrap()
}

#[test]
fn on_the_ill_conditioned_quadratic_momentum_needs_fewer_steps_than_gd_at_the_same_lr() {
    let (experiment, traces) = run("ill-conditioning");
    assert_eq!(experiment.problem.config()["kappa"], 50.0);
    let lr = |i: usize| experiment.runs[i].optimizer["lr"].as_f64().unwrap();
    assert_eq!(lr(0), lr(1));
    assert_eq!(lr(0), lr(2));
    let s = summarize(&experiment, &traces.runs);
    let gd = s[0].steps_to_tolerance.expect("gd reaches the tolerance");
    let momentum = s[1].steps_to_tolerance.expect("momentum reaches it");
    let nesterov = s[2].steps_to_tolerance.expect("nesterov reaches it");
    assert!(momentum < gd, "momentum {momentum} vs gd {gd}");
    assert!(nesterov < gd, "nesterov {nesterov} vs gd {gd}");
    // GD near its stability limit 2/kappa zig-zags: the gradient turns back every step.
    let edge = &traces.runs[3];
    assert!(lr(3) > 1.5 / 50.0 && lr(3) < 2.0 / 50.0);
    let flips = edge.grads[..10]
        .windows(2)
        .filter(|w| (w[0][0] * w[1][0] + w[0][1] * w[1][1]) < 0.0)
        .count();
    assert!(flips >= 8, "{flips}");
}

#[test]
fn on_the_cliff_clipped_sgd_ends_near_the_minimum_while_unclipped_sgd_leaves_the_valley() {
    let (experiment, traces) = run("cliff");
    let s = summarize(&experiment, &traces.runs);
    let (plain, clipped) = (&s[0], &s[1]);
    assert!(experiment.runs[0].clip.is_none() && experiment.runs[1].clip.is_some());
    assert!(clipped.diverged_at.is_none());
    assert!(trace(&traces, &clipped.name)
        .points
        .iter()
        .all(|p| p[0].is_finite() && p[1].is_finite()));
    assert!(clipped.final_distance.unwrap() < 1e-2, "{clipped:?}");
    assert!(clipped.left_view_at.is_none(), "{clipped:?}");
    // One step on the wall throws the unclipped run far out of the drawn valley.
    assert!(plain.left_view_at.is_some(), "{plain:?}");
    let farthest = trace(&traces, &plain.name)
        .points
        .iter()
        .map(|p| p[0].hypot(p[1]))
        .fold(0.0, f64::max);
    assert!(farthest > 10.0, "{farthest}");
    assert!(plain.final_distance.unwrap() > 1.0, "{plain:?}");
}

#[test]
fn on_the_saddle_started_on_the_ridge_gd_stays_and_noisy_sgd_escapes() {
    let (experiment, traces) = run("saddle");
    assert_eq!(experiment.start[1], 0.0, "starts on the ridge y = 0");
    let gd = trace(&traces, "gd");
    assert!(
        gd.points.iter().all(|p| p[1] == 0.0),
        "gd never leaves the ridge"
    );
    let last = gd.points[gd.points.len() - 1];
    assert!(last[0].abs() < 1e-2, "gd walks into the saddle: {last:?}");
    let noisy = trace(&traces, "sgd + noise");
    let last = noisy.points[noisy.points.len() - 1];
    assert!(last[1].abs() > 0.5, "noisy SGD escapes along y: {last:?}");
    assert!(noisy.loss[noisy.loss.len() - 1] < -0.5);
    let momentum = trace(&traces, "momentum + noise");
    assert!(momentum.loss[momentum.loss.len() - 1] < noisy.loss[noisy.loss.len() - 1]);
}

#[test]
fn on_the_plateau_gd_crawls_while_momentum_and_adaptive_steps_cross_it() {
    let (experiment, traces) = run("plateau");
    let s = summarize(&experiment, &traces.runs);
    let steps =
        |r: &gradus_lab::RunSummary| r.steps_to_tolerance.expect("every run reaches the well");
    for r in &s[1..] {
        assert!(
            steps(r) < steps(&s[0]),
            "{} {} vs gd {}",
            r.name,
            steps(r),
            steps(&s[0])
        );
    }
    // GD's first 100 steps barely lower the loss: the plain is nearly flat.
    let gd = &traces.runs[0];
    assert!(gd.loss[0] - gd.loss[100] < 0.05 * gd.loss[0]);
}

#[test]
fn adagrad_effective_step_shrinks_monotonically() {
    let (_, traces) = run("adaptive");
    let adagrad = trace(&traces, "adagrad");
    // Per coordinate, |Δθᵢ| / |gᵢ| = lr / (√Gᵢ + eps) never grows (up to rounding of Δθ).
    for k in 0..2 {
        let ratios: Vec<f64> = adagrad
            .points
            .windows(2)
            .zip(&adagrad.grads)
            .filter(|(_, g)| g[k] != 0.0)
            .map(|(w, g)| (w[1][k] - w[0][k]).abs() / g[k].abs())
            .collect();
        assert!(ratios.len() > 1000);
        for w in ratios.windows(2) {
            assert!(
                w[1] <= w[0] * (1.0 + 1e-6),
                "coordinate {k}: {} then {}",
                w[0],
                w[1]
            );
        }
        assert!(ratios[ratios.len() - 1] < ratios[0]);
    }
    // RMSprop's effective step does not only shrink: it forgets old gradients.
    let rmsprop = trace(&traces, "rmsprop");
    let ratios: Vec<f64> = rmsprop
        .points
        .windows(2)
        .zip(&rmsprop.grads)
        .map(|(w, g)| (w[1][0] - w[0][0]).abs() / g[0].abs())
        .collect();
    let mut lowest = f64::INFINITY;
    let grows = ratios.iter().any(|&r| {
        lowest = lowest.min(r);
        r > 1.1 * lowest
    });
    assert!(grows);
}

#[test]
fn full_batch_descends_smoothly_and_stochastic_is_noisiest() {
    let (experiment, traces) = run("batching");
    let s = summarize(&experiment, &traces.runs);
    let ups = |t: &Trace| t.loss.windows(2).filter(|w| w[1] > w[0]).count();
    assert_eq!(ups(&traces.runs[0]), 0, "full batch never goes up");
    assert!(ups(&traces.runs[2]) > ups(&traces.runs[1]));
    assert!(ups(&traces.runs[1]) > 0);
    assert!(s[0].final_distance < s[2].final_distance);
    assert!(s[0].steps_to_tolerance.is_some());
}

#[test]
fn the_modern_preset_runs_only_registered_optimizers() {
    let experiment = preset("modern").unwrap();
    for run in &experiment.runs {
        let name = run.optimizer["type"].as_str().unwrap();
        assert!(
            gradus_core::registry::lookup::<gradus_core::registry::OptimizerKind>(name, "").is_ok()
        );
    }
    for skipped in ["lion", "schedule-free adamw"] {
        let listed = experiment.runs.iter().any(|r| r.name == skipped);
        assert!(listed != experiment.skipped.contains(&skipped.to_string()));
    }
    assert!(experiment.runs.iter().any(|r| r.name == "adam"));
}

#[test]
fn every_preset_parses_and_runs_finitely() {
    for name in gradus_lab::preset_names() {
        let (_, traces) = run(name);
        for t in &traces.runs {
            assert!(t.diverged_at.is_none(), "{name}/{}", t.name);
            assert!(t.loss.iter().all(|v| v.is_finite()));
        }
    }
}
