//! Every registered problem: analytic gradients against Candle's autograd, minima, defaults,
//! and the registry's errors.

use gradus_core::{Error, SeededRng};
use gradus_lab::problem::{autograd_gradient, build_problem, entries, nearest_minimum};
use gradus_lab::{Point, Problem};
use serde_json::json;

const BUILT_IN: [&str; 10] = [
    "beale",
    "cliff",
    "himmelblau",
    "least_squares",
    "monkey_saddle",
    "plateau",
    "quadratic",
    "rastrigin",
    "rosenbrock",
    "saddle",
];

fn every_problem() -> Vec<Box<dyn Problem>> {
    let mut out: Vec<Box<dyn Problem>> = entries()
        .unwrap()
        .iter()
        .map(|e| build_problem(&json!({"type": e.name}), "problem").unwrap())
        .collect();
    // Non-default shapes too: a rotated ill-conditioned bowl, a shifted Rosenbrock.
    out.push(
        build_problem(
            &json!({"type": "quadratic", "kappa": 50, "angle": 0.3}),
            "problem",
        )
        .unwrap(),
    );
    out.push(
        build_problem(
            &json!({"type": "rosenbrock", "a": -0.5, "b": 10}),
            "problem",
        )
        .unwrap(),
    );
    out
}

/// The default start, the view's centre and 20 points drawn inside the view box.
fn probe_points(problem: &dyn Problem) -> Vec<Point> {
    let view = problem.view();
    let mut rng = SeededRng::new(5).derive(problem.name());
    let mut points = vec![
        problem.default_start(),
        [0.5 * (view.x[0] + view.x[1]), 0.5 * (view.y[0] + view.y[1])],
    ];
    for _ in 0..20 {
        let x = view.x[0] + (view.x[1] - view.x[0]) * rng.unit_f64();
        let y = view.y[0] + (view.y[1] - view.y[0]) * rng.unit_f64();
        points.push([x, y]);
    }
    points
}

#[test]
fn the_ten_built_in_problems_are_registered() {
    let names: Vec<&str> = entries().unwrap().iter().map(|e| e.name).collect();
    for name in BUILT_IN {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[test]
fn analytic_gradients_match_candle_autograd() {
    for problem in every_problem() {
        for p in probe_points(problem.as_ref()) {
            let analytic = problem.gradient(p);
            let auto = autograd_gradient(problem.as_ref(), p)
                .unwrap()
                .unwrap_or_else(|| panic!("{} has no tensor form", problem.name()));
            for k in 0..2 {
                let scale = analytic[k].abs().max(auto[k].abs()).max(1.0);
                assert!(
                    (analytic[k] - auto[k]).abs() <= 1e-10 * scale,
                    "{} at {p:?}: analytic {analytic:?} vs autograd {auto:?}",
                    problem.name()
                );
            }
            let value = problem
                .value_tensor(&candle_core::Tensor::new(&p[..], &candle_core::Device::Cpu).unwrap())
                .unwrap()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            let f = problem.value(p);
            assert!(
                (value - f).abs() <= 1e-10 * f.abs().max(1.0),
                "{}: {value} vs {f}",
                problem.name()
            );
        }
    }
}

#[test]
fn minima_are_stationary_with_the_stated_value_and_starts_are_in_view() {
    for problem in every_problem() {
        let name = problem.name().to_string();
        assert!(problem.view().contains(problem.default_start()), "{name}");
        for m in problem.minima() {
            let g = problem.gradient(m);
            assert!(
                g[0].abs() < 1e-9 && g[1].abs() < 1e-9,
                "{name}: {g:?} at {m:?}"
            );
            let f_star = problem.min_value().expect("a minimum has a value");
            assert!((problem.value(m) - f_star).abs() < 1e-12, "{name}");
            // Nothing sampled in the view is below the minimum.
            for p in probe_points(problem.as_ref()) {
                assert!(problem.value(p) >= f_star - 1e-12, "{name} at {p:?}");
            }
        }
        for s in problem.saddles() {
            let g = problem.gradient(s);
            assert!(g[0] == 0.0 && g[1] == 0.0, "{name}");
        }
    }
}

#[test]
fn nearest_minimum_picks_the_closest_of_himmelblau_four() {
    let h = build_problem(&json!({"type": "himmelblau"}), "problem").unwrap();
    let (m, d) = nearest_minimum(&h.minima(), [-3.0, -3.0]).unwrap();
    assert!(m[0] < -3.7 && m[1] < -3.2);
    assert!(d < 1.0);
}

#[test]
fn resolved_configs_carry_the_type_and_every_default() {
    let q = build_problem(&json!({"type": "quadratic", "kappa": 50}), "problem").unwrap();
    assert_eq!(
        q.config(),
        json!({"type": "quadratic", "kappa": 50.0, "angle": 0.0})
    );
    let again = build_problem(&q.config(), "problem").unwrap();
    assert_eq!(again.config(), q.config());
}

#[test]
fn unknown_names_and_fields_are_errors_with_paths_and_suggestions() {
    let err = build_problem(&json!({"type": "rosenbrok"}), "problem").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownName { path, .. } if path == "problem.type"),
        "{err}"
    );
    assert!(
        err.to_string().contains("did you mean `rosenbrock`?"),
        "{err}"
    );

    let err = build_problem(&json!({"type": "quadratic", "kapa": 5}), "problem").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownField { path, .. } if path == "problem"),
        "{err}"
    );
    assert!(err.to_string().contains("did you mean `kappa`?"), "{err}");

    let err = build_problem(&json!({"type": "quadratic", "kappa": -1}), "problem").unwrap_err();
    assert!(err.to_string().contains("problem.kappa"), "{err}");
    let err =
        build_problem(&json!({"type": "least_squares", "samples": 1}), "problem").unwrap_err();
    assert!(err.to_string().contains("problem.samples"), "{err}");
    let err = build_problem(&json!({"type": "cliff", "width": 1.0}), "problem").unwrap_err();
    assert!(err.to_string().contains("problem.width"), "{err}");
}
