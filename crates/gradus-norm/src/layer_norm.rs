//! Layer normalization (`torch.nn.LayerNorm`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::affine::Affine;
use crate::moments::{check_eps, moments, normalize, numel, to_candle};

/// Layer normalization (Ba, Kiros & Hinton, 2016) over the trailing `normalized_shape`
/// dimensions `D` of each sample:
///
/// `y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias`,
///
/// mean and biased variance over `D`, separately for every leading index; the same in training
/// and evaluation (no running statistics). `weight` (ones) and `bias` (zeros) have shape `D`
/// when `elementwise_affine` (`bias` also needs `bias = true`).
#[derive(Debug)]
pub struct LayerNorm {
    normalized_shape: Vec<usize>,
    eps: f64,
    affine: Affine,
    sample_shape: Vec<usize>,
}

/// Config of [`LayerNorm`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LayerNormConfig {
    /// The trailing dimensions to normalize over. `null` = every dimension of a sample (all
    /// but the batch dimension, as the paper's "all hidden units of a layer"); set `[D]` to
    /// normalize the last dimension only (transformers). Required by torch.nn.LayerNorm;
    /// Default here: `null` (inferred).
    pub normalized_shape: Option<Vec<usize>>,
    /// Added to the variance. Default: `1e-5` (torch.nn.LayerNorm).
    pub eps: f64,
    /// Learnable elementwise `weight` (and `bias`). Default: `true` (torch.nn.LayerNorm).
    pub elementwise_affine: bool,
    /// Learnable `bias` (with `elementwise_affine`). Default: `true` (torch.nn.LayerNorm).
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            normalized_shape: None,
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

impl LayerNorm {
    /// A layer norm over `normalized_shape`; parameters from `vb`. A `config.normalized_shape`
    /// that is set must equal `normalized_shape`.
    pub fn new(
        normalized_shape: &[usize],
        config: LayerNormConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        if let Some(configured) = &config.normalized_shape {
            if configured != normalized_shape {
                return Err(Error::ShapeMismatch {
                    context: "layer_norm normalized_shape (argument vs config)".into(),
                    expected: normalized_shape.to_vec(),
                    actual: configured.clone(),
                });
            }
        }
        let affine = config.elementwise_affine;
        let affine =
            Affine::from_var_builder(&vb, normalized_shape, affine, affine && config.bias)?;
        Self::with_affine(
            normalized_shape.to_vec(),
            normalized_shape.to_vec(),
            &config,
            affine,
        )
    }

    /// A layer norm built from JSON for samples of `ctx.input_shape`.
    pub fn from_context(config: LayerNormConfig, ctx: &mut LayerContext) -> Result<Self> {
        let sample = ctx.input_shape.clone();
        let normalized = config
            .normalized_shape
            .clone()
            .unwrap_or_else(|| sample.clone());
        if normalized.is_empty()
            || normalized.len() > sample.len()
            || !sample.ends_with(&normalized)
        {
            return Err(Error::ShapeMismatch {
                context: "layer_norm normalized_shape (trailing dimensions of a sample)".into(),
                expected: sample,
                actual: normalized,
            });
        }
        let affine = config.elementwise_affine;
        let affine = Affine::from_context(ctx, &normalized, affine, affine && config.bias)?;
        Self::with_affine(normalized, sample, &config, affine)
    }

    fn with_affine(
        normalized_shape: Vec<usize>,
        sample_shape: Vec<usize>,
        config: &LayerNormConfig,
        affine: Affine,
    ) -> Result<Self> {
        Ok(LayerNorm {
            normalized_shape,
            eps: check_eps("layer_norm", config.eps)?,
            affine,
            sample_shape,
        })
    }

    /// The trainable scale, when `elementwise_affine`.
    pub fn weight(&self) -> Option<&Tensor> {
        self.affine.weight.as_ref()
    }

    /// The trainable shift, when `elementwise_affine` and `bias`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.affine.bias.as_ref()
    }

    /// Normalizes `x` `(*, normalized_shape)`.
    pub fn forward_norm(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if !dims.ends_with(&self.normalized_shape) {
            return Err(Error::ShapeMismatch {
                context: "layer_norm input (*, normalized_shape)".into(),
                expected: self.normalized_shape.clone(),
                actual: dims,
            });
        }
        let k = numel(&self.normalized_shape);
        let rows = numel(&dims) / k.max(1);
        let x2 = x.reshape((rows, k))?;
        let (mean, var) = moments(&x2, &[1])?;
        let y = normalize(&x2, &mean, &var, self.eps)?;
        Ok(self.affine.apply(y, &[1, k])?.reshape(dims)?)
    }
}

/// A stand-in for `candle_nn::layer_norm(size, eps, vb)` in a `VarBuilder` model: layer norm
/// over the last dimension of `size` features, with `weight` and `bias` under the same
/// `VarBuilder` names (so checkpoints load either way), and a backward pass. candle-nn 0.11's
/// `LayerNorm` runs a fused kernel without one on contiguous input, so gradients stop there
/// (see docs/candle-interop.md).
pub fn candle_layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let config = LayerNormConfig {
        normalized_shape: Some(vec![size]),
        eps,
        ..LayerNormConfig::default()
    };
    LayerNorm::new(&[size], config, vb)
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_norm(xs).map_err(to_candle)
    }
}

impl Layer for LayerNorm {
    fn output_shape(&self) -> Vec<usize> {
        self.sample_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _: &mut ForwardContext) -> Result<Tensor> {
        self.forward_norm(x)
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: LayerNormConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(LayerNorm::from_context(config, ctx)?))
}

gradus_core::register_normalization!(
    "layer_norm",
    "layer normalization over the trailing dims of each sample (torch.nn.LayerNorm)",
    LayerNormConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::context;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn normalizes_each_row_and_checks_shapes() {
        let vb = VarBuilder::zeros(DType::F64, &Device::Cpu);
        let cfg = LayerNormConfig {
            eps: 0.0,
            elementwise_affine: false,
            ..Default::default()
        };
        let ln = LayerNorm::new(&[4], cfg, vb).unwrap();
        let x = Tensor::new(
            &[[1.0f64, 2.0, 3.0, 4.0], [10.0, 10.0, 20.0, 20.0]],
            &Device::Cpu,
        )
        .unwrap();
        let y = ln.forward(&x).unwrap().to_vec2::<f64>().unwrap();
        assert!((y[1][0] + 1.0).abs() < 1e-12 && (y[1][3] - 1.0).abs() < 1e-12);
        let bad = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap();
        assert!(ln
            .forward_norm(&bad)
            .unwrap_err()
            .to_string()
            .contains("expected [4], got [2, 3]"));
    }

    #[test]
    fn normalized_shape_is_inferred_or_checked() {
        let vars = VarMap::new();
        let mut rng = gradus_core::SeededRng::new(0);
        let mut ctx = context(&vars, &[3, 5], &mut rng);
        let ln = LayerNorm::from_context(LayerNormConfig::default(), &mut ctx).unwrap();
        assert_eq!(ln.weight().unwrap().dims(), &[3, 5]);
        let vars = VarMap::new();
        let mut ctx = context(&vars, &[3, 5], &mut rng);
        let cfg = LayerNormConfig {
            normalized_shape: Some(vec![3]),
            ..Default::default()
        };
        assert!(LayerNorm::from_context(cfg, &mut ctx).is_err());
        let mut ctx = context(&vars, &[3, 5], &mut rng);
        let cfg = LayerNormConfig {
            normalized_shape: Some(vec![5]),
            bias: false,
            ..Default::default()
        };
        let ln = LayerNorm::from_context(cfg, &mut ctx).unwrap();
        assert!(ln.bias().is_none());
    }
}
