//! The embedded UCI / scikit-learn handwritten digits data set.

use std::io::Read;

use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::data::{DataSource, Dataset};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tensors;

/// `digits.csv.gz` as scikit-learn ships it; attribution in `data/README.md` and `docs/data.md`.
static DIGITS_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

const SIDE: usize = 8;
const PIXELS: usize = SIDE * SIDE;
const MAX_PIXEL: u8 = 16;
const CLASSES: u32 = 10;

/// The "Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998;
/// UCI Machine Learning Repository, CC BY 4.0), embedded in the binary exactly as
/// scikit-learn ships it (`sklearn.datasets.load_digits`).
///
/// 1,797 samples of 8x8 grey images whose pixels are counts `0..=16`, and their digit
/// `0..=9` ([`Task::Classification`](gradus_core::plugin::data::Task) with 10 classes).
/// Each pixel `p` becomes the `f32` feature `p / scale`; with the default `scale = 16` the
/// features lie in `[0, 1]` (scikit-learn returns the raw counts, i.e. `scale = 1`).
/// Features are `(N, 1, 8, 8)` (`layout = "image"`, for convolutions) or `(N, 64)`
/// (`layout = "flat"`, row-major, as `load_digits().data`). Targets are `(N,)` `u32`.
#[derive(Debug, Clone)]
pub struct Digits {
    config: DigitsConfig,
}

/// How the 64 pixels of a digit are laid out.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `(N, 1, 8, 8)`: one channel, PyTorch's `(N, C, H, W)`.
    #[default]
    Image,
    /// `(N, 64)`: the image rows concatenated.
    Flat,
}

/// Configuration of [`Digits`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DigitsConfig {
    /// Feature layout: `"image"` `(N, 1, 8, 8)` or `"flat"` `(N, 64)`. Default: `"image"`.
    pub layout: Layout,
    /// Each pixel count (`0..=16`) is divided by `scale`; must be finite and positive.
    /// Default: `16.0`, so features lie in `[0, 1]` as torchvision's `ToTensor` puts images
    /// (`1.0` keeps scikit-learn's raw counts).
    pub scale: f64,
}

impl Default for DigitsConfig {
    fn default() -> Self {
        DigitsConfig {
            layout: Layout::Image,
            scale: f64::from(MAX_PIXEL),
        }
    }
}

impl Digits {
    /// Validates `config`.
    pub fn new(config: DigitsConfig) -> Result<Self> {
        if !(config.scale.is_finite() && config.scale > 0.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "invalid digits scale: {} (must be finite and positive)",
                config.scale
            )));
        }
        Ok(Digits { config })
    }
}

impl DataSource for Digits {
    fn load(&self, _rng: &mut SeededRng) -> Result<Dataset> {
        let (pixels, labels) = decode()?;
        let n = labels.len();
        let scale = self.config.scale;
        let features = pixels
            .iter()
            .map(|&p| (f64::from(p) / scale) as f32)
            .collect();
        let shape = match self.config.layout {
            Layout::Image => vec![n, 1, SIDE, SIDE],
            Layout::Flat => vec![n, PIXELS],
        };
        tensors::classification(features, &shape, labels)
    }
}

/// Decompresses and parses the embedded file: row-major pixels and one label per row.
fn decode() -> Result<(Vec<u8>, Vec<u32>)> {
    let corrupt = |message: String| Error::CorruptFile {
        path: "<embedded digits.csv.gz>".into(),
        message,
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
    let mut pixels = Vec::with_capacity(1797 * PIXELS);
    let mut labels = Vec::with_capacity(1797);
    for (row, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let mut fields = 0;
        for (col, cell) in line.split(',').enumerate() {
            fields += 1;
            let value: u8 = cell.trim().parse().map_err(|_| {
                corrupt(format!("row {row}, column {col}: `{cell}` is not a count"))
            })?;
            let limit = if col < PIXELS {
                MAX_PIXEL
            } else {
                CLASSES as u8 - 1
            };
            if value > limit {
                return Err(corrupt(format!(
                    "row {row}, column {col}: {value} > {limit}"
                )));
            }
            if col < PIXELS {
                pixels.push(value);
            } else {
                labels.push(u32::from(value));
            }
        }
        if fields != PIXELS + 1 {
            return Err(corrupt(format!(
                "row {row} has {fields} fields, expected {}",
                PIXELS + 1
            )));
        }
    }
    Ok((pixels, labels))
}

fn build(config: &Value, path: &str) -> Result<Box<dyn DataSource>> {
    let config: DigitsConfig = parse_config(config, path)?;
    Digits::new(config)
        .map(|d| Box::new(d) as Box<dyn DataSource>)
        .map_err(|e| Error::config(join_path(path, "scale"), e.to_string()))
}

gradus_core::register_data_source!(
    "digits",
    "embedded UCI/scikit-learn handwritten digits: 1,797 8x8 images, 10 classes",
    DigitsConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use gradus_core::plugin::data::Task;

    fn load(config: Value) -> Result<Dataset> {
        build(&config, "data")?.load(&mut SeededRng::new(0))
    }

    #[test]
    fn loads_1797_images_with_known_class_counts() {
        let data = load(serde_json::json!({})).unwrap();
        assert_eq!(data.features.dims(), [1797, 1, 8, 8]);
        assert_eq!(data.features.dtype(), candle_core::DType::F32);
        assert_eq!(data.targets.dims(), [1797]);
        assert_eq!(data.task, Task::Classification { num_classes: 10 });
        let mut counts = [0usize; 10];
        for y in data.targets.to_vec1::<u32>().unwrap() {
            counts[y as usize] += 1;
        }
        // Counted from the shipped file: `zcat digits.csv.gz | cut -d, -f65 | sort | uniq -c`.
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }

    #[test]
    fn pixels_lie_in_unit_interval_and_use_its_ends() {
        let data = load(serde_json::json!({})).unwrap();
        let values = data
            .features
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (min, max) = values
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert_eq!((min, max), (0.0, 1.0));
        // The first row of the file starts `0,0,5,13,9,1,0,0`.
        assert_eq!(values[2], 5.0 / 16.0);
        assert_eq!(values[3], 13.0 / 16.0);
    }

    #[test]
    fn flat_layout_and_raw_counts() {
        let data = load(serde_json::json!({"layout": "flat", "scale": 1.0})).unwrap();
        assert_eq!(data.features.dims(), [1797, 64]);
        let first = data.features.get(0).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(first[..8], [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn invalid_configs_are_errors() {
        let err = load(serde_json::json!({"scale": 0.0})).unwrap_err();
        assert!(
            matches!(&err, Error::Config { path, .. } if path == "data.scale"),
            "{err}"
        );
        let err = load(serde_json::json!({"layout": "square"})).unwrap_err();
        assert!(err.to_string().contains("data.layout"), "{err}");
        let err = load(serde_json::json!({"scal": 2.0})).unwrap_err();
        assert!(err.to_string().contains("did you mean `scale`"), "{err}");
    }
}
