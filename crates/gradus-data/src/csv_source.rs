//! A numeric CSV file as a classification or regression data set.

use std::path::{Path, PathBuf};

use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::data::{DataSource, Dataset};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::column::Column;
use crate::tensors;

/// Reads a CSV file of numbers: one sample per row, a `label` column and `features` columns.
///
/// Every feature cell must parse as a finite number (a non-numeric, empty or non-finite cell is
/// an error naming its row, file line and column). Features become `(N, F)` `f32` in the order
/// of `features`. With `task = "classification"` the label cells must be non-negative integers
/// (`3` or `3.0`), targets are `(N,)` `u32` and `num_classes = max(label) + 1`; with
/// `task = "regression"` targets are `(N, 1)` `f32`. Cells are trimmed of surrounding spaces;
/// quoting follows RFC 4180 (the `csv` crate).
#[derive(Debug, Clone)]
pub struct CsvSource {
    config: CsvConfig,
    /// JSON path of the config, named in column errors found when the file is read.
    at: String,
}

/// What the label column holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CsvTask {
    /// Class indices `0..num_classes`.
    #[default]
    Classification,
    /// Real values.
    Regression,
}

/// Configuration of [`CsvSource`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsvConfig {
    /// The file to read (required).
    pub path: PathBuf,
    /// Whether the first row names the columns. Default: `true` (as `pandas.read_csv`'s
    /// inferred header for a file whose first row is text).
    pub header: bool,
    /// Field separator, one ASCII character. Default: `","` (`pandas.read_csv` `sep`).
    pub delimiter: char,
    /// The label column, by header name or 0-based index (negative from the end).
    /// Default: `-1`, the last column.
    pub label: Column,
    /// The feature columns, by name or index, in the order wanted. Default: `null`, every
    /// column except the label, in file order.
    pub features: Option<Vec<Column>>,
    /// `"classification"` or `"regression"`. Default: `"classification"`.
    pub task: CsvTask,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            path: PathBuf::new(),
            header: true,
            delimiter: ',',
            label: Column::Index(-1),
            features: None,
            task: CsvTask::Classification,
        }
    }
}

impl CsvSource {
    /// Validates `config`; `path` is its JSON path, named in errors.
    pub fn new(config: CsvConfig, path: &str) -> Result<Self> {
        if config.path.as_os_str().is_empty() {
            return Err(Error::config(
                join_path(path, "path"),
                "a csv source needs a `path`",
            ));
        }
        if !config.delimiter.is_ascii() {
            return Err(Error::config(
                join_path(path, "delimiter"),
                format!(
                    "delimiter must be one ASCII character, got `{}`",
                    config.delimiter
                ),
            ));
        }
        Ok(CsvSource {
            config,
            at: path.to_string(),
        })
    }

    /// Reads the file.
    pub fn read(&self) -> Result<Dataset> {
        let cfg = &self.config;
        let file = &cfg.path;
        // Only a regular file, bounded in size, is read: a device such as /dev/zero, or a file
        // past the limit, would grow one record until allocation fails.
        let meta = std::fs::metadata(file).map_err(|e| Error::io(file, e))?;
        if !meta.is_file() {
            return Err(Error::config(
                "data.source.path",
                format!("{} is not a regular file", file.display()),
            ));
        }
        gradus_core::limits::data_bytes(&file.display().to_string(), "the CSV file", meta.len())?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(cfg.header)
            .delimiter(cfg.delimiter as u8)
            .trim(csv::Trim::All)
            .from_path(file)
            .map_err(|e| csv_error(file, e))?;
        let header: Option<Vec<String>> = if cfg.header {
            let names = reader.headers().map_err(|e| csv_error(file, e))?;
            Some(names.iter().map(str::to_string).collect())
        } else {
            None
        };
        let mut plan: Option<Plan> = None;
        let mut features = Vec::new();
        let mut targets = Vec::new();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| csv_error(file, e))?;
            let plan = match &mut plan {
                Some(plan) => plan,
                None => plan.insert(Plan::new(cfg, &self.at, header.as_deref(), record.len())?),
            };
            let line = record.position().map_or(0, |p| p.line());
            let cell = |col: usize| -> Result<f64> {
                let text = record.get(col).unwrap_or("");
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(Error::CorruptFile {
                        path: file.clone(),
                        message: format!(
                            "row {} (line {line}), column {}: `{text}` is not a finite number",
                            row + 1,
                            plan.describe(col)
                        ),
                    }),
                }
            };
            for &col in &plan.features {
                features.push(cell(col)? as f32);
            }
            let y = cell(plan.label)?;
            targets.push(y);
        }
        let Some(plan) = plan else {
            return Err(Error::CorruptFile {
                path: file.clone(),
                message: "no data rows".to_string(),
            });
        };
        let shape = [targets.len(), plan.features.len()];
        match cfg.task {
            CsvTask::Regression => tensors::regression(
                features,
                &shape,
                targets.iter().map(|&y| y as f32).collect(),
            ),
            CsvTask::Classification => {
                let labels = targets
                    .iter()
                    .enumerate()
                    .map(|(row, &y)| {
                        if y >= 0.0 && y.fract() == 0.0 && y < f64::from(u32::MAX) {
                            Ok(y as u32)
                        } else {
                            Err(Error::CorruptFile {
                                path: file.clone(),
                                message: format!(
                                    "row {}, column {}: class label {y} is not a non-negative integer",
                                    row + 1,
                                    plan.describe(plan.label)
                                ),
                            })
                        }
                    })
                    .collect::<Result<Vec<u32>>>()?;
                tensors::classification(features, &shape, labels)
            }
        }
    }
}

/// Which columns are read, resolved once the number of columns is known.
struct Plan {
    label: usize,
    features: Vec<usize>,
    header: Option<Vec<String>>,
}

impl Plan {
    fn new(cfg: &CsvConfig, at: &str, header: Option<&[String]>, width: usize) -> Result<Plan> {
        let label = cfg.label.resolve(header, width, &join_path(at, "label"))?;
        let features = match &cfg.features {
            None => (0..width).filter(|&c| c != label).collect(),
            Some(columns) => {
                let mut resolved = Vec::with_capacity(columns.len());
                for (i, column) in columns.iter().enumerate() {
                    let at = join_path(at, &format!("features[{i}]"));
                    let c = column.resolve(header, width, &at)?;
                    if c == label {
                        return Err(Error::config(at, format!("column {column} is the label")));
                    }
                    if resolved.contains(&c) {
                        return Err(Error::config(
                            at,
                            format!("column {column} is listed twice"),
                        ));
                    }
                    resolved.push(c);
                }
                resolved
            }
        };
        if features.is_empty() {
            return Err(Error::config(
                join_path(at, "features"),
                "no feature columns",
            ));
        }
        Ok(Plan {
            label,
            features,
            header: header.map(<[String]>::to_vec),
        })
    }

    fn describe(&self, col: usize) -> String {
        match self.header.as_ref().and_then(|h| h.get(col)) {
            Some(name) => format!("{col} (`{name}`)"),
            None => col.to_string(),
        }
    }
}

fn csv_error(file: &Path, err: csv::Error) -> Error {
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(source) => Error::io(file, source),
        _ => Error::CorruptFile {
            path: file.to_path_buf(),
            message,
        },
    }
}

impl DataSource for CsvSource {
    fn load(&self, _rng: &mut SeededRng) -> Result<Dataset> {
        self.read()
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn DataSource>> {
    let config: CsvConfig = parse_config(config, path)?;
    Ok(Box::new(CsvSource::new(config, path)?))
}

gradus_core::register_data_source!(
    "csv",
    "a numeric CSV file: label column by name or index, classification or regression",
    CsvConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use gradus_core::plugin::data::Task;
    use serde_json::json;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn load(file: &tempfile::NamedTempFile, mut config: Value) -> Result<Dataset> {
        config["path"] = json!(file.path());
        build(&config, "data")?.load(&mut SeededRng::new(0))
    }

    #[test]
    fn classification_round_trip_with_header() {
        let file = write("x1, x2 ,class\n0.5,1,2\n-1e-3,2.5,0\n3,4,2.0\n");
        let data = load(&file, json!({"label": "class"})).unwrap();
        assert_eq!(data.task, Task::Classification { num_classes: 3 });
        assert_eq!(
            data.features.to_vec2::<f32>().unwrap(),
            [[0.5, 1.0], [-1e-3, 2.5], [3.0, 4.0]]
        );
        assert_eq!(data.targets.to_vec1::<u32>().unwrap(), [2, 0, 2]);
    }

    #[test]
    fn regression_without_header_with_chosen_features() {
        let file = write("1;2;3;10\n4;5;6;20\n");
        let config = json!({"header": false, "delimiter": ";", "label": 0, "features": [3, -2], "task": "regression"});
        let data = load(&file, config).unwrap();
        assert_eq!(data.task, Task::Regression);
        assert_eq!(
            data.features.to_vec2::<f32>().unwrap(),
            [[10.0, 3.0], [20.0, 6.0]]
        );
        assert_eq!(data.targets.to_vec2::<f32>().unwrap(), [[1.0], [4.0]]);
    }

    #[test]
    fn non_numeric_cell_names_row_line_and_column() {
        let file = write("a,b,y\n1,2,0\n3,oops,1\n");
        let err = load(&file, json!({})).unwrap_err();
        match &err {
            Error::CorruptFile { message, .. } => assert_eq!(
                message,
                "row 2 (line 3), column 1 (`b`): `oops` is not a finite number"
            ),
            other => panic!("unexpected {other:?}"),
        }
        let file = write("1,,0\n");
        let err = load(&file, json!({"header": false})).unwrap_err();
        assert!(
            err.to_string()
                .contains("row 1 (line 1), column 1: `` is not"),
            "{err}"
        );
        let file = write("1,NaN,0\n");
        assert!(load(&file, json!({"header": false})).is_err());
    }

    #[test]
    fn bad_labels_ragged_rows_and_empty_files_are_errors() {
        let file = write("x,y\n1,0.5\n");
        let err = load(&file, json!({})).unwrap_err();
        assert!(
            err.to_string()
                .contains("class label 0.5 is not a non-negative integer"),
            "{err}"
        );
        let file = write("x,y\n1,-1\n");
        assert!(load(&file, json!({})).is_err());
        let file = write("x,y\n1,0\n1,2,3\n");
        let err = load(&file, json!({})).unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
        let file = write("x,y\n");
        assert!(err_text(load(&file, json!({}))).contains("no data rows"));
    }

    #[test]
    fn column_mistakes_are_config_errors() {
        let file = write("x,y\n1,0\n");
        let err = err_text(load(&file, json!({"label": "z"})));
        assert_eq!(
            err,
            "invalid config at data.label: no column `z`; the header has x, y"
        );
        let err = err_text(load(&file, json!({"features": ["y"]})));
        assert!(
            err.contains("data.features[0]") && err.contains("is the label"),
            "{err}"
        );
        let err = err_text(load(&file, json!({"header": false, "label": "y"})));
        assert!(err.contains("needs `header: true`"), "{err}");
        let err = build(&json!({}), "data").err().unwrap().to_string();
        assert!(err.contains("data.path"), "{err}");
        let missing = json!({"path": "/nonexistent/gradus.csv"});
        let err = build(&missing, "data")
            .unwrap()
            .load(&mut SeededRng::new(0))
            .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    fn err_text(result: Result<Dataset>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }
}
