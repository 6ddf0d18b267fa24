//! Instance normalization over `(N, C, L)`, `(N, C, H, W)`, ... (`torch.nn.InstanceNorm1d/2d/3d`).

use std::sync::Mutex;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::affine::{placement, Affine};
use crate::moments::{check_eps, moments, normalize, numel, to_candle};
use crate::running::{buffers_of, check_momentum, load_buffers_into, lock, RunningStats};

/// Instance normalization (Ulyanov et al., 2016): each `(sample, channel)` of an input
/// `(N, C, *)` (at least one spatial dimension) is normalized over its spatial positions,
///
/// `y = (x - mu_{n,c}) / sqrt(var_{n,c} + eps) * weight_c + bias_c` (biased variance).
///
/// Defaults follow `torch.nn.InstanceNorm2d`: no affine parameters and no running statistics,
/// so training and evaluation agree. With `track_running_stats`, training updates
/// `running = (1 - momentum) * running + momentum * avg_n(stat_{n,c})` (unbiased variance), as
/// PyTorch, and evaluation uses the running statistics. One difference: `momentum` is a number
/// here; PyTorch's `momentum=None` silently means 0 for instance norm (the running statistics
/// never move), so it is not accepted.
#[derive(Debug)]
pub struct InstanceNorm {
    num_features: usize,
    eps: f64,
    affine: Affine,
    running: Option<Mutex<RunningStats>>,
    sample_shape: Vec<usize>,
}

/// Config of [`InstanceNorm`] (`num_features` comes from the input).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceNormConfig {
    /// Added to the variance. Default: `1e-5` (torch.nn.InstanceNorm2d).
    pub eps: f64,
    /// Running-statistics factor in `[0, 1]` (used with `track_running_stats`).
    /// Default: `0.1` (torch.nn.InstanceNorm2d).
    pub momentum: f64,
    /// Learnable per-channel `weight` and `bias`. Default: `false` (torch.nn.InstanceNorm2d).
    pub affine: bool,
    /// Keep running statistics for evaluation mode. Default: `false` (torch.nn.InstanceNorm2d).
    pub track_running_stats: bool,
}

impl Default for InstanceNormConfig {
    fn default() -> Self {
        InstanceNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            affine: false,
            track_running_stats: false,
        }
    }
}

impl InstanceNorm {
    /// An instance norm over `num_features` channels; parameters (if `affine`) from `vb`.
    pub fn new(num_features: usize, config: InstanceNormConfig, vb: VarBuilder) -> Result<Self> {
        let affine = Affine::from_var_builder(&vb, &[num_features], config.affine, config.affine)?;
        let (dtype, device) = placement(&vb);
        Self::with_affine(num_features, &config, affine, dtype, &device)
    }

    /// An instance norm built from JSON: samples `(C, spatial...)`, channels `ctx.input_shape[0]`.
    pub fn from_context(config: InstanceNormConfig, ctx: &mut LayerContext) -> Result<Self> {
        if ctx.input_shape.len() < 2 {
            return Err(Error::Unsupported(format!(
                "instance_norm needs samples (C, L), (C, H, W), ... with a spatial dimension, got per-sample shape {:?}",
                ctx.input_shape
            )));
        }
        let channels = ctx.input_shape[0];
        let affine = Affine::from_context(ctx, &[channels], config.affine, config.affine)?;
        let mut layer = Self::with_affine(channels, &config, affine, ctx.dtype, &ctx.device)?;
        layer.sample_shape = ctx.input_shape.clone();
        Ok(layer)
    }

    fn with_affine(
        num_features: usize,
        config: &InstanceNormConfig,
        affine: Affine,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let eps = check_eps("instance_norm", config.eps)?;
        let momentum = check_momentum("instance_norm", Some(config.momentum))?;
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
        Ok(InstanceNorm {
            num_features,
            eps,
            affine,
            running,
            sample_shape: vec![num_features, 1],
        })
    }

    /// The trainable per-channel scale, when `affine`.
    pub fn weight(&self) -> Option<&Tensor> {
        self.affine.weight.as_ref()
    }

    /// The trainable per-channel shift, when `affine`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.affine.bias.as_ref()
    }

    /// Normalizes `x` `(N, C, *)`: instance statistics when `train` or when no running
    /// statistics are tracked, running statistics otherwise.
    pub fn forward_train(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 3 || dims[1] != self.num_features {
            return Err(Error::ShapeMismatch {
                context: "instance_norm input (N, C, spatial...): rank >= 3 and channels".into(),
                expected: vec![
                    dims.first().copied().unwrap_or(1),
                    self.num_features,
                    numel(dims.get(2..).unwrap_or(&[])),
                ],
                actual: dims,
            });
        }
        let (n, c, s) = (dims[0], dims[1], numel(&dims[2..]));
        let x3 = x.reshape((n, c, s))?;
        let y = match (&self.running, train) {
            (Some(running), false) => {
                let r = lock(running)?;
                let mean = r.mean.reshape((1, c, 1))?.to_dtype(x.dtype())?;
                let var = r.var.reshape((1, c, 1))?.to_dtype(x.dtype())?;
                normalize(&x3, &mean, &var, self.eps)?
            }
            (running, _) => {
                if s <= 1 {
                    return Err(Error::Unsupported(format!(
                        "Expected more than 1 spatial element when training, got input size {dims:?}"
                    )));
                }
                let (mean, var) = moments(&x3, &[2])?;
                if let (Some(running), true) = (running, train) {
                    let unbiased = (var.detach() * (s as f64 / (s - 1) as f64))?;
                    lock(running)?.update(&mean.detach().mean(0)?, &unbiased.mean(0)?)?;
                }
                normalize(&x3, &mean, &var, self.eps)?
            }
        };
        Ok(self.affine.apply(y, &[1, c, 1])?.reshape(dims)?)
    }
}

impl ModuleT for InstanceNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_train(xs, train).map_err(to_candle)
    }
}

impl Layer for InstanceNorm {
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
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: InstanceNormConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(InstanceNorm::from_context(config, ctx)?))
}

gradus_core::register_normalization!(
    "instance_norm",
    "instance normalization per (sample, channel) over spatial dims (torch.nn.InstanceNorm1d/2d)",
    InstanceNormConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_average_the_instances_and_drive_eval() {
        let dev = Device::Cpu;
        let cfg = InstanceNormConfig {
            track_running_stats: true,
            momentum: 0.5,
            ..Default::default()
        };
        let layer = InstanceNorm::new(1, cfg, VarBuilder::zeros(DType::F64, &dev)).unwrap();
        let x = Tensor::new(&[[[0.0f64, 2.0]], [[4.0, 8.0]]], &dev).unwrap();
        layer.forward_t(&x, true).unwrap();
        // Instance means 1 and 6 -> 3.5; unbiased variances 2 and 8 -> 5.
        let sd = layer.buffers();
        let mean = sd.get("running_mean").unwrap().to_vec1::<f64>().unwrap();
        let var = sd.get("running_var").unwrap().to_vec1::<f64>().unwrap();
        assert_eq!((mean[0], var[0]), (0.5 * 3.5, 0.5 + 0.5 * 5.0));
        let y = layer.forward_t(&x, false).unwrap();
        let expected = (4.0 - 1.75) / (3.0f64 + 1e-5).sqrt();
        assert!(
            (y.get(1)
                .unwrap()
                .get(0)
                .unwrap()
                .get(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
                - expected)
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn needs_spatial_positions() {
        let layer = InstanceNorm::new(
            2,
            InstanceNormConfig::default(),
            VarBuilder::zeros(DType::F32, &Device::Cpu),
        )
        .unwrap();
        let flat = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(layer.forward_train(&flat, true).is_err());
        let single = Tensor::zeros((4, 2, 1), DType::F32, &Device::Cpu).unwrap();
        let err = layer.forward_train(&single, false).unwrap_err().to_string();
        assert!(err.contains("more than 1 spatial element"), "{err}");
    }
}
