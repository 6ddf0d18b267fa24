//! `avg_pool2d`: the mean over each window (`torch.nn.AvgPool2d`).

use candle_core::Tensor;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pool::Window;
use crate::util::Size2;

/// 2-d average pooling, as `torch.nn.AvgPool2d(kernel_size, stride=None, padding=0,
/// count_include_pad=True)`:
///
/// ```text
/// y[c, i, j] = (1 / D) sum_{u < k_h, v < k_w} x_pad[c, s_h i + u, s_w j + v]
/// ```
///
/// with `x_pad` the input padded by zeros, `D = k_h k_w` when `count_include_pad`, else the
/// number of window elements inside the unpadded input, and
/// `H_out = floor((H + 2 p_h - k_h) / s_h) + 1`. `stride` defaults to `kernel_size`.
/// Not supported: `ceil_mode`, `divisor_override`.
#[derive(Debug)]
pub struct AvgPool2d {
    window: Window,
    count_include_pad: bool,
}

/// Configuration of [`AvgPool2d`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AvgPool2dConfig {
    /// Window size, `k` or `[k_h, k_w]`. Required (no PyTorch default).
    pub kernel_size: Option<Size2>,
    /// Window step; `null` = `kernel_size`. Default: `null` (torch.nn.AvgPool2d).
    pub stride: Option<Size2>,
    /// Implicit zero padding on both sides. Default: `0` (torch.nn.AvgPool2d).
    pub padding: Size2,
    /// Count the padding zeros in the divisor. Default: `true` (torch.nn.AvgPool2d).
    pub count_include_pad: bool,
}

impl Default for AvgPool2dConfig {
    fn default() -> Self {
        AvgPool2dConfig {
            kernel_size: None,
            stride: None,
            padding: Size2::One(0),
            count_include_pad: true,
        }
    }
}

impl AvgPool2d {
    /// Builds the layer for the per-sample input shape `(C, H, W)`; `path` names config errors.
    pub fn new(config: &AvgPool2dConfig, input_shape: &[usize], path: &str) -> Result<Self> {
        let window = Window::new(
            "avg_pool2d",
            config.kernel_size,
            config.stride,
            config.padding,
            input_shape,
            path,
        )?;
        Ok(AvgPool2d {
            window,
            count_include_pad: config.count_include_pad,
        })
    }

    fn window_sum(&self, x: &Tensor) -> Result<Tensor> {
        let padded = self.window.pad(x, 0.0)?;
        let mut views = self.window.offsets(&padded)?.into_iter();
        let mut sum = views.next().unwrap_or(padded);
        for v in views {
            sum = (sum + v)?;
        }
        Ok(sum)
    }
}

impl Layer for AvgPool2d {
    fn output_shape(&self) -> Vec<usize> {
        self.window.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardContext) -> Result<Tensor> {
        let w = &self.window;
        if w.is_native() {
            return Ok(
                x.avg_pool2d_with_stride((w.kernel[0], w.kernel[1]), (w.stride[0], w.stride[1]))?
            );
        }
        let sum = self.window_sum(x)?;
        if self.count_include_pad || w.padding == [0, 0] {
            return Ok((sum / (w.kernel[0] * w.kernel[1]) as f64)?);
        }
        // Divisor per output position: the window sum of a ones image, padded with zeros.
        let (_, _, h, wd) = x.dims4()?;
        let ones = Tensor::ones((1, 1, h, wd), x.dtype(), x.device())?;
        let count = self.window_sum(&ones)?;
        Ok(sum.broadcast_div(&count)?)
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: AvgPool2dConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(AvgPool2d::new(&config, &ctx.input_shape, path)?))
}

gradus_core::register_layer!(
    "avg_pool2d",
    "2-d average pooling over (C, H, W) (torch.nn.AvgPool2d)",
    AvgPool2dConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, fctx};
    use candle_core::{Device, Var};
    use serde_json::json;

    fn pool(config: Value) -> AvgPool2d {
        let config: AvgPool2dConfig = gradus_core::config::parse_config(&config, "m[2]").unwrap();
        AvgPool2d::new(&config, &[1, 3, 4], "m[2]").unwrap()
    }

    fn grid() -> Tensor {
        // 1 x 1 x 3 x 4: 1 .. 12.
        Tensor::arange(1.0f64, 13.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 4))
            .unwrap()
    }

    fn values(p: &mut AvgPool2d, x: &Tensor) -> Vec<f64> {
        p.forward(x, &mut fctx(false))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    }

    #[test]
    fn by_hand() {
        // [[1 2 3 4] [5 6 7 8] [9 10 11 12]], kernel 2: one row of windows (floor(3 / 2) = 1).
        let mut p = pool(json!({"kernel_size": 2}));
        assert_eq!(p.output_shape(), vec![1, 1, 2]);
        assert_eq!(values(&mut p, &grid()), vec![3.5, 5.5]);
        // stride 1: 2 x 3 windows.
        let mut p = pool(json!({"kernel_size": 2, "stride": 1}));
        assert_eq!(values(&mut p, &grid()), vec![3.5, 4.5, 5.5, 7.5, 8.5, 9.5]);
    }

    #[test]
    fn padding_with_and_without_counting_it() {
        // kernel 3, stride 2, padding 1 on 3 x 4: outputs 2 x 2; top-left window covers
        // rows 0..1, cols 0..1 of the input: 1 + 2 + 5 + 6 = 14 over 9 (or over 4).
        let mut with = pool(json!({"kernel_size": 3, "stride": 2, "padding": 1}));
        let mut without =
            pool(json!({"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": false}));
        assert_eq!(with.output_shape(), vec![1, 2, 2]);
        let a = values(&mut with, &grid());
        let b = values(&mut without, &grid());
        assert_close(a[0], 14.0 / 9.0, 1e-12);
        assert_close(b[0], 14.0 / 4.0, 1e-12);
        // Window (1, 1): rows 1..2, cols 1..3: 6 + 7 + 8 + 10 + 11 + 12 = 54 over 9 (or 6).
        assert_close(a[3], 54.0 / 9.0, 1e-12);
        assert_close(b[3], 54.0 / 6.0, 1e-12);
    }

    #[test]
    fn gradient_is_the_share_of_each_window() {
        let x = Var::from_tensor(&grid()).unwrap();
        let mut p = pool(json!({"kernel_size": 2, "stride": 1}));
        let y = p.forward(x.as_tensor(), &mut fctx(true)).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // Corner (0, 0) is in one window, (1, 1) in four: 1/4 and 4/4.
        assert_close(g[0], 0.25, 1e-12);
        assert_close(g[5], 1.0, 1e-12);
    }
}
