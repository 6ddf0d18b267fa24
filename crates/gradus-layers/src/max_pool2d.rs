//! `max_pool2d`: the maximum over each window (`torch.nn.MaxPool2d`).

use candle_core::{DType, Tensor};
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::max_pool_blocks::MaxPoolBlocks;
use crate::pool::Window;
use crate::util::Size2;

/// 2-d max pooling, as `torch.nn.MaxPool2d(kernel_size, stride=None, padding=0)`:
///
/// ```text
/// y[c, i, j] = max_{u < k_h, v < k_w} x_pad[c, s_h i + u, s_w j + v]
/// ```
///
/// with `x_pad` the input padded by `-inf` (`padding` on each side, at most half the kernel) and
/// `H_out = floor((H + 2 p_h - k_h) / s_h) + 1`. `stride` defaults to `kernel_size` (PyTorch's
/// `stride=None`). Not supported: `dilation`, `ceil_mode`, `return_indices`. Difference from
/// PyTorch: where several elements of a window tie for the maximum, each of them receives the
/// gradient (non-overlapping windows) or a share of it (overlapping windows); PyTorch sends it
/// all to the first. Values are identical.
///
/// Computation: non-overlapping windows (`stride == kernel_size`) of f32/f64 CPU tensors run
/// one fused kernel forward and backward; other cases use Candle tensor ops (window views and
/// `max`/`maximum`), which also serve as the reference in tests. Both give identical values
/// and gradients.
#[derive(Debug)]
pub struct MaxPool2d {
    window: Window,
    /// Forces the tensor-op path, for tests and benchmarks.
    pub(crate) reference: bool,
}

/// Configuration of [`MaxPool2d`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MaxPool2dConfig {
    /// Window size, `k` or `[k_h, k_w]`. Required (no PyTorch default).
    pub kernel_size: Option<Size2>,
    /// Window step; `null` = `kernel_size`. Default: `null` (torch.nn.MaxPool2d).
    pub stride: Option<Size2>,
    /// Implicit `-inf` padding on both sides. Default: `0` (torch.nn.MaxPool2d).
    pub padding: Size2,
}

impl Default for MaxPool2dConfig {
    fn default() -> Self {
        MaxPool2dConfig {
            kernel_size: None,
            stride: None,
            padding: Size2::One(0),
        }
    }
}

impl MaxPool2d {
    /// Builds the layer for the per-sample input shape `(C, H, W)`; `path` names config errors.
    pub fn new(config: &MaxPool2dConfig, input_shape: &[usize], path: &str) -> Result<Self> {
        let window = Window::new(
            "max_pool2d",
            config.kernel_size,
            config.stride,
            config.padding,
            input_shape,
            path,
        )?;
        Ok(MaxPool2d {
            window,
            reference: false,
        })
    }
}

impl Layer for MaxPool2d {
    fn output_shape(&self) -> Vec<usize> {
        self.window.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardContext) -> Result<Tensor> {
        // Not Candle's `max_pool2d`: its backward pass scales the gradient by the share of
        // maxima in the window (1 / (k_h k_w) for a unique maximum) instead of passing it on.
        let w = &self.window;
        let fast = x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.rank() == 4
            && w.kernel == w.stride;
        if fast && !self.reference {
            let op = MaxPoolBlocks {
                kernel: w.kernel,
                padding: w.padding,
            };
            return Ok(x.contiguous()?.apply_op1(op)?);
        }
        let padded = w.pad(x, f64::NEG_INFINITY)?;
        if let Some(blocks) = w.blocks(&padded)? {
            return Ok(blocks.max(5)?.max(3)?);
        }
        let mut views = w.offsets(&padded)?.into_iter();
        let mut y = views.next().unwrap_or(padded);
        for v in views {
            y = y.maximum(&v)?;
        }
        Ok(y)
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: MaxPool2dConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(MaxPool2d::new(&config, &ctx.input_shape, path)?))
}

gradus_core::register_layer!(
    "max_pool2d",
    "2-d max pooling over (C, H, W) (torch.nn.MaxPool2d)",
    MaxPool2dConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fctx;
    use candle_core::{Device, Var};
    use serde_json::json;

    fn pool(config: Value, shape: &[usize]) -> Result<MaxPool2d> {
        let config: MaxPool2dConfig = gradus_core::config::parse_config(&config, "m[2]")?;
        MaxPool2d::new(&config, shape, "m[2]")
    }

    fn grid() -> Tensor {
        // 1 x 1 x 4 x 4: 0 .. 15 with a few negatives.
        let v = [
            1.0f64, -2.0, 3.0, 0.5, 4.0, 6.0, -1.0, 2.0, -5.0, 7.0, 8.0, -3.0, 0.0, 1.5, -4.0, 9.0,
        ];
        Tensor::from_slice(&v, (1, 1, 4, 4), &Device::Cpu).unwrap()
    }

    #[test]
    fn two_by_two_by_hand() {
        let mut p = pool(json!({"kernel_size": 2}), &[1, 4, 4]).unwrap();
        assert_eq!(p.output_shape(), vec![1, 2, 2]);
        let y = p.forward(&grid(), &mut fctx(false)).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            vec![6.0, 3.0, 7.0, 9.0]
        );
    }

    #[test]
    fn overlapping_windows_with_padding_by_hand() {
        // kernel 3, stride 2, padding 1: windows centred on rows/cols 0 and 2.
        let mut p = pool(
            json!({"kernel_size": 3, "stride": 2, "padding": 1}),
            &[1, 4, 4],
        )
        .unwrap();
        assert_eq!(p.output_shape(), vec![1, 2, 2]);
        let y = p.forward(&grid(), &mut fctx(false)).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            vec![6.0, 6.0, 7.0, 9.0]
        );
        // All-negative input: padding must never win.
        let neg = (grid().abs().unwrap() * -1.0)
            .unwrap()
            .affine(1.0, -1.0)
            .unwrap();
        let y = p.forward(&neg, &mut fctx(false)).unwrap();
        assert!(y
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite() && *v < 0.0));
    }

    #[test]
    fn gradient_goes_to_the_maximum() {
        let x = Var::from_tensor(&grid()).unwrap();
        // 6.0 (index 5) is the maximum of one 2x2 block, and of two stride-1 windows.
        for (config, g5) in [
            (json!({"kernel_size": 2}), 1.0),
            (json!({"kernel_size": 2, "stride": 1}), 2.0),
        ] {
            let mut p = pool(config, &[1, 4, 4]).unwrap();
            let y = p.forward(x.as_tensor(), &mut fctx(true)).unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            let g = g
                .get(x.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            assert_eq!(g[5], g5, "{g:?}");
            assert_eq!(g[1], 0.0); // -2.0 never is a maximum
            assert_eq!(g.iter().sum::<f64>(), y.elem_count() as f64);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The fused kernel (stride = kernel) equals the tensor-op path exactly, values and
        /// gradients, ties included (inputs are rounded to quarters so windows tie often).
        #[test]
        fn fused_kernel_matches_reference(
            seed in 0u64..1_000,
            (n, c, h, w) in (1usize..3, 1usize..4, 1usize..10, 1usize..10),
            (kh, kw, ph, pw) in (1usize..4, 1usize..4, 0usize..2, 0usize..2),
            f64_dtype in proptest::bool::ANY,
        ) {
            let dtype = if f64_dtype { candle_core::DType::F64 } else { candle_core::DType::F32 };
            let config = json!({"kernel_size": [kh, kw], "padding": [ph, pw]});
            let built = pool(config, &[c, h, w]);
            proptest::prop_assume!(built.is_ok());
            let mut p = built.unwrap();
            let mut rng = gradus_core::SeededRng::new(seed);
            let x = rng
                .uniform_tensor(&[n, c, h, w], -2.0, 2.0, dtype, &Device::Cpu)
                .unwrap();
            let x = (x * 4.0).unwrap().round().unwrap().affine(0.25, 0.0).unwrap();
            let run = |p: &mut MaxPool2d| {
                let xv = Var::from_tensor(&x).unwrap();
                let y = p.forward(xv.as_tensor(), &mut fctx(true)).unwrap();
                let r = Tensor::arange(1u32, y.elem_count() as u32 + 1, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
                    .reshape(y.dims())
                    .unwrap();
                let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| {
                    t.to_dtype(candle_core::DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
                };
                (y.dims().to_vec(), flat(&y), flat(g.get(xv.as_tensor()).unwrap()))
            };
            let fast = run(&mut p);
            p.reference = true;
            let slow = run(&mut p);
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn errors() {
        let err = pool(json!({"kernel_size": 5}), &[1, 4, 4]).unwrap_err();
        assert!(
            matches!(err, gradus_core::Error::ShapeMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("[1, 4, 4]"), "{err}");
        let err = pool(json!({"kernel_size": 2, "padding": 2}), &[1, 4, 4]).unwrap_err();
        assert!(err.to_string().contains("m[2].padding"), "{err}");
        let err = pool(json!({"kernel_size": 2}), &[16]).unwrap_err();
        assert!(err.to_string().contains("(C, H, W)"), "{err}");
        let err = pool(json!({"kernel": 2}), &[1, 4, 4]).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `kernel_size`?"),
            "{err}"
        );
    }
}
