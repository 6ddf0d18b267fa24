//! Batch normalization over `(N, C)`, `(N, C, L)` and `(N, C, H, W)` (`torch.nn.BatchNorm1d/2d/3d`).

use std::sync::Mutex;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::affine::{placement, Affine};
use crate::batch_norm_kernel::{self as kernel, ChannelStats};
use crate::moments::{check_eps, moments, normalize, numel, to_candle};
use crate::running::{
    buffers_of, check_momentum, load_buffers_into, lock, statistics_dtype, RunningStats,
};

/// Batch normalization (Ioffe & Szegedy, 2015), per channel `c` of an input `(N, C, *)`:
///
/// `y = (x - mu_c) / sqrt(var_c + eps) * weight_c + bias_c`
///
/// - training mode: `mu_c`, `var_c` are the batch mean and *biased* variance over `N` and every
///   spatial position; the running statistics are then updated with the *unbiased* variance
///   (`var * n / (n - 1)`, `n = N * prod(spatial)`): `running = (1 - f) * running + f * batch`,
///   `f = momentum`, or `f = 1 / num_batches_tracked` when `momentum` is `null` (cumulative
///   average);
/// - evaluation mode: `mu_c`, `var_c` are `running_mean`, `running_var` (initially 0 and 1);
///   with `track_running_stats = false` there are none and batch statistics are used in both
///   modes, as PyTorch.
///
/// `weight` (ones) and `bias` (zeros) are trainable parameters when `affine`; the running
/// statistics are buffers ([`Layer::buffers`]: `running_mean`, `running_var`,
/// `num_batches_tracked`), never trainable variables. Training on one value per channel is an
/// error, as PyTorch.
///
/// Two paths compute the same function ([`BatchNormPath`]): on the CPU, for contiguous f32 / f64
/// inputs and parameters, a fused custom op with its own fused backward pass
/// (`batch_norm_kernel.rs`: formulas, f64 sums, tolerance); otherwise (another device, dtype or
/// layout) a graph of Candle ops, whose autograd gives PyTorch's backward pass.
///
/// [`Layer::reset_running_stats`] and [`Layer::set_cumulative_stats`] are what
/// `torch.optim.swa_utils.update_bn` does to `_BatchNorm` modules (reset, then `momentum =
/// None` for one pass over the data, then the configured momentum again); `gradus_optim`'s
/// `averaging::update_bn` calls them. Instance norm, whose running statistics PyTorch's
/// `update_bn` leaves alone, keeps the defaults.
#[derive(Debug)]
pub struct BatchNorm {
    num_features: usize,
    eps: f64,
    affine: Affine,
    running: Option<Mutex<RunningStats>>,
    sample_shape: Vec<usize>,
}

/// Config of [`BatchNorm`] (PyTorch's keyword names; `num_features` comes from the input).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchNormConfig {
    /// Added to the variance for numerical stability. Default: `1e-5` (torch.nn.BatchNorm1d).
    pub eps: f64,
    /// Running-statistics factor in `[0, 1]`; `null` = cumulative moving average.
    /// Default: `0.1` (torch.nn.BatchNorm1d).
    pub momentum: Option<f64>,
    /// Learnable per-channel `weight` and `bias`. Default: `true` (torch.nn.BatchNorm1d).
    pub affine: bool,
    /// Keep running statistics for evaluation mode. Default: `true` (torch.nn.BatchNorm1d).
    pub track_running_stats: bool,
}

/// Which implementation [`BatchNorm::forward_path`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchNormPath {
    /// The fused CPU kernel when the input is eligible (CPU, contiguous, f32 / f64, parameters
    /// of the same dtype), else the Candle ops. What [`BatchNorm::forward_train`] uses.
    #[default]
    Auto,
    /// Always the Candle-op graph (the reference the fused kernel is tested against).
    Reference,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

impl BatchNorm {
    /// A batch norm over `num_features` channels whose `weight` / `bias` come from (or, for a
    /// `VarMap`-backed builder, are created in) `vb`, e.g. `vb.pp("bn1")`.
    pub fn new(num_features: usize, config: BatchNormConfig, vb: VarBuilder) -> Result<Self> {
        let affine = Affine::from_var_builder(&vb, &[num_features], config.affine, config.affine)?;
        let (dtype, device) = placement(&vb);
        Self::with_affine(num_features, &config, affine, dtype, &device)
    }

    /// A batch norm built from JSON: channels are `ctx.input_shape[0]`; `weight` and `bias` are
    /// registered as `prefix.weight` / `prefix.bias`.
    pub fn from_context(config: BatchNormConfig, ctx: &mut LayerContext) -> Result<Self> {
        let Some(&channels) = ctx.input_shape.first() else {
            return Err(Error::Unsupported(
                "batch_norm needs inputs (N, C, ...) with a channel dimension, got per-sample shape []".into(),
            ));
        };
        let affine = Affine::from_context(ctx, &[channels], config.affine, config.affine)?;
        let mut bn = Self::with_affine(channels, &config, affine, ctx.dtype, &ctx.device)?;
        bn.sample_shape = ctx.input_shape.clone();
        Ok(bn)
    }

    fn with_affine(
        num_features: usize,
        config: &BatchNormConfig,
        affine: Affine,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let eps = check_eps("batch_norm", config.eps)?;
        let momentum = check_momentum("batch_norm", config.momentum)?;
        let running = if config.track_running_stats {
            Some(Mutex::new(RunningStats::new(
                num_features,
                momentum,
                dtype,
                device,
            )?))
        } else {
            None
        };
        Ok(BatchNorm {
            num_features,
            eps,
            affine,
            running,
            sample_shape: vec![num_features],
        })
    }

    /// The trainable scale, when `affine`.
    pub fn weight(&self) -> Option<&Tensor> {
        self.affine.weight.as_ref()
    }

    /// The trainable shift, when `affine`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.affine.bias.as_ref()
    }

    /// `(running_mean, running_var)`, when tracked.
    pub fn running_stats(&self) -> Result<Option<(Tensor, Tensor)>> {
        match &self.running {
            Some(r) => {
                let r = lock(r)?;
                Ok(Some((r.mean.clone(), r.var.clone())))
            }
            None => Ok(None),
        }
    }

    /// Normalizes `x` `(N, C, *)`: batch statistics (and a running-statistics update) when
    /// `train`, running statistics otherwise; the fused CPU kernel when eligible.
    pub fn forward_train(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_path(x, train, BatchNormPath::Auto)
    }

    /// [`BatchNorm::forward_train`] through the implementation `path` names.
    pub fn forward_path(&self, x: &Tensor, train: bool, path: BatchNormPath) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 2 || dims[1] != self.num_features {
            let mut expected = dims.clone();
            if expected.len() < 2 {
                expected = vec![dims.first().copied().unwrap_or(1), self.num_features];
            } else {
                expected[1] = self.num_features;
            }
            return Err(Error::ShapeMismatch {
                context: "batch_norm input (N, C, ...)".into(),
                expected,
                actual: dims,
            });
        }
        let n = dims[0] * numel(&dims[2..]);
        let update = match (&self.running, train) {
            (Some(running), true) => Some(running),
            _ => None,
        };
        if update.is_some() && n <= 1 {
            return Err(Error::Unsupported(format!(
                "Expected more than 1 value per channel when training, got input size {dims:?}"
            )));
        }
        // (N, C, S): one reduction layout for every input rank; a bf16/f16 input normalized
        // in f32 (its statistics are), and the result rounded back.
        let x3 = x
            .reshape((dims[0], dims[1], numel(&dims[2..])))?
            .to_dtype(statistics_dtype(x.dtype()))?;
        let fused = match path {
            BatchNormPath::Auto => self.forward_fused(&x3, train)?,
            BatchNormPath::Reference => None,
        };
        let y = match fused {
            Some((y, stats)) => {
                if let Some(running) = update {
                    let (mean, unbiased) =
                        stats.to_tensors(n as f64 / (n - 1) as f64, x.device())?;
                    lock(running)?.update(&mean, &unbiased)?;
                }
                y
            }
            None => self.forward_reference(&x3, train, update, n)?,
        };
        Ok(y.reshape(dims)?.to_dtype(x.dtype())?)
    }

    /// The fused kernel's `y` `(N, C, S)` and the statistics it used, or `None` when `x3` or
    /// the parameters are not eligible.
    fn forward_fused(&self, x3: &Tensor, train: bool) -> Result<Option<(Tensor, ChannelStats)>> {
        let c = self.num_features;
        let weight = match &self.affine.weight {
            Some(w) => w.reshape(c)?.to_dtype(x3.dtype())?,
            None => Tensor::ones(c, x3.dtype(), x3.device())?,
        };
        let bias = match &self.affine.bias {
            Some(b) => b.reshape(c)?.to_dtype(x3.dtype())?,
            None => Tensor::zeros(c, x3.dtype(), x3.device())?,
        };
        if !kernel::eligible(x3, &[&weight, &bias]) {
            return Ok(None);
        }
        let fixed = match (&self.running, train) {
            (Some(running), false) => {
                let r = lock(running)?;
                Some(ChannelStats::from_tensors(&r.mean, &r.var)?)
            }
            _ => None,
        };
        Ok(Some(kernel::batch_norm(
            x3, &weight, &bias, self.eps, fixed,
        )?))
    }

    /// The Candle-op graph: `y` `(N, C, S)`, updating `update`'s running statistics (`n`
    /// values per channel) with the batch's.
    fn forward_reference(
        &self,
        x3: &Tensor,
        train: bool,
        update: Option<&Mutex<RunningStats>>,
        n: usize,
    ) -> Result<Tensor> {
        let view = [1, self.num_features, 1];
        let y = match (&self.running, train) {
            (Some(running), false) => {
                let r = lock(running)?;
                let mean = r.mean.reshape(&view[..])?.to_dtype(x3.dtype())?;
                let var = r.var.reshape(&view[..])?.to_dtype(x3.dtype())?;
                normalize(x3, &mean, &var, self.eps)?
            }
            _ => {
                let (mean, var) = moments(x3, &[0, 2])?;
                if let Some(running) = update {
                    let unbiased = (var.detach() * (n as f64 / (n - 1) as f64))?;
                    lock(running)?.update(&mean, &unbiased)?;
                }
                normalize(x3, &mean, &var, self.eps)?
            }
        };
        self.affine.apply(y, &view)
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_train(xs, train).map_err(to_candle)
    }
}

impl Layer for BatchNorm {
    fn output_shape(&self) -> Vec<usize> {
        self.sample_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        self.forward_train(x, ctx.train)
    }

    fn buffers(&self) -> StateDict {
        buffers_of(&self.running)
    }

    fn load_buffers(&mut self, buffers: &StateDict) -> Result<()> {
        load_buffers_into(&self.running, buffers)
    }

    fn reset_running_stats(&mut self) -> Result<usize> {
        match &self.running {
            Some(r) => lock(r)?.reset().map(|()| 1),
            None => Ok(0),
        }
    }

    fn set_cumulative_stats(&mut self, cumulative: bool) -> Result<()> {
        if let Some(r) = &self.running {
            lock(r)?.cumulative = cumulative;
        }
        Ok(())
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: BatchNormConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(BatchNorm::from_context(config, ctx)?))
}

gradus_core::register_normalization!(
    "batch_norm",
    "batch normalization over (N,C), (N,C,L), (N,C,H,W); running stats as buffers (torch.nn.BatchNorm1d/2d)",
    BatchNormConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{channel_moments, context};
    use candle_nn::VarMap;
    use proptest::prelude::*;

    #[test]
    fn running_stats_are_buffers_not_variables() {
        let vars = VarMap::new();
        let mut rng = gradus_core::SeededRng::new(0);
        let mut ctx = context(&vars, &[3, 4], &mut rng);
        let mut bn = BatchNorm::from_context(BatchNormConfig::default(), &mut ctx).unwrap();
        let mut names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["bn.bias", "bn.weight"]);
        let x = Tensor::arange(0f64, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap();
        let mut fctx = ForwardContext {
            train: true,
            rng: &mut rng,
        };
        bn.forward(&x, &mut fctx).unwrap();
        let saved = bn.buffers();
        assert_eq!(
            saved.names().collect::<Vec<_>>(),
            ["num_batches_tracked", "running_mean", "running_var"]
        );
        // A fresh layer loaded with the buffers evaluates identically.
        let vars2 = VarMap::new();
        let mut ctx2 = context(&vars2, &[3, 4], &mut rng);
        let mut other = BatchNorm::from_context(BatchNormConfig::default(), &mut ctx2).unwrap();
        other.load_buffers(&saved).unwrap();
        let a = bn
            .forward_train(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let b = other
            .forward_train(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(a, b);
        let mut wrong = StateDict::new();
        wrong.insert(
            "running_mean",
            Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap(),
        );
        assert!(other.load_buffers(&wrong).is_err());
    }

    #[test]
    fn bad_inputs_and_configs_are_errors() {
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let bn = BatchNorm::new(3, BatchNormConfig::default(), vb.clone()).unwrap();
        let x = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
        let err = bn.forward_train(&x, true).unwrap_err().to_string();
        assert!(err.contains("expected [4, 3], got [4, 2]"), "{err}");
        let one = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
        let err = bn.forward_train(&one, true).unwrap_err().to_string();
        assert!(err.contains("more than 1 value per channel"), "{err}");
        assert!(bn.forward_train(&one, false).is_ok());
        let cfg = BatchNormConfig {
            momentum: Some(1.5),
            ..Default::default()
        };
        assert!(BatchNorm::new(3, cfg, vb.clone()).is_err());
        let cfg = BatchNormConfig {
            eps: -1.0,
            ..Default::default()
        };
        assert!(BatchNorm::new(3, cfg, vb).is_err());
    }

    #[test]
    fn without_tracking_eval_uses_batch_statistics() {
        let vb = VarBuilder::zeros(DType::F64, &Device::Cpu);
        let cfg = BatchNormConfig {
            track_running_stats: false,
            affine: false,
            ..Default::default()
        };
        let bn = BatchNorm::new(2, cfg, vb).unwrap();
        let x = Tensor::new(&[[1.0f64, 10.0], [3.0, 30.0]], &Device::Cpu).unwrap();
        let train = bn
            .forward_train(&x, true)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let eval = bn
            .forward_train(&x, false)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert_eq!(train, eval);
        assert!(bn.running_stats().unwrap().is_none());
        assert!(bn.buffers().is_empty());
    }

    fn stats(bn: &BatchNorm) -> (Vec<f64>, Vec<f64>, i64) {
        let (m, v) = bn.running_stats().unwrap().unwrap();
        let count = bn
            .buffers()
            .get("num_batches_tracked")
            .unwrap()
            .to_scalar::<i64>()
            .unwrap();
        (m.to_vec1().unwrap(), v.to_vec1().unwrap(), count)
    }

    #[test]
    fn reset_and_cumulative_mode_average_batches_then_momentum_returns() {
        let vb = VarBuilder::zeros(DType::F64, &Device::Cpu);
        let mut bn = BatchNorm::new(2, BatchNormConfig::default(), vb).unwrap();
        let a = Tensor::new(&[[1.0f64, 10.0], [3.0, 30.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[5.0f64, -10.0], [9.0, 10.0]], &Device::Cpu).unwrap();
        bn.forward_train(&a, true).unwrap();
        assert_ne!(stats(&bn).0, vec![0.0, 0.0]);
        assert_eq!(bn.reset_running_stats().unwrap(), 1);
        assert_eq!(stats(&bn), (vec![0.0, 0.0], vec![1.0, 1.0], 0));
        bn.set_cumulative_stats(true).unwrap();
        bn.forward_train(&a, true).unwrap();
        // First batch after a reset: factor 1, the buffers are that batch's statistics
        // (unbiased variance: (1 - 3)^2 / 1 * 2 / 2 = 2 and 200).
        assert_eq!(stats(&bn), (vec![2.0, 20.0], vec![2.0, 200.0], 1));
        bn.forward_train(&b, true).unwrap();
        // Second: factor 1/2, the mean of the two batches' statistics.
        assert_eq!(stats(&bn), (vec![4.5, 10.0], vec![5.0, 200.0], 2));
        bn.set_cumulative_stats(false).unwrap();
        bn.forward_train(&a, true).unwrap();
        // Momentum 0.1 again: 0.9 * 4.5 + 0.1 * 2 = 4.25.
        let (mean, _, count) = stats(&bn);
        assert!((mean[0] - 4.25).abs() < 1e-12, "{mean:?}");
        assert_eq!(count, 3);
        // Without running statistics there is nothing to reset.
        let cfg = BatchNormConfig {
            track_running_stats: false,
            ..Default::default()
        };
        let mut untracked =
            BatchNorm::new(2, cfg, VarBuilder::zeros(DType::F64, &Device::Cpu)).unwrap();
        assert_eq!(untracked.reset_running_stats().unwrap(), 0);
        untracked.set_cumulative_stats(true).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn training_output_has_zero_mean_unit_variance_per_channel(
            n in 2usize..6, c in 1usize..4, s in 1usize..5, scale in 0.5f64..20.0, seed in any::<u64>(),
        ) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let x = rng.normal_tensor(&[n, c, s], 3.0, scale, DType::F64, &Device::Cpu).unwrap();
            let cfg = BatchNormConfig { affine: false, eps: 0.0, ..Default::default() };
            let bn = BatchNorm::new(c, cfg, VarBuilder::zeros(DType::F64, &Device::Cpu)).unwrap();
            let y = bn.forward_t(&x, true).unwrap();
            for (mean, var) in channel_moments(&y) {
                prop_assert!(mean.abs() < 1e-9, "mean {}", mean);
                prop_assert!((var - 1.0).abs() < 1e-9, "var {}", var);
            }
        }
    }
}
