//! `gradus compare`: overlays the curves of several run folders and tabulates their final
//! metrics, e.g. one pipeline per optimizer family trained on the same data and seed.
//!
//! Reads each run's `metrics.jsonl` (required), `report.json` and `pipeline.json` (both
//! optional), and writes into the output folder `compare_loss.svg`/`.png`,
//! `compare_accuracy.svg`/`.png` (when any run has an accuracy), `compare.md`,
//! `compare.json` and `compare.html` (the table and the plots inline, one self-contained page).

use std::path::{Path, PathBuf};

use gradus_core::{Error, Result};
use plotters::prelude::SeriesLabelPosition;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::{self, EpochMetrics};
use crate::plots::{write_chart, Chart, Series, PALETTE};

/// Final metrics of one run folder, a row of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// The run folder as given.
    pub dir: PathBuf,
    /// Short name of the run: the folder's last component.
    pub run: String,
    /// Legend label: the optimizer type, else the folder name (the folder name is appended
    /// when two runs would otherwise share a label).
    pub label: String,
    /// `optimizer.type` from `pipeline.json`, when present.
    pub optimizer: Option<String>,
    /// Epochs run: `epochs_run` from `report.json`, else the number of metric records.
    pub epochs: usize,
    /// `best_epoch` from `report.json`.
    pub best_epoch: Option<usize>,
    /// Training loss of the last recorded epoch.
    pub final_train_loss: f64,
    /// Validation loss of the last recorded epoch.
    pub final_val_loss: Option<f64>,
    /// Validation accuracy of the last recorded epoch.
    pub final_val_accuracy: Option<f64>,
    /// `test_loss` from `report.json`.
    pub test_loss: Option<f64>,
    /// `test_accuracy` from `report.json`.
    pub test_accuracy: Option<f64>,
    /// `stopped_because` from `report.json`.
    pub stopped_because: Option<String>,
    /// `wall_seconds` from `report.json`.
    pub wall_seconds: Option<f64>,
    /// `samples_per_second` from `report.json`.
    pub samples_per_second: Option<f64>,
}

/// What [`compare`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// One row per run, in the order given.
    pub rows: Vec<CompareRow>,
    /// The table rendered as markdown (also the body of `compare.md`).
    pub table: String,
    /// Every file written, in writing order.
    pub files: Vec<PathBuf>,
}

/// Compares the run folders `runs`: writes the overlaid curves (training dashed, validation
/// solid, one color per run), `compare.md` and `compare.json` into `out_dir` (created when
/// missing) and returns the table.
///
/// # Errors
/// [`Error::Config`] when `runs` is empty; [`Error::Io`] naming the folder when a run folder
/// does not exist, or naming `metrics.jsonl` when it is missing; [`Error::CorruptFile`]
/// naming the file when `metrics.jsonl` is empty or unparsable, or when `report.json` or
/// `pipeline.json` exists but is not JSON; [`Error::Io`] when an output cannot be written.
pub fn compare(runs: &[PathBuf], out_dir: &Path) -> Result<CompareReport> {
    if runs.is_empty() {
        return Err(Error::config("compare", "no run folders given"));
    }
    let loaded = runs
        .iter()
        .map(|dir| load_run(dir))
        .collect::<Result<Vec<_>>>()?;
    let mut rows: Vec<CompareRow> = loaded.iter().map(|(row, _)| row.clone()).collect();
    disambiguate_labels(&mut rows);

    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut files = Vec::new();
    let curves = |pick: fn(&EpochMetrics) -> Option<f64>, val: fn(&EpochMetrics) -> Option<f64>| {
        let mut series = Vec::new();
        for (i, (row, m)) in rows.iter().zip(loaded.iter().map(|(_, m)| m)).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            for (which, f, dashed) in [("train", pick, true), ("val", val, false)] {
                if m.iter().any(|e| f(e).is_some()) {
                    series.push(Series {
                        label: format!("{} {which}", row.label),
                        points: m
                            .iter()
                            .map(|e| (e.epoch, f(e).unwrap_or(f64::NAN)))
                            .collect(),
                        color,
                        dashed,
                    });
                }
            }
        }
        series
    };

    let loss = Chart {
        caption: "loss".into(),
        y_desc: "loss",
        series: curves(|e| Some(e.train_loss), |e| e.val_loss),
        legend: SeriesLabelPosition::UpperRight,
    };
    files.extend(write_chart(out_dir, "compare_loss", &loss)?);
    let accuracy = curves(|e| e.train_accuracy, |e| e.val_accuracy);
    if !accuracy.is_empty() {
        let chart = Chart {
            caption: "accuracy".into(),
            y_desc: "accuracy",
            series: accuracy,
            legend: SeriesLabelPosition::LowerRight,
        };
        files.extend(write_chart(out_dir, "compare_accuracy", &chart)?);
    }

    let table = render_table(&rows);
    let md_path = out_dir.join("compare.md");
    let json_path = out_dir.join("compare.json");
    files.push(md_path.clone());
    files.push(json_path.clone());
    let mut md = String::from("# gradus compare\n\n");
    md.push_str(&table);
    md.push_str("\nTraining curves dashed, validation curves solid: ");
    let plots: Vec<String> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .filter_map(|p| {
            p.file_name()
                .map(|n| format!("[{0}]({0})", n.to_string_lossy()))
        })
        .collect();
    md.push_str(&plots.join(", "));
    md.push('\n');
    gradus_core::state_dict::write_atomically(&md_path, md.as_bytes())?;

    let mut report = CompareReport { rows, table, files };
    let json = serde_json::to_string_pretty(&serde_json::json!({ "runs": report.rows }))
        .map_err(|e| Error::io(&json_path, std::io::Error::other(e)))?;
    gradus_core::state_dict::write_atomically(&json_path, json.as_bytes())?;
    let html_path = out_dir.join("compare.html");
    let mut svgs = Vec::new();
    for svg in report
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
    {
        if let Some(element) = crate::html::inline_svg(svg)? {
            let name = svg.file_stem().map(|s| s.to_string_lossy().into_owned());
            svgs.push((name.unwrap_or_default(), element));
        }
    }
    let html = crate::html::compare_report(&report.rows, &svgs);
    gradus_core::state_dict::write_atomically(&html_path, html.as_bytes())?;
    report.files.push(html_path);

    Ok(report)
}

/// Reads one run folder into its table row and its metrics.
fn load_run(dir: &Path) -> Result<(CompareRow, Vec<EpochMetrics>)> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "run folder not found"),
        ));
    }
    let m = metrics::read_jsonl(dir)?;
    let Some(last) = m.last() else {
        return Err(Error::CorruptFile {
            path: dir.join("metrics.jsonl"),
            message: "no epochs recorded".into(),
        });
    };
    let report = read_optional_json(&dir.join("report.json"))?;
    let pipeline = read_optional_json(&dir.join("pipeline.json"))?;
    let num = |key: &str| {
        report
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(Value::as_f64)
    };
    let count = |key: &str| {
        report
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    };
    let optimizer = pipeline
        .as_ref()
        .and_then(|p| p.get("optimizer"))
        .and_then(|o| o.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let run = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let row = CompareRow {
        dir: dir.to_path_buf(),
        label: optimizer.clone().unwrap_or_else(|| run.clone()),
        run,
        optimizer,
        epochs: count("epochs_run").unwrap_or(m.len()),
        best_epoch: count("best_epoch"),
        final_train_loss: last.train_loss,
        final_val_loss: last.val_loss,
        final_val_accuracy: last.val_accuracy,
        test_loss: num("test_loss"),
        test_accuracy: num("test_accuracy"),
        stopped_because: report
            .as_ref()
            .and_then(|r| r.get("stopped_because"))
            .and_then(Value::as_str)
            .map(str::to_string),
        wall_seconds: num("wall_seconds"),
        samples_per_second: num("samples_per_second"),
    };
    Ok((row, m))
}

/// `None` when `path` does not exist; an error when it exists but is not JSON.
fn read_optional_json(path: &Path) -> Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::CorruptFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Two runs with the same optimizer get the folder name added to their label.
fn disambiguate_labels(rows: &mut [CompareRow]) {
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    for row in rows.iter_mut() {
        if labels.iter().filter(|l| **l == row.label).count() > 1 && row.label != row.run {
            row.label = format!("{} ({})", row.label, row.run);
        }
    }
}

fn fmt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn fmt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.2}%", x * 100.0))
}

/// The markdown table, columns padded to equal width so it also reads well in a terminal.
fn render_table(rows: &[CompareRow]) -> String {
    let header = [
        "run",
        "optimizer",
        "epochs",
        "best epoch",
        "final train loss",
        "final val loss",
        "val acc",
        "test acc",
        "wall s",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.run.clone(),
                r.optimizer.clone().unwrap_or_else(|| "-".into()),
                r.epochs.to_string(),
                r.best_epoch.map_or_else(|| "-".into(), |b| b.to_string()),
                fmt_f(Some(r.final_train_loss), 4),
                fmt_f(r.final_val_loss, 4),
                fmt_pct(r.final_val_accuracy),
                fmt_pct(r.test_accuracy),
                fmt_f(r.wall_seconds, 1),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: &mut dyn Iterator<Item = String>| {
        let padded: Vec<String> = items
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&mut header.iter().map(|s| s.to_string()));
    out.push_str(&line(&mut widths.iter().map(|w| "-".repeat(*w))));
    for row in cells {
        out.push_str(&line(&mut row.into_iter()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, optimizer: Option<&str>) -> CompareRow {
        CompareRow {
            dir: PathBuf::from(run),
            run: run.into(),
            label: optimizer.unwrap_or(run).into(),
            optimizer: optimizer.map(str::to_string),
            epochs: 3,
            best_epoch: None,
            final_train_loss: 0.5,
            final_val_loss: None,
            final_val_accuracy: Some(0.9),
            test_loss: None,
            test_accuracy: None,
            stopped_because: None,
            wall_seconds: None,
            samples_per_second: None,
        }
    }

    #[test]
    fn duplicate_labels_get_the_folder_name() {
        let mut rows = vec![
            row("a", Some("adam")),
            row("b", Some("adam")),
            row("c", None),
        ];
        disambiguate_labels(&mut rows);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["adam (a)", "adam (b)", "c"]);
    }

    #[test]
    fn table_is_aligned_and_marks_missing_values() {
        let table = render_table(&[row("long-run-name", Some("sgd")), row("b", None)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
        assert!(
            lines[2].contains("90.00%") && lines[3].contains("| -"),
            "{table}"
        );
    }
}
