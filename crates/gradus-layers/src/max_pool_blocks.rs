//! Max pooling over non-overlapping windows (stride = kernel) as a Candle custom op (CPU, f32
//! and f64), with the backward pass of [`MaxPool2d`](crate::MaxPool2d)'s reference path: every
//! element equal to its window's maximum receives that window's whole gradient.
//!
//! ```text
//! y[n, c, i, j] = max_{u < k_h, v < k_w, (r, q) inside x} x[n, c, k_h i + u - p_h, k_w j + v - p_w]
//! dx[n, c, r, q] = dy[n, c, i, j] if x[n, c, r, q] == y[n, c, i, j] else 0   ((r, q) in window (i, j))
//! ```
//!
//! Padding is `-inf`, so it never wins: each window holds at least one input element because
//! the padding is at most half the kernel. Input elements in no window get a zero gradient.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};

/// Kernel and padding of a stride = kernel max pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxPoolBlocks {
    pub kernel: [usize; 2],
    pub padding: [usize; 2],
}

impl MaxPoolBlocks {
    fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let [kh, kw] = self.kernel;
        let [ph, pw] = self.padding;
        ((h + 2 * ph) / kh, (w + 2 * pw) / kw)
    }

    /// Calls `f(output_index, input_index)` for every input element of every window.
    fn for_each(&self, dims: [usize; 4], mut f: impl FnMut(usize, usize)) {
        let [n, c, h, w] = dims;
        let (ho, wo) = self.out_hw(h, w);
        let [kh, kw] = self.kernel;
        let [ph, pw] = self.padding;
        for plane in 0..n * c {
            for i in 0..ho {
                let r0 = (i * kh).saturating_sub(ph);
                let r1 = (i * kh + kh).saturating_sub(ph).min(h);
                for j in 0..wo {
                    let q0 = (j * kw).saturating_sub(pw);
                    let q1 = (j * kw + kw).saturating_sub(pw).min(w);
                    let o = (plane * ho + i) * wo + j;
                    for r in r0..r1 {
                        for q in q0..q1 {
                            f(o, (plane * h + r) * w + q);
                        }
                    }
                }
            }
        }
    }

    fn forward<T: Copy + PartialOrd>(&self, x: &[T], dims: [usize; 4], neg_inf: T) -> Vec<T> {
        let (ho, wo) = self.out_hw(dims[2], dims[3]);
        let mut y = vec![neg_inf; dims[0] * dims[1] * ho * wo];
        self.for_each(dims, |o, s| {
            if x[s] > y[o] {
                y[o] = x[s];
            }
        });
        y
    }
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("max_pool2d kernel needs contiguous tensors"),
    }
}

impl CustomOp1 for MaxPoolBlocks {
    fn name(&self) -> &'static str {
        "max_pool2d_blocks"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let dims = [n, c, h, w];
        let y = match s {
            CpuStorage::F32(x) => {
                CpuStorage::F32(self.forward(contiguous(x, l)?, dims, f32::NEG_INFINITY))
            }
            CpuStorage::F64(x) => {
                CpuStorage::F64(self.forward(contiguous(x, l)?, dims, f64::NEG_INFINITY))
            }
            other => candle_core::bail!("max_pool2d: unsupported dtype {:?}", other.dtype()),
        };
        let (ho, wo) = self.out_hw(h, w);
        Ok((y, Shape::from((n, c, ho, wo))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(arg.apply_op3_no_bwd(
            res,
            &grad,
            &MaxPoolBlocksGrad(*self),
        )?))
    }
}

/// `(x, y, dy) -> dx` of [`MaxPoolBlocks`].
struct MaxPoolBlocksGrad(MaxPoolBlocks);

impl MaxPoolBlocksGrad {
    fn grad<T: Copy + PartialEq + Default>(
        &self,
        x: &[T],
        y: &[T],
        dy: &[T],
        dims: [usize; 4],
    ) -> Vec<T> {
        let mut dx = vec![T::default(); x.len()];
        self.0.for_each(dims, |o, s| {
            if x[s] == y[o] {
                dx[s] = dy[o];
            }
        });
        dx
    }
}

impl CustomOp3 for MaxPoolBlocksGrad {
    fn name(&self) -> &'static str {
        "max_pool2d_blocks_grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        y: &CpuStorage,
        ly: &Layout,
        dy: &CpuStorage,
        ldy: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = lx.shape().dims4()?;
        let dims = [n, c, h, w];
        if ly.shape() != ldy.shape() {
            candle_core::bail!("max_pool2d grad: {:?} vs {:?}", ly.shape(), ldy.shape())
        }
        let dx = match (x, y, dy) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(dy)) => {
                CpuStorage::F32(self.grad(
                    contiguous(x, lx)?,
                    contiguous(y, ly)?,
                    contiguous(dy, ldy)?,
                    dims,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(dy)) => {
                CpuStorage::F64(self.grad(
                    contiguous(x, lx)?,
                    contiguous(y, ly)?,
                    contiguous(dy, ldy)?,
                    dims,
                ))
            }
            _ => candle_core::bail!("max_pool2d grad: unsupported dtypes"),
        };
        Ok((dx, lx.shape().clone()))
    }
}
