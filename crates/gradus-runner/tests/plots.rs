//! Run-folder plots and `gradus compare` on synthetic metrics.

use std::path::{Path, PathBuf};

use gradus_core::Error;
use gradus_runner::compare::compare;
use gradus_runner::metrics::{self, EpochMetrics};
use gradus_runner::plots::{write_plots, PLOT_SIZE};

fn epoch(epoch: usize, loss: f64, acc: Option<f64>, with_val: bool) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: loss,
        train_accuracy: acc,
        val_loss: with_val.then_some(loss * 1.1),
        val_accuracy: if with_val {
            acc.map(|a| a * 0.95)
        } else {
            None
        },
        lr: 1e-3,
        grad_norm: 1.0,
        penalty: 0.0,
        skipped_steps: 0,
        seconds: 0.1,
        weights: None,
    }
}

fn classification(n: usize, start: f64) -> Vec<EpochMetrics> {
    (1..=n)
        .map(|e| epoch(e, start / e as f64, Some(1.0 - 0.5 / e as f64), true))
        .collect()
}

fn regression(n: usize) -> Vec<EpochMetrics> {
    (1..=n)
        .map(|e| epoch(e, 3.0 / e as f64, None, true))
        .collect()
}

/// Decodes a PNG file and returns its (width, height).
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    // Not a blank image: the curves and text left non-white pixels.
    assert!(buf.iter().any(|&b| b < 128), "{} is blank", path.display());
    (info.width, info.height)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn classification_run_gets_loss_accuracy_lr_and_grad_norm_plots() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_plots(dir.path(), &classification(5, 2.0), "digits-adam").unwrap();
    assert_eq!(written, ["loss", "accuracy", "lr", "grad_norm"]);
    for stem in written {
        assert_eq!(png_size(&dir.path().join(format!("{stem}.png"))), PLOT_SIZE);
    }
    let loss = read(&dir.path().join("loss.svg"));
    assert!(loss.starts_with("<svg"));
    assert!(loss.contains("train loss") && loss.contains("val loss"));
    assert!(loss.contains("digits-adam: loss"));
    let acc = read(&dir.path().join("accuracy.svg"));
    assert!(acc.contains("train accuracy") && acc.contains("val accuracy"));
    assert!(read(&dir.path().join("lr.svg")).contains("digits-adam: learning rate"));
    assert!(read(&dir.path().join("grad_norm.svg")).contains("before clipping"));
    // Atomic writes leave no temporary files behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
}

#[test]
fn regression_run_gets_no_accuracy_plot() {
    let dir = tempfile::tempdir().unwrap();
    write_plots(dir.path(), &regression(4), "").unwrap();
    assert_eq!(png_size(&dir.path().join("loss.png")), PLOT_SIZE);
    assert!(read(&dir.path().join("loss.svg")).contains("val loss"));
    assert!(!dir.path().join("accuracy.svg").exists());
    assert!(!dir.path().join("accuracy.png").exists());
}

#[test]
fn one_epoch_and_no_validation_are_plotted() {
    let dir = tempfile::tempdir().unwrap();
    write_plots(dir.path(), &[epoch(1, 0.7, Some(0.6), false)], "one").unwrap();
    let loss = read(&dir.path().join("loss.svg"));
    assert!(loss.contains("train loss") && !loss.contains("val loss"));
    assert_eq!(png_size(&dir.path().join("accuracy.png")), PLOT_SIZE);
}

#[test]
fn non_finite_values_are_skipped_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = classification(6, 2.0);
    m[1].train_loss = f64::NAN;
    m[2].val_loss = Some(f64::INFINITY);
    m[3].train_loss = f64::NEG_INFINITY;
    m[4].val_accuracy = Some(f64::NAN);
    m[5].train_loss = 1e300;
    write_plots(dir.path(), &m, "nan").unwrap();
    assert_eq!(png_size(&dir.path().join("loss.png")), PLOT_SIZE);

    // Every value non-finite: the plot is still drawn (empty, with its legend).
    let all_nan: Vec<_> = (1..=3)
        .map(|e| epoch(e, f64::NAN, Some(f64::NAN), true))
        .collect();
    write_plots(dir.path(), &all_nan, "all nan").unwrap();
    assert!(read(&dir.path().join("loss.svg")).contains("train loss"));
}

#[test]
fn empty_metrics_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_plots(dir.path(), &[], "x").unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A run folder as the runner leaves it (metrics, optionally report.json and pipeline.json).
fn run_folder(root: &Path, name: &str, m: &[EpochMetrics], optimizer: Option<&str>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    metrics::write_all(&dir, m).unwrap();
    if let Some(opt) = optimizer {
        let pipeline = serde_json::json!({"seed": 1, "optimizer": {"type": opt, "lr": 0.1}});
        std::fs::write(dir.join("pipeline.json"), pipeline.to_string()).unwrap();
        let report = serde_json::json!({
            "test_accuracy": 0.9731, "test_loss": 0.11, "best_epoch": 3, "epochs_run": m.len(),
            "stopped_because": "max_epochs", "wall_seconds": 12.34, "samples_per_second": 5000.0
        });
        std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    }
    dir
}

#[test]
fn compare_two_runs_writes_table_and_plots() {
    let root = tempfile::tempdir().unwrap();
    let a = run_folder(
        root.path(),
        "digits-adam",
        &classification(4, 2.0),
        Some("adam"),
    );
    let b = run_folder(root.path(), "digits-sgd", &classification(3, 3.0), None);
    let out = root.path().join("cmp");
    let report = compare(&[a, b], &out).unwrap();

    assert_eq!(report.rows.len(), 2);
    assert_eq!(report.rows[0].label, "adam");
    assert_eq!(report.rows[0].optimizer.as_deref(), Some("adam"));
    assert_eq!(report.rows[0].best_epoch, Some(3));
    assert_eq!(report.rows[0].test_accuracy, Some(0.9731));
    assert_eq!(report.rows[1].label, "digits-sgd");
    assert_eq!(report.rows[1].epochs, 3);
    assert_eq!(report.rows[1].final_train_loss, 1.0);
    assert!(report.table.contains("digits-adam") && report.table.contains("digits-sgd"));
    assert!(report.table.contains("97.31%") && report.table.contains("12.3"));
    assert_eq!(report.table.lines().count(), 4);

    for f in [
        "compare_loss.svg",
        "compare_loss.png",
        "compare_accuracy.svg",
        "compare_accuracy.png",
        "compare.md",
        "compare.json",
    ] {
        assert!(
            report.files.contains(&out.join(f)),
            "{f} missing from {:?}",
            report.files
        );
    }
    assert_eq!(png_size(&out.join("compare_loss.png")), PLOT_SIZE);
    assert_eq!(png_size(&out.join("compare_accuracy.png")), PLOT_SIZE);
    let svg = read(&out.join("compare_loss.svg"));
    for name in [
        "adam train",
        "adam val",
        "digits-sgd train",
        "digits-sgd val",
    ] {
        assert!(svg.contains(name), "{name} missing from compare_loss.svg");
    }
    assert!(read(&out.join("compare.md")).contains(&report.table));
    let json: serde_json::Value = serde_json::from_str(&read(&out.join("compare.json"))).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    assert_eq!(json["runs"][1]["run"], "digits-sgd");
}

#[test]
fn compare_regression_runs_skips_accuracy() {
    let root = tempfile::tempdir().unwrap();
    let a = run_folder(root.path(), "a", &regression(3), Some("sgd"));
    let b = run_folder(root.path(), "b", &regression(5), Some("sgd"));
    let report = compare(&[a, b], root.path()).unwrap();
    let labels: Vec<_> = report.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["sgd (a)", "sgd (b)"]);
    assert!(report.table.contains("| -"));
    assert!(!root.path().join("compare_accuracy.svg").exists());
    assert!(root.path().join("compare_loss.png").exists());
}

#[test]
fn compare_names_the_missing_or_corrupt_run() {
    let root = tempfile::tempdir().unwrap();
    let good = run_folder(root.path(), "good", &regression(2), None);
    let missing = root.path().join("no-such-run");
    let err = compare(&[good.clone(), missing.clone()], root.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );

    let corrupt = root.path().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("metrics.jsonl"), "{\"epoch\": 1, oops\n").unwrap();
    let err = compare(&[good.clone(), corrupt.clone()], root.path()).unwrap_err();
    assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    assert!(
        err.to_string().contains(&*corrupt.to_string_lossy()),
        "{err}"
    );

    let no_metrics = root.path().join("empty-folder");
    std::fs::create_dir_all(&no_metrics).unwrap();
    let err = compare(std::slice::from_ref(&no_metrics), root.path()).unwrap_err();
    assert!(
        err.to_string().contains(&*no_metrics.to_string_lossy()),
        "{err}"
    );

    std::fs::write(no_metrics.join("metrics.jsonl"), "\n").unwrap();
    let err = compare(std::slice::from_ref(&no_metrics), root.path()).unwrap_err();
    assert!(err.to_string().contains("no epochs recorded"), "{err}");

    std::fs::write(good.join("report.json"), "not json").unwrap();
    let err = compare(std::slice::from_ref(&good), root.path()).unwrap_err();
    assert!(err.to_string().contains("report.json"), "{err}");

    assert!(matches!(
        compare(&[], root.path()),
        Err(Error::Config { .. })
    ));
    assert!(!root.path().join("compare.md").exists());
}
