//! What the schedule-free optimizers share (schedulefree 1.4.1): the averaging weights of a step,
//! the interpolated `y` / `z` update in tensor and element form, and [`ScheduleFree`], the
//! optimizer around a schedule-free rule with its train/eval split.
//!
//! Schedule-free training keeps three sequences: `z` (the base iterate, buffer `z`), `x` (a
//! weighted average of the `z`s) and `y = (1 − β) z + β x`, where gradients are taken. The
//! parameters hold `y` in training mode and `x` in evaluation mode; [`Optimizer::eval`] and
//! [`Optimizer::train`] move them between the two with `z`, as the reference does:
//!
//! ```text
//! eval():  θ ← lerp(θ, z, 1 − 1/β)     (y → x)
//! train(): θ ← lerp(θ, z, 1 − β)       (x → y)
//! ```
//!
//! Paper: Defazio et al., "The Road Less Scheduled" (NeurIPS 2024),
//! <https://github.com/facebookresearch/schedule_free>.

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use gradus_core::config::join_path;
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict, UpdatePath};
use serde_json::Value;

use crate::engine::build::take_update_path;
use crate::engine::elem::Elem;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::groups::parse_with_groups;
use crate::engine::precision::take_precision;
use crate::engine::rule::{Rule, Scalars};

/// The state-dict key of the mode (1: training, 0: evaluation).
pub const TRAIN_MODE_KEY: &str = "schedule_free.train_mode";

/// A schedule-free rule: a [`Rule`] with buffer `z` first, and the interpolation β between the
/// average `x` and `z` (β₁ of AdamW, `momentum` of SGD).
pub trait ScheduleFreeRule: Rule {
    /// The interpolation β of `y = (1 − β) z + β x`.
    fn interpolation(&self) -> f64;
}

/// The learning rate and averaging weight of one step (the reference's `scheduled_lr`, `ckp1`).
#[derive(Debug, Clone, Copy)]
pub struct Averaging {
    /// γ_t = γ · min(1, t / warmup_steps).
    pub lr: f64,
    /// c_{t} = w_t / Σ w, with w_t = t^r · (max γ)^weight_lr_power.
    pub ckp1: f64,
}

/// Scalar state names: the largest learning rate so far and the sum of the averaging weights.
pub const SCALARS: [&str; 2] = ["lr_max", "weight_sum"];

/// The averaging of step `t` (1 for the first), advancing `lr_max` and `weight_sum`:
///
/// ```text
/// γ_t = γ (t / warmup_steps  if t ≤ warmup_steps, else 1)
/// γ_max ← max(γ_max, γ_t)           (starts at −1)
/// w_t = t^r · γ_max^weight_lr_power
/// W ← W + w_t;   c = w_t / W  (0 when W = 0)
/// ```
pub fn averaging(
    t: u64,
    lr: f64,
    warmup_steps: u64,
    r: f64,
    weight_lr_power: f64,
    scalars: &mut Scalars,
) -> Averaging {
    let k = t - 1;
    let sched = if k < warmup_steps {
        t as f64 / warmup_steps as f64
    } else {
        1.0
    };
    let lr = lr * sched;
    let lr_max = scalars.get("lr_max").copied().unwrap_or(-1.0).max(lr);
    let weight = (t as f64).powf(r) * lr_max.powf(weight_lr_power);
    let weight_sum = scalars.get("weight_sum").copied().unwrap_or(0.0) + weight;
    scalars.insert("lr_max", lr_max);
    scalars.insert("weight_sum", weight_sum);
    let ckp1 = if weight_sum == 0.0 {
        0.0
    } else {
        weight / weight_sum
    };
    Averaging { lr, ckp1 }
}

/// `torch.lerp(a, b, w)`: `a + w (b − a)` for `w < 0.5`, else `b − (b − a)(1 − w)`.
pub fn lerp(a: &Tensor, b: &Tensor, w: f64) -> Result<Tensor> {
    let diff = (b - a)?;
    Ok(if w < 0.5 {
        (a + (diff * w)?)?
    } else {
        (b - (diff * (1.0 - w))?)?
    })
}

/// Element form of [`lerp`] (`w` and `1 − w` rounded to `T` by the caller).
#[inline(always)]
pub fn lerp_elem<T: Elem>(a: T, b: T, w: T, one_minus_w: T, low: bool) -> T {
    let diff = b - a;
    if low {
        a + diff * w
    } else {
        b - diff * one_minus_w
    }
}

/// The step of `y` and `z` from the normalized gradient `u` (reference form):
///
/// ```text
/// y ← lerp(y, z, c) + γ_t (β (1 − c) − 1) u
/// z ← z − γ_t u
/// ```
///
/// Returns the new `y`; stores the new `z`.
pub fn step_yz(
    y: &Tensor,
    z: &Tensor,
    u: &Tensor,
    avg: &Averaging,
    beta: f64,
) -> Result<(Tensor, Tensor)> {
    let y = (lerp(y, z, avg.ckp1)? + (u * (avg.lr * (beta * (1.0 - avg.ckp1) - 1.0)))?)?;
    let z = (z - (u * avg.lr)?)?;
    Ok((y, z))
}

/// The coefficients of [`step_yz`] rounded to `T`, for the fused kernels.
#[derive(Debug, Clone, Copy)]
pub struct YzCoefs<T> {
    ckp1: T,
    one_minus_ckp1: T,
    low: bool,
    y_coef: T,
    lr: T,
}

impl<T: Elem> YzCoefs<T> {
    /// From the step's averaging and β.
    #[inline(always)]
    pub fn new(avg: &Averaging, beta: f64) -> Self {
        YzCoefs {
            ckp1: T::of(avg.ckp1),
            one_minus_ckp1: T::of(1.0 - avg.ckp1),
            low: avg.ckp1 < 0.5,
            y_coef: T::of(avg.lr * (beta * (1.0 - avg.ckp1) - 1.0)),
            lr: T::of(avg.lr),
        }
    }

    /// Element form of [`step_yz`]: `(y, z)` after the step with normalized gradient `u`.
    #[inline(always)]
    pub fn apply(&self, y: T, z: T, u: T) -> (T, T) {
        let y = lerp_elem(y, z, self.ckp1, self.one_minus_ckp1, self.low) + u * self.y_coef;
        (y, z - u * self.lr)
    }
}

/// A schedule-free optimizer: rule `R` on the engine, plus the mode (training: parameters at
/// `y`; evaluation: at `x`). It starts in training mode (the reference starts in evaluation
/// mode and needs `train()` before the first step; calling it here first is harmless).
/// Stepping in evaluation mode is an error, as in the reference. The mode is saved in the
/// state dict (`schedule_free.train_mode`), so a checkpoint written in evaluation mode, with
/// the parameters at `x`, resumes correctly after loading and `train()`.
pub struct ScheduleFree<R: ScheduleFreeRule> {
    inner: GroupedOptimizer<R>,
    train_mode: bool,
}

impl<R: ScheduleFreeRule> ScheduleFree<R> {
    /// Wraps an engine optimizer over rule `R` (in training mode).
    pub fn new(inner: GroupedOptimizer<R>) -> Self {
        ScheduleFree {
            inner,
            train_mode: true,
        }
    }

    /// The engine optimizer inside.
    pub fn inner(&self) -> &GroupedOptimizer<R> {
        &self.inner
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.train_mode
    }

    /// Moves every parameter that has a `z` towards it: `θ ← lerp(θ, z, weight(β))` with the
    /// β of the parameter's group.
    fn move_params(&mut self, weight: impl Fn(f64) -> f64) -> Result<()> {
        let inner = &self.inner;
        for slot in &inner.slots {
            let state = slot.materialized()?;
            let Some(z) = state.buffers.get("z") else {
                continue;
            };
            let beta = inner.groups[slot.group].hyper.interpolation();
            let param = slot.param.var.as_tensor().detach();
            if param.elem_count() > 0 {
                // In z's dtype (f32 for a bf16/f16 parameter), rounded into the parameter.
                let moved = lerp(&param.to_dtype(z.dtype())?, z, weight(beta))?;
                slot.param.var.set(&moved.to_dtype(param.dtype())?)?;
            }
        }
        Ok(())
    }
}

impl<R: ScheduleFreeRule> Optimizer for ScheduleFree<R> {
    fn algorithm(&self) -> &str {
        R::NAME
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        if !self.train_mode {
            return Err(Error::Unsupported(format!(
                "`{}` was not in train mode when step was called: the parameters are at the \
                 averaged (evaluation) point; call train() before step() and eval() before \
                 evaluating or saving",
                R::NAME
            )));
        }
        self.inner.apply(grads)
    }

    fn params(&self) -> Vec<NamedVar> {
        Optimizer::params(&self.inner)
    }

    fn group_count(&self) -> usize {
        self.inner.group_count()
    }

    fn hyperparameter_names(&self) -> Vec<&'static str> {
        self.inner.hyperparameter_names()
    }

    fn hyperparameter(&self, group: usize, name: &str) -> Result<f64> {
        self.inner.hyperparameter(group, name)
    }

    fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        self.inner.set_hyperparameter(group, name, value)
    }

    /// The engine's keys (`<param>.z`, ..., `<param>.lr_max`, `<param>.weight_sum`) and
    /// `schedule_free.train_mode`.
    fn state_dict(&self) -> Result<StateDict> {
        let mut sd = self.inner.state_dict()?;
        let mode = if self.train_mode { 1.0 } else { 0.0 };
        sd.insert(
            TRAIN_MODE_KEY,
            // host-side: state-dict scalars are host values.
            Tensor::new(mode, &candle_core::Device::Cpu)?,
        );
        Ok(sd)
    }

    /// Restores the state and the mode. Saved in evaluation mode, the parameters are expected
    /// at the averaged point (as they were saved); `train()` then moves them back to `y`.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let mut state = state.clone();
        let mode = state.remove(TRAIN_MODE_KEY).ok_or_else(|| {
            Error::StateMismatch(format!(
                "saved state has no `{TRAIN_MODE_KEY}`: it was not saved by a schedule-free \
                 optimizer"
            ))
        })?;
        let mode = mode.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        self.inner.load_state_dict(&state)?;
        self.train_mode = mode != 0.0;
        Ok(())
    }

    fn train(&mut self) -> Result<()> {
        if !self.train_mode {
            self.move_params(|beta| 1.0 - beta)?;
            self.train_mode = true;
        }
        Ok(())
    }

    fn eval(&mut self) -> Result<()> {
        if self.train_mode {
            self.move_params(|beta| 1.0 - 1.0 / beta)?;
            self.train_mode = false;
        }
        Ok(())
    }

    fn has_eval_point(&self) -> bool {
        true
    }

    fn update_path(&self) -> UpdatePath {
        Optimizer::update_path(&self.inner)
    }

    fn set_update_path(&mut self, path: UpdatePath) -> Result<()> {
        Optimizer::set_update_path(&mut self.inner, path)
    }
}

/// The registered constructor of a schedule-free rule: as
/// [`build_rule`](crate::engine::build::build_rule), wrapped in [`ScheduleFree`].
pub fn build_schedule_free<R: ScheduleFreeRule>(
    config: &Value,
    path: &str,
    params: &[NamedVar],
) -> Result<Box<dyn Optimizer>> {
    let mut config = config.clone();
    let update_path = take_update_path(&mut config, path)?;
    let precision = take_precision(&mut config, path)?;
    let (base, groups) = parse_with_groups::<R>(&config, path)?;
    let mut inner = GroupedOptimizer::with_groups(params.to_vec(), base, groups)?;
    inner.set_precision(precision)?;
    Optimizer::set_update_path(&mut inner, update_path)
        .map_err(|e| Error::config(join_path(path, "path"), e.to_string()))?;
    Ok(Box::new(ScheduleFree::new(inner)))
}
