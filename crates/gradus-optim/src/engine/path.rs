//! Which parameters the fused path can update.

use candle_core::{DType, Tensor};

pub use gradus_core::UpdatePath;

/// Why a parameter cannot take the fused path (`None`: it can): the fused kernels run on
/// contiguous f32/f64 tensors on the CPU.
pub fn ineligibility(param: &Tensor) -> Option<String> {
    if !param.device().is_cpu() {
        return Some(format!("it is on {:?}, not the CPU", param.device()));
    }
    if !matches!(param.dtype(), DType::F32 | DType::F64) {
        return Some(format!("its dtype is {:?}, not f32 or f64", param.dtype()));
    }
    if !param.is_contiguous() {
        return Some("its layout is strided, not contiguous".to_string());
    }
    None
}

/// Why an optimizer's fused step cannot update `param` (`None`: it can): as [`ineligibility`],
/// but bf16 and f16 parameters are eligible too (their step runs the rule's f32 kernel over
/// widened tiles, see [`precision`](crate::engine::precision)).
pub fn step_ineligibility(param: &Tensor) -> Option<String> {
    if !param.device().is_cpu() {
        return Some(format!("it is on {:?}, not the CPU", param.device()));
    }
    if !matches!(
        param.dtype(),
        DType::F32 | DType::F64 | DType::BF16 | DType::F16
    ) {
        return Some(format!(
            "its dtype is {:?}, not f32, f64, bf16 or f16",
            param.dtype()
        ));
    }
    if !param.is_contiguous() {
        return Some("its layout is strided, not contiguous".to_string());
    }
    None
}
