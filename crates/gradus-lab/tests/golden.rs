//! Golden traces: short runs whose `traces.json` is committed and compared exactly in f64.
//!
//! Regenerate (after an intended numerical change) with
//! `GRADUS_LAB_BLESS=1 cargo test -p gradus-lab --test golden`; see `tests/data/README.md`.

use std::path::PathBuf;

use gradus_lab::{run_experiment, Experiment, Traces};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn check(case: &str) {
    let text = std::fs::read_to_string(data(&format!("{case}.experiment.json"))).unwrap();
    let experiment = Experiment::from_text(&text, case).unwrap();
    let traces = run_experiment(&experiment).unwrap();
    let golden_path = data(&format!("{case}.traces.json"));
    if std::env::var_os("GRADUS_LAB_BLESS").is_some() {
        let json = serde_json::to_string_pretty(&traces).unwrap();
        std::fs::write(&golden_path, json + "\n").unwrap();
    }
    let golden: Traces =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap()).unwrap();
    assert_eq!(golden.problem, traces.problem);
    assert_eq!(golden.runs.len(), traces.runs.len());
    for (g, t) in golden.runs.iter().zip(&traces.runs) {
        assert_eq!(g.name, t.name);
        assert_eq!(g.points.len(), t.points.len(), "{case}/{}", t.name);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let flat = |p: &[[f64; 2]]| p.iter().flatten().copied().collect::<Vec<_>>();
        assert_eq!(
            bits(&flat(&g.points)),
            bits(&flat(&t.points)),
            "{case}/{} points",
            t.name
        );
        assert_eq!(bits(&g.loss), bits(&t.loss), "{case}/{} loss", t.name);
    }
}

#[test]
fn quadratic_runs_match_their_golden_traces() {
    check("quadratic");
}

#[test]
fn noisy_batched_least_squares_matches_its_golden_traces() {
    check("least-squares");
}
