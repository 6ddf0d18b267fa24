//! `report.html` of a run folder and `compare.html` of `gradus compare`: one self-contained page
//! each (inline CSS and inline SVG plots; no script, no network), to look at in any browser.

use std::path::Path;

use gradus_core::{Error, Result};

use crate::compare::CompareRow;
use crate::metrics::EpochMetrics;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;\
margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;\
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}\
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.8rem}\
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}\
.plots svg{width:540px;height:auto;border:1px solid #eee}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// The `<svg>` element of a plot file written by the plots module, without its XML prolog,
/// so that it can sit inline in a page; `None` when the file does not exist.
pub fn inline_svg(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let start = text.find("<svg").ok_or_else(|| Error::CorruptFile {
        path: path.to_path_buf(),
        message: "no <svg> element".into(),
    })?;
    Ok(Some(text[start..].trim_end().to_string()))
}

fn plots_section(svgs: &[(String, String)]) -> String {
    let mut out = String::from("<h2>Plots</h2>\n<div class=\"plots\">\n");
    for (name, svg) in svgs {
        out.push_str(&format!(
            "<figure id=\"plot-{}\">{svg}<figcaption>{}</figcaption></figure>\n",
            escape(name),
            escape(name)
        ));
    }
    out.push_str("</div>\n");
    out
}

fn number(v: f64) -> String {
    if v.is_finite() {
        let a = v.abs();
        if a != 0.0 && !(1e-3..1e5).contains(&a) {
            format!("{v:.4e}")
        } else {
            format!("{v:.4}")
        }
    } else {
        format!("{v}")
    }
}

fn optional(v: Option<f64>) -> String {
    v.map(number).unwrap_or_default()
}

fn epoch_table(metrics: &[EpochMetrics]) -> String {
    let mut out = String::from(
        "<h2>Epochs</h2>\n<table id=\"epochs\">\n<tr><th>epoch</th><th>train loss</th>\
         <th>train acc</th><th>val loss</th><th>val acc</th><th>lr</th><th>grad norm</th>\
         <th>penalty</th><th>skipped</th><th>seconds</th></tr>\n",
    );
    for m in metrics {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.2}</td></tr>\n",
            m.epoch,
            number(m.train_loss),
            optional(m.train_accuracy),
            optional(m.val_loss),
            optional(m.val_accuracy),
            number(m.lr),
            number(m.grad_norm),
            number(m.penalty),
            m.skipped_steps,
            m.seconds
        ));
    }
    out.push_str("</table>\n");
    out
}

/// What [`run_report`] shows.
pub struct RunPage<'a> {
    /// The run's name.
    pub title: &'a str,
    /// The resolved pipeline.
    pub pipeline: &'a serde_json::Value,
    /// The model summary (one line per layer).
    pub model_summary: &'a str,
    /// Per-epoch records.
    pub metrics: &'a [EpochMetrics],
    /// `report.json` as JSON (final metrics).
    pub report: &'a serde_json::Value,
    /// The run's plots: `(name, <svg> element)`.
    pub plots: &'a [(String, String)],
}

/// The run's `report.html`: final metrics, plots, per-epoch table, model and pipeline.
pub fn run_report(page_data: &RunPage) -> String {
    let mut body = format!("<h1>{}</h1>\n", escape(page_data.title));
    body.push_str("<h2>Results</h2>\n<dl id=\"results\">\n");
    if let Some(map) = page_data.report.as_object() {
        for (key, value) in map {
            if key == "timing" {
                continue;
            }
            let shown = match value {
                serde_json::Value::Number(n) if n.is_f64() => {
                    n.as_f64().map(number).unwrap_or_default()
                }
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "—".into(),
                other => other.to_string(),
            };
            body.push_str(&format!(
                "<dt>{}</dt><dd>{}</dd>\n",
                escape(key),
                escape(&shown)
            ));
        }
    }
    body.push_str("</dl>\n");
    body.push_str(&plots_section(page_data.plots));
    body.push_str(&epoch_table(page_data.metrics));
    body.push_str(&format!(
        "<h2>Model</h2>\n<pre id=\"model\">{}</pre>\n",
        escape(page_data.model_summary.trim_end())
    ));
    let pipeline = serde_json::to_string_pretty(page_data.pipeline).unwrap_or_default();
    body.push_str(&format!(
        "<h2>Pipeline</h2>\n<pre id=\"pipeline\">{}</pre>\n",
        escape(&pipeline)
    ));
    page(page_data.title, &body)
}

/// `compare.html`: the comparison table and the overlaid plots.
pub fn compare_report(rows: &[CompareRow], plots: &[(String, String)]) -> String {
    let mut body = String::from("<h1>gradus compare</h1>\n<h2>Runs</h2>\n<table id=\"runs\">\n");
    body.push_str(
        "<tr><th class=\"l\">run</th><th class=\"l\">optimizer</th><th>epochs</th>\
         <th>best epoch</th><th>train loss</th><th>val loss</th><th>val acc</th>\
         <th>test loss</th><th>test acc</th><th>seconds</th><th>samples/s</th>\
         <th class=\"l\">stopped because</th></tr>\n",
    );
    for r in rows {
        body.push_str(&format!(
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"l\">{}</td></tr>\n",
            escape(&r.label),
            escape(r.optimizer.as_deref().unwrap_or("")),
            r.epochs,
            r.best_epoch.map(|e| e.to_string()).unwrap_or_default(),
            number(r.final_train_loss),
            optional(r.final_val_loss),
            optional(r.final_val_accuracy),
            optional(r.test_loss),
            optional(r.test_accuracy),
            r.wall_seconds
                .map(|s| format!("{s:.1}"))
                .unwrap_or_default(),
            r.samples_per_second
                .map(|s| format!("{s:.0}"))
                .unwrap_or_default(),
            escape(r.stopped_because.as_deref().unwrap_or(""))
        ));
    }
    body.push_str("</table>\n");
    body.push_str(&plots_section(plots));
    page("gradus compare", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn numbers_are_readable_and_non_finite_values_are_shown() {
        assert_eq!(number(0.5), "0.5000");
        assert_eq!(number(3e-5), "3.0000e-5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "inf");
    }
}
