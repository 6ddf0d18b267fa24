//! Reading the operands of the fused layer ops: the contiguous data of CPU storages of one
//! float dtype, or an error naming the op.

/// The contiguous elements of `data` under `layout`, or an error naming `op`.
pub(crate) fn contiguous<'a, T>(
    data: &'a [T],
    layout: &candle_core::Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: a strided operand"),
    }
}

/// Matches three CPU storages of one float dtype (f32 or f64), binds `$a`, `$b`, `$c` to their
/// contiguous slices and wraps `$body`'s `Vec` in a storage of that dtype; another dtype (or a
/// mix) is an error naming `$op`.
macro_rules! with_slices3 {
    ($op:literal, ($s1:ident, $l1:ident), ($s2:ident, $l2:ident), ($s3:ident, $l3:ident), |$a:ident, $b:ident, $c:ident| $body:expr) => {{
        use candle_core::backend::BackendStorage as _;
        use candle_core::CpuStorage;
        use $crate::slices::contiguous;
        match ($s1, $s2, $s3) {
            (CpuStorage::F32($a), CpuStorage::F32($b), CpuStorage::F32($c)) => {
                let ($a, $b, $c) = (
                    contiguous($a, $l1, $op)?,
                    contiguous($b, $l2, $op)?,
                    contiguous($c, $l3, $op)?,
                );
                CpuStorage::F32($body?)
            }
            (CpuStorage::F64($a), CpuStorage::F64($b), CpuStorage::F64($c)) => {
                let ($a, $b, $c) = (
                    contiguous($a, $l1, $op)?,
                    contiguous($b, $l2, $op)?,
                    contiguous($c, $l3, $op)?,
                );
                CpuStorage::F64($body?)
            }
            _ => candle_core::bail!(
                "{}: expected three f32 or three f64 tensors, got {:?}, {:?}, {:?}",
                $op,
                $s1.dtype(),
                $s2.dtype(),
                $s3.dtype()
            ),
        }
    }};
}

pub(crate) use with_slices3;

/// The gradients of `(x, weight, bias)` out of a backward op's one output
/// `[dx | dW | db]`, each in its operand's shape; `dx` only when `input_grad`.
pub(crate) type Grads3 = (
    Option<candle_core::Tensor>,
    Option<candle_core::Tensor>,
    Option<candle_core::Tensor>,
);

/// Splits a packed `[dx | dW | db]` into [`Grads3`].
pub(crate) fn unpack_grads(
    packed: &candle_core::Tensor,
    (x, weight, bias): (
        &candle_core::Tensor,
        &candle_core::Tensor,
        &candle_core::Tensor,
    ),
    input_grad: bool,
) -> candle_core::Result<Grads3> {
    let (nx, nw) = (x.elem_count(), weight.elem_count());
    let dx = packed.narrow(0, 0, nx)?.reshape(x.shape())?;
    let dw = packed.narrow(0, nx, nw)?.reshape(weight.shape())?;
    let db = packed
        .narrow(0, nx + nw, bias.elem_count())?
        .reshape(bias.shape())?;
    Ok((input_grad.then_some(dx), Some(dw), Some(db)))
}
