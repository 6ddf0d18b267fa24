//! Targets aligned with a model output, shared by the elementwise losses.

use candle_core::Tensor;
use gradus_core::{Error, Result};

/// `targets` in the output's shape and dtype: targets of the same shape, or `(N)` for an
/// output `(N, 1)`; integer targets are converted to the output's (floating-point) dtype.
///
/// `name` (the loss) is named in errors; a shape error names both shapes.
pub fn aligned_targets(name: &str, output: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !output.dtype().is_float() {
        return Err(Error::Unsupported(format!(
            "{name} needs a floating-point model output, got {:?}",
            output.dtype()
        )));
    }
    let same = targets.dims() == output.dims();
    let column =
        output.dims().len() == 2 && output.dim(1)? == 1 && targets.dims() == [output.dim(0)?];
    if !(same || column) {
        return Err(Error::ShapeMismatch {
            context: format!(
                "{name} targets (the model output's shape, or (N) for an output (N, 1))"
            ),
            expected: output.dims().to_vec(),
            actual: targets.dims().to_vec(),
        });
    }
    Ok(targets.to_dtype(output.dtype())?.reshape(output.dims())?)
}
