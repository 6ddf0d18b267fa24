//! Building an experiment from a [`Pipeline`]: every component resolved through the registry,
//! shapes checked, nothing trained yet (`gradus validate` stops here).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use gradus_core::config::{index_path, join_path, take_field};
use gradus_core::plugin::augment::ImageAugmentation;
use gradus_core::plugin::data::{Dataset, Task};
use gradus_core::plugin::loss::Loss;
use gradus_core::plugin::preprocessor::Preprocessor;
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::plugin::schedule::Schedule;
use gradus_core::registry::{
    resolve, BatchingKind, DataSourceKind, ImageAugmentationKind, PreprocessorKind, RegularizerKind,
};
use gradus_core::{Error, NamedVar, Optimizer, Result, SeededRng};
use gradus_data::Loader;
use gradus_layers::Sequential;
use gradus_loss::build_loss;
use gradus_optim::clip::ClipConfig;
use gradus_optim::guard::{GuardConfig, NonFiniteGuard};

use crate::optimizer_controls;
use crate::train::averaged::RunAveraging;
use crate::train::Controls;
use gradus_optim::sam::SamConfig;
use gradus_regularize::EarlyStopping;
use serde_json::Value;

use crate::device::DeviceSpec;
use crate::pipeline::Pipeline;

/// When a schedule steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulePer {
    /// Once after every epoch (fed the validation loss, for `reduce_on_plateau`).
    Epoch,
    /// Once after every optimizer step.
    Step,
}

/// Every built component of a pipeline.
pub struct Experiment {
    /// The parsed pipeline.
    pub pipeline: Pipeline,
    /// Feature and target dtype: the model's for f32/f64, f32 for a bf16/f16 model (the data
    /// is cast at the model input, and its output widened back: see `Sequential`).
    pub dtype: DType,
    /// The dtype of the model's parameters (`model.dtype`).
    pub model_dtype: DType,
    /// The device of the model, its parameters and the optimizer state (`device`).
    pub device: Device,
    /// What the targets mean.
    pub task: Task,
    /// Batches of the (preprocessed) training split.
    pub loader: Loader,
    /// Preprocessed validation split.
    pub val: Option<Dataset>,
    /// Preprocessed test split.
    pub test: Option<Dataset>,
    /// Fitted preprocessors, in order.
    pub preprocessors: Vec<Box<dyn Preprocessor>>,
    /// Training-batch augmentations, in order.
    pub augment: Vec<Box<dyn ImageAugmentation>>,
    /// The model's trainable variables.
    pub varmap: VarMap,
    /// The model.
    pub model: Sequential,
    /// Trainable parameters, sorted by name.
    pub params: Vec<NamedVar>,
    /// The loss.
    pub loss: Box<dyn Loss>,
    /// The optimizer.
    pub optimizer: Box<dyn Optimizer>,
    /// The schedule and when it steps.
    pub schedule: Option<(Box<dyn Schedule>, SchedulePer)>,
    /// Regularizers.
    pub regularizers: Vec<Box<dyn Regularizer>>,
    /// Accumulation, clipping and the non-finite guard between backward and the update.
    pub controls: Controls,
    /// Early stopping.
    pub early_stopping: Option<EarlyStopping>,
    /// Sharpness-aware minimization around the optimizer (`train.sam`).
    pub sam: Option<SamConfig>,
    /// Weight averaging (`train.averaging`).
    pub averaging: Option<RunAveraging>,
}

impl Experiment {
    /// `t` (a batch of the host-side data pipeline) on the model's device; on the CPU the
    /// same tensor, uncopied.
    pub fn on_device(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.to_device(&self.device)?)
    }
}

fn num_samples(d: &Dataset) -> usize {
    d.features.dims().first().copied().unwrap_or(0)
}

fn transform(preps: &[Box<dyn Preprocessor>], mut d: Dataset, dtype: DType) -> Result<Dataset> {
    for p in preps {
        d.features = p.transform(&d.features)?;
    }
    d.features = d.features.to_dtype(dtype)?;
    Ok(d)
}

/// The dtype `model.dtype` names: `"f32"`, `"f64"`, `"bf16"` or `"f16"`.
pub fn model_dtype(name: &str) -> Result<DType> {
    Ok(match name {
        "f32" => DType::F32,
        "f64" => DType::F64,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => {
            return Err(Error::UnknownName {
                kind: "dtype",
                name: other.to_string(),
                path: "model.dtype".into(),
                valid: MODEL_DTYPES.iter().map(|s| s.to_string()).collect(),
                suggestion: gradus_core::suggest::nearest(other, MODEL_DTYPES),
            })
        }
    })
}

/// The values of `model.dtype`.
pub const MODEL_DTYPES: [&str; 4] = ["f32", "f64", "bf16", "f16"];

/// Builds every component of `pipeline`: loads and splits the data, fits preprocessing on the
/// training split, builds the model with shapes inferred layer by layer, then the optimizer,
/// schedule, clipping, regularizers, guard and early stopping.
pub fn build(pipeline: Pipeline) -> Result<Experiment> {
    let root = SeededRng::new(pipeline.seed);
    let model_dtype = model_dtype(&pipeline.model.dtype)?;
    let dtype = match model_dtype {
        DType::F64 => DType::F64,
        _ => DType::F32,
    };
    let device = DeviceSpec::parse(&pipeline.device, "device")?.open("device")?;

    let (source, rest) = resolve::<DataSourceKind>(&pipeline.data.source, "data.source")?;
    let dataset = (source.build)(&rest, "data.source")
        .map_err(|e| e.at("data.source"))?
        .load(&mut root.derive("data"))?;
    let task = dataset.task;
    let splits = gradus_data::split(&dataset, &pipeline.data.split, &mut root.derive("split"))
        .map_err(|e| Error::config("data.split", e.to_string()))?;

    // Each preprocessor is fitted on the training features as the earlier ones left them.
    let mut preprocessors: Vec<Box<dyn Preprocessor>> = Vec::new();
    let mut train = splits.train;
    for (i, cfg) in pipeline.data.preprocess.iter().enumerate() {
        let path = index_path("data.preprocess", i);
        let (entry, rest) = resolve::<PreprocessorKind>(cfg, &path)?;
        let mut p = (entry.build)(&rest, &path).map_err(|e| e.at(&path))?;
        p.fit(&train.features)
            .map_err(|e| Error::config(&path, e.to_string()))?;
        train.features = p.transform(&train.features)?;
        preprocessors.push(p);
    }
    train.features = train.features.to_dtype(dtype)?;
    let val = splits
        .val
        .map(|d| transform(&preprocessors, d, dtype))
        .transpose()?;
    let test = splits
        .test
        .map(|d| transform(&preprocessors, d, dtype))
        .transpose()?;

    let mut augment = Vec::new();
    for (i, cfg) in pipeline.augment.iter().enumerate() {
        let path = index_path("augment", i);
        let (entry, rest) = resolve::<ImageAugmentationKind>(cfg, &path)?;
        augment.push((entry.build)(&rest, &path).map_err(|e| e.at(&path))?);
    }
    if !augment.is_empty() && train.features.rank() != 4 {
        return Err(Error::ShapeMismatch {
            context: "augment: image augmentations need samples shaped (C, H, W)".into(),
            expected: vec![0, 0, 0],
            actual: train.features.dims()[1..].to_vec(),
        });
    }

    let input_shape = train.features.dims()[1..].to_vec();
    if let Some(declared) = &pipeline.model.input {
        if declared != &input_shape {
            return Err(Error::ShapeMismatch {
                context: "model.input (the data's sample shape)".into(),
                expected: declared.clone(),
                actual: input_shape,
            });
        }
    }
    let varmap = VarMap::new();
    let model = Sequential::build(
        &pipeline.model.layers,
        "model.layers",
        &input_shape,
        &varmap,
        &mut root.derive("init"),
        model_dtype,
        &device,
    )?;
    if let Task::Classification { num_classes } = task {
        let loss_type = pipeline
            .loss
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if loss_type == "cross_entropy" && model.output_shape() != [num_classes] {
            return Err(Error::ShapeMismatch {
                context: format!(
                    "model.layers[{}]: the model's output for {num_classes} classes",
                    pipeline.model.layers.len().saturating_sub(1)
                ),
                expected: vec![num_classes],
                actual: model.output_shape().to_vec(),
            });
        }
    }
    // Named by their VarMap names, in name order (a VarMap's own order is a HashMap's).
    let params: Vec<NamedVar> = gradus_optim::named_vars(&varmap);

    let loss = build_loss(&pipeline.loss, "loss")?;
    let mut optimizer = gradus_optim::build_optimizer(&pipeline.optimizer, "optimizer", &params)?;
    let schedule = match &pipeline.schedule {
        None => None,
        Some(cfg) => {
            let mut cfg = cfg.clone();
            let per = match take_field(&mut cfg, "per") {
                None => SchedulePer::Epoch,
                Some(Value::String(s)) if s == "epoch" => SchedulePer::Epoch,
                Some(Value::String(s)) if s == "step" => SchedulePer::Step,
                Some(other) => {
                    return Err(Error::config(
                        "schedule.per",
                        format!("expected \"epoch\" or \"step\", got {other}"),
                    ))
                }
            };
            Some((
                gradus_schedule::build_schedule(&cfg, "schedule", optimizer.as_mut())?,
                per,
            ))
        }
    };
    let clip = pipeline
        .clip
        .as_ref()
        .map(|c| ClipConfig::parse(c, "clip"))
        .transpose()?;
    let mut regularizers = Vec::new();
    for (i, cfg) in pipeline.regularizers.iter().enumerate() {
        let path = index_path("regularizers", i);
        let (entry, rest) = resolve::<RegularizerKind>(cfg, &path)?;
        regularizers.push((entry.build)(&rest, &path).map_err(|e| e.at(&path))?);
    }
    let guard_config: GuardConfig = match &pipeline.train.non_finite {
        Value::String(_) => gradus_core::config::parse_config(
            &serde_json::json!({"policy": pipeline.train.non_finite}),
            "train.non_finite",
        )?,
        other => gradus_core::config::parse_config(other, "train.non_finite")?,
    };
    let guard = NonFiniteGuard::new(guard_config).map_err(|e| e.at("train.non_finite"))?;
    let mut controls = Controls::new(clip, pipeline.train.accumulate, guard, &params)?;
    controls.scaler = optimizer_controls::loss_scale(&pipeline, optimizer.as_ref())?;
    let early_stopping = pipeline
        .train
        .early_stopping
        .as_ref()
        .map(|v| {
            EarlyStopping::from_json(v, "train.early_stopping")
                .map_err(|e| e.at("train.early_stopping"))
        })
        .transpose()?;
    if let Some(es) = &early_stopping {
        let monitor = es.config().monitor.as_str();
        let known = ["val_loss", "val_accuracy", "train_loss", "train_accuracy"];
        if !known.contains(&monitor) {
            return Err(Error::UnknownName {
                kind: "metric",
                name: monitor.to_string(),
                path: join_path("train.early_stopping", "monitor"),
                valid: known.iter().map(|s| s.to_string()).collect(),
                suggestion: gradus_core::suggest::nearest(monitor, known),
            });
        }
        if monitor.starts_with("val") && val.is_none() {
            return Err(Error::config(
                "train.early_stopping.monitor",
                format!("`{monitor}` needs a validation split (data.split.val > 0)"),
            ));
        }
    }

    let (sam, averaging) =
        optimizer_controls::sam_and_averaging(&pipeline, optimizer.as_ref(), &params)?;

    let (batching, rest) = resolve::<BatchingKind>(&pipeline.batching, "batching")?;
    let batching = (batching.build)(&rest, "batching").map_err(|e| e.at("batching"))?;
    if num_samples(&train) == 0 {
        return Err(Error::config("data.split", "the training split is empty"));
    }
    let loader = Loader::new(train, batching, pipeline.seed);
    Ok(Experiment {
        pipeline,
        dtype,
        model_dtype,
        device,
        task,
        loader,
        val,
        test,
        preprocessors,
        augment,
        varmap,
        model,
        params,
        loss,
        optimizer,
        schedule,
        regularizers,
        controls,
        early_stopping,
        sam,
        averaging,
    })
}

/// A summary of the built model: one line per layer with its output shape, and the parameter count.
pub fn model_summary(exp: &Experiment) -> String {
    let mut out = String::new();
    for (i, (kind, shape)) in exp.model.describe().iter().enumerate() {
        out.push_str(&format!("  layers[{i}] {kind:<14} -> {shape:?}\n"));
    }
    let count: usize = exp.params.iter().map(|p| p.var.elem_count()).sum();
    out.push_str(&format!(
        "  {count} trainable parameters in {} tensors\n",
        exp.params.len()
    ));
    out
}

/// Stacks `rows` of one-hot targets for class indices (used when augmentations mix labels).
pub fn one_hot(targets: &Tensor, num_classes: usize) -> Result<Vec<f32>> {
    let labels = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let mut out = vec![0f32; labels.len() * num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if (l as usize) < num_classes {
            out[i * num_classes + l as usize] = 1.0;
        }
    }
    Ok(out)
}
