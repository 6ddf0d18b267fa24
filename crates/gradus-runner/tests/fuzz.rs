//! The pipeline fuzzer in CI: a thousand mutated example pipelines through `gradus validate`
//! (and a short `gradus run` of what it accepts, for the first few hundred) with a pinned seed,
//! none of which may panic, abort, hang, or pass validate and then fail run. `cargo xtask fuzz N`
//! runs longer campaigns on the release binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gradus_runner::fuzz::{load_bases, run, Campaign, Outcome, Tally};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pipelines")
}

fn campaign(exe: PathBuf, cases: usize, seed: u64, run_valid: bool, dir: &Path) -> Campaign {
    Campaign {
        exe,
        bases: load_bases(&examples()).unwrap(),
        cases,
        seed,
        timeout: Duration::from_secs(120),
        memory_limit: 4 << 30,
        jobs: 2,
        run_valid,
        run_epochs: 1,
        work_dir: dir.to_path_buf(),
    }
}

fn assert_clean(tally: &Tally) {
    assert_eq!(
        tally.failure_count(),
        0,
        "{} failing cases: {:#?}",
        tally.failure_count(),
        tally.failures
    );
}

#[test]
fn a_thousand_mutated_pipelines_never_panic_abort_or_hang() {
    let dir = tempfile::tempdir().unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_gradus"));
    let tally = run(&campaign(exe, 1000, 11, false, dir.path())).unwrap();
    assert_eq!(tally.cases, 1000);
    // The mutations reach past parsing: some pipelines stay valid, most are rejected.
    assert!(tally.valid > 20 && tally.rejected > 500, "{tally:?}");
    assert_clean(&tally);
}

#[test]
fn what_validate_accepts_run_trains() {
    let dir = tempfile::tempdir().unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_gradus"));
    let tally = run(&campaign(exe, 200, 12, true, dir.path())).unwrap();
    assert!(tally.runs > 5, "{tally:?}");
    assert_clean(&tally);
}

/// A stand-in for `gradus` that behaves as the fuzzer must catch, by the case it is given.
#[cfg(unix)]
fn misbehaving_binary(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-gradus");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[cfg(unix)]
#[test]
fn panics_aborts_timeouts_and_disagreements_are_counted() {
    let cases: [(&str, Outcome); 5] = [
        ("exit 101", Outcome::Panic),
        ("kill -ABRT $$", Outcome::Abort),
        ("sleep 5", Outcome::Timeout),
        ("exit 1", Outcome::UnexpectedExit),
        // validate accepts, run fails.
        (
            "[ \"$1\" = validate ] && exit 0; exit 1",
            Outcome::RunDisagrees,
        ),
    ];
    for (body, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let exe = misbehaving_binary(dir.path(), body);
        let mut c = campaign(exe, 3, 1, true, dir.path());
        c.timeout = Duration::from_millis(500);
        let tally = run(&c).unwrap();
        assert_eq!(tally.failure_count(), 3, "{body}: {tally:?}");
        assert!(
            tally
                .failures
                .iter()
                .all(|f| f.outcome == expected && f.file.exists()),
            "{body}: {:?}",
            tally.failures
        );
    }
}
