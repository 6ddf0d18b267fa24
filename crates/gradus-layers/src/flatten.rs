//! `flatten`: merges a range of dimensions (`torch.nn.Flatten`).

use candle_core::Tensor;
use gradus_core::config::join_path;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Flattens dimensions `start_dim..=end_dim` of the batch `(N, ...)` into one, as
/// `torch.nn.Flatten(start_dim=1, end_dim=-1)`: dimensions count from the batch dimension (0),
/// negative values from the end. The default turns `(N, C, H, W)` into `(N, C*H*W)`.
/// `start_dim = 0` (merging the batch) is an error: the layer must keep one row per sample.
#[derive(Debug)]
pub struct Flatten {
    output_shape: Vec<usize>,
}

/// Configuration of [`Flatten`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FlattenConfig {
    /// First dimension to flatten (of the batch tensor). Default: `1` (torch.nn.Flatten).
    pub start_dim: i64,
    /// Last dimension to flatten (of the batch tensor). Default: `-1` (torch.nn.Flatten).
    pub end_dim: i64,
}

impl Default for FlattenConfig {
    fn default() -> Self {
        FlattenConfig {
            start_dim: 1,
            end_dim: -1,
        }
    }
}

impl Flatten {
    /// Builds the layer for the per-sample `input_shape`; `path` names config errors.
    pub fn new(config: &FlattenConfig, input_shape: &[usize], path: &str) -> Result<Self> {
        let rank = input_shape.len() as i64 + 1; // with the batch dimension
        let norm = |d: i64, field: &str| -> Result<usize> {
            let n = if d < 0 { d + rank } else { d };
            if (0..rank).contains(&n) {
                Ok(n as usize)
            } else {
                Err(Error::config(
                    join_path(path, field),
                    format!(
                        "Dimension out of range (expected to be in range of [{}, {}], but got {d}) for per-sample shape {input_shape:?}",
                        -rank,
                        rank - 1
                    ),
                ))
            }
        };
        let start = norm(config.start_dim, "start_dim")?;
        let end = norm(config.end_dim, "end_dim")?;
        if start == 0 {
            return Err(Error::config(
                join_path(path, "start_dim"),
                "start_dim 0 would merge the batch dimension; use 1 or more",
            ));
        }
        if start > end {
            return Err(Error::config(
                join_path(path, "start_dim"),
                format!("flatten() has invalid args: start_dim ({start}) cannot come after end_dim ({end})"),
            ));
        }
        // Sample dimension k is batch dimension k + 1.
        let (s, e) = (start - 1, end - 1);
        let mut output_shape = input_shape[..s].to_vec();
        output_shape.push(input_shape[s..=e].iter().product());
        output_shape.extend_from_slice(&input_shape[e + 1..]);
        Ok(Flatten { output_shape })
    }
}

impl Layer for Flatten {
    fn output_shape(&self) -> Vec<usize> {
        self.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardContext) -> Result<Tensor> {
        let mut shape = vec![x.dim(0)?];
        shape.extend_from_slice(&self.output_shape);
        Ok(x.reshape(shape)?)
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: FlattenConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Flatten::new(&config, &ctx.input_shape, path)?))
}

gradus_core::register_layer!(
    "flatten",
    "flattens dims start_dim..=end_dim, counted with the batch dim (torch.nn.Flatten)",
    FlattenConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fctx;
    use candle_core::{DType, Device};
    use serde_json::json;

    fn flat(config: Value, shape: &[usize]) -> Result<Flatten> {
        let config: FlattenConfig = gradus_core::config::parse_config(&config, "m[0]")?;
        Flatten::new(&config, shape, "m[0]")
    }

    #[test]
    fn shapes_follow_pytorch() {
        assert_eq!(
            flat(json!({}), &[2, 3, 4]).unwrap().output_shape(),
            vec![24]
        );
        assert_eq!(
            flat(json!({"start_dim": 2}), &[2, 3, 4])
                .unwrap()
                .output_shape(),
            vec![2, 12]
        );
        assert_eq!(
            flat(json!({"end_dim": -2}), &[2, 3, 4])
                .unwrap()
                .output_shape(),
            vec![6, 4]
        );
        assert_eq!(
            flat(json!({"start_dim": 2, "end_dim": 2}), &[2, 3, 4])
                .unwrap()
                .output_shape(),
            vec![2, 3, 4]
        );
        assert_eq!(flat(json!({}), &[5]).unwrap().output_shape(), vec![5]);
    }

    #[test]
    fn forward_keeps_row_major_order() {
        let mut f = flat(json!({}), &[2, 2, 2]).unwrap();
        let x = Tensor::arange(0f64, 16.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 2, 2, 2))
            .unwrap();
        let y = f.forward(&x, &mut fctx(false)).unwrap();
        assert_eq!(y.dims(), &[2, 8]);
        assert_eq!(
            y.get(1).unwrap().to_vec1::<f64>().unwrap(),
            (8..16).map(f64::from).collect::<Vec<_>>()
        );
        let z = Tensor::zeros((3, 2, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(f.forward(&z, &mut fctx(true)).unwrap().dims(), &[3, 8]);
    }

    #[test]
    fn invalid_dims_are_errors_with_paths() {
        let err = flat(json!({"start_dim": 0}), &[2, 3]).unwrap_err();
        assert!(err.to_string().contains("m[0].start_dim"), "{err}");
        let err = flat(json!({"end_dim": 4}), &[2, 3]).unwrap_err();
        assert!(err.to_string().contains("m[0].end_dim"), "{err}");
        let err = flat(json!({"start_dim": 2, "end_dim": 1}), &[2, 3]).unwrap_err();
        assert!(err.to_string().contains("cannot come after"), "{err}");
        let err = flat(json!({}), &[]).unwrap_err();
        assert!(err.to_string().contains("m[0]"), "{err}");
    }
}
