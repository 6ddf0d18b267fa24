//! `gradus lab`: run an optimizer-lab experiment or a preset of the lecture's figures into a
//! folder (see `docs/lab.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gradus_core::{Error, Result};
use gradus_lab::presets::preset_names;
use gradus_lab::{run_to_folder, Experiment};

use crate::run::Failure;

/// Where outputs go without `--out`: `runs/lab/<name>` (`runs/lab` for `--preset all`).
const DEFAULT_ROOT: &str = "runs/lab";

/// What `gradus lab` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct LabArgs {
    /// The experiment file.
    pub experiment: Option<PathBuf>,
    /// A preset name, or `all`.
    pub preset: Option<String>,
    /// The output folder.
    pub out: Option<PathBuf>,
    /// List problems and presets instead of running.
    pub list: bool,
}

/// Runs `gradus lab`; returns the text to print.
pub fn lab(args: LabArgs) -> std::result::Result<String, Failure> {
    if args.list {
        return catalogue().map_err(Failure::BadInput);
    }
    match (&args.experiment, args.preset.as_deref()) {
        (Some(path), None) => {
            let experiment = load_file(path).map_err(Failure::BadInput)?;
            let stem = path
                .file_stem()
                .map_or("experiment".into(), |s| s.to_string_lossy().into_owned());
            let dir = args
                .out
                .unwrap_or_else(|| Path::new(DEFAULT_ROOT).join(stem));
            run_one(&experiment, &dir)
        }
        (None, Some("all")) => {
            let root = args.out.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
            let mut text = String::new();
            for name in preset_names() {
                let experiment = gradus_lab::preset(name).map_err(Failure::BadInput)?;
                let _ = writeln!(text, "{}", run_one(&experiment, &root.join(name))?);
            }
            Ok(text.trim_end().to_string())
        }
        (None, Some(name)) => {
            let experiment = gradus_lab::preset(name).map_err(Failure::BadInput)?;
            let dir = args
                .out
                .unwrap_or_else(|| Path::new(DEFAULT_ROOT).join(name));
            run_one(&experiment, &dir)
        }
        _ => Err(Failure::BadInput(Error::config(
            "<command line>",
            format!(
                "give an experiment file or --preset NAME (one of: {}, all), not both",
                preset_names().join(", ")
            ),
        ))),
    }
}

fn load_file(path: &Path) -> Result<Experiment> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let stem = path
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    Experiment::from_text(&text, &stem)
}

/// Runs `experiment` into `dir`; an output folder that cannot be created is bad input.
fn run_one(experiment: &Experiment, dir: &Path) -> std::result::Result<String, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::BadInput(Error::io(dir, e)))?;
    let report = run_to_folder(experiment, dir).map_err(Failure::Runtime)?;
    Ok(format!(
        "{}\nlab folder: {}\n",
        report.markdown.trim_end(),
        dir.display()
    ))
}

fn catalogue() -> Result<String> {
    let mut out = String::from("problems:\n");
    for entry in gradus_lab::problem::entries()? {
        let defaults = serde_json::to_string(&(entry.default_config)()).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<14} {}  defaults {defaults}",
            entry.name, entry.summary
        );
    }
    let _ = writeln!(out, "presets: {}, all", preset_names().join(", "));
    Ok(out.trim_end().to_string())
}
