//! `drop_connect`: a linear layer whose weights, not activations, are dropped in training.

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::layer::{Layer, LayerContext};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer_util::{at_field, check_p, impl_module_t, Shaped, Stochastic};
use crate::mask::{apply, KeepMask, MaskMap};

/// DropConnect (Wan et al. 2013): a linear layer `y = x W^T + b` whose weight matrix is masked
/// in training.
///
/// ```text
/// y = x (M ⊙ W)^T / (1 - p) + b,    M_ij ~ Bernoulli(1 - p),   W: (out_features, in_features)
/// ```
///
/// One mask per forward call, shared by the samples of the batch (the paper draws one per
/// sample, which costs a weight-sized mask per sample); the bias is not dropped. Inverted
/// scaling makes `E[y] = x W^T + b`, and evaluation uses `W` unmasked (the paper's Gaussian
/// moment-matching inference is not implemented). Weight and bias are initialized as
/// `torch.nn.Linear` ([`kaiming_uniform_linear`]). Symbols: `p` = `p`. Defaults: `p = 0.5`
/// (Wan et al.), `bias = true` (torch.nn.Linear). The input `(N, ..., in_features)` fixes
/// `in_features`; `out_features` must be given.
#[derive(Debug)]
pub struct DropConnect {
    weight: Tensor,
    bias: Option<Tensor>,
    p: f64,
    rng: Mutex<SeededRng>,
}

/// Configuration of [`DropConnect`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DropConnectConfig {
    /// Number of output features (alias `out`); required, no default in torch.nn.Linear.
    #[serde(alias = "out")]
    #[schemars(extend("x-aliases" = ["out"]))]
    pub out_features: usize,
    /// Learn an additive bias. Default: `true` (torch.nn.Linear).
    pub bias: bool,
    /// Probability of dropping a weight, in `[0, 1)`. Default: `0.5` (Wan et al. 2013).
    pub p: f64,
}

impl Default for DropConnectConfig {
    fn default() -> Self {
        DropConnectConfig {
            out_features: 0,
            bias: true,
            p: 0.5,
        }
    }
}

/// `torch.nn.Linear`'s initialization drawn from `rng`: `kaiming_uniform_(W, a = sqrt(5))`,
/// i.e. `W ~ U(-b, b)` with `b = gain * sqrt(3 / in_features)`, `gain = sqrt(2 / (1 + a^2))`
/// (so `b = 1 / sqrt(in_features)`), then the bias `~ U(-1/sqrt(in), 1/sqrt(in))`.
pub fn kaiming_uniform_linear(
    in_features: usize,
    out_features: usize,
    bias: bool,
    dtype: DType,
    device: &Device,
    rng: &mut SeededRng,
) -> Result<(Tensor, Option<Tensor>)> {
    let fan_in = in_features as f64;
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let bound = if in_features == 0 {
        0.0
    } else {
        gain * (3.0 / fan_in).sqrt()
    };
    let weight = rng.uniform_tensor(&[out_features, in_features], -bound, bound, dtype, device)?;
    let bias = if bias {
        let b = if in_features == 0 {
            0.0
        } else {
            1.0 / fan_in.sqrt()
        };
        Some(rng.uniform_tensor(&[out_features], -b, b, dtype, device)?)
    } else {
        None
    };
    Ok((weight, bias))
}

impl DropConnect {
    /// A DropConnect layer over `weight` `(out, in)` and optional `bias` `(out)` (typically the
    /// tensors of [`candle_core::Var`]s); `seed` seeds the generator used through `ModuleT`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, p: f64, seed: u64) -> Result<Self> {
        check_p(p)?;
        let &[out, _] = weight.dims() else {
            return Err(Error::Unsupported(format!(
                "drop_connect weight must be (out_features, in_features), got {:?}",
                weight.dims()
            )));
        };
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(Error::ShapeMismatch {
                    context: "drop_connect bias".to_string(),
                    expected: vec![out],
                    actual: b.dims().to_vec(),
                });
            }
        }
        Ok(DropConnect {
            weight,
            bias,
            p,
            rng: Mutex::new(SeededRng::new(seed)),
        })
    }

    /// The weight `(out_features, in_features)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The output for `x` of shape `(..., in_features)`.
    pub fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        let (out, inp) = self.weight.dims2()?;
        let dims = x.dims();
        if dims.last() != Some(&inp) {
            let mut expected = dims.to_vec();
            match expected.last_mut() {
                Some(last) => *last = inp,
                None => expected.push(inp),
            }
            return Err(Error::ShapeMismatch {
                context: "drop_connect input".to_string(),
                expected,
                actual: dims.to_vec(),
            });
        }
        let weight = if train && self.p > 0.0 {
            let mask = KeepMask::draw(out * inp, self.p, rng);
            apply(&self.weight, mask, 1, MaskMap::scale(1.0 / (1.0 - self.p)))?
        } else {
            self.weight.clone()
        };
        let rows = x.elem_count() / inp.max(1);
        let y = x.reshape((rows, inp))?.matmul(&weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = out;
        }
        Ok(y.reshape(out_dims)?)
    }
}

impl Stochastic for DropConnect {
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        DropConnect::forward_with(self, x, train, rng)
    }
}

impl_module_t!(DropConnect);

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: DropConnectConfig = gradus_core::config::parse_config(config, path)?;
    check_p(config.p).map_err(|e| at_field(e, path, "p"))?;
    if config.out_features == 0 {
        return Err(Error::config(
            gradus_core::config::join_path(path, "out_features"),
            "drop_connect needs out_features > 0",
        ));
    }
    let Some(&in_features) = ctx.input_shape.last() else {
        return Err(Error::config(
            path,
            "drop_connect needs a non-scalar input sample",
        ));
    };
    ctx.check_parameter("weight", &[config.out_features, in_features])?;
    let (dtype, device) = (ctx.dtype, ctx.device.clone());
    let (w, b) = kaiming_uniform_linear(
        in_features,
        config.out_features,
        config.bias,
        dtype,
        &device,
        ctx.rng,
    )?;
    let weight = ctx.parameter("weight", w)?;
    let bias = b.map(|b| ctx.parameter("bias", b)).transpose()?;
    let mut output_shape = ctx.input_shape.clone();
    if let Some(last) = output_shape.last_mut() {
        *last = config.out_features;
    }
    Ok(Box::new(Shaped {
        module: DropConnect::new(weight, bias, config.p, 0)?,
        output_shape,
    }))
}

gradus_core::register_layer!(
    "drop_connect",
    "linear layer with DropConnect: weights dropped in training (Wan et al. 2013)",
    DropConnectConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::f32s;
    use candle_core::Var;
    use proptest::prelude::*;

    #[test]
    fn linear_init_respects_pytorch_bounds() {
        let mut rng = SeededRng::new(0);
        let (w, b) =
            kaiming_uniform_linear(25, 40, true, DType::F32, &Device::Cpu, &mut rng).unwrap();
        let bound = 1.0 / 5.0 + 1e-7;
        assert!(f32s(&w).iter().all(|v| (*v as f64).abs() <= bound));
        assert!(f32s(&b.unwrap()).iter().all(|v| (*v as f64).abs() <= bound));
        // U(-b, b) has variance b^2 / 3.
        let var = f32s(&w).iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / 1000.0;
        assert!((var - 0.04 / 3.0).abs() < 0.002, "{var}");
    }

    #[test]
    fn wrong_input_width_names_both_shapes() {
        let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        let layer = DropConnect::new(w, None, 0.5, 0).unwrap();
        let x = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        let err = layer
            .forward_with(&x, false, &mut SeededRng::new(0))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch in drop_connect input: expected [2, 4], got [2, 5]"
        );
    }

    #[test]
    fn gradient_reaches_only_kept_weights() {
        let w = Var::from_tensor(&Tensor::ones((3, 4), DType::F64, &Device::Cpu).unwrap()).unwrap();
        let layer = DropConnect::new(w.as_tensor().clone(), None, 0.5, 0).unwrap();
        let x = Tensor::ones((2, 4), DType::F64, &Device::Cpu).unwrap();
        let y = layer
            .forward_with(&x, true, &mut SeededRng::new(3))
            .unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g
            .get(w.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let mask = KeepMask::draw(12, 0.5, &mut SeededRng::new(3));
        for (i, gi) in g.iter().enumerate() {
            let want = if mask.is_kept(i) { 2.0 * 2.0 } else { 0.0 };
            assert_eq!(*gi, want, "weight {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Feeding the identity exposes the masked weights: dropped fraction ~ p, mean over
        /// draws ~ W, eval equals the plain linear map, same seed same mask.
        #[test]
        fn masks_weights_unbiasedly(seed in any::<u64>(), p in 0.0f64..0.9) {
            let (inp, out) = (6, 5);
            let draws = 400;
            let mut rng = SeededRng::new(seed);
            let (w, _) = kaiming_uniform_linear(inp, out, false, DType::F32, &Device::Cpu, &mut rng).unwrap();
            let w = (w.abs().unwrap() + 0.1).unwrap();
            let layer = DropConnect::new(w.clone(), None, p, 0).unwrap();
            let eye = Tensor::eye(inp, DType::F32, &Device::Cpu).unwrap();
            let wt = f32s(&w.t().unwrap().contiguous().unwrap());
            let mut draw_rng = SeededRng::new(seed);
            let mut all = Vec::with_capacity(draws * inp * out);
            for _ in 0..draws {
                all.extend(f32s(&layer.forward_with(&eye, true, &mut draw_rng).unwrap()));
            }
            let zeros = all.iter().filter(|v| **v == 0.0).count() as f64 / all.len() as f64;
            prop_assert!((zeros - p).abs() <= 6.0 * (p * (1.0 - p) / all.len() as f64).sqrt() + 1e-9);
            let stacked = Tensor::from_vec(all, (draws, inp * out), &Device::Cpu).unwrap();
            crate::testing::assert_unbiased(&stacked, &wt, draws, p / (1.0 - p));
            let eval = layer.forward_with(&eye, false, &mut draw_rng).unwrap();
            prop_assert_eq!(f32s(&eval), wt);
            let a = layer.forward_with(&eye, true, &mut SeededRng::new(seed)).unwrap();
            let b = layer.forward_with(&eye, true, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(f32s(&a), f32s(&b));
        }
    }
}
