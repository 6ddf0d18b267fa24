//! The default initialization of `torch.nn.Linear` (and `nn.Conv*d`), for parity with PyTorch.

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fan::{fan_in_and_fan_out, FanMode, Nonlinearity};
use crate::kaiming::{KaimingConfig, KaimingUniform};

/// What `nn.Linear.reset_parameters` (and `nn.Conv*d`) does:
///
/// - **weight** (`fan_in` unset, shape of two or more dimensions):
///   `kaiming_uniform_(w, a=sqrt(5))`, i.e. `gain = sqrt(2 / (1 + 5)) = sqrt(1/3)` and
///   `w ~ U(-bound, bound)` with `bound = sqrt(3) * gain / sqrt(fan_in) = 1 / sqrt(fan_in)`
///   (computed through the same Kaiming path as PyTorch, so the bound agrees to the last bit);
/// - **bias** (`fan_in` set to the *weight's* fan-in, any shape):
///   `b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, and `0` bound (all zeros) when `fan_in == 0`.
///   [`linear_bias_bound`] gives that bound from the weight's shape.
///
/// Its variance `1 / (3 fan_in)` is a third of LeCun's: a known quirk of PyTorch's default.
#[derive(Debug, Clone, Copy)]
pub struct TorchLinearDefault {
    fan_in: Option<usize>,
}

/// Config of [`TorchLinearDefault`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TorchLinearDefaultConfig {
    /// Unset: the weight rule, fans from the shape. Set: the bias rule, with the fan-in of the
    /// layer's weight (`in_features * prod(kernel_size)`). Default: unset (`null`).
    pub fan_in: Option<usize>,
}

impl TorchLinearDefault {
    /// The weight rule (`fan_in` unset) or the bias rule (`fan_in` set).
    pub fn new(config: TorchLinearDefaultConfig) -> Self {
        TorchLinearDefault {
            fan_in: config.fan_in,
        }
    }
}

/// `1 / sqrt(fan_in)` of a weight of `weight_shape` (0 when `fan_in` is 0): the bias bound of
/// `nn.Linear` / `nn.Conv*d`.
pub fn linear_bias_bound(weight_shape: &[usize]) -> Result<f64> {
    let (fan_in, _) = fan_in_and_fan_out(weight_shape)?;
    Ok(bias_bound(fan_in))
}

fn bias_bound(fan_in: usize) -> f64 {
    if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    }
}

impl Initializer for TorchLinearDefault {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        match self.fan_in {
            Some(fan_in) => {
                let bound = bias_bound(fan_in);
                rng.uniform_tensor(shape, -bound, bound, dtype, device)
            }
            None if shape.len() < 2 => Err(Error::Unsupported(format!(
                "torch_linear_default on a {shape:?} tensor: the bias rule needs the weight's \
                 `fan_in` in the config (fans can not be computed for fewer than 2 dimensions)"
            ))),
            None => KaimingUniform::new(KaimingConfig {
                a: 5.0f64.sqrt(),
                mode: FanMode::FanIn,
                nonlinearity: Nonlinearity::LeakyRelu,
            })?
            .init(shape, dtype, device, rng),
        }
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(TorchLinearDefault::new(
        gradus_core::config::parse_config(config, path)?,
    )))
}

gradus_core::register_initializer!(
    "torch_linear_default",
    "nn.Linear's default: weight kaiming_uniform(a=sqrt(5)); bias U(+-1/sqrt(fan_in)) with fan_in set",
    TorchLinearDefaultConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_uniform, draw};

    #[test]
    fn weight_and_bias_rules() {
        let w = TorchLinearDefault::new(TorchLinearDefaultConfig::default());
        let values = draw(&w, &[40, 50], 3);
        let bound = 1.0 / 50f64.sqrt();
        check_uniform(&values, bound * (1.0 + 1e-12)).unwrap();
        assert!((linear_bias_bound(&[40, 50]).unwrap() - bound).abs() < 1e-16);
        let b = TorchLinearDefault::new(TorchLinearDefaultConfig { fan_in: Some(50) });
        assert!(draw(&b, &[40], 3).iter().all(|v| v.abs() <= bound));
        let zero = TorchLinearDefault::new(TorchLinearDefaultConfig { fan_in: Some(0) });
        assert_eq!(draw(&zero, &[3], 0), vec![0.0; 3]);
        let mut rng = SeededRng::new(0);
        let err = w
            .init(&[40], DType::F32, &Device::Cpu, &mut rng)
            .unwrap_err();
        assert!(
            err.to_string().contains("needs the weight's `fan_in`"),
            "{err}"
        );
    }
}
