//! The pipeline JSON: one experiment, from data to outputs. Component fields (`"type"`) stay
//! JSON here and are resolved through the registry when the experiment is built, so plugins
//! work unchanged; everything else is parsed strictly, with paths in every error.

use gradus_core::config::parse_config;
use gradus_core::{Error, Result};
use gradus_data::SplitConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::schema;

/// A whole experiment. See `docs/pipeline.md` for every field.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Name used for the run folder (`runs/<name>-<timestamp>`). Default: the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Seed of every random choice (init, split, shuffling, dropout, augmentation). Default: `42`.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Data source, split and preprocessing.
    #[serde(default)]
    pub data: DataSection,
    /// Image augmentations applied to each training batch, in order.
    #[serde(default)]
    #[schemars(schema_with = "schema::image_augmentations")]
    pub augment: Vec<Value>,
    /// The model.
    pub model: ModelSection,
    /// The loss. Default: `{"type": "cross_entropy"}`.
    #[serde(default = "default_loss")]
    #[schemars(schema_with = "schema::loss")]
    pub loss: Value,
    /// The optimizer (`{"type": "adam", ...}`, with optional `groups`).
    #[schemars(schema_with = "schema::optimizer")]
    pub optimizer: Value,
    /// A schedule, with `"per": "epoch"` (default) or `"step"`.
    #[serde(default)]
    #[schemars(schema_with = "schema::schedule")]
    pub schedule: Option<Value>,
    /// Gradient clipping: `{"max_norm": 1.0, "norm_type": 2.0}` or `{"clip_value": 0.5}`.
    #[serde(default)]
    #[schemars(schema_with = "schema::clip")]
    pub clip: Option<Value>,
    /// Regularizers (`l1`, `l2`, `weight_decay`, `max_norm`, ...).
    #[serde(default)]
    #[schemars(schema_with = "schema::regularizers")]
    pub regularizers: Vec<Value>,
    /// Batching strategy. Default: `{"type": "mini_batch", "batch_size": 32, "shuffle": true}`.
    #[serde(default = "default_batching")]
    #[schemars(schema_with = "schema::batching")]
    pub batching: Value,
    /// Training controls.
    #[serde(default)]
    pub train: TrainSection,
    /// Outputs.
    #[serde(default)]
    pub output: OutputSection,
    /// Where the model trains: `"cpu"` (default), `"cuda"`, `"cuda:N"`, `"metal"`; the
    /// `--device` flag overrides it; a GPU needs the `cuda` or `metal` cargo feature.
    #[serde(default = "default_device")]
    #[schemars(regex(pattern = r"^(cpu|cuda(:[0-9]+)?|metal(:[0-9]+)?)$"))]
    pub device: String,
}

/// `data`: where samples come from and how they are prepared.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Data source. Default: `{"type": "digits"}` (embedded).
    #[schemars(schema_with = "schema::data_source")]
    pub source: Value,
    /// Train / validation / test split.
    pub split: SplitConfig,
    /// Preprocessors fitted on the training split only, applied to every split.
    #[schemars(schema_with = "schema::preprocessors")]
    pub preprocess: Vec<Value>,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            source: json!({"type": "digits"}),
            split: SplitConfig {
                val: 0.15,
                test: 0.15,
                stratify: true,
                ..SplitConfig::default()
            },
            preprocess: Vec::new(),
        }
    }
}

/// `model`: the input shape of one sample and the layers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Shape of one input sample; must match the data when given. Default: the data's.
    #[serde(default)]
    pub input: Option<Vec<usize>>,
    /// Layers, in order (`linear`, `conv2d`, `relu`, `batch_norm`, `dropout`, `residual`, ...).
    #[schemars(schema_with = "schema::layers")]
    pub layers: Vec<Value>,
    /// Parameter dtype: `"f32"`, `"f64"`, `"bf16"` or `"f16"`. With bf16/f16 the data is cast
    /// at the model input, the output widened to f32 for the loss and metrics, batch-norm
    /// statistics kept in f32, the optimizer state in f32 (its `state_dtype`), and f16 trains
    /// with dynamic loss scaling unless `train.loss_scale` says otherwise. Default: `"f32"`.
    #[serde(default = "default_dtype")]
    #[schemars(extend("enum" = ["f32", "f64", "bf16", "f16"]))]
    pub dtype: String,
}

/// `train`: epochs and the controls around each step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Number of epochs. Default: `20`.
    #[schemars(range(min = 1))]
    pub epochs: usize,
    /// Micro-batches accumulated (mean) per optimizer step. Default: `1`.
    #[schemars(range(min = 1))]
    pub accumulate: usize,
    /// Non-finite policy: `"error"`, `"skip"` or `"rollback"`, or a full guard config object.
    /// Default: `"skip"`.
    #[schemars(schema_with = "schema::non_finite")]
    pub non_finite: Value,
    /// Early stopping (`monitor`, `mode`, `min_delta`, `patience`, ...). Default: none.
    #[schemars(with = "Option<gradus_regularize::EarlyStoppingConfig>")]
    pub early_stopping: Option<Value>,
    /// Batch size used for evaluation. Default: `512`.
    #[schemars(range(min = 1))]
    pub eval_batch_size: usize,
    /// Stop the run at the first batch whose loss is infinite or NaN (Keras `TerminateOnNaN`);
    /// the run then ends with exit code 3 and `stopped_because` saying so. Default: `false` (the
    /// run continues; `report.json` records the first epoch with a non-finite loss).
    pub terminate_on_non_finite: bool,
    /// Weight averaging: `{"type": "ema", "decay": 0.999}` or `{"type": "swa", "start_epoch":
    /// N, "swa_lr": X}` (`torch.optim.swa_utils`); validation and test metrics evaluate the
    /// averaged weights once averaging has begun. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::averaging")]
    pub averaging: Option<Value>,
    /// Sharpness-aware minimization around the optimizer: `{"rho": 0.05, "adaptive": false}`
    /// (pytorch-optimizer's `SAM`): two forward/backward passes per step. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::sam")]
    pub sam: Option<Value>,
    /// Loss scaling (`torch.amp.GradScaler`): `"dynamic"`, an object of its settings
    /// (`init_scale`, `growth_factor`, `backoff_factor`, `growth_interval`) or a fixed positive
    /// number. Default: none; `"dynamic"` for an f16 model (`1` turns it off there).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::loss_scale")]
    pub loss_scale: Option<Value>,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            epochs: 20,
            accumulate: 1,
            non_finite: json!("skip"),
            early_stopping: None,
            eval_batch_size: 512,
            terminate_on_non_finite: false,
            averaging: None,
            sam: None,
            loss_scale: None,
        }
    }
}

/// `output`: the run folder and what goes into it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Run folder; `--out` overrides it. Default: `runs/<name>-<timestamp>`.
    pub dir: Option<String>,
    /// Save the `last` checkpoint every this many epochs (0 = only at the end). Default: `1`.
    pub checkpoint_every: usize,
    /// Write loss and accuracy plots. Default: `true`.
    pub plots: bool,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            dir: None,
            checkpoint_every: 1,
            plots: true,
        }
    }
}

fn default_seed() -> u64 {
    42
}

fn default_loss() -> Value {
    json!({"type": "cross_entropy"})
}

fn default_batching() -> Value {
    json!({"type": "mini_batch", "batch_size": 32, "shuffle": true})
}

fn default_device() -> String {
    "cpu".to_string()
}

fn default_dtype() -> String {
    "f32".to_string()
}

/// A run name becomes one folder under `runs/`: a single path component, not `.` or `..`, and
/// no separators, so that `"name": "../../x"` cannot write outside it.
fn check_run_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control);
    if bad {
        return Err(Error::config(
            "name",
            format!(
                "{:?} is not a valid run name: one folder name is expected (no `/`, `\\`, `..`)",
                gradus_core::config::elide(name, 60)
            ),
        ));
    }
    Ok(())
}

impl Pipeline {
    /// Parses pipeline JSON text strictly; `origin` names the file in syntax errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Pipeline> {
        let value = gradus_core::json_strict::parse_json(text, origin)?;
        Self::from_value(&value)
    }

    /// Parses an already-read JSON value strictly.
    pub fn from_value(value: &Value) -> Result<Pipeline> {
        let pipeline: Pipeline = parse_config(value, "")?;
        if let Some(name) = &pipeline.name {
            check_run_name(name)?;
        }
        if pipeline.train.epochs == 0 {
            return Err(Error::config("train.epochs", "must be at least 1"));
        }
        if pipeline.train.accumulate == 0 {
            return Err(Error::config("train.accumulate", "must be at least 1"));
        }
        if pipeline.train.eval_batch_size == 0 {
            return Err(Error::config("train.eval_batch_size", "must be at least 1"));
        }
        crate::device::DeviceSpec::parse(&pipeline.device, "device")?;
        crate::experiment::model_dtype(&pipeline.model.dtype)?;
        Ok(pipeline)
    }

    /// The pipeline as JSON, every default filled in (what `pipeline.json` of a run holds).
    pub fn resolved(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The built-in pipeline `gradus run` uses without an argument: an MLP on the embedded digits.
/// It lives inside this crate (`pipelines/digits-mlp.json`), so that the published crate
/// carries it; `examples/pipelines/digits-mlp.json` is a copy that a test keeps equal.
pub const DEFAULT_PIPELINE: &str = include_str!("../pipelines/digits-mlp.json");
