//! The reference path's operands and write-back, with the widening of bf16/f16 parameters
//! (see [`precision`](crate::engine::precision)): the rule's `update` sees f32 tensors, and
//! the result is rounded into the parameter, as the fused path's tiles do.

use candle_core::{DType, Tensor};
use gradus_core::Result;
use half::{bf16, f16};

use crate::engine::precision::{
    is_low_precision, LowFloat, Precision, Rounder, StateDtype, MASTER_WEIGHT,
};
use crate::engine::slot::Slot;

/// The detached parameter and gradient a reference-path pass of `slot` computes with, its
/// buffers moved to the reference path: in the parameter's dtype for f32/f64; for bf16/f16 in
/// f32 (the master copy, or the widened parameter), with state kept in the parameter's dtype
/// widened. Call after the step was counted.
pub(crate) fn operands(
    slot: &mut Slot,
    grad: &Tensor,
    precision: &Precision,
) -> Result<(Tensor, Tensor)> {
    let param = slot.param.var.as_tensor().detach();
    slot.fused
        .move_into(&mut slot.state.buffers, &slot.facts.dims)?;
    let dtype = param.dtype();
    if !is_low_precision(dtype) {
        let grad = grad.detach().to_dtype(dtype)?;
        return Ok((param, grad));
    }
    let master = slot.state.buffers.remove(MASTER_WEIGHT);
    let weights = match master {
        Some(master) if precision.keeps_master(dtype) => {
            let previous = Rounder::new(precision, slot.state.step - 1, slot.index);
            take_outside_writes(&master, &param, &previous)?
        }
        _ => param.to_dtype(DType::F32)?,
    };
    if precision.state_dtype == StateDtype::Param {
        for (name, t) in slot.state.buffers.take() {
            slot.state.buffers.set(name, t.to_dtype(DType::F32)?);
        }
    }
    Ok((weights, grad.detach().to_dtype(DType::F32)?))
}

/// Writes a reference step's new value `next` (from [`operands`]' dtype) into `slot`'s
/// parameter: as it is for f32/f64; for bf16/f16 rounded, keeping `next` as the master copy
/// and rounding state kept in the parameter's dtype to nearest.
pub(crate) fn write(slot: &mut Slot, next: Tensor, precision: &Precision) -> Result<()> {
    let dtype = slot.facts.dtype;
    if is_low_precision(dtype) {
        narrow_state(slot, precision)?;
        let rounder = Rounder::new(precision, slot.state.step, slot.index);
        let rounded = round(&next, dtype, &rounder)?;
        if precision.keeps_master(dtype) {
            slot.state.buffers.set(MASTER_WEIGHT, next);
        }
        return set(slot, &rounded);
    }
    set(slot, &next)
}

/// Stores `slot`'s state after a pass that did not move the parameter (the first pass of a
/// group-reducing rule): state kept in the parameter's dtype rounded, and the `weights` from
/// [`operands`] kept as the master copy, as [`write`] would.
pub(crate) fn keep(slot: &mut Slot, weights: Tensor, precision: &Precision) -> Result<()> {
    let dtype = slot.facts.dtype;
    if is_low_precision(dtype) {
        narrow_state(slot, precision)?;
        if precision.keeps_master(dtype) {
            slot.state.buffers.set(MASTER_WEIGHT, weights);
        }
    }
    Ok(())
}

/// Rounds a bf16/f16 parameter's state to its dtype when the precision keeps it so.
fn narrow_state(slot: &mut Slot, precision: &Precision) -> Result<()> {
    if precision.state_dtype == StateDtype::Param {
        let dtype = slot.facts.dtype;
        for (name, t) in slot.state.buffers.take() {
            slot.state.buffers.set(name, t.to_dtype(dtype)?);
        }
    }
    Ok(())
}

fn set(slot: &Slot, value: &Tensor) -> Result<()> {
    // Candle returns an empty operand itself from ops, which `Var::set` refuses; an empty
    // parameter has nothing to write anyway.
    if slot.facts.len > 0 {
        slot.param.var.set(value)?;
    }
    Ok(())
}

/// `value` (f32) rounded into `dtype` (bf16 or f16) by `rounder`.
fn round(value: &Tensor, dtype: DType, rounder: &Rounder) -> Result<Tensor> {
    match (rounder, dtype) {
        (Rounder::Nearest, _) => Ok(value.to_dtype(dtype)?),
        (_, DType::BF16) => round_on_host::<bf16>(value, rounder),
        _ => round_on_host::<f16>(value, rounder),
    }
}

/// Stochastic rounding reads the values: on the host, element by element, with the fused
/// path's draws.
fn round_on_host<H: LowFloat + candle_core::WithDType>(
    value: &Tensor,
    rounder: &Rounder,
) -> Result<Tensor> {
    let src = value.flatten_all()?.to_vec1::<f32>()?;
    let mut dst = vec![H::nearest(0.0); src.len()];
    rounder.round(&src, &mut dst, 0);
    Ok(Tensor::from_vec(dst, value.dims(), value.device())?)
}

/// The master copy with every element the parameter no longer holds the previous step's
/// rounding of (written from outside) replaced by the parameter's value.
fn take_outside_writes(master: &Tensor, param: &Tensor, previous: &Rounder) -> Result<Tensor> {
    let widened = param.to_dtype(DType::F32)?;
    let same = match previous {
        Rounder::Nearest => master.to_dtype(param.dtype())?.eq(param)?,
        Rounder::Stochastic(_) => round(master, param.dtype(), previous)?.eq(param)?,
    };
    Ok(same.where_cond(master, &widened)?)
}
