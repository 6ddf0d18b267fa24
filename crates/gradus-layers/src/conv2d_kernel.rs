//! The fused CPU convolution of one group (f32, f64): a Candle custom op whose forward and
//! backward call gemm once per sample on that sample's patch matrix, reading and writing NCHW
//! directly (no transposed copies of the output or its gradient, no graph of intermediate ops).
//!
//! Per sample n, with `P = H_out W_out` output positions and `K = C k_h k_w` taps:
//!
//! ```text
//! Pₙ[(c k_h + u) k_w + v, i W_out + j] = x_pad[n, c, s_h i + d_h u, s_w j + d_w v]    (K × P)
//! yₙ  = W Pₙ + b 1ᵀ                                   (O × P: sample n of y in NCHW)
//! dW  = Σₙ dyₙ Pₙᵀ          db = Σₙ dyₙ 1
//! dPₙ = Wᵀ dyₙ              dxₙ = the sum of each entry of dPₙ onto the input it was read from
//! ```
//!
//! with `W` the PyTorch weight `(O, C, k_h, k_w)` read as `(O, K)`. A patch matrix of the
//! digits CNN (K = 288, P = 64) is 74 KiB: it is built, used and dropped in L2, one sample at
//! a time. Samples go in blocks of [`BLOCK`], in parallel over rayon's threads when a pass has
//! at least [`PARALLEL_FROM`] multiply-adds; gemm runs single-threaded inside a block (at these
//! sizes one product is too small to split, and splitting it is what made Candle's matmul
//! wait on its thread pool). dW and db are summed per block and the block sums added in block
//! order, so the results do not depend on the number of threads.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::im2col::Geometry;
use crate::matmul::{matmul, View};
use crate::slices::{unpack_grads, with_slices3, Grads3};

/// Samples per block: the unit of parallel work and of the fixed summation order of dW.
const BLOCK: usize = 4;

/// Multiply-adds of a pass from which blocks run in parallel (below, on the calling thread).
const PARALLEL_FROM: usize = 1 << 21;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    ho: usize,
    wo: usize,
    kh: usize,
    kw: usize,
}

impl Dims {
    /// Taps per output position (`K`).
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per channel (`P`).
    fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Elements of one input sample.
    fn sample(&self) -> usize {
        self.c * self.h * self.w
    }

    fn parallel(&self) -> bool {
        self.n * self.o * self.k() * self.p() >= PARALLEL_FROM
    }
}

/// For each (output index, kernel offset) along one axis, the input index read (`None` in the
/// padding): `rows[i k_h + u]`, `cols[j k_w + v]`.
struct Taps {
    rows: Vec<Option<usize>>,
    cols: Vec<Option<usize>>,
}

impl Taps {
    fn new(g: &Geometry, d: &Dims) -> Taps {
        let axis = |a: usize, outputs: usize, len: usize| -> Vec<Option<usize>> {
            (0..outputs)
                .flat_map(|i| {
                    (0..g.kernel[a]).map(move |u| {
                        (g.stride[a] * i + g.dilation[a] * u)
                            .checked_sub(g.padding[a])
                            .filter(|&r| r < len)
                    })
                })
                .collect()
        };
        Taps {
            rows: axis(0, d.ho, d.h),
            cols: axis(1, d.wo, d.w),
        }
    }
}

/// Sample `x` `(C, H, W)`'s patch matrix into `patches` `(K, P)`.
fn build_patches<T: WithDType>(x: &[T], d: &Dims, taps: &Taps, patches: &mut [T]) {
    let p = d.p();
    for (row, out) in patches.chunks_exact_mut(p).enumerate() {
        let (c, u, v) = (row / (d.kh * d.kw), row / d.kw % d.kh, row % d.kw);
        let plane = &x[c * d.h * d.w..(c + 1) * d.h * d.w];
        for (i, line) in out.chunks_exact_mut(d.wo).enumerate() {
            match taps.rows[i * d.kh + u] {
                None => line.fill(T::zero()),
                Some(r) => {
                    let src = &plane[r * d.w..(r + 1) * d.w];
                    for (j, o) in line.iter_mut().enumerate() {
                        *o = taps.cols[j * d.kw + v].map_or(T::zero(), |q| src[q]);
                    }
                }
            }
        }
    }
}

/// Adds each entry of a patch-matrix gradient `dpatches` `(K, P)` onto the input position of
/// `dx` `(C, H, W)` it was read from (the adjoint of [`build_patches`]).
fn scatter_patches<T: WithDType>(dpatches: &[T], d: &Dims, taps: &Taps, dx: &mut [T]) {
    let p = d.p();
    for (row, grad) in dpatches.chunks_exact(p).enumerate() {
        let (c, u, v) = (row / (d.kh * d.kw), row / d.kw % d.kh, row % d.kw);
        let plane = &mut dx[c * d.h * d.w..(c + 1) * d.h * d.w];
        for (i, line) in grad.chunks_exact(d.wo).enumerate() {
            let Some(r) = taps.rows[i * d.kh + u] else {
                continue;
            };
            let dst = &mut plane[r * d.w..(r + 1) * d.w];
            for (j, &g) in line.iter().enumerate() {
                if let Some(q) = taps.cols[j * d.kw + v] {
                    dst[q] += g;
                }
            }
        }
    }
}

/// Runs `f(first_sample, chunk)` over `out` cut into chunks of `BLOCK · per_sample` elements,
/// in parallel when `parallel`.
fn per_block<T: Send>(
    out: &mut [T],
    per_sample: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) -> candle_core::Result<()> + Sync,
) -> candle_core::Result<()> {
    let size = (BLOCK * per_sample).max(1);
    if parallel {
        out.par_chunks_mut(size)
            .enumerate()
            .try_for_each(|(b, chunk)| f(b * BLOCK, chunk))
    } else {
        out.chunks_mut(size)
            .enumerate()
            .try_for_each(|(b, chunk)| f(b * BLOCK, chunk))
    }
}

/// The convolution `y = conv(x, W) + b` of one group, differentiable in all three.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv2dOp {
    pub(crate) geometry: Geometry,
}

impl Conv2dOp {
    fn dims(&self, x: &Layout, w: &Layout) -> candle_core::Result<Dims> {
        let (n, c, h, wd) = x.shape().dims4()?;
        let (o, c_w, kh, kw) = w.shape().dims4()?;
        let g = &self.geometry;
        if c_w != c || g.kernel != [kh, kw] {
            bail!(
                "conv2d kernel: weight {:?} for input {:?}",
                w.shape(),
                x.shape()
            )
        }
        let Some((ho, wo)) = g.out_hw(h, wd) else {
            bail!(
                "conv2d kernel: window {g:?} larger than input {:?}",
                x.shape()
            )
        };
        Ok(Dims {
            n,
            c,
            h,
            w: wd,
            o,
            ho,
            wo,
            kh,
            kw,
        })
    }

    fn forward<T: WithDType>(
        &self,
        x: &[T],
        weight: &[T],
        bias: &[T],
        d: Dims,
    ) -> candle_core::Result<Vec<T>> {
        let (k, p, o) = (d.k(), d.p(), d.o);
        let taps = Taps::new(&self.geometry, &d);
        let mut y = vec![T::zero(); d.n * o * p];
        per_block(&mut y, o * p, d.parallel(), |first, out| {
            let mut patches = vec![T::zero(); k * p];
            for (s, y_n) in out.chunks_exact_mut(o * p).enumerate() {
                let n = first + s;
                build_patches(
                    &x[n * d.sample()..(n + 1) * d.sample()],
                    &d,
                    &taps,
                    &mut patches,
                );
                for (row, &b) in y_n.chunks_exact_mut(p).zip(bias) {
                    row.fill(b);
                }
                let (lhs, rhs) = (View::rows(weight, k), View::rows(&patches, p));
                matmul((o, p, k), y_n, true, lhs, rhs, gemm::Parallelism::None)?;
            }
            Ok(())
        })?;
        Ok(y)
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "gradus-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims(l1, l2)?;
        if l3.shape().elem_count() != d.o {
            bail!("conv2d kernel: bias {:?} for {} channels", l3.shape(), d.o)
        }
        let y = with_slices3!("conv2d kernel", (s1, l1), (s2, l2), (s3, l3), |x, w, b| {
            self.forward(x, w, b, d)
        });
        Ok((y, Shape::from((d.n, d.o, d.ho, d.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Grads3> {
        // The input's gradient is only computed when something upstream wants it (not for the
        // first layer over the data).
        let op = Conv2dBackward {
            geometry: self.geometry,
            input_grad: x.track_op(),
        };
        let packed = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &op)?;
        unpack_grads(&packed, (x, weight, bias), op.input_grad)
    }
}

/// The backward pass of [`Conv2dOp`] over `(x, W, dy)`: one output `[dx | dW | db]` (`dx`
/// zeros unless `input_grad`).
#[derive(Debug, Clone, Copy)]
struct Conv2dBackward {
    geometry: Geometry,
    input_grad: bool,
}

impl Conv2dBackward {
    fn backward<T: WithDType>(
        &self,
        x: &[T],
        weight: &[T],
        dy: &[T],
        d: Dims,
    ) -> candle_core::Result<Vec<T>> {
        let (k, p, o) = (d.k(), d.p(), d.o);
        let taps = Taps::new(&self.geometry, &d);
        let mut dx = vec![T::zero(); d.n * d.sample()];
        let blocks = d.n.div_ceil(BLOCK);
        // Per block: its samples' dW (O × K) and db (O), summed in block order below.
        let mut partial = vec![T::zero(); blocks * (o * k + o)];
        let parts = std::sync::Mutex::new(&mut partial);
        per_block(&mut dx, d.sample(), d.parallel(), |first, dx_block| {
            let mut patches = vec![T::zero(); k * p];
            let mut dpatches = vec![T::zero(); k * p];
            let mut dw = vec![T::zero(); o * k];
            let mut db = vec![T::zero(); o];
            for (s, dx_n) in dx_block.chunks_exact_mut(d.sample()).enumerate() {
                let n = first + s;
                let dy_n = &dy[n * o * p..(n + 1) * o * p];
                build_patches(
                    &x[n * d.sample()..(n + 1) * d.sample()],
                    &d,
                    &taps,
                    &mut patches,
                );
                // dW += dyₙ Pₙᵀ: (O × P)(P × K).
                let pt = View::transposed(&patches, p);
                matmul(
                    (o, k, p),
                    &mut dw,
                    true,
                    View::rows(dy_n, p),
                    pt,
                    gemm::Parallelism::None,
                )?;
                if self.input_grad {
                    // dPₙ = Wᵀ dyₙ: (K × O)(O × P).
                    let wt = View::transposed(weight, k);
                    matmul(
                        (k, p, o),
                        &mut dpatches,
                        false,
                        wt,
                        View::rows(dy_n, p),
                        gemm::Parallelism::None,
                    )?;
                    scatter_patches(&dpatches, &d, &taps, dx_n);
                }
                for (acc, row) in db.iter_mut().zip(dy_n.chunks_exact(p)) {
                    *acc += row.iter().fold(T::zero(), |a, &v| a + v);
                }
            }
            let block = first / BLOCK;
            let mut parts = parts
                .lock()
                .map_err(|_| candle_core::Error::Msg("conv2d kernel: a worker panicked".into()))?;
            let slot = &mut parts[block * (o * k + o)..(block + 1) * (o * k + o)];
            slot[..o * k].copy_from_slice(&dw);
            slot[o * k..].copy_from_slice(&db);
            Ok(())
        })?;
        let mut out = dx;
        let mut totals = vec![T::zero(); o * k + o];
        for block in partial.chunks_exact(o * k + o) {
            for (t, &v) in totals.iter_mut().zip(block) {
                *t += v;
            }
        }
        out.extend_from_slice(&totals);
        Ok(out)
    }
}

impl CustomOp3 for Conv2dBackward {
    fn name(&self) -> &'static str {
        "gradus-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Conv2dOp {
            geometry: self.geometry,
        }
        .dims(l1, l2)?;
        // (the input gradient stays zeros when it is not wanted)
        if l3.shape().dims() != [d.n, d.o, d.ho, d.wo] {
            bail!("conv2d kernel: output gradient {:?}", l3.shape())
        }
        let total = d.n * d.sample() + d.o * d.k() + d.o;
        let out = with_slices3!("conv2d kernel", (s1, l1), (s2, l2), (s3, l3), |x, w, dy| {
            self.backward(x, w, dy, d)
        });
        Ok((out, Shape::from(total)))
    }
}

/// `conv(x, W) + b` for contiguous CPU f32/f64 `x` `(N, C, H, W)`, `weight`
/// `(O, C, k_h, k_w)` and `bias` `(O)` of one dtype, through [`Conv2dOp`].
pub(crate) fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    geometry: Geometry,
) -> candle_core::Result<Tensor> {
    x.apply_op3(weight, bias, Conv2dOp { geometry })
}
