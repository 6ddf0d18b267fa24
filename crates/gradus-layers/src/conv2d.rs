//! `conv2d`: 2-d cross-correlation over `(C, H, W)` samples (`torch.nn.Conv2d`).

use candle_core::{DType, Tensor};
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conv2d_kernel;
use crate::im2col::{Geometry, Im2Col};
use crate::linear::{default_bias, default_init};
use crate::util::{every_nth, invalid, required, window_out, window_span, Size2};

/// A 2-d convolution, as `torch.nn.Conv2d` (zero padding, `padding_mode="zeros"`):
///
/// ```text
/// y[o, i, j] = b[o] + sum_{c in group(o), u, v} W[o, c, u, v] * x_pad[c, s_h i + d_h u, s_w j + d_w v]
/// ```
///
/// Input `(C_in, H, W)` per sample, output `(out_channels, H_out, W_out)` with
/// `H_out = floor((H + 2 p_h - d_h (k_h - 1) - 1) / s_h) + 1` (same for `W`).
/// Symbols: `k` = `kernel_size`, `s` = `stride`, `p` = `padding`, `d` = `dilation`; `groups`
/// splits the channels into independent blocks (`C_in` and `out_channels` must be divisible).
/// Parameters: `<prefix>.weight` `(out_channels, C_in / groups, k_h, k_w)` (PyTorch layout) from
/// the initializer `init` (default `torch_linear_default`), and `<prefix>.bias`
/// `(out_channels)` from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, `fan_in = C_in / groups * k_h * k_w`
/// (nn.Conv2d.reset_parameters). Unequal height/width dilations are not supported.
///
/// Computation: on the CPU in f32/f64 with one group, a fused custom op (the `conv2d_kernel`
/// module): per sample, the patch matrix `(C k_h k_w, H_out W_out)` times the weight viewed as
/// `(out_channels, C k_h k_w)` through gemm, written in NCHW, and a backward pass of two
/// products and a scatter per sample; samples run in parallel blocks above a measured size.
/// With several groups the input is unrolled into the batch's patch matrix (`im2col`, see the
/// `im2col` module) and multiplied by each group's weight through Candle's matmul. Elsewhere
/// (other devices or dtypes) Candle's `conv2d` runs (its CPU backward pass is much slower).
/// The paths agree to rounding (tests: 1e-5 relative in f32, 1e-12 in f64).
#[derive(Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: usize,
    groups: usize,
    output_shape: Vec<usize>,
    /// Forces Candle's `conv2d` (the reference path), for tests and benchmarks.
    pub(crate) reference: bool,
}

/// Configuration of [`Conv2d`] (PyTorch's keyword names; `in_channels` comes from the input).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Conv2dConfig {
    /// Number of output channels. Required (no PyTorch default).
    pub out_channels: Option<usize>,
    /// Kernel size, `k` or `[k_h, k_w]`. Required (no PyTorch default).
    pub kernel_size: Option<Size2>,
    /// Stride. Default: `1` (torch.nn.Conv2d).
    pub stride: Size2,
    /// Zero padding added to both sides. Default: `0` (torch.nn.Conv2d).
    pub padding: Size2,
    /// Spacing between kernel elements. Default: `1` (torch.nn.Conv2d).
    pub dilation: Size2,
    /// Number of blocked connections from input to output channels. Default: `1` (torch.nn.Conv2d).
    pub groups: usize,
    /// Learn an additive bias. Default: `true` (torch.nn.Conv2d).
    pub bias: bool,
    /// Initializer config of the weight. Default: `{"type": "torch_linear_default"}`
    /// (torch.nn.Conv2d.reset_parameters).
    #[schemars(schema_with = "gradus_core::schema::initializer")]
    pub init: Value,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            out_channels: None,
            kernel_size: None,
            stride: Size2::One(1),
            padding: Size2::One(0),
            dilation: Size2::One(1),
            groups: 1,
            bias: true,
            init: default_init(),
        }
    }
}

impl Conv2d {
    /// Builds the layer for `ctx.input_shape` `(C, H, W)`, registering its parameters.
    pub fn from_context(config: &Conv2dConfig, path: &str, ctx: &mut LayerContext) -> Result<Self> {
        let out = required(config.out_channels, path, "out_channels")?;
        let kernel = required(config.kernel_size, path, "kernel_size")?.get();
        let (stride, padding, dilation) = (
            config.stride.get(),
            config.padding.get(),
            config.dilation.get(),
        );
        let groups = config.groups;
        for (field, v) in [
            ("kernel_size", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if v.contains(&0) {
                return Err(invalid(
                    path,
                    field,
                    format!("{field} must be positive, got {v:?}"),
                ));
            }
        }
        if out == 0 {
            return Err(invalid(
                path,
                "out_channels",
                "out_channels must be positive, got 0",
            ));
        }
        if dilation[0] != dilation[1] {
            return Err(invalid(
                path,
                "dilation",
                format!("unequal dilations {dilation:?} are not supported"),
            ));
        }
        let &[c_in, h, w] = ctx.input_shape.as_slice() else {
            return Err(Error::Unsupported(format!(
                "conv2d needs per-sample inputs (C, H, W), got shape {:?}",
                ctx.input_shape
            )));
        };
        if groups == 0 || c_in % groups != 0 || out % groups != 0 {
            return Err(invalid(
                path,
                "groups",
                format!("in_channels ({c_in}) and out_channels ({out}) must be divisible by groups ({groups})"),
            ));
        }
        let h_out = window_out(h, kernel[0], stride[0], padding[0], dilation[0]);
        let w_out = window_out(w, kernel[1], stride[1], padding[1], dilation[1]);
        let (Some(h_out), Some(w_out)) = (h_out, w_out) else {
            return Err(Error::ShapeMismatch {
                context: format!(
                    "conv2d kernel {kernel:?} (dilation {dilation:?}, padding {padding:?}) is larger than the padded input; \
                     expected at least this input size"
                ),
                expected: vec![c_in, window_span(kernel[0], dilation[0]), window_span(kernel[1], dilation[1])],
                actual: ctx.input_shape.clone(),
            });
        };
        let shape = [out, c_in / groups, kernel[0], kernel[1]];
        let init = ctx.initializer(
            Some(&config.init),
            &default_init(),
            &gradus_core::config::join_path(path, "init"),
        )?;
        ctx.check_parameter("weight", &shape)?;
        let device = ctx.device.clone();
        let w = init.init(&shape, ctx.dtype, &device, ctx.rng)?;
        let weight = ctx.parameter("weight", w)?;
        let bias = if config.bias {
            let b = default_bias(ctx, out, shape[1] * kernel[0] * kernel[1])?;
            Some(ctx.parameter("bias", b)?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            stride,
            padding,
            dilation: dilation[0],
            groups,
            output_shape: vec![out, h_out, w_out],
            reference: false,
        })
    }

    /// The kernel `(out_channels, C_in / groups, k_h, k_w)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `(out_channels)`, when enabled.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Layer for Conv2d {
    fn output_shape(&self) -> Vec<usize> {
        self.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardContext) -> Result<Tensor> {
        let fast = x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.dtype() == self.weight.dtype()
            && x.rank() == 4;
        if fast && !self.reference {
            self.forward_im2col(x)
        } else {
            self.forward_reference(x)
        }
    }
}

impl Conv2d {
    /// Patch matrix times weight: `(N H_out W_out, C k) x (C k, out)` per group.
    fn forward_im2col(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (out, per_group, k_h, k_w) = self.weight.dims4()?;
        let geometry = Geometry {
            kernel: [k_h, k_w],
            stride: self.stride,
            padding: self.padding,
            dilation: [self.dilation; 2],
        };
        let c_in = per_group * self.groups;
        let (h_out, w_out) = match geometry.out_hw(h, w) {
            Some(hw) if c == c_in => hw,
            _ => {
                // Channels as built; at least the dilated kernel, less the padding.
                let min = |a: usize| {
                    (self.dilation * (geometry.kernel[a] - 1) + 1)
                        .saturating_sub(2 * self.padding[a])
                        .max(1)
                };
                return Err(Error::ShapeMismatch {
                    context: "conv2d input (C, H, W): expected channels and at least the size"
                        .into(),
                    expected: vec![c_in, h.max(min(0)), w.max(min(1))],
                    actual: vec![c, h, w],
                });
            }
        };
        if self.groups == 1 {
            let bias = match &self.bias {
                Some(b) => b.clone(),
                // Not a variable: its gradient is computed with the others and dropped.
                None => Tensor::zeros(out, x.dtype(), x.device())?,
            };
            let x = x.contiguous()?;
            return Ok(conv2d_kernel::conv2d(&x, &self.weight, &bias, geometry)?);
        }
        // Grouped: `(N H_out W_out, out)` -> `(N, out, H_out, W_out)`.
        let finish = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((n, h_out, w_out, out))?
                .permute((0, 3, 1, 2))?
                .contiguous()?)
        };
        let k = per_group * k_h * k_w;
        let weight = self.weight.reshape((out, k))?;
        // One group with a bias: the bias is the weight's last column against a column of
        // ones, so no separate (slow) reduction computes its gradient.
        let fold_bias = self.groups == 1 && self.bias.is_some();
        let cols = x.contiguous()?.apply_op1(Im2Col {
            geometry,
            ones: fold_bias,
        })?;
        let y = match (&self.bias, fold_bias) {
            (Some(b), true) => {
                let weight = Tensor::cat(&[&weight, &b.reshape((out, 1))?], 1)?;
                return finish(cols.matmul(&weight.t()?)?);
            }
            _ if self.groups == 1 => cols.matmul(&weight.t()?)?,
            _ => {
                let o = out / self.groups;
                let parts = (0..self.groups)
                    .map(|g| {
                        cols.narrow(1, g * k, k)?
                            .matmul(&weight.narrow(0, g * o, o)?.t()?)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&parts, 1)?
            }
        };
        finish(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Candle's `conv2d`.
    fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let [p_h, p_w] = self.padding;
        let [s_h, s_w] = self.stride;
        // Candle takes one padding and one stride for both axes: pad explicitly and subsample
        // when they differ.
        let (x, pad) = if p_h == p_w {
            (x.clone(), p_h)
        } else {
            (
                x.pad_with_zeros(2, p_h, p_h)?.pad_with_zeros(3, p_w, p_w)?,
                0,
            )
        };
        let y = if s_h == s_w {
            x.conv2d(&self.weight, pad, s_h, self.dilation, self.groups)?
        } else {
            let y = x.conv2d(&self.weight, pad, 1, self.dilation, self.groups)?;
            every_nth(&every_nth(&y, 2, s_h)?, 3, s_w)?
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?,
            None => y,
        })
    }
}

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: Conv2dConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Conv2d::from_context(&config, path, ctx)?))
}

gradus_core::register_layer!(
    "conv2d",
    "2-d convolution over (C, H, W) with stride, padding, dilation, groups (torch.nn.Conv2d)",
    Conv2dConfig,
    build
);

#[cfg(test)]
#[path = "conv2d_tests.rs"]
mod tests;
