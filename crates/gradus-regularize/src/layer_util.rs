//! What the dropout-family layers share: the probability check, the adapter that makes a
//! stochastic module a registered [`Layer`], and the [`candle_core::ModuleT`] glue.

use candle_core::Tensor;
use gradus_core::plugin::layer::{ForwardContext, Layer};
use gradus_core::{Error, Result, SeededRng};

/// Checks a drop probability: `p` must lie in `[0, 1)` (PyTorch also accepts 1; here it would
/// make the inverted scale `1/(1-p)` infinite).
pub(crate) fn check_p(p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter(format!(
            "dropout probability has to be in [0, 1), but got {p}"
        )))
    }
}

/// Moves an [`Error::InvalidHyperparameter`] raised while building from JSON to `path.field`.
pub(crate) fn at_field(err: Error, path: &str, field: &str) -> Error {
    match err {
        Error::InvalidHyperparameter(message) => {
            Error::config(gradus_core::config::join_path(path, field), message)
        }
        other => other,
    }
}

/// A module whose training-mode output is random: it draws from the generator it is handed.
pub(crate) trait Stochastic: Send {
    /// The output for `x`; `train: false` is the deterministic evaluation mode.
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor>;
}

/// A [`Stochastic`] module with the per-sample output shape the model builder needs.
pub(crate) struct Shaped<M> {
    pub module: M,
    pub output_shape: Vec<usize>,
}

impl<M: Stochastic> Layer for Shaped<M> {
    fn output_shape(&self) -> Vec<usize> {
        self.output_shape.clone()
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardContext) -> Result<Tensor> {
        self.module.forward_with(x, ctx.train, ctx.rng)
    }
}

/// Converts a Gradus error into a Candle one for the `ModuleT` interface, keeping Candle's own.
pub(crate) fn to_candle(err: Error) -> candle_core::Error {
    match err {
        Error::Candle(e) => e,
        other => candle_core::Error::wrap(other),
    }
}

/// Implements [`candle_core::ModuleT`] for a [`Stochastic`] type with an `rng: Mutex<SeededRng>`.
macro_rules! impl_module_t {
    ($ty:ty) => {
        impl candle_core::ModuleT for $ty {
            fn forward_t(
                &self,
                xs: &candle_core::Tensor,
                train: bool,
            ) -> candle_core::Result<candle_core::Tensor> {
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                $crate::layer_util::Stochastic::forward_with(self, xs, train, &mut rng)
                    .map_err($crate::layer_util::to_candle)
            }
        }
    };
}
pub(crate) use impl_module_t;
