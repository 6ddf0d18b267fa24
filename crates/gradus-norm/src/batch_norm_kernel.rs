//! Fused CPU batch normalization: the forward pass and its backward pass as two Candle custom
//! ops over contiguous f32 / f64 tensors (issue #22), in place of a graph of small reductions.
//!
//! The input is viewed as `(N, C, S)` (`S` = the product of the spatial dimensions, 1 for
//! `(N, C)`) and `M = N * S` values per channel `c`:
//!
//! - statistics: `mean_c = sum(x) / M`, `var_c = sum((x - mean_c)^2) / M` (*biased*, what the
//!   input is normalized with; the layer derives the unbiased `var_c * M / (M - 1)` for
//!   `running_var` from it, as torch), or, in evaluation mode, the running statistics given;
//! - forward: `inv_std_c = 1 / sqrt(var_c + eps)`, `xhat = (x - mean_c) * inv_std_c`,
//!   `y = xhat * gamma_c + beta_c` (`gamma = 1`, `beta = 0` without `affine`);
//! - backward, batch statistics: `dgamma_c = sum(dy * xhat)`, `dbeta_c = sum(dy)`,
//!   `dx = gamma_c * inv_std_c / M * (M * dy - dbeta_c - xhat * dgamma_c)`;
//! - backward, fixed (running) statistics: `dx = gamma_c * inv_std_c * dy`, same `dgamma`, `dbeta`.
//!
//! [`BatchNormOp`] (a `CustomOp3` of `x`, `gamma`, `beta`) keeps the statistics it normalized
//! with; its `bwd` runs [`BatchNormBackward`], a second custom op whose one output packs
//! `[dx, dgamma, dbeta]`, so that the backward pass is one fused kernel too.
//!
//! Numerics: every sum is accumulated in f64 (for f32 inputs too) in a fixed order per channel
//! (samples, then positions, four interleaved partial sums), and the elementwise formulas are
//! evaluated in f64 and rounded once to the tensor's dtype. A channel's result therefore never
//! depends on the number of threads, and runs are bit-identical. Against the Candle-op path
//! (f32 sums in f32) the fused path agrees within `1e-12` of each tensor's largest magnitude in
//! f64 and `1e-4` in f32, a bound set by the Candle path's own f32 error: the fused f32 results
//! stay within `1e-6` of the same computation in f64 (`tests/batch_norm_fused.rs`).
//!
//! Parallelism: the reductions are split by channel and the elementwise passes by sample over
//! rayon's pool, only from [`PARALLEL_MIN_ELEMS`] elements up; below, one thread.

use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Inputs with fewer elements run on the calling thread. On the 2-core (loaded) development
/// machine, the digits CNN's batch norms (131,072 and 262,144 elements) ran forward + backward
/// 2.1-2.3x faster on one thread than split over two, and two cores were no faster up to
/// 4,194,304 elements either (`docs/benchmarks.md`, "Training speed"); from 2^20 elements the
/// split is left to machines with cores to spare (not measured on an idle one).
pub(crate) const PARALLEL_MIN_ELEMS: usize = 1 << 20;

/// Per-channel mean and *biased* variance, in f64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChannelStats {
    pub(crate) mean: Vec<f64>,
    pub(crate) var: Vec<f64>,
}

impl ChannelStats {
    /// Statistics from two `(C,)` tensors of any float dtype (the running buffers).
    pub(crate) fn from_tensors(mean: &Tensor, var: &Tensor) -> candle_core::Result<Self> {
        Ok(ChannelStats {
            mean: mean.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?,
            var: var.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?,
        })
    }

    /// `(mean, var * factor)` as `(C,)` f64 tensors on `device`.
    pub(crate) fn to_tensors(
        &self,
        var_factor: f64,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let var: Vec<f64> = self.var.iter().map(|v| v * var_factor).collect();
        let c = self.mean.len();
        Ok((
            Tensor::from_vec(self.mean.clone(), c, device)?,
            Tensor::from_vec(var, c, device)?,
        ))
    }
}

/// Whether the fused kernels take these tensors: all on the CPU, contiguous, one dtype, f32 or
/// f64. Anything else keeps the Candle-op path.
pub(crate) fn eligible(x: &Tensor, params: &[&Tensor]) -> bool {
    let dtype = x.dtype();
    matches!(dtype, DType::F32 | DType::F64)
        && std::iter::once(x)
            .chain(params.iter().copied())
            .all(|t| t.device().is_cpu() && t.is_contiguous() && t.dtype() == dtype)
}

/// `(N, C, S)` of the input.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    s: usize,
}

impl Geometry {
    fn of(x: &Tensor) -> candle_core::Result<Self> {
        let (n, c, s) = x.dims3()?;
        Ok(Geometry { n, c, s })
    }

    fn numel(&self) -> usize {
        self.n * self.c * self.s
    }

    fn parallel(&self) -> bool {
        self.numel() >= PARALLEL_MIN_ELEMS
    }

    /// `f(v)` summed over channel `c`'s values, in f64, in a fixed order.
    fn channel_sum(&self, c: usize, f: impl Fn(usize) -> f64) -> f64 {
        let mut lanes = [0f64; 4];
        for n in 0..self.n {
            let start = (n * self.c + c) * self.s;
            for (i, index) in (start..start + self.s).enumerate() {
                lanes[i % 4] += f(index);
            }
        }
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
    }
}

/// `f(c)` for every channel, split over rayon's pool when `parallel`.
fn per_channel<R: Send>(c: usize, parallel: bool, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if parallel {
        (0..c).into_par_iter().map(f).collect()
    } else {
        (0..c).map(f).collect()
    }
}

/// `f(n, sample)` for every sample's `C * S` outputs, split over rayon's pool when `parallel`.
fn per_sample<T: Send>(out: &mut [T], g: Geometry, f: impl Fn(usize, &mut [T]) + Sync) {
    let len = g.c * g.s;
    if len == 0 {
        return;
    }
    if g.parallel() {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(n, o)| f(n, o));
    } else {
        out.chunks_mut(len).enumerate().for_each(|(n, o)| f(n, o));
    }
}

/// The contiguous `len` values of a custom op's input.
fn contiguous<'a, T>(data: &'a [T], layout: &Layout, len: usize) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start == len => Ok(&data[start..end]),
        _ => bail!("batch_norm kernel: expected {len} contiguous values, got layout {layout:?}"),
    }
}

/// Batch mean and biased variance per channel (two passes, f64 sums).
fn batch_stats<T: WithDType>(x: &[T], g: Geometry) -> ChannelStats {
    let m = (g.n * g.s) as f64;
    let pairs = per_channel(g.c, g.parallel(), |c| {
        let mean = g.channel_sum(c, |i| x[i].to_f64()) / m;
        let var = g.channel_sum(c, |i| (x[i].to_f64() - mean).powi(2)) / m;
        (mean, var)
    });
    let (mean, var) = pairs.into_iter().unzip();
    ChannelStats { mean, var }
}

/// Batch normalization's forward pass of `(x, gamma, beta)`, `x` of shape `(N, C, S)`: batch
/// statistics, or `fixed` ones (evaluation mode). The statistics used stay in the op for its
/// backward pass and for the running-statistics update ([`batch_norm`]).
#[derive(Debug)]
pub(crate) struct BatchNormOp {
    eps: f64,
    fixed: Option<ChannelStats>,
    stats: Arc<OnceLock<ChannelStats>>,
}

impl BatchNormOp {
    /// An op normalizing with `fixed` statistics, or with the batch's when `None`.
    pub(crate) fn new(eps: f64, fixed: Option<ChannelStats>) -> Self {
        BatchNormOp {
            eps,
            fixed,
            stats: Arc::new(OnceLock::new()),
        }
    }

    fn forward<T: WithDType>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        g: Geometry,
    ) -> candle_core::Result<Vec<T>> {
        let stats = match &self.fixed {
            Some(fixed) if fixed.mean.len() == g.c && fixed.var.len() == g.c => fixed.clone(),
            Some(_) => bail!(
                "batch_norm kernel: running statistics do not have {} channels",
                g.c
            ),
            None => batch_stats(x, g),
        };
        // Per channel: (mean, gamma * inv_std, beta).
        let coef: Vec<(f64, f64, f64)> = (0..g.c)
            .map(|c| {
                let inv_std = 1.0 / (stats.var[c] + self.eps).sqrt();
                (stats.mean[c], gamma[c].to_f64() * inv_std, beta[c].to_f64())
            })
            .collect();
        let mut y = vec![T::zero(); g.numel()];
        per_sample(&mut y, g, |n, out| {
            let xs = &x[n * g.c * g.s..(n + 1) * g.c * g.s];
            for (c, &(mean, scale, shift)) in coef.iter().enumerate() {
                let range = c * g.s..(c + 1) * g.s;
                for (o, &v) in out[range.clone()].iter_mut().zip(&xs[range]) {
                    *o = T::from_f64((v.to_f64() - mean) * scale + shift);
                }
            }
        });
        // A fresh op per forward call: the cell is empty here.
        let _ = self.stats.set(stats);
        Ok(y)
    }
}

/// `(x, gamma, beta)` of one dtype on the CPU, as slices of the lengths `g` implies.
macro_rules! with_slices {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, $s3:expr, $l3:expr, $g:expr, $len:expr,
     |$a:ident, $b:ident, $cc:ident| $body:expr) => {
        match ($s1, $s2, $s3) {
            (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
                let $a = contiguous(a, $l1, $g.numel())?;
                let $b = contiguous(b, $l2, $len)?;
                let $cc = contiguous(c, $l3, $g.c)?;
                CpuStorage::F32($body?)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
                let $a = contiguous(a, $l1, $g.numel())?;
                let $b = contiguous(b, $l2, $len)?;
                let $cc = contiguous(c, $l3, $g.c)?;
                CpuStorage::F64($body?)
            }
            (a, b, c) => bail!(
                "batch_norm kernel: expected three f32 or three f64 tensors, got {:?}, {:?}, {:?}",
                a.dtype(),
                b.dtype(),
                c.dtype()
            ),
        }
    };
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "gradus-batch-norm"
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
        let (n, c, s) = l1.shape().dims3()?;
        let g = Geometry { n, c, s };
        let out = with_slices!(s1, l1, s2, l2, s3, l3, g, g.c, |x, gamma, beta| self
            .forward(x, gamma, beta, g));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self.stats.get() else {
            bail!("batch_norm kernel: backward pass before the forward pass")
        };
        let op = BatchNormBackward {
            mean: stats.mean.clone(),
            inv_std: stats
                .var
                .iter()
                .map(|v| 1.0 / (v + self.eps).sqrt())
                .collect(),
            batch: self.fixed.is_none(),
        };
        let grad = grad.contiguous()?;
        let packed = x.apply_op3_no_bwd(&grad, gamma, &op)?;
        let (numel, c) = (x.elem_count(), Geometry::of(x)?.c);
        let dx = packed.narrow(0, 0, numel)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, numel, c)?.reshape(gamma.shape())?;
        let dbeta = packed.narrow(0, numel + c, c)?.reshape(gamma.shape())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Batch normalization's backward pass of `(x, dy, gamma)` given the forward pass's per-channel
/// `mean` and `inv_std`; one output `[dx (N*C*S), dgamma (C), dbeta (C)]`.
#[derive(Debug)]
pub(crate) struct BatchNormBackward {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    /// Batch statistics (their gradient flows into `dx`) rather than fixed ones.
    batch: bool,
}

impl BatchNormBackward {
    fn backward<T: WithDType>(
        &self,
        x: &[T],
        dy: &[T],
        gamma: &[T],
        g: Geometry,
    ) -> candle_core::Result<Vec<T>> {
        if self.mean.len() != g.c || self.inv_std.len() != g.c {
            bail!("batch_norm kernel: statistics do not have {} channels", g.c)
        }
        let sums = per_channel(g.c, g.parallel(), |c| {
            let (mean, inv_std) = (self.mean[c], self.inv_std[c]);
            // One pass: (sum(dy * xhat), sum(dy)) with four interleaved partial sums each.
            let mut lanes = [[0f64; 2]; 4];
            for n in 0..g.n {
                let start = (n * g.c + c) * g.s;
                let (xs, dys) = (&x[start..start + g.s], &dy[start..start + g.s]);
                for (i, (&xv, &d)) in xs.iter().zip(dys).enumerate() {
                    let d = d.to_f64();
                    let lane = &mut lanes[i % 4];
                    lane[0] += d * ((xv.to_f64() - mean) * inv_std);
                    lane[1] += d;
                }
            }
            let total = |k: usize| (lanes[0][k] + lanes[1][k]) + (lanes[2][k] + lanes[3][k]);
            (total(0), total(1))
        });
        let m = (g.n * g.s) as f64;
        let numel = g.numel();
        let mut out = vec![T::zero(); numel + 2 * g.c];
        let (dx, tail) = out.split_at_mut(numel);
        per_sample(dx, g, |n, out| {
            let base = n * g.c * g.s;
            for (c, &(dgamma, dbeta)) in sums.iter().enumerate() {
                let (mean, inv_std) = (self.mean[c], self.inv_std[c]);
                let k = gamma[c].to_f64() * inv_std;
                let range = c * g.s..(c + 1) * g.s;
                let (xs, dys) = (&x[base..base + g.c * g.s], &dy[base..base + g.c * g.s]);
                for ((o, &xv), &d) in out[range.clone()]
                    .iter_mut()
                    .zip(&xs[range.clone()])
                    .zip(&dys[range])
                {
                    let d = d.to_f64();
                    let v = if self.batch {
                        let xhat = (xv.to_f64() - mean) * inv_std;
                        k / m * (m * d - dbeta - xhat * dgamma)
                    } else {
                        k * d
                    };
                    *o = T::from_f64(v);
                }
            }
        });
        for (c, &(dgamma, dbeta)) in sums.iter().enumerate() {
            tail[c] = T::from_f64(dgamma);
            tail[g.c + c] = T::from_f64(dbeta);
        }
        Ok(out)
    }
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "gradus-batch-norm-backward"
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
        let (n, c, s) = l1.shape().dims3()?;
        let g = Geometry { n, c, s };
        let out = with_slices!(s1, l1, s2, l2, s3, l3, g, g.numel(), |x, dy, gamma| self
            .backward(x, dy, gamma, g));
        Ok((out, Shape::from(g.numel() + 2 * g.c)))
    }
}

/// Batch normalization of a contiguous `(N, C, S)` CPU tensor `x` with per-channel `gamma`,
/// `beta` (`(C,)`, `x`'s dtype; see [`eligible`]) through [`BatchNormOp`]: `y` (differentiable
/// in all three through [`BatchNormBackward`]) and the statistics it normalized with, the
/// batch's or `fixed`.
pub(crate) fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    fixed: Option<ChannelStats>,
) -> candle_core::Result<(Tensor, ChannelStats)> {
    let op = BatchNormOp::new(eps, fixed);
    let stats = Arc::clone(&op.stats);
    let y = x.apply_op3_arc(gamma, beta, Arc::new(Box::new(op)))?;
    match stats.get() {
        Some(stats) => Ok((y, stats.clone())),
        None => bail!("batch_norm kernel: the forward pass left no statistics"),
    }
}
