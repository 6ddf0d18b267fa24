//! Running mean / variance buffers of batch and instance normalization.

use std::sync::{Mutex, MutexGuard};

use candle_core::{DType, Device, Tensor};
use gradus_core::{Error, Result, StateDict};

/// `running_mean`, `running_var` (shape `(C,)`) and `num_batches_tracked`, as PyTorch's buffers.
///
/// Update after a training batch with factor `f = momentum`, or `f = 1 / num_batches_tracked`
/// when `momentum` is `None` or the cumulative mode is on ([`RunningStats::cumulative`], what
/// `update_bn` sets, as PyTorch's `module.momentum = None`): a cumulative moving average
/// `running_mean = (1 - f) * running_mean + f * batch_mean`,
/// `running_var = (1 - f) * running_var + f * batch_var_unbiased`.
#[derive(Debug)]
pub(crate) struct RunningStats {
    pub(crate) mean: Tensor,
    pub(crate) var: Tensor,
    pub(crate) num_batches_tracked: i64,
    momentum: Option<f64>,
    /// Cumulative average whatever `momentum` says (set and cleared by `update_bn`).
    pub(crate) cumulative: bool,
}

/// The dtype a layer of `dtype` computes and keeps its statistics in: f32 for bf16/f16 (their
/// 8 or 11 significant bits would round a running average's small increments away, and a
/// batch's sums of squares lose most of theirs), else `dtype`.
pub(crate) fn statistics_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 | DType::F16 => DType::F32,
        other => other,
    }
}

impl RunningStats {
    /// Initial buffers: mean 0, variance 1, no batches tracked; in the layer's `dtype`, or f32
    /// for a bf16/f16 layer ([`statistics_dtype`]).
    pub(crate) fn new(
        channels: usize,
        momentum: Option<f64>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let dtype = statistics_dtype(dtype);
        Ok(RunningStats {
            mean: Tensor::zeros(channels, dtype, device)?,
            var: Tensor::ones(channels, dtype, device)?,
            num_batches_tracked: 0,
            momentum,
            cumulative: false,
        })
    }

    /// Back to the initial buffers (mean 0, variance 1, no batches tracked), keeping dtype,
    /// device and momentum: PyTorch's `reset_running_stats`.
    pub(crate) fn reset(&mut self) -> Result<()> {
        self.mean = self.mean.zeros_like()?;
        self.var = self.var.ones_like()?;
        self.num_batches_tracked = 0;
        Ok(())
    }

    /// Folds a batch's per-channel mean and unbiased variance (any shape with `C` elements)
    /// into the buffers; no gradient flows into them.
    pub(crate) fn update(
        &mut self,
        batch_mean: &Tensor,
        batch_var_unbiased: &Tensor,
    ) -> Result<()> {
        self.num_batches_tracked += 1;
        let f = match (self.cumulative, self.momentum) {
            (false, Some(momentum)) => momentum,
            _ => 1.0 / self.num_batches_tracked as f64,
        };
        let (dtype, n) = (self.mean.dtype(), self.mean.elem_count());
        let fold = |running: &Tensor, batch: &Tensor| -> Result<Tensor> {
            let batch = batch.detach().flatten_all()?.to_dtype(dtype)?;
            Ok((running.affine(1.0 - f, 0.0)? + batch.affine(f, 0.0)?)?.reshape(n)?)
        };
        self.mean = fold(&self.mean, batch_mean)?;
        self.var = fold(&self.var, batch_var_unbiased)?;
        Ok(())
    }

    /// The buffers under PyTorch's names.
    pub(crate) fn state(&self) -> Result<StateDict> {
        let mut sd = StateDict::new();
        sd.insert("running_mean", self.mean.clone());
        sd.insert("running_var", self.var.clone());
        sd.insert(
            "num_batches_tracked",
            Tensor::new(self.num_batches_tracked, self.mean.device())?,
        );
        Ok(sd)
    }

    /// Restores buffers saved by [`RunningStats::state`]; shapes must match.
    pub(crate) fn load(&mut self, sd: &StateDict) -> Result<()> {
        let shape = self.mean.dims().to_vec();
        let (dtype, device) = (self.mean.dtype(), self.mean.device().clone());
        let mean = sd
            .require("running_mean", &shape)?
            .to_device(&device)?
            .to_dtype(dtype)?;
        let var = sd
            .require("running_var", &shape)?
            .to_device(&device)?
            .to_dtype(dtype)?;
        let count = sd
            .require("num_batches_tracked", &[])?
            .to_dtype(DType::I64)?
            .to_scalar::<i64>()?;
        if count < 0 {
            return Err(Error::StateMismatch(format!(
                "num_batches_tracked must be >= 0, got {count}"
            )));
        }
        (self.mean, self.var, self.num_batches_tracked) = (mean, var, count);
        Ok(())
    }
}

/// Locks the buffers, mapping a poisoned lock to an error.
pub(crate) fn lock(stats: &Mutex<RunningStats>) -> Result<MutexGuard<'_, RunningStats>> {
    stats
        .lock()
        .map_err(|_| Error::Unsupported("running statistics lock poisoned".to_string()))
}

/// The buffers of a layer that may not track running statistics (empty when it does not), for
/// `Layer::buffers`.
pub(crate) fn buffers_of(running: &Option<Mutex<RunningStats>>) -> StateDict {
    match running {
        Some(r) => lock(r).and_then(|r| r.state()).unwrap_or_default(),
        None => StateDict::new(),
    }
}

/// Restores buffers saved by [`buffers_of`] (nothing to do without running statistics), for
/// `Layer::load_buffers`.
pub(crate) fn load_buffers_into(
    running: &Option<Mutex<RunningStats>>,
    buffers: &StateDict,
) -> Result<()> {
    match running {
        Some(r) => lock(r)?.load(buffers),
        None => Ok(()),
    }
}

/// `momentum` must be in `[0, 1]` when given.
pub(crate) fn check_momentum(layer: &str, momentum: Option<f64>) -> Result<Option<f64>> {
    match momentum {
        Some(m) if !(0.0..=1.0).contains(&m) => Err(Error::InvalidHyperparameter(format!(
            "{layer}: momentum must be in [0, 1] (or null for a cumulative average), got {m}"
        ))),
        other => Ok(other),
    }
}
