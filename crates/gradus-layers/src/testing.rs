//! Test helpers, and stand-ins for the components of other crates that this crate's unit tests
//! resolve through the registry (the test binary links gradus-core only, so nothing else is
//! registered in it).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use gradus_core::plugin::initializer::Initializer;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Result, SeededRng, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A build context over f64 parameters named `layer.*`.
pub(crate) fn context<'a>(
    vars: &'a VarMap,
    shape: &[usize],
    rng: &'a mut SeededRng,
) -> LayerContext<'a> {
    context_of(DType::F64, vars, shape, rng)
}

/// A build context over `dtype` parameters named `layer.*`.
pub(crate) fn context_of<'a>(
    dtype: DType,
    vars: &'a VarMap,
    shape: &[usize],
    rng: &'a mut SeededRng,
) -> LayerContext<'a> {
    LayerContext {
        input_shape: shape.to_vec(),
        vars,
        prefix: "layer".to_string(),
        path: "layer".to_string(),
        rng,
        dtype,
        device: Device::Cpu,
    }
}

/// Element-wise `|a - b| <= tol * max(1, |b|)` of two tensors of any float dtype, with `what`
/// in the failure message.
pub(crate) fn assert_tensors_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let flat = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .unwrap()
    };
    for (i, (x, y)) in flat(a).iter().zip(&flat(b)).enumerate() {
        assert!(
            (x - y).abs() <= tol * y.abs().max(1.0),
            "{what}[{i}]: {x} vs {y} (tol {tol})"
        );
    }
}

/// A forward context with its own (leaked, test-only) generator.
pub(crate) fn fctx(train: bool) -> ForwardContext<'static> {
    ForwardContext {
        train,
        rng: Box::leak(Box::new(SeededRng::new(0))),
    }
}

/// `|a - b| <= tol * max(1, |b|)`.
pub(crate) fn assert_close(a: f64, b: f64, tol: f64) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1.0),
        "{a} vs {b} (tol {tol})"
    );
}

/// Element-wise [`assert_close`] of two f64 tensors of the same shape.
pub(crate) fn assert_all_close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_close(*x, *y, tol);
    }
}

/// Gradients of `loss` with respect to every variable of `vars`, flattened, by name.
pub(crate) fn grads_of(loss: &Tensor, vars: &VarMap) -> HashMap<String, Vec<f64>> {
    let grads = loss.backward().unwrap();
    vars.data()
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(name, var)| {
            grads.get(var.as_tensor()).map(|g| {
                (
                    name.clone(),
                    g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                )
            })
        })
        .collect()
}

/// Stand-in for gradus-init's `torch_linear_default` weight rule: `U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in))`, `fan_in = prod(shape[1..])`.
struct LinearDefault;

impl Initializer for LinearDefault {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        let fan_in: usize = shape[1..].iter().product();
        let bound = 1.0 / (fan_in as f64).sqrt();
        rng.uniform_tensor(shape, -bound, bound, dtype, device)
    }
}

#[derive(Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoConfig {}

fn build_linear_default(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    let _: NoConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(LinearDefault))
}

gradus_core::register_initializer!(
    "torch_linear_default",
    "test stand-in for gradus-init's rule",
    NoConfig,
    build_linear_default
);

/// Fills with a constant.
struct Constant(f64);

#[derive(Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConstantConfig {
    value: f64,
}

impl Initializer for Constant {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        _: &mut SeededRng,
    ) -> Result<Tensor> {
        Ok(Tensor::full(self.0, shape, device)?.to_dtype(dtype)?)
    }
}

fn build_constant(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    let c: ConstantConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Constant(c.value)))
}

gradus_core::register_initializer!(
    "test_constant",
    "constant (test only)",
    ConstantConfig,
    build_constant
);

/// A normalization-kind layer that doubles its input and counts calls in a buffer (a call in
/// the cumulative-statistics mode counts 100), reset by `reset_running_stats`.
pub(crate) struct Doubler {
    shape: Vec<usize>,
    calls: f64,
    cumulative: bool,
}

impl Layer for Doubler {
    fn output_shape(&self) -> Vec<usize> {
        self.shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _: &mut ForwardContext) -> Result<Tensor> {
        self.calls += if self.cumulative { 100.0 } else { 1.0 };
        Ok(x.affine(2.0, 0.0)?)
    }

    fn buffers(&self) -> StateDict {
        let mut sd = StateDict::new();
        if let Ok(t) = Tensor::new(&[self.calls], &Device::Cpu) {
            sd.insert("calls", t);
        }
        sd
    }

    fn load_buffers(&mut self, buffers: &StateDict) -> Result<()> {
        self.calls = buffers.require("calls", &[1])?.to_vec1::<f64>()?[0];
        Ok(())
    }

    fn reset_running_stats(&mut self) -> Result<usize> {
        self.calls = 0.0;
        Ok(1)
    }

    fn set_cumulative_stats(&mut self, cumulative: bool) -> Result<()> {
        self.cumulative = cumulative;
        Ok(())
    }
}

fn build_doubler(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let _: NoConfig = gradus_core::config::parse_config(config, path)?;
    if ctx.input_shape.is_empty() {
        return Err(gradus_core::Error::Unsupported(
            "test_doubler needs a channel dimension".into(),
        ));
    }
    Ok(Box::new(Doubler {
        shape: ctx.input_shape.clone(),
        calls: 0.0,
        cumulative: false,
    }))
}

gradus_core::register_normalization!(
    "test_doubler",
    "doubles (test only)",
    NoConfig,
    build_doubler
);
