//! One parameter as an optimizer holds it: the variable, its group, its state, and what a step
//! needs to know about it, read once.

use candle_core::{DType, Tensor, TensorId};
use gradus_core::{NamedVar, Result};
use smallvec::SmallVec;

use crate::engine::path::step_ineligibility;
use crate::engine::rule::ParamState;
use crate::engine::step::FusedState;

/// A parameter, its group and its state.
pub(crate) struct Slot {
    pub(crate) param: NamedVar,
    pub(crate) group: usize,
    /// Position among the optimizer's parameters (the stream of its stochastic rounding).
    pub(crate) index: usize,
    pub(crate) facts: ParamFacts,
    /// Step counter, scalar state, and the tensor buffers while the reference path owns them.
    pub(crate) state: ParamState,
    /// The tensor buffers while the fused path owns them (never both).
    pub(crate) fused: FusedState,
}

/// What a step needs to know about a parameter. A `Var`'s id, shape, dtype, device and layout
/// never change, so they are read once: with many small tensors every line of a tensor's own
/// metadata is a cache miss at each step (the previous step streamed the caches), and the
/// step then touches only the lines Candle's in-place op must.
pub(crate) struct ParamFacts {
    pub(crate) id: TensorId,
    pub(crate) dims: SmallVec<[usize; 4]>,
    pub(crate) len: usize,
    pub(crate) dtype: DType,
    /// Why the fused path cannot update it (`None`: it can).
    pub(crate) ineligible: Option<String>,
}

impl ParamFacts {
    fn of(param: &Tensor) -> Self {
        ParamFacts {
            id: param.id(),
            dims: SmallVec::from_slice(param.dims()),
            len: param.elem_count(),
            dtype: param.dtype(),
            ineligible: step_ineligibility(param),
        }
    }
}

impl Slot {
    /// Parameter `index` in `group`, before its first step.
    pub(crate) fn new(param: NamedVar, group: usize, index: usize) -> Self {
        let facts = ParamFacts::of(param.var.as_tensor());
        Slot {
            param,
            group,
            index,
            facts,
            state: ParamState::default(),
            fused: FusedState::default(),
        }
    }

    /// The full state, buffers as tensors (copies of the fused buffers).
    pub(crate) fn materialized(&self) -> Result<ParamState> {
        let mut state = self.state.clone();
        for (name, t) in self.fused.export(&self.facts.dims)? {
            state.buffers.set(name, t);
        }
        Ok(state)
    }
}

/// A parameter's gradient in this step, found and checked before anything changes.
#[derive(Clone, Copy)]
pub(crate) struct Found<'g> {
    pub(crate) grad: &'g Tensor,
    pub(crate) on_cpu: bool,
    /// On the CPU, of the parameter's dtype and contiguous: the fused kernel reads it as it is.
    pub(crate) direct: bool,
}

impl<'g> Found<'g> {
    /// `grad`, not yet checked ([`Found::check`] fills in the rest).
    pub(crate) fn unchecked(grad: &'g Tensor) -> Self {
        Found {
            grad,
            on_cpu: false,
            direct: false,
        }
    }

    /// Checks the gradient against the parameter of `slot`: the same shape, or an error naming
    /// both.
    pub(crate) fn check(&mut self, slot: &Slot) -> Result<()> {
        let grad = self.grad;
        if grad.dims() != slot.facts.dims.as_slice() {
            return Err(gradus_core::Error::ShapeMismatch {
                context: format!("gradient of `{}`", slot.param.name),
                expected: slot.facts.dims.to_vec(),
                actual: grad.dims().to_vec(),
            });
        }
        self.on_cpu = grad.device().is_cpu();
        self.direct = self.on_cpu && grad.dtype() == slot.facts.dtype && grad.is_contiguous();
        Ok(())
    }
}
