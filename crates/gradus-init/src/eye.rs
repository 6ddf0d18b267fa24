//! Identity initializer (`torch.nn.init.eye_`).

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The identity matrix: `w[i][j] = 1` if `i == j` else `0`, for a 2-D shape `(rows, cols)`
/// (rectangular shapes get ones on the main diagonal). Preserves the identity of the inputs in
/// linear layers. Draws nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Eye;

/// Config of [`Eye`]: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EyeConfig {}

impl Initializer for Eye {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        _: &mut SeededRng,
    ) -> Result<Tensor> {
        let &[rows, cols] = shape else {
            return Err(Error::Unsupported(format!(
                "Only tensors with 2 dimensions are supported by eye, got shape {shape:?}"
            )));
        };
        let values: Vec<f64> = (0..rows * cols)
            .map(|k| {
                if k / cols.max(1) == k % cols.max(1) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    let _: EyeConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Eye))
}

gradus_core::register_initializer!(
    "eye",
    "identity matrix, 2-D only (torch.nn.init.eye_)",
    EyeConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::draw;

    #[test]
    fn identity_on_square_and_rectangular_shapes() {
        assert_eq!(draw(&Eye, &[2, 3], 0), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(draw(&Eye, &[3, 2], 0), vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        let mut rng = SeededRng::new(0);
        let err = Eye
            .init(&[2, 2, 2], DType::F32, &Device::Cpu, &mut rng)
            .unwrap_err();
        assert!(
            err.to_string().contains("Only tensors with 2 dimensions"),
            "{err}"
        );
    }
}
