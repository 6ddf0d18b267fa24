//! The registry-driven conformance suite over every registered optimizer.

#[test]
fn every_registered_optimizer_conforms() {
    let names = gradus_optim::conformance::registered().unwrap();
    for expected in [
        "adadelta",
        "adafactor",
        "adagrad",
        "adam",
        "adamax",
        "adamw",
        "nadam",
        "radam",
        "rmsprop",
        "sgd",
        "lamb",
        "lars",
        "lion",
        "adan",
        "adopt",
        "ademamix",
        "adabelief",
        "asgd",
        "muon",
        "rprop",
        "lbfgs",
        "prodigy",
        "lookahead",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} is not registered: {names:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| gradus_optim::conformance::check_all(name, dir.path()).err())
        .map(|e| e.to_string())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
