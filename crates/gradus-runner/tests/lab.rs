//! `gradus lab` end to end: presets, experiment files, and bad input (exit code 2).

use std::process::Command;

fn gradus(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradus"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_preset_writes_its_folder_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cliff");
    let (code, stdout, stderr) =
        gradus(&["lab", "--preset", "cliff", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("| sgd + clip 1 |"), "{stdout}");
    assert!(stdout.contains("lab folder:"), "{stdout}");
    for file in gradus_lab::output::OUTPUT_FILES {
        assert!(out.join(file).is_file(), "{file}");
    }
}

#[test]
fn preset_all_writes_one_subfolder_per_preset() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = gradus(&[
        "lab",
        "--preset",
        "all",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    for name in gradus_lab::preset_names() {
        for file in gradus_lab::output::OUTPUT_FILES {
            assert!(dir.path().join(name).join(file).is_file(), "{name}/{file}");
        }
    }
}

#[test]
fn an_experiment_file_runs_into_out() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bowl.json");
    std::fs::write(
        &file,
        r#"{"problem": {"type": "himmelblau"}, "steps": 20,
            "runs": [{"name": "adam", "optimizer": {"type": "adam", "lr": 0.1}}]}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let (code, stdout, stderr) = gradus(&[
        "lab",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("# bowl"), "{stdout}");
    let traces: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("traces.json")).unwrap()).unwrap();
    assert_eq!(traces["runs"][0]["points"].as_array().unwrap().len(), 21);
}

#[test]
fn bad_input_exits_with_code_2_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"problem": {"type": "quadratic"}, "steps": 5,
            "runs": [{"name": "gd", "optimizer": {"type": "sgd", "lr": 0.1}, "clip": {"max_norn": 1}}]}"#,
    )
    .unwrap();
    let out = dir.path().join("never");
    let (code, _, stderr) = gradus(&[
        "lab",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("runs[0].clip"), "{stderr}");
    assert!(
        !out.exists(),
        "no folder for an experiment that fails to build"
    );

    let (code, _, stderr) = gradus(&["lab", "--preset", "ill-conditionning"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("did you mean `ill-conditioning`?"),
        "{stderr}"
    );

    let (code, _, stderr) = gradus(&["lab"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--preset"), "{stderr}");

    let (code, _, _) = gradus(&["lab", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(code, Some(2));

    // An output folder that cannot be created (a file is in the way).
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let out = blocker.join("sub");
    let (code, _, stderr) = gradus(&["lab", "--preset", "saddle", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn list_shows_problems_and_presets() {
    let (code, stdout, _) = gradus(&["lab", "--list"]);
    assert_eq!(code, Some(0));
    for name in [
        "quadratic",
        "least_squares",
        "cliff",
        "ill-conditioning",
        "modern",
    ] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
}
