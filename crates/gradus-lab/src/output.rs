//! The output folder of an experiment: `traces.json`, `summary.md`, `paths`, `loss` and
//! `steps` figures (SVG and PNG).

use std::path::{Path, PathBuf};

use gradus_core::{Error, Result};

use crate::experiment::Experiment;
use crate::plot::curves::CurveFigure;
use crate::plot::paths::PathsFigure;
use crate::plot::write_figure;
use crate::run::{run_experiment, Traces};
use crate::summary::{render_markdown, summarize, RunSummary};

/// The file names written into an experiment's folder.
pub const OUTPUT_FILES: [&str; 8] = [
    "paths.svg",
    "paths.png",
    "loss.svg",
    "loss.png",
    "steps.svg",
    "steps.png",
    "traces.json",
    "summary.md",
];

/// What a finished experiment wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// The folder.
    pub dir: PathBuf,
    /// The traces written to `traces.json`.
    pub traces: Traces,
    /// One summary per run.
    pub summaries: Vec<RunSummary>,
    /// The text of `summary.md`.
    pub markdown: String,
}

/// Runs `experiment` and writes its folder `dir` (created if missing).
pub fn run_to_folder(experiment: &Experiment, dir: &Path) -> Result<Report> {
    let traces = run_experiment(experiment)?;
    write_folder(experiment, traces, dir)
}

/// Writes the folder of an experiment whose traces are computed.
pub fn write_folder(experiment: &Experiment, traces: Traces, dir: &Path) -> Result<Report> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let summaries = summarize(experiment, &traces.runs);
    let markdown = render_markdown(experiment, &summaries);
    let json = serde_json::to_string(&traces)
        .map_err(|e| Error::Unsupported(format!("cannot serialize the traces: {e}")))?;
    gradus_core::state_dict::write_atomically(&dir.join("traces.json"), json.as_bytes())?;
    gradus_core::state_dict::write_atomically(&dir.join("summary.md"), markdown.as_bytes())?;
    let problem = experiment.problem.as_ref();
    let paths = PathsFigure {
        title: &experiment.title,
        problem,
        view: experiment.view,
        start: experiment.start,
        traces: &traces.runs,
        summaries: &summaries,
    };
    write_figure(dir, "paths", &paths)?;
    let loss = CurveFigure::loss(
        &experiment.title,
        problem,
        &experiment.view,
        &traces.runs,
        &summaries,
    );
    write_figure(dir, "loss", &loss)?;
    let steps = CurveFigure::steps(&experiment.title, &traces.runs, &summaries);
    write_figure(dir, "steps", &steps)?;
    Ok(Report {
        dir: dir.to_path_buf(),
        traces,
        summaries,
        markdown,
    })
}
