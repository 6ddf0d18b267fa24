//! `residual`: a skip connection around a list of layers.

use candle_core::Tensor;
use gradus_core::config::join_path;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::build::{build_layer, Placement, Stack};

/// A residual block (He et al. 2016): `y = f(x) + x`, or `y = f(x) + P(x)` with a projection.
///
/// `f` is the list `layers` applied in order (built at JSON path `{path}.layers[j]`, parameters
/// `<prefix>.layers.{j}.*`); `P` is the optional `projection` layer (`{path}.projection`,
/// `<prefix>.projection.*`), e.g. a `linear` or a 1x1 `conv2d` that changes the width. The
/// output shape of `f` must equal the input shape, or the output shape of `P` when given; any
/// other combination is an [`Error::ShapeMismatch`] naming both shapes.
pub struct Residual {
    body: Stack,
    projection: Option<Box<dyn Layer>>,
}

/// Configuration of [`Residual`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ResidualConfig {
    /// The layers of `f`, each `{"type": ..., ...}`. Required, at least one.
    #[schemars(schema_with = "gradus_core::schema::layers")]
    pub layers: Vec<Value>,
    /// Optional layer applied to the skip path. Default: `null` (identity).
    #[schemars(schema_with = "gradus_core::schema::optional_layer")]
    pub projection: Option<Value>,
}

impl Residual {
    /// Builds the block for `ctx.input_shape`.
    pub fn from_context(
        config: &ResidualConfig,
        path: &str,
        ctx: &mut LayerContext,
    ) -> Result<Self> {
        if config.layers.is_empty() {
            return Err(Error::config(
                join_path(path, "layers"),
                "a residual block needs at least one layer",
            ));
        }
        let input = ctx.input_shape.clone();
        let mut at = Placement {
            vars: ctx.vars,
            rng: &mut *ctx.rng,
            dtype: ctx.dtype,
            device: ctx.device.clone(),
        };
        let body = Stack::build(
            &config.layers,
            &join_path(path, "layers"),
            &join_path(&ctx.prefix, "layers"),
            &input,
            &mut at,
        )?;
        let projection = match &config.projection {
            Some(p) => {
                let mut pctx = LayerContext {
                    input_shape: input.clone(),
                    vars: ctx.vars,
                    prefix: join_path(&ctx.prefix, "projection"),
                    path: join_path(path, "projection"),
                    rng: &mut *ctx.rng,
                    dtype: ctx.dtype,
                    device: ctx.device.clone(),
                };
                Some(build_layer(p, &join_path(path, "projection"), &mut pctx)?)
            }
            None => None,
        };
        let skip_shape = projection
            .as_ref()
            .map_or(input.clone(), |p| p.output_shape());
        if skip_shape != body.output_shape {
            let skip = if projection.is_some() {
                format!(
                    "the projection ({}) maps the input {input:?} to",
                    join_path(path, "projection")
                )
            } else {
                "without a projection the skip path carries the input".to_string()
            };
            return Err(Error::ShapeMismatch {
                context: format!(
                    "residual block at {path}: its layers end in shape {:?} but {skip} {skip_shape:?}; \
                     add or fix a `projection`",
                    body.output_shape
                ),
                expected: skip_shape,
                actual: body.output_shape.clone(),
            });
        }
        Ok(Residual { body, projection })
    }
}

impl Layer for Residual {
    fn output_shape(&self) -> Vec<usize> {
        self.body.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        let fx = self.body.forward(x, ctx)?;
        let skip = match &mut self.projection {
            Some(p) => p.forward(x, ctx)?,
            None => x.clone(),
        };
        Ok((fx + skip)?)
    }

    fn buffers(&self) -> StateDict {
        let mut all = self.body.buffers("layers");
        if let Some(p) = &self.projection {
            all.extend_prefixed("projection", &p.buffers());
        }
        all
    }

    fn load_buffers(&mut self, buffers: &StateDict) -> Result<()> {
        self.body.load_buffers("layers", buffers)?;
        if let Some(p) = &mut self.projection {
            p.load_buffers(&buffers.sub("projection"))?;
        }
        Ok(())
    }

    fn reset_running_stats(&mut self) -> Result<usize> {
        let mut count = self.body.reset_running_stats()?;
        if let Some(p) = &mut self.projection {
            count += p.reset_running_stats()?;
        }
        Ok(count)
    }

    fn set_cumulative_stats(&mut self, cumulative: bool) -> Result<()> {
        self.body.set_cumulative_stats(cumulative)?;
        match &mut self.projection {
            Some(p) => p.set_cumulative_stats(cumulative),
            None => Ok(()),
        }
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: ResidualConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Residual::from_context(&config, path, ctx)?))
}

gradus_core::register_layer!(
    "residual",
    "skip connection y = f(x) + x, or + projection(x) (ResNet block)",
    ResidualConfig,
    build
);
