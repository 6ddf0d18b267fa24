//! `cargo xtask pages`: the run folder's `report.html` and `compare.html` checked in a real
//! browser (Debian's Chromium, headless) and screenshotted into `docs/images/`.
//!
//! It trains two small runs with the debug binary, compares them, then for each page asks
//! Chromium for the DOM it built (`--dump-dom`: the page parsed, its tables and inline SVG plots
//! are there) and a screenshot.

use std::path::Path;

use xshell::{cmd, Shell};

/// The flags that keep a headless Chromium quiet on a machine without network or GPU.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// What a page's DOM must hold: `(what, substring)`.
fn expectations(page: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![("an inline SVG plot", "<svg".to_string())];
    if page == "report.html" {
        for id in [
            "results",
            "epochs",
            "model",
            "pipeline",
            "plot-loss",
            "plot-lr",
            "plot-grad_norm",
        ] {
            out.push(("a section", format!("id=\"{id}\"")));
        }
    } else {
        for id in ["runs", "plot-compare_loss"] {
            out.push(("a section", format!("id=\"{id}\"")));
        }
    }
    out
}

/// Runs the check; screenshots go to `docs/images/{report,compare}.png`.
pub fn run(sh: &Shell, root: &Path) -> Result<(), String> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| cmd!(sh, "which {c}").quiet().ignore_stdout().run().is_ok())
        .ok_or(
            "no Chromium found: install Debian's `chromium` package (apt-get install chromium)",
        )?;
    let work = root.join("target/gradus-pages");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    cmd!(sh, "cargo build --locked -p gradus-runner --bin gradus")
        .run()
        .map_err(|e| e.to_string())?;
    let gradus = root.join("target/debug/gradus");
    let (a, b, compared) = (work.join("adam"), work.join("sgd"), work.join("compare"));
    let sgd = root.join("examples/pipelines/optimizers/digits-sgd.json");
    cmd!(sh, "{gradus} run --out {a} --quiet")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "{gradus} run {sgd} --out {b} --quiet")
        .run()
        .map_err(|e| e.to_string())?;
    cmd!(sh, "{gradus} compare {a} {b} --out {compared}")
        .run()
        .map_err(|e| e.to_string())?;
    let images = root.join("docs/images");
    std::fs::create_dir_all(&images).map_err(|e| e.to_string())?;
    for (page, file) in [
        ("report.html", a.join("report.html")),
        ("compare.html", compared.join("compare.html")),
    ] {
        let url = format!("file://{}", file.display());
        let profile = work.join(format!("profile-{page}"));
        let profile_flag = format!("--user-data-dir={}", profile.display());
        let flags = CHROMIUM_FLAGS;
        let dom = cmd!(sh, "{chromium} {flags...} {profile_flag} --dump-dom {url}")
            .ignore_stderr()
            .read()
            .map_err(|e| e.to_string())?;
        for (what, needle) in expectations(page) {
            if !dom.contains(&needle) {
                return Err(format!(
                    "{page}: the browser's DOM has no {what} (`{needle}`)"
                ));
            }
        }
        let shot = images.join(page.replace(".html", ".png"));
        let shot_flag = format!("--screenshot={}", shot.display());
        let size = if page == "report.html" {
            "--window-size=1200,1800"
        } else {
            "--window-size=1200,720"
        };
        cmd!(
            sh,
            "{chromium} {flags...} {profile_flag} {size} {shot_flag} {url}"
        )
        .ignore_stderr()
        .run()
        .map_err(|e| e.to_string())?;
        println!(
            "{page}: rendered by {chromium}, screenshot {}",
            shot.display()
        );
    }
    Ok(())
}
