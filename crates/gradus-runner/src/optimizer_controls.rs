//! The optimizer controls of a pipeline, checked against its optimizer when the experiment is
//! built: `train.sam`, `train.averaging`, `train.loss_scale`, and what an optimizer that needs
//! a closure (L-BFGS) can run with (full batching, no clipping, no accumulation).

use gradus_core::{Error, NamedVar, Optimizer, Result};
use gradus_optim::averaging::{AveragedModel, AveragingConfig};
use gradus_optim::loss_scale::{GradScaler, LossScaleConfig};
use gradus_optim::sam::SamConfig;
use serde_json::Value;

use crate::pipeline::Pipeline;
use crate::train::averaged::RunAveraging;

/// `train.sam` and `train.averaging`, checked against the optimizer and the rest of the
/// pipeline; and, for an optimizer that needs a closure (L-BFGS), the batching and controls it
/// can run with.
pub fn sam_and_averaging(
    pipeline: &Pipeline,
    optimizer: &dyn Optimizer,
    params: &[NamedVar],
) -> Result<(Option<SamConfig>, Option<RunAveraging>)> {
    let name = optimizer.algorithm().to_string();
    if optimizer.needs_closure() {
        let batching = pipeline.batching.get("type").and_then(Value::as_str);
        if batching != Some("full") {
            return Err(Error::config(
                "batching",
                format!(
                    "`{name}` re-evaluates the loss over the same samples in every step (a \
                     closure): it needs {{\"type\": \"full\"}} batching, got {}",
                    pipeline.batching
                ),
            ));
        }
        if pipeline.train.accumulate > 1 {
            return Err(Error::config(
                "train.accumulate",
                format!("`{name}` takes whole-training-set steps: accumulation must be 1"),
            ));
        }
        if pipeline.clip.is_some() {
            return Err(Error::config(
                "clip",
                format!(
                    "`{name}` searches along its own direction with the true gradients: \
                     clipping them is not supported"
                ),
            ));
        }
    }
    let sam = match &pipeline.train.sam {
        None => None,
        Some(v) => {
            let config = SamConfig::parse(v, "train.sam")?;
            if optimizer.needs_closure() {
                return Err(Error::config(
                    "train.sam",
                    format!("sam wraps a first-order optimizer; `{name}` drives its own steps"),
                ));
            }
            if pipeline.train.accumulate > 1 {
                return Err(Error::config(
                    "train.sam",
                    format!(
                        "sam perturbs the weights with each batch's gradient: it cannot be \
                         combined with train.accumulate = {} (use 1)",
                        pipeline.train.accumulate
                    ),
                ));
            }
            Some(config)
        }
    };
    let averaging = match &pipeline.train.averaging {
        None => None,
        Some(v) => {
            let config = AveragingConfig::parse(v, "train.averaging")?;
            if optimizer.has_eval_point() {
                return Err(Error::config(
                    "train.averaging",
                    format!(
                        "`{name}` already averages its iterates (it is evaluated at its own \
                         averaged point): drop train.averaging or use another optimizer"
                    ),
                ));
            }
            Some(RunAveraging {
                model: AveragedModel::new(params, config)?,
                swa_schedule: None,
                file: None,
            })
        }
    };
    Ok((sam, averaging))
}

/// `train.loss_scale`: the scaler, refused with SAM and with an optimizer that needs a closure.
/// An f16 model without the field scales dynamically (its gradients underflow below 6e-8),
/// unless SAM or the optimizer rules scaling out (a fixed `1` turns scaling off).
pub fn loss_scale(pipeline: &Pipeline, optimizer: &dyn Optimizer) -> Result<Option<GradScaler>> {
    let default_dynamic = serde_json::json!("dynamic");
    let v = match &pipeline.train.loss_scale {
        Some(v) => v,
        None if pipeline.model.dtype == "f16"
            && pipeline.train.sam.is_none()
            && !optimizer.needs_closure() =>
        {
            &default_dynamic
        }
        None => return Ok(None),
    };
    let config = LossScaleConfig::parse(v, "train.loss_scale")?;
    let refuse = if pipeline.train.sam.is_some() {
        Some("sam (its perturbation is taken from unscaled gradients)".to_string())
    } else if optimizer.needs_closure() {
        Some(format!(
            "`{}` (it drives its own evaluations)",
            optimizer.algorithm()
        ))
    } else {
        None
    };
    if let Some(what) = refuse {
        return Err(Error::config(
            "train.loss_scale",
            format!("loss scaling is not supported with {what}"),
        ));
    }
    Ok(Some(
        GradScaler::new(&config).map_err(|e| e.at("train.loss_scale"))?,
    ))
}
