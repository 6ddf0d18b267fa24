//! Building layers from JSON: one `type` looked up among the model layers, then among the
//! normalization layers, and a stack of layers with shapes inferred one after another.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use gradus_core::config::{display_path, index_path, join_path, split_type};
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::registry::{name_map, LayerKind, NormalizationKind};
use gradus_core::suggest::nearest;
use gradus_core::{Error, Result, SeededRng, StateDict};
use serde_json::Value;

/// Builds the layer `config` (`{"type": ..., ...}`, found at JSON path `path`) for
/// `ctx.input_shape`.
///
/// `type` is resolved among the registered model layers ([`LayerKind`]), then among the
/// normalization layers ([`NormalizationKind`]), so `batch_norm` and friends work in a layer
/// list. An unknown name lists the names of both kinds and suggests the nearest. A layer that
/// cannot take its input shape fails with an error naming the type, the input shape and `path`:
/// [`Error::ShapeMismatch`] (its context names type and path) or [`Error::Config`] at `path`.
pub fn build_layer(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let (name, rest) = split_type(config, path)?;
    let layers = name_map::<LayerKind>()?;
    let norms = name_map::<NormalizationKind>()?;
    let build = match (layers.get(name.as_str()), norms.get(name.as_str())) {
        (Some(entry), _) => entry.build,
        (None, Some(entry)) => entry.build,
        (None, None) => {
            let mut valid: Vec<String> = layers
                .keys()
                .chain(norms.keys())
                .map(|k| k.to_string())
                .collect();
            valid.sort();
            return Err(Error::UnknownName {
                kind: "layer",
                suggestion: nearest(&name, &valid),
                name,
                path: display_path(&join_path(path, "type")),
                valid,
            });
        }
    };
    let input = ctx.input_shape.clone();
    build(&rest, path, ctx).map_err(|err| locate(err, &name, path, &input))
}

/// Makes a build error name the layer type, its JSON path and its input shape.
fn locate(err: Error, name: &str, path: &str, input: &[usize]) -> Error {
    let path = display_path(path);
    match err {
        Error::ShapeMismatch {
            context,
            expected,
            actual,
        } => Error::ShapeMismatch {
            context: format!("`{name}` layer at {path} (input shape {input:?}): {context}"),
            expected,
            actual,
        },
        Error::Unsupported(message) => Error::config(
            path,
            format!("`{name}` layer cannot take input shape {input:?}: {message}"),
        ),
        Error::Candle(e) => Error::config(
            path,
            format!("`{name}` layer with input shape {input:?}: {e}"),
        ),
        other => other.at(&path),
    }
}

/// Makes an error of a layer's forward pass name the layer: its type, JSON path and the input
/// shape of the batch (a batch-norm layer given a one-sample batch says which one it is). An
/// error a nested layer already located stays as it is.
fn in_forward(err: Error, name: &str, path: &str, input: &[usize]) -> Error {
    let path = display_path(path);
    match err {
        located @ Error::Config { .. } => located,
        Error::ShapeMismatch {
            context,
            expected,
            actual,
        } if !context.contains(" layer at ") => Error::ShapeMismatch {
            context: format!("`{name}` layer at {path} (batch shape {input:?}): {context}"),
            expected,
            actual,
        },
        located @ Error::ShapeMismatch { .. } => located,
        other => Error::config(
            path,
            format!("`{name}` layer, forward pass on a batch of shape {input:?}: {other}"),
        ),
    }
}

/// Layers applied one after another, each built for the output shape of the one before.
pub(crate) struct Stack {
    pub layers: Vec<Box<dyn Layer>>,
    /// `(type, output shape)` of each layer.
    pub summary: Vec<(String, Vec<usize>)>,
    /// The JSON path of each layer, for errors of its forward pass.
    pub paths: Vec<String>,
    pub output_shape: Vec<usize>,
}

/// Where the parameters of a stack go and how they are drawn.
pub(crate) struct Placement<'a> {
    pub vars: &'a VarMap,
    pub rng: &'a mut SeededRng,
    pub dtype: DType,
    pub device: Device,
}

impl Stack {
    /// Builds `configs[i]` at JSON path `{path}[i]` with parameter prefix `{prefix}.{i}`.
    pub(crate) fn build(
        configs: &[Value],
        path: &str,
        prefix: &str,
        input_shape: &[usize],
        at: &mut Placement,
    ) -> Result<Stack> {
        let mut shape = input_shape.to_vec();
        let mut layers = Vec::with_capacity(configs.len());
        let mut summary = Vec::with_capacity(configs.len());
        let mut paths = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let layer_path = index_path(path, i);
            let mut ctx = LayerContext {
                input_shape: shape.clone(),
                vars: at.vars,
                prefix: join_path(prefix, &i.to_string()),
                path: layer_path.clone(),
                rng: &mut *at.rng,
                dtype: at.dtype,
                device: at.device.clone(),
            };
            let layer = build_layer(config, &layer_path, &mut ctx)?;
            shape = layer.output_shape();
            // Each batch holds N of these: bounded before a forward pass allocates them.
            gradus_core::limits::tensor_elements(&layer_path, "one output sample", &shape)?;
            let (name, _) = split_type(config, &layer_path)?;
            summary.push((name, shape.clone()));
            paths.push(layer_path);
            layers.push(layer);
        }
        Ok(Stack {
            layers,
            summary,
            paths,
            output_shape: shape,
        })
    }

    pub(crate) fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let out = layer
                .forward(&h, ctx)
                .map_err(|e| in_forward(e, &self.summary[i].0, &self.paths[i], h.dims()))?;
            h = out;
        }
        Ok(h)
    }

    /// Every layer's buffers, named `{prefix}.{i}.{name}`.
    pub(crate) fn buffers(&self, prefix: &str) -> StateDict {
        let mut all = StateDict::new();
        for (i, layer) in self.layers.iter().enumerate() {
            all.extend_prefixed(&join_path(prefix, &i.to_string()), &layer.buffers());
        }
        all
    }

    /// Restores what [`Stack::buffers`] saved.
    pub(crate) fn load_buffers(&mut self, prefix: &str, buffers: &StateDict) -> Result<()> {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.load_buffers(&buffers.sub(&join_path(prefix, &i.to_string())))?;
        }
        Ok(())
    }

    /// Resets every layer's running statistics; how many sets were reset.
    pub(crate) fn reset_running_stats(&mut self) -> Result<usize> {
        let mut count = 0;
        for layer in &mut self.layers {
            count += layer.reset_running_stats()?;
        }
        Ok(count)
    }

    /// Switches every layer's running statistics to (or from) the cumulative average.
    pub(crate) fn set_cumulative_stats(&mut self, cumulative: bool) -> Result<()> {
        self.layers
            .iter_mut()
            .try_for_each(|layer| layer.set_cumulative_stats(cumulative))
    }
}
