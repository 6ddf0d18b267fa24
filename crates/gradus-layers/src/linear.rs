//! `linear`: the affine map `y = x W^T + b` (`torch.nn.Linear`).

use candle_core::{DType, Tensor};
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::util::{invalid, required};

/// A fully connected layer, as `torch.nn.Linear(in_features, out, bias)`:
///
/// ```text
/// y = x W^T + b,    W: (out, in),  b: (out)
/// ```
///
/// applied to the last dimension of each sample (`(*, in) -> (*, out)`), `in` being inferred
/// from the input shape. Parameters: `<prefix>.weight` `(out, in)` and `<prefix>.bias` `(out)`.
///
/// Initialization: `W` from the initializer `init` (default `torch_linear_default`:
/// `U(-1/sqrt(in), 1/sqrt(in))`, PyTorch's `kaiming_uniform_(a=sqrt(5))`), then `b` as
/// `nn.Linear.reset_parameters`: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (`fan_in = in`, 0 bound
/// when `in == 0`), both drawn from the build context's seeded generator in that order.
///
/// Computation: on the CPU in f32/f64 one fused custom op forward and one backward (the
/// `linear_kernel` module: gemm with the parallelism chosen by size, the three gradients out of
/// one op, no input gradient for data); elsewhere Candle's `matmul` and `broadcast_add`. The two
/// agree to rounding (tests: 1e-6 relative in f32, 1e-13 in f64).
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    output_shape: Vec<usize>,
    /// Forces Candle's ops (the reference path), for tests and benchmarks.
    pub(crate) reference: bool,
}

/// Configuration of [`Linear`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LinearConfig {
    /// Number of output features (`out_features` is accepted as an alias). Required (no
    /// PyTorch default).
    #[serde(alias = "out_features")]
    #[schemars(extend("x-aliases" = ["out_features"]))]
    pub out: Option<usize>,
    /// Learn an additive bias. Default: `true` (torch.nn.Linear).
    pub bias: bool,
    /// Initializer config of the weight. Default: `{"type": "torch_linear_default"}`
    /// (torch.nn.Linear.reset_parameters).
    #[schemars(schema_with = "gradus_core::schema::initializer")]
    pub init: Value,
}

impl Default for LinearConfig {
    fn default() -> Self {
        LinearConfig {
            out: None,
            bias: true,
            init: default_init(),
        }
    }
}

/// `{"type": "torch_linear_default"}`: PyTorch's default weight initialization.
pub(crate) fn default_init() -> Value {
    json!({"type": "torch_linear_default"})
}

/// Draws `nn.Linear`'s / `nn.Conv2d`'s bias `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` of length `n`.
pub(crate) fn default_bias(ctx: &mut LayerContext, n: usize, fan_in: usize) -> Result<Tensor> {
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    let device = ctx.device.clone();
    ctx.rng
        .uniform_tensor(&[n], -bound, bound, ctx.dtype, &device)
}

impl Linear {
    /// Builds the layer for `ctx.input_shape` (`(*, in)`), registering its parameters.
    pub fn from_context(config: &LinearConfig, path: &str, ctx: &mut LayerContext) -> Result<Self> {
        let out = required(config.out, path, "out")?;
        if out == 0 {
            return Err(invalid(path, "out", "out must be positive, got 0"));
        }
        let Some(&in_features) = ctx.input_shape.last() else {
            return Err(Error::Unsupported(
                "linear needs a per-sample input (*, in_features), got shape []".to_string(),
            ));
        };
        let init = ctx.initializer(
            Some(&config.init),
            &default_init(),
            &gradus_core::config::join_path(path, "init"),
        )?;
        ctx.check_parameter("weight", &[out, in_features])?;
        let device = ctx.device.clone();
        let w = init.init(&[out, in_features], ctx.dtype, &device, ctx.rng)?;
        let weight = ctx.parameter("weight", w)?;
        let bias = if config.bias {
            let b = default_bias(ctx, out, in_features)?;
            Some(ctx.parameter("bias", b)?)
        } else {
            None
        };
        let mut output_shape = ctx.input_shape.clone();
        if let Some(last) = output_shape.last_mut() {
            *last = out;
        }
        Ok(Linear {
            weight,
            bias,
            output_shape,
            reference: false,
        })
    }

    /// The weight `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `(out)`, when enabled.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Layer for Linear {
    fn output_shape(&self) -> Vec<usize> {
        self.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardContext) -> Result<Tensor> {
        let fused = x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.dtype() == self.weight.dtype()
            && !self.reference;
        if fused {
            let bias = match &self.bias {
                Some(b) => b.clone(),
                // Not a variable: its gradient is computed with the others and dropped.
                None => Tensor::zeros(self.weight.dim(0)?, x.dtype(), x.device())?,
            };
            return Ok(crate::linear_kernel::linear(x, &self.weight, &bias)?);
        }
        let wt = self.weight.t()?;
        let y = if x.rank() == 2 {
            x.matmul(&wt)?
        } else {
            x.broadcast_matmul(&wt)?
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: LinearConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Linear::from_context(&config, path, ctx)?))
}

gradus_core::register_layer!(
    "linear",
    "fully connected y = x W^T + b on the last dimension (torch.nn.Linear)",
    LinearConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, context, fctx, grads_of};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use gradus_core::SeededRng;

    fn build_linear(config: Value, shape: &[usize], seed: u64) -> (VarMap, Linear) {
        let vars = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let layer = {
            let mut ctx = context(&vars, shape, &mut rng);
            let config: LinearConfig = gradus_core::config::parse_config(&config, "l").unwrap();
            Linear::from_context(&config, "l", &mut ctx).unwrap()
        };
        (vars, layer)
    }

    #[test]
    fn forward_is_x_wt_plus_b() {
        let (_vars, mut layer) = build_linear(json!({"out": 2}), &[3], 0);
        let x = Tensor::new(&[[1.0f64, 2.0, -1.0], [0.5, 0.0, 3.0]], &Device::Cpu).unwrap();
        let y = layer
            .forward(&x, &mut fctx(false))
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let w = layer.weight().to_vec2::<f64>().unwrap();
        let b = layer.bias().unwrap().to_vec1::<f64>().unwrap();
        let xs = x.to_vec2::<f64>().unwrap();
        for n in 0..2 {
            for o in 0..2 {
                let expected: f64 = (0..3).map(|i| xs[n][i] * w[o][i]).sum::<f64>() + b[o];
                assert_close(y[n][o], expected, 1e-12);
            }
        }
        assert_eq!(layer.output_shape(), vec![2]);
    }

    #[test]
    fn acts_on_the_last_dimension_of_higher_rank_samples() {
        let (_vars, mut layer) = build_linear(json!({"out": 4, "bias": false}), &[2, 3], 1);
        assert_eq!(layer.output_shape(), vec![2, 4]);
        let x = Tensor::ones((5, 2, 3), DType::F64, &Device::Cpu).unwrap();
        let y = layer.forward(&x, &mut fctx(false)).unwrap();
        assert_eq!(y.dims(), &[5, 2, 4]);
        let row_sums = layer.weight().sum(1).unwrap().to_vec1::<f64>().unwrap();
        let y = y.to_vec3::<f64>().unwrap();
        for (o, s) in row_sums.iter().enumerate() {
            assert_close(y[4][1][o], *s, 1e-12);
        }
    }

    #[test]
    fn default_init_respects_pytorch_bounds_and_is_deterministic() {
        let (vars, layer) = build_linear(json!({"out": 50}), &[16], 7);
        let bound = 0.25; // 1 / sqrt(16) for the weight and the bias alike
        let w = layer
            .weight()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let b = layer.bias().unwrap().to_vec1::<f64>().unwrap();
        assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.2), "weights fill the range");
        let (_, again) = build_linear(json!({"out": 50}), &[16], 7);
        assert_eq!(
            again.weight().to_vec2::<f64>().unwrap(),
            layer.weight().to_vec2::<f64>().unwrap()
        );
        let (_, other) = build_linear(json!({"out": 50}), &[16], 8);
        assert_ne!(
            other.weight().to_vec2::<f64>().unwrap(),
            layer.weight().to_vec2::<f64>().unwrap()
        );
        let mut names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["layer.bias", "layer.weight"]);
    }

    #[test]
    fn init_is_resolved_through_the_registry() {
        let (_vars, layer) = build_linear(
            json!({"out": 2, "init": {"type": "test_constant", "value": 0.5}}),
            &[3],
            0,
        );
        assert_eq!(
            layer.weight().to_vec2::<f64>().unwrap(),
            vec![vec![0.5; 3]; 2]
        );
        let vars = VarMap::new();
        let mut rng = SeededRng::new(0);
        let mut ctx = context(&vars, &[3], &mut rng);
        let config: LinearConfig = gradus_core::config::parse_config(
            &json!({"out": 2, "init": {"type": "kaiming_nromal"}}),
            "m[0]",
        )
        .unwrap();
        let err = Linear::from_context(&config, "m[0]", &mut ctx).unwrap_err();
        assert!(err.to_string().contains("m[0].init.type"), "{err}");
    }

    #[test]
    fn gradients_reach_weight_and_bias() {
        let (vars, mut layer) = build_linear(json!({"out": 2}), &[3], 3);
        let x = Tensor::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
        let y = layer.forward(&x, &mut fctx(true)).unwrap();
        let grads = grads_of(&y.sum_all().unwrap(), &vars);
        // d sum(y) / dW[o, i] = sum_n x[n, i]; d / db[o] = N
        assert_eq!(grads["layer.weight"], vec![5.0, 7.0, 9.0, 5.0, 7.0, 9.0]);
        assert_eq!(grads["layer.bias"], vec![2.0, 2.0]);
    }

    #[test]
    fn bad_configs_are_errors_with_paths() {
        let vars = VarMap::new();
        let mut rng = SeededRng::new(0);
        let mut ctx = context(&vars, &[3], &mut rng);
        let missing: LinearConfig = gradus_core::config::parse_config(&json!({}), "m[1]").unwrap();
        let err = Linear::from_context(&missing, "m[1]", &mut ctx).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config at m[1].out: missing field `out`"
        );
        let err = gradus_core::config::parse_config::<LinearConfig>(
            &json!({"out": 2, "baias": true}),
            "m[1]",
        )
        .unwrap_err();
        assert!(err.to_string().contains("did you mean `bias`?"), "{err}");
    }

    /// Output and the gradients of input, weight and bias of one pass of `layer` over `x`, on
    /// the fused path or Candle's.
    fn pass(layer: &mut Linear, vars: &VarMap, x: &Tensor, reference: bool) -> Vec<Vec<f64>> {
        layer.reference = reference;
        let xv = candle_core::Var::from_tensor(x).unwrap();
        let y = layer.forward(xv.as_tensor(), &mut fctx(true)).unwrap();
        let r = Tensor::arange(0u32, y.elem_count() as u32, &Device::Cpu)
            .unwrap()
            .to_dtype(y.dtype())
            .unwrap()
            .affine(0.37, 0.0)
            .unwrap()
            .sin()
            .unwrap()
            .reshape(y.dims())
            .unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| {
            t.flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        let data = vars.data().lock().unwrap();
        let mut out = vec![flat(&y), flat(grads.get(xv.as_tensor()).unwrap())];
        for name in ["layer.weight", "layer.bias"] {
            if let Some(v) = data.get(name) {
                out.push(flat(grads.get(v.as_tensor()).unwrap()));
            }
        }
        out
    }

    fn build_typed(dtype: DType, config: Value, shape: &[usize], seed: u64) -> (VarMap, Linear) {
        let vars = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let layer = {
            let mut ctx = crate::testing::context_of(dtype, &vars, shape, &mut rng);
            let config: LinearConfig = gradus_core::config::parse_config(&config, "l").unwrap();
            Linear::from_context(&config, "l", &mut ctx).unwrap()
        };
        (vars, layer)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

        /// The fused op equals Candle's matmul + broadcast_add, forward and backward, for 2-D
        /// and 3-D inputs, with and without bias: f32 within 1e-6, f64 within 1e-13 (relative,
        /// or absolute below 1).
        #[test]
        fn fused_path_matches_candle(
            seed in 0u64..1_000,
            (lead, inputs, outputs) in (1usize..5, 1usize..40, 1usize..20),
            three_d in proptest::bool::ANY,
            bias in proptest::bool::ANY,
            f64_dtype in proptest::bool::ANY,
        ) {
            let (dtype, tol) = if f64_dtype { (DType::F64, 1e-13) } else { (DType::F32, 1e-6) };
            let config = json!({"out": outputs, "bias": bias});
            let sample: Vec<usize> = if three_d { vec![3, inputs] } else { vec![inputs] };
            let (vars, mut layer) = build_typed(dtype, config, &sample, seed);
            let mut shape = vec![lead];
            shape.extend(&sample);
            let mut rng = SeededRng::new(seed + 1);
            let x = rng.uniform_tensor(&shape, -1.0, 1.0, dtype, &Device::Cpu).unwrap();
            let fused = pass(&mut layer, &vars, &x, false);
            let reference = pass(&mut layer, &vars, &x, true);
            // Output, dx, dW and (with a bias) db.
            proptest::prop_assert_eq!(fused.len(), 3 + usize::from(bias));
            proptest::prop_assert_eq!(fused.len(), reference.len());
            for (a, b) in fused.iter().flatten().zip(reference.iter().flatten()) {
                proptest::prop_assert!((a - b).abs() <= tol * b.abs().max(1.0), "{} vs {}", a, b);
            }
        }
    }

    /// Above the size where gemm splits a product over threads, the results are the same to
    /// the bit with 1 thread and with 3.
    #[test]
    fn fused_results_do_not_depend_on_the_thread_count() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (vars, mut layer) = build_typed(DType::F32, json!({"out": 96}), &[200], 3);
                let mut rng = SeededRng::new(4);
                // 64 x 96 x 200 = 1.2e6 multiply-adds: above the parallel threshold (2^20).
                let x = rng
                    .uniform_tensor(&[64, 200], -1.0, 1.0, DType::F32, &Device::Cpu)
                    .unwrap();
                pass(&mut layer, &vars, &x, false)
            })
        };
        let bits =
            |v: Vec<Vec<f64>>| -> Vec<u64> { v.into_iter().flatten().map(f64::to_bits).collect() };
        assert_eq!(bits(run(1)), bits(run(3)));
    }

    /// Data has no gradient: none is computed or returned for it.
    #[test]
    fn no_input_gradient_for_data() {
        let (vars, mut layer) = build_linear(json!({"out": 3}), &[4], 5);
        let x = Tensor::ones((2, 4), DType::F64, &Device::Cpu).unwrap();
        let y = layer.forward(&x, &mut fctx(true)).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none());
        let w = vars.data().lock().unwrap()["layer.weight"]
            .as_tensor()
            .clone();
        // d(sum y)/dW[o, i] = sum_n x[n, i] = 2.
        let dw = grads
            .get(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert!(dw.iter().all(|v| *v == 2.0), "{dw:?}");
    }
}
