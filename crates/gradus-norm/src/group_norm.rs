//! Group normalization (`torch.nn.GroupNorm`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::affine::Affine;
use crate::moments::{check_eps, moments, normalize, numel, to_candle};

/// Group normalization (Wu & He, 2018): the `C` channels of an input `(N, C, *)` are split into
/// `num_groups` groups of `C / G` consecutive channels; each `(sample, group)` is normalized by
/// its own mean and biased variance over its channels and positions,
///
/// `y = (x - mu_{n,g}) / sqrt(var_{n,g} + eps) * weight_c + bias_c`,
///
/// the same in training and evaluation. `weight` (ones) and `bias` (zeros) are per channel.
/// `num_groups = 1` is layer norm over `(C, *)` with per-channel affine; `num_groups = C` is
/// instance norm.
#[derive(Debug)]
pub struct GroupNorm {
    num_groups: usize,
    num_channels: usize,
    eps: f64,
    affine: Affine,
    sample_shape: Vec<usize>,
}

/// Config of [`GroupNorm`] (`num_channels` comes from the input).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GroupNormConfig {
    /// Number of groups; must divide the channels. Required (torch.nn.GroupNorm has no
    /// default): `null` is an error.
    pub num_groups: Option<usize>,
    /// Added to the variance. Default: `1e-5` (torch.nn.GroupNorm).
    pub eps: f64,
    /// Learnable per-channel `weight` and `bias`. Default: `true` (torch.nn.GroupNorm).
    pub affine: bool,
}

impl Default for GroupNormConfig {
    fn default() -> Self {
        GroupNormConfig {
            num_groups: None,
            eps: 1e-5,
            affine: true,
        }
    }
}

impl GroupNorm {
    /// A group norm over `num_channels` channels; parameters from `vb`.
    pub fn new(num_channels: usize, config: GroupNormConfig, vb: VarBuilder) -> Result<Self> {
        let groups = check_groups(&config, num_channels)?;
        let affine = Affine::from_var_builder(&vb, &[num_channels], config.affine, config.affine)?;
        Self::with_affine(groups, num_channels, vec![num_channels], &config, affine)
    }

    /// A group norm built from JSON: channels are `ctx.input_shape[0]`.
    pub fn from_context(config: GroupNormConfig, ctx: &mut LayerContext) -> Result<Self> {
        let channels = ctx.input_shape.first().copied().unwrap_or(0);
        let groups = check_groups(&config, channels)?;
        let affine = Affine::from_context(ctx, &[channels], config.affine, config.affine)?;
        Self::with_affine(groups, channels, ctx.input_shape.clone(), &config, affine)
    }

    fn with_affine(
        num_groups: usize,
        num_channels: usize,
        sample_shape: Vec<usize>,
        config: &GroupNormConfig,
        affine: Affine,
    ) -> Result<Self> {
        Ok(GroupNorm {
            num_groups,
            num_channels,
            eps: check_eps("group_norm", config.eps)?,
            affine,
            sample_shape,
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

    /// Normalizes `x` `(N, C, *)`.
    pub fn forward_norm(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 2 || dims[1] != self.num_channels {
            return Err(Error::ShapeMismatch {
                context: "group_norm input (N, C, ...): channels".into(),
                expected: vec![self.num_channels],
                actual: dims,
            });
        }
        let (n, s) = (dims[0], numel(&dims[2..]));
        let xg = x.reshape((n, self.num_groups, self.num_channels / self.num_groups * s))?;
        let (mean, var) = moments(&xg, &[2])?;
        let y = normalize(&xg, &mean, &var, self.eps)?.reshape((n, self.num_channels, s))?;
        Ok(self
            .affine
            .apply(y, &[1, self.num_channels, 1])?
            .reshape(dims)?)
    }
}

fn check_groups(config: &GroupNormConfig, channels: usize) -> Result<usize> {
    match config.num_groups {
        None => Err(Error::InvalidHyperparameter(
            "group_norm: `num_groups` is required (torch.nn.GroupNorm has no default)".into(),
        )),
        Some(0) => Err(Error::InvalidHyperparameter(
            "group_norm: num_groups must be positive".into(),
        )),
        Some(g) if !channels.is_multiple_of(g) => Err(Error::InvalidHyperparameter(format!(
            "num_channels must be divisible by num_groups (num_channels {channels}, num_groups {g})"
        ))),
        Some(g) => Ok(g),
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_norm(xs).map_err(to_candle)
    }
}

impl Layer for GroupNorm {
    fn output_shape(&self) -> Vec<usize> {
        self.sample_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _: &mut ForwardContext) -> Result<Tensor> {
        self.forward_norm(x)
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: GroupNormConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(GroupNorm::from_context(config, ctx)?))
}

gradus_core::register_normalization!(
    "group_norm",
    "group normalization over channel groups of (N,C,*) (torch.nn.GroupNorm); needs num_groups",
    GroupNormConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn vb() -> VarBuilder<'static> {
        VarBuilder::zeros(DType::F64, &Device::Cpu)
    }

    #[test]
    fn groups_must_be_given_and_divide_channels() {
        let err = GroupNorm::new(6, GroupNormConfig::default(), vb()).unwrap_err();
        assert!(
            err.to_string().contains("`num_groups` is required"),
            "{err}"
        );
        let cfg = GroupNormConfig {
            num_groups: Some(4),
            ..Default::default()
        };
        let err = GroupNorm::new(6, cfg, vb()).unwrap_err();
        assert!(err.to_string().contains("divisible"), "{err}");
    }

    #[test]
    fn one_group_per_channel_is_instance_norm() {
        let mut rng = gradus_core::SeededRng::new(1);
        let x = rng
            .normal_tensor(&[2, 3, 5], 1.0, 2.0, DType::F64, &Device::Cpu)
            .unwrap();
        let cfg = GroupNormConfig {
            num_groups: Some(3),
            affine: false,
            eps: 0.0,
        };
        let y = GroupNorm::new(3, cfg, vb()).unwrap().forward(&x).unwrap();
        let (mean, var) = moments(&y, &[2]).unwrap();
        let (mean, var) = (
            mean.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            var.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        );
        assert!(
            mean.iter().all(|m| m.abs() < 1e-12) && var.iter().all(|v| (v - 1.0).abs() < 1e-12)
        );
        let bad = Tensor::zeros((2, 4, 5), DType::F64, &Device::Cpu).unwrap();
        assert!(GroupNorm::new(
            3,
            GroupNormConfig {
                num_groups: Some(3),
                ..Default::default()
            },
            vb()
        )
        .unwrap()
        .forward_norm(&bad)
        .is_err());
    }
}
