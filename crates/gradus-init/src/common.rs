//! Small helpers shared by the initializers: validation and degenerate shapes.

use candle_core::{DType, Device, Tensor};
use gradus_core::{Error, Result, SeededRng};

/// `value` if finite, else an error naming the initializer and field.
pub(crate) fn finite(what: &str, field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::InvalidHyperparameter(format!(
            "{what}: `{field}` must be a finite number, got {value}"
        )))
    }
}

/// A finite, non-negative `value` (gains and standard deviations).
pub(crate) fn non_negative(what: &str, field: &str, value: f64) -> Result<f64> {
    if finite(what, field, value)? < 0.0 {
        return Err(Error::InvalidHyperparameter(format!(
            "{what}: `{field}` must be >= 0, got {value}"
        )));
    }
    Ok(value)
}

/// A tensor of `shape` filled with `value`, in `dtype`.
pub(crate) fn filled(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(value, shape, device)?.to_dtype(dtype)?)
}

/// True for a shape with no elements: every initializer returns it empty and draws nothing,
/// as PyTorch's "Initializing zero-element tensors is a no-op".
pub(crate) fn is_empty(shape: &[usize]) -> bool {
    shape.contains(&0)
}

/// `U(-bound, bound)` of `shape`; an empty shape gives an empty tensor and draws nothing (its
/// bound may be infinite, a fan being 0).
pub(crate) fn symmetric_uniform(
    shape: &[usize],
    bound: f64,
    dtype: DType,
    device: &Device,
    rng: &mut SeededRng,
) -> Result<Tensor> {
    if is_empty(shape) {
        return filled(shape, 0.0, dtype, device);
    }
    rng.uniform_tensor(shape, -bound, bound, dtype, device)
}

/// `N(0, std²)` of `shape`; an empty shape gives an empty tensor and draws nothing.
pub(crate) fn centered_normal(
    shape: &[usize],
    std: f64,
    dtype: DType,
    device: &Device,
    rng: &mut SeededRng,
) -> Result<Tensor> {
    if is_empty(shape) {
        return filled(shape, 0.0, dtype, device);
    }
    rng.normal_tensor(shape, 0.0, std, dtype, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xavier::{XavierConfig, XavierNormal, XavierUniform};
    use gradus_core::plugin::initializer::Initializer;

    #[test]
    fn zero_element_shapes_are_a_no_op_even_with_zero_fans() {
        // Both fans are 0 here, so the bound is infinite: nothing may be drawn.
        let mut rng = SeededRng::new(0);
        let before = rng.clone();
        let inits: [Box<dyn Initializer>; 2] = [
            Box::new(XavierUniform::new(XavierConfig::default()).unwrap()),
            Box::new(XavierNormal::new(XavierConfig::default()).unwrap()),
        ];
        for init in inits {
            let t = init
                .init(&[0, 0], DType::F32, &Device::Cpu, &mut rng)
                .unwrap();
            assert_eq!(t.dims(), &[0, 0]);
        }
        assert_eq!(rng, before);
    }
}
