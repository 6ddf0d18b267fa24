//! What a run shows while it trains: a progress bar and one line per epoch on stderr, or with
//! `--json` one JSON object per event on stdout; `--quiet` shows neither (the results still go
//! to stdout, printed by the command line).

use std::io::IsTerminal;

use serde_json::{json, Value};

use crate::metrics::EpochMetrics;

/// How a run reports its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Console {
    /// Progress bar and epoch lines off.
    pub quiet: bool,
    /// Events as JSON lines on stdout instead of text on stderr.
    pub json: bool,
}

impl Console {
    /// Text for the person watching (the model summary, "resuming ..."): stderr, unless quiet
    /// or JSON.
    pub fn info(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{text}");
        }
    }

    /// A warning: always on stderr (with JSON, also a `{"event": "warning"}` line on stdout).
    pub fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
        self.event("warning", json!({ "message": text }));
    }

    /// With `--json`, prints `{"event": name, ...fields}` as one line on stdout.
    pub fn event(&self, name: &str, fields: Value) {
        if self.json {
            println!("{}", event_line(name, fields));
        }
    }

    /// The progress display of one epoch of `batches` batches.
    pub fn epoch(&self, batches: usize, epoch: usize, epochs: usize) -> Progress {
        let show_bar = !self.quiet && !self.json && std::io::stderr().is_terminal();
        let bar = show_bar.then(|| {
            let bar = indicatif::ProgressBar::new(batches as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar
        });
        Progress {
            bar,
            console: *self,
            epochs,
        }
    }
}

/// `{"event": name, ...fields}` as one line of JSON.
pub fn event_line(name: &str, fields: Value) -> String {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), Value::String(name.into()));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object).to_string()
}

/// The progress of one epoch: a bar on a terminal, else nothing until the epoch's line.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    console: Console,
    epochs: usize,
}

impl Progress {
    /// One more batch done, with the running mean loss and accuracy.
    pub fn tick(&self, loss: f64, accuracy: Option<f64>, lr: f64) {
        if let Some(bar) = &self.bar {
            let acc = accuracy.map(|a| format!(" acc {a:.3}")).unwrap_or_default();
            bar.set_message(format!("loss {loss:.4}{acc} lr {lr:.3e}"));
            bar.inc(1);
        }
    }

    /// Ends the epoch with its metrics: the bar's final message, the epoch line, or the
    /// `epoch` event.
    pub fn finish(self, record: &EpochMetrics) {
        let line = epoch_line(record, self.epochs);
        self.end(&line);
        let fields = serde_json::to_value(record).unwrap_or(Value::Null);
        self.console.event("epoch", fields);
    }

    /// Ends the epoch early (`interrupted`, `stopped: non-finite loss`).
    pub fn abandon(self, why: &str) {
        self.end(why);
    }

    fn end(&self, line: &str) {
        match &self.bar {
            // The bar already shows `epoch i/n`: only the rest of the line.
            Some(bar) => {
                let rest = line.strip_prefix("epoch ").and_then(|r| r.split_once(' '));
                bar.finish_with_message(rest.map_or(line, |(_, rest)| rest).to_string())
            }
            None => self.console.info(line),
        }
    }
}

/// `epoch 3/10 train_loss 0.1234 train_acc 0.9600 val_loss ... lr 1.000e-3 (0.52s)`.
pub fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let mut line = format!("epoch {}/{epochs} train_loss {:.4}", m.epoch, m.train_loss);
    if let Some(a) = m.train_accuracy {
        line.push_str(&format!(" train_acc {a:.4}"));
    }
    if let Some(v) = m.val_loss {
        line.push_str(&format!(" val_loss {v:.4}"));
    }
    if let Some(a) = m.val_accuracy {
        line.push_str(&format!(" val_acc {a:.4}"));
    }
    line.push_str(&format!(" lr {:.3e} ({:.2}s)", m.lr, m.seconds));
    if let Some(w) = &m.weights {
        line.push_str(&format!(" [evaluated: {w} weights]"));
    }
    line
}

/// An error as `--json` prints it: `{"error": {"path": ..., "message": ...}}`, `path` the JSON
/// path or file it names (`null` when it names none), `message` the whole error with its
/// cause chain.
pub fn error_json(err: &gradus_core::Error) -> Value {
    use gradus_core::Error;
    let path = match err {
        Error::Config { path, .. }
        | Error::UnknownField { path, .. }
        | Error::UnknownName { path, .. } => Some(path.clone()),
        Error::CorruptFile { path, .. } | Error::Io { path, .. } => {
            Some(path.display().to_string())
        }
        _ => None,
    };
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!("; caused by: {cause}"));
        source = cause.source();
    }
    json!({ "error": { "path": path, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_line_holding_the_event_name_and_the_fields() {
        let line = event_line("epoch", json!({"epoch": 1, "train_loss": 0.5}));
        assert!(!line.contains('\n'));
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            json!({"event": "epoch", "epoch": 1, "train_loss": 0.5})
        );
    }

    #[test]
    fn errors_carry_their_path() {
        let err = gradus_core::Error::config("optimizer.lr", "must be > 0");
        let value = error_json(&err);
        assert_eq!(value["error"]["path"], "optimizer.lr");
        assert!(value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be > 0"));
        let value = error_json(&gradus_core::Error::Unsupported("x".into()));
        assert!(value["error"]["path"].is_null());
    }
}
