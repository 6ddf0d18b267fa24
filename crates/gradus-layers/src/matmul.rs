//! Matrix products on slices through gemm (the crate Candle's CPU matmul uses), called
//! directly so that each caller chooses its parallelism: the fused layer kernels' products are
//! small enough that splitting them costs more than it saves, or run inside parallel blocks.

use candle_core::{bail, DType, WithDType};

/// A row-major or transposed view of a matrix in a slice: element `(r, c)` at
/// `r · row_stride + c · col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    data: &'a [T],
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> View<'a, T> {
    /// `rows × cols` stored row by row.
    pub(crate) fn rows(data: &'a [T], cols: usize) -> Self {
        View {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a `cols × rows` matrix stored row by row.
    pub(crate) fn transposed(data: &'a [T], rows: usize) -> Self {
        View {
            data,
            row_stride: 1,
            col_stride: rows,
        }
    }

    /// True when every element of a `rows × cols` view lies in the slice.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst (m × n, row-major) ← [dst +] lhs (m × k) · rhs (k × n)` (added to `dst` when
/// `accumulate`), through gemm with `parallelism` (gemm splits the output among threads; the
/// layers' tests check that their results do not depend on the thread count). f32 and f64
/// only: another dtype is an error.
pub(crate) fn matmul<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    accumulate: bool,
    lhs: View<'_, T>,
    rhs: View<'_, T>,
    parallelism: gemm::Parallelism,
) -> candle_core::Result<()> {
    if !matches!(T::DTYPE, DType::F32 | DType::F64) {
        bail!("gradus matmul: {:?} is not f32 or f64", T::DTYPE)
    }
    if dst.len() < m * n || !lhs.fits(m, k) || !rhs.fits(k, n) {
        bail!("gradus matmul: a matrix does not fit its buffer ({m} x {n} x {k})")
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return Ok(());
    }
    let stride = |s: usize| s as isize;
    // SAFETY: gemm reads `lhs` at (r, c) = r·row_stride + c·col_stride for r < m, c < k, `rhs`
    // likewise for r < k, c < n, and writes `dst` at r·n + c for r < m, c < n: `fits` and the
    // length check above keep every such offset inside its slice, `dst` is borrowed mutably
    // (no alias with the inputs), and `T` is f32 or f64 (checked above), which gemm supports.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(n),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}
