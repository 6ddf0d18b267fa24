//! `im2col` / `col2im` as Candle custom ops (CPU, f32 and f64): the patch matrix that turns a
//! convolution into one matrix product, and its adjoint, which is the patch matrix's gradient.
//!
//! For an input `x (N, C, H, W)` the patch matrix has one row per output position and one
//! column per (channel, kernel offset):
//!
//! ```text
//! cols[(n H_out + i) W_out + j, (c k_h + u) k_w + v] = x_pad[n, c, s_h i + d_h u, s_w j + d_w v]
//! ```
//!
//! (`x_pad` = `x` with `p` zeros on each side), so `cols (N H_out W_out, C k_h k_w)` times the
//! transposed PyTorch weight `(out, C k_h k_w)` is the convolution in `(N, H_out, W_out, out)`
//! layout. With `ones`, a trailing column of ones is appended, so that a bias column appended
//! to the weight is added inside the same product (and its gradient comes out of the weight
//! gradient's product instead of a separate reduction). `col2im` adds each entry of a
//! patch-matrix gradient back onto the input position it was copied from; it is the backward
//! pass of `im2col` (no second derivative).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// Geometry of a sliding window over `(N, C, H, W)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// `(H_out, W_out)` for an `(H, W)` input; `None` when the window does not fit.
    pub(crate) fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let out = |len: usize, a: usize| {
            let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
            let padded = len + 2 * self.padding[a];
            (padded >= span).then(|| (padded - span) / self.stride[a] + 1)
        };
        Some((out(h, 0)?, out(w, 1)?))
    }

    /// For output index `i` along axis `a`: for each kernel offset, the input index it reads
    /// (`None` in the padding).
    fn taps(&self, a: usize, i: usize, len: usize) -> impl Iterator<Item = Option<usize>> + '_ {
        (0..self.kernel[a]).map(move |u| {
            (self.stride[a] * i + self.dilation[a] * u)
                .checked_sub(self.padding[a])
                .filter(|&r| r < len)
        })
    }
}

/// Loops over every (patch-matrix entry, input index) pair in patch-matrix order, calling
/// `f(entry, Some(input_index))`, or `f(entry, None)` for padding; `extra` trailing entries of
/// each row are skipped.
fn for_each_tap(
    g: &Geometry,
    dims: [usize; 4],
    extra: usize,
    mut f: impl FnMut(usize, Option<usize>),
) {
    let [n, c, h, w] = dims;
    let Some((ho, wo)) = g.out_hw(h, w) else {
        return;
    };
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let rows: Vec<Option<usize>> = (0..ho).flat_map(|i| g.taps(0, i, h)).collect();
    let cols: Vec<Option<usize>> = (0..wo).flat_map(|j| g.taps(1, j, w)).collect();
    let mut col = 0;
    for b in 0..n {
        for i in 0..ho {
            let rows = &rows[i * kh..(i + 1) * kh];
            for j in 0..wo {
                let cols = &cols[j * kw..(j + 1) * kw];
                for ch in 0..c {
                    let plane = (b * c + ch) * h;
                    for r in rows {
                        for q in cols {
                            f(col, r.zip(*q).map(|(r, q)| (plane + r) * w + q));
                            col += 1;
                        }
                    }
                }
                col += extra;
            }
        }
    }
}

fn im2col<T: Copy + Default>(x: &[T], g: &Geometry, dims: [usize; 4], ones: Option<T>) -> Vec<T> {
    let (rows, width) = cols_shape(g, dims, ones.is_some());
    let mut out = vec![T::default(); rows * width];
    for_each_tap(g, dims, usize::from(ones.is_some()), |col, src| {
        if let Some(s) = src {
            out[col] = x[s];
        }
    });
    if let Some(one) = ones {
        for row in out.chunks_exact_mut(width) {
            row[width - 1] = one;
        }
    }
    out
}

fn col2im<T: Copy + Default + std::ops::AddAssign>(
    cols: &[T],
    g: &Geometry,
    dims: [usize; 4],
    ones: bool,
) -> Vec<T> {
    let mut out = vec![T::default(); dims.iter().product()];
    for_each_tap(g, dims, usize::from(ones), |col, dst| {
        if let Some(d) = dst {
            out[d] += cols[col];
        }
    });
    out
}

/// `(rows, columns)` of the patch matrix of a fitting window.
fn cols_shape(g: &Geometry, dims: [usize; 4], ones: bool) -> (usize, usize) {
    let [n, c, h, w] = dims;
    let (ho, wo) = g.out_hw(h, w).unwrap_or((0, 0));
    (
        n * ho * wo,
        c * g.kernel[0] * g.kernel[1] + usize::from(ones),
    )
}

/// The contiguous data of a CPU storage, or an error naming the op.
fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op} needs a contiguous input"),
    }
}

/// `x (N, C, H, W)` -> patch matrix `(N H_out W_out, C k_h k_w [+ 1 with ones])`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Im2Col {
    pub geometry: Geometry,
    /// Append a column of ones (for a bias).
    pub ones: bool,
}

impl Im2Col {
    fn shape(&self, dims: [usize; 4]) -> candle_core::Result<(usize, usize)> {
        if self.geometry.out_hw(dims[2], dims[3]).is_none() {
            candle_core::bail!(
                "im2col window {:?} larger than input {dims:?}",
                self.geometry
            )
        }
        Ok(cols_shape(&self.geometry, dims, self.ones))
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let dims = [n, c, h, w];
        let shape = self.shape(dims)?;
        let g = &self.geometry;
        let out = match s {
            CpuStorage::F32(x) => {
                let ones = self.ones.then_some(1f32);
                CpuStorage::F32(im2col(contiguous(x, l, "im2col")?, g, dims, ones))
            }
            CpuStorage::F64(x) => {
                let ones = self.ones.then_some(1f64);
                CpuStorage::F64(im2col(contiguous(x, l, "im2col")?, g, dims, ones))
            }
            other => candle_core::bail!("im2col: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from(shape)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, c, h, w) = arg.dims4()?;
        let op = Col2Im {
            of: *self,
            dims: [n, c, h, w],
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// Patch-matrix gradient -> input gradient `(N, C, H, W)` (the ones column is dropped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Col2Im {
    of: Im2Col,
    dims: [usize; 4],
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let expected = self.of.shape(self.dims)?;
        if l.shape().dims2()? != expected {
            candle_core::bail!(
                "col2im: gradient shape {:?}, expected {expected:?}",
                l.shape()
            )
        }
        let (g, d, ones) = (&self.of.geometry, self.dims, self.of.ones);
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(col2im(contiguous(x, l, "col2im")?, g, d, ones)),
            CpuStorage::F64(x) => CpuStorage::F64(col2im(contiguous(x, l, "col2im")?, g, d, ones)),
            other => candle_core::bail!("col2im: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, Shape::from(self.dims.to_vec())))
    }
}
