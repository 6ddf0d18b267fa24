//! The fused CPU linear layer (f32, f64): one custom op forward and one backward, with the
//! products through gemm and the parallelism chosen by size.
//!
//! For `x (N, I)`, `W (O, I)`, `b (O)`:
//!
//! ```text
//! y  = x Wᵀ, then y[n, o] += b[o]          (the product first, as Candle's matmul + broadcast_add)
//! dx = dy W          dW = dyᵀ x          db[o] = Σₙ dy[n, o]  (n ascending)
//! ```
//!
//! Candle builds the same step from a transposed view, a matmul, a broadcast add and, backward,
//! two matmuls, two transposes, a reduction and the gradient sums between them, each its own
//! allocation and, from 64K elements, its own wake-up of Candle's thread pool. Here the three
//! gradients come out of one op, and `dx` is not computed when the input is data. Products of
//! fewer than [`PARALLEL_FROM`] multiply-adds run on the calling thread.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};

use crate::matmul::{matmul, View};
use crate::slices::{unpack_grads, with_slices3, Grads3};

/// Multiply-adds of one product from which gemm splits it over rayon's threads.
const PARALLEL_FROM: usize = 1 << 20;

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m * n * k >= PARALLEL_FROM {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    }
}

/// The sizes `(N, I, O)` of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    i: usize,
    o: usize,
}

impl Dims {
    fn of(x: &Layout, w: &Layout) -> candle_core::Result<Dims> {
        let (n, i) = x.shape().dims2()?;
        let (o, i_w) = w.shape().dims2()?;
        if i != i_w {
            bail!(
                "linear kernel: weight {:?} for input {:?}",
                w.shape(),
                x.shape()
            )
        }
        Ok(Dims { n, i, o })
    }
}

/// `x Wᵀ + b`, differentiable in all three.
#[derive(Debug, Clone, Copy)]
struct LinearOp;

fn forward<T: WithDType>(x: &[T], w: &[T], b: &[T], d: Dims) -> candle_core::Result<Vec<T>> {
    let Dims { n, i, o } = d;
    if b.len() != o {
        bail!("linear kernel: bias of {} for {o} outputs", b.len())
    }
    let mut y = vec![T::zero(); n * o];
    let (lhs, rhs) = (View::rows(x, i), View::transposed(w, i));
    matmul((n, o, i), &mut y, false, lhs, rhs, parallelism(n, o, i))?;
    for row in y.chunks_exact_mut(o.max(1)) {
        for (v, &bias) in row.iter_mut().zip(b) {
            *v += bias;
        }
    }
    Ok(y)
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "gradus-linear"
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
        let d = Dims::of(l1, l2)?;
        let y = with_slices3!("linear kernel", (s1, l1), (s2, l2), (s3, l3), |x, w, b| {
            forward(x, w, b, d)
        });
        Ok((y, Shape::from((d.n, d.o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Grads3> {
        let op = LinearBackward {
            input_grad: x.track_op(),
        };
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &op)?;
        unpack_grads(&packed, (x, w, b), op.input_grad)
    }
}

/// The backward pass of [`LinearOp`] over `(x, W, dy)`: one output `[dx | dW | db]` (`dx`
/// zeros unless `input_grad`).
#[derive(Debug, Clone, Copy)]
struct LinearBackward {
    input_grad: bool,
}

impl LinearBackward {
    fn backward<T: WithDType>(
        &self,
        x: &[T],
        w: &[T],
        dy: &[T],
        d: Dims,
    ) -> candle_core::Result<Vec<T>> {
        let Dims { n, i, o } = d;
        let mut out = vec![T::zero(); n * i + o * i + o];
        let (dx, rest) = out.split_at_mut(n * i);
        let (dw, db) = rest.split_at_mut(o * i);
        if self.input_grad {
            let (lhs, rhs) = (View::rows(dy, o), View::rows(w, i));
            matmul((n, i, o), dx, false, lhs, rhs, parallelism(n, i, o))?;
        }
        let (lhs, rhs) = (View::transposed(dy, o), View::rows(x, i));
        matmul((o, i, n), dw, false, lhs, rhs, parallelism(o, i, n))?;
        for row in dy.chunks_exact(o.max(1)) {
            for (acc, &g) in db.iter_mut().zip(row) {
                *acc += g;
            }
        }
        Ok(out)
    }
}

impl CustomOp3 for LinearBackward {
    fn name(&self) -> &'static str {
        "gradus-linear-backward"
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
        let d = Dims::of(l1, l2)?;
        if l3.shape().dims() != [d.n, d.o] {
            bail!("linear kernel: output gradient {:?}", l3.shape())
        }
        let total = d.n * d.i + d.o * d.i + d.o;
        let out = with_slices3!("linear kernel", (s1, l1), (s2, l2), (s3, l3), |x, w, dy| {
            self.backward(x, w, dy, d)
        });
        Ok((out, Shape::from(total)))
    }
}

/// `x Wᵀ + b` for a CPU f32/f64 `x` `(*, I)` (made contiguous), `weight` `(O, I)` and `bias`
/// `(O)` of one dtype, through [`LinearOp`]; the output is `(*, O)`.
pub(crate) fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims();
    let (lead, i) = dims.split_at(dims.len().saturating_sub(1));
    let n: usize = lead.iter().product();
    let x2 = x
        .contiguous()?
        .reshape((n, i.first().copied().unwrap_or(1)))?;
    let y = x2.apply_op3(weight, bias, LinearOp)?;
    let mut out = lead.to_vec();
    out.push(weight.dim(0)?);
    y.reshape(out)
}
