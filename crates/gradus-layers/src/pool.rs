//! What max and average pooling share: window geometry, validation, and the strided window
//! views used when Candle's native pooling does not apply.

use candle_core::Tensor;
use gradus_core::{Error, Result};

use crate::util::{every_nth, invalid, required, window_out, Size2};

/// A validated pooling window over `(C, H, W)` samples.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub output_shape: Vec<usize>,
}

impl Window {
    /// Checks the sizes (PyTorch's rules: positive kernel and stride, padding at most half the
    /// kernel) against the per-sample `input` shape.
    pub(crate) fn new(
        name: &str,
        kernel: Option<Size2>,
        stride: Option<Size2>,
        padding: Size2,
        input: &[usize],
        path: &str,
    ) -> Result<Self> {
        let kernel = required(kernel, path, "kernel_size")?.get();
        let stride = stride.map_or(kernel, Size2::get);
        let padding = padding.get();
        if kernel.contains(&0) {
            return Err(invalid(
                path,
                "kernel_size",
                format!("kernel_size must be positive, got {kernel:?}"),
            ));
        }
        if stride.contains(&0) {
            return Err(invalid(
                path,
                "stride",
                format!("stride must be positive, got {stride:?}"),
            ));
        }
        if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
            return Err(invalid(
                path,
                "padding",
                format!("pad should be at most half of effective kernel size, but got pad={padding:?}, kernel_size={kernel:?}"),
            ));
        }
        let &[c, h, w] = input else {
            return Err(Error::Unsupported(format!(
                "{name} needs per-sample inputs (C, H, W), got shape {input:?}"
            )));
        };
        let h_out = window_out(h, kernel[0], stride[0], padding[0], 1);
        let w_out = window_out(w, kernel[1], stride[1], padding[1], 1);
        let (Some(h_out), Some(w_out)) = (h_out, w_out) else {
            return Err(Error::ShapeMismatch {
                context: format!("{name} window {kernel:?} with padding {padding:?} is larger than the input; expected at least"),
                expected: vec![
                    c,
                    kernel[0].saturating_sub(padding[0].saturating_mul(2)),
                    kernel[1].saturating_sub(padding[1].saturating_mul(2)),
                ],
                actual: input.to_vec(),
            });
        };
        Ok(Window {
            kernel,
            stride,
            padding,
            output_shape: vec![c, h_out, w_out],
        })
    }

    /// True when Candle's native pooling computes this window (and has a backward pass for it):
    /// no padding and stride equal to the kernel.
    pub(crate) fn is_native(&self) -> bool {
        self.kernel == self.stride && self.padding == [0, 0]
    }

    /// For non-overlapping windows (stride = kernel), the padded input cut to whole windows
    /// and viewed as `(N, C, H_out, k_h, W_out, k_w)`; `None` for overlapping windows.
    pub(crate) fn blocks(&self, padded: &Tensor) -> Result<Option<Tensor>> {
        if self.kernel != self.stride {
            return Ok(None);
        }
        let (n, c) = (padded.dim(0)?, padded.dim(1)?);
        let [kh, kw] = self.kernel;
        let (ho, wo) = (self.output_shape[1], self.output_shape[2]);
        let cut = padded.narrow(2, 0, ho * kh)?.narrow(3, 0, wo * kw)?;
        Ok(Some(cut.contiguous()?.reshape((n, c, ho, kh, wo, kw))?))
    }

    /// Pads `x` `(N, C, H, W)` with `value` on both sides of both spatial axes.
    pub(crate) fn pad(&self, x: &Tensor, value: f64) -> Result<Tensor> {
        let mut x = x.clone();
        for (dim, p) in [(2, self.padding[0]), (3, self.padding[1])] {
            if p > 0 {
                let mut shape = x.dims().to_vec();
                shape[dim] = p;
                let side = Tensor::full(value, shape, x.device())?.to_dtype(x.dtype())?;
                x = Tensor::cat(&[&side, &x, &side], dim)?;
            }
        }
        Ok(x)
    }

    /// For each kernel offset `(u, v)`, the `(N, C, H_out, W_out)` view of the padded input
    /// `x_pad[:, :, u::s_h, v::s_w]` (cut to the output size): the window's elements, one
    /// tensor per position in the window.
    pub(crate) fn offsets(&self, padded: &Tensor) -> Result<Vec<Tensor>> {
        let (h_out, w_out) = (self.output_shape[1], self.output_shape[2]);
        let span_h = (h_out - 1) * self.stride[0] + 1;
        let span_w = (w_out - 1) * self.stride[1] + 1;
        let mut views = Vec::with_capacity(self.kernel[0] * self.kernel[1]);
        for u in 0..self.kernel[0] {
            let rows = every_nth(&padded.narrow(2, u, span_h)?, 2, self.stride[0])?;
            for v in 0..self.kernel[1] {
                views.push(every_nth(&rows.narrow(3, v, span_w)?, 3, self.stride[1])?);
            }
        }
        Ok(views)
    }
}
