//! Sharpness-aware minimization (SAM): a two-pass step around any optimizer.
//!
//! SAM (Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently
//! Improving Generalization", ICLR 2021, <https://arxiv.org/abs/2010.01412>) takes the gradient
//! at the worst point of a `rho`-ball around the weights, to first order, and hands it to the
//! wrapped optimizer at the original weights. With the semantics of pytorch-optimizer 4.1.0's
//! `SAM` (`first_step` / `second_step`):
//!
//! ```text
//! g      = ∇L(w)                                           (first pass, by the caller)
//! a      = |w| if adaptive else 1                          (elementwise; ASAM, Kwon et al. 2021)
//! n      = sqrt(Σ_tensors f32(‖a ⊙ g‖₂)²) + perturb_eps   (in f32, as the reference)
//! e_w    = (a² if adaptive else 1) ⊙ g · (rho / n)
//! w      ← w + e_w                                         (first_step)
//! g_sam  = ∇L(w + e_w)                                     (second pass, by the caller)
//! w      ← w − e_w (restored exactly), inner.step(g_sam)   (second_step)
//! ```
//!
//! Symbols: `rho` = [`SamConfig::rho`], `adaptive` = [`SamConfig::adaptive`], `perturb_eps` =
//! [`SamConfig::perturb_eps`]. The per-tensor norms are taken in the parameter's dtype (f16/bf16
//! in f32), then, as in the reference, rounded to f32, squared and summed in f32; `rho / n` is an
//! f32 value, and `e_w` is computed in the parameter's dtype. Parameters without a gradient in the
//! first pass are neither perturbed nor restored. Defaults: `rho` 0.05, `adaptive` false,
//! `perturb_eps` 1e-12 (pytorch-optimizer 4.1.0). The reference's `use_gc` and `foreach` are not
//! implemented (parsing them is an error naming them).
//!
//! ```
//! use candle_core::{Device, Var};
//! use gradus_optim::sam::{Sam, SamConfig};
//! use gradus_optim::{NamedVar, Sgd, SgdConfig};
//!
//! # fn main() -> gradus_optim::Result<()> {
//! let w = Var::new(&[3f64, 4.0], &Device::Cpu)?;
//! let sgd = Sgd::from_named(vec![NamedVar::new("w", w.clone())], SgdConfig { lr: 0.1, ..Default::default() })?;
//! let mut sam = Sam::new(Box::new(sgd), SamConfig::parse(&serde_json::json!({"rho": 0.5}), "train.sam")?)?;
//! // Each closure call: the loss and the gradients at the current weights.
//! let loss = sam.step_with_closure(|| {
//!     let loss = w.as_tensor().sqr()?.sum_all()?; // L = ‖w‖², ∇L = 2w
//!     Ok((loss.to_scalar::<f64>()?, loss.backward()?))
//! })?;
//! assert_eq!(loss, 25.0);
//! // e_w = 0.5 · (3, 4)/5, ∇L(w + e_w) = 2·(3.3, 4.4), w ← w − 0.1 · that.
//! let got = w.as_tensor().to_vec1::<f64>()?;
//! assert!((got[0] - 2.34).abs() < 1e-6 && (got[1] - 3.12).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use gradus_core::config::{join_path, parse_config};
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// SAM's settings: `"sam": {"rho": 0.05, "adaptive": false}` (pytorch-optimizer's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SamConfig {
    /// Radius of the neighbourhood, `>= 0`. Default: `0.05` (pytorch-optimizer SAM).
    pub rho: f64,
    /// Scale the perturbation by the parameters (ASAM). Default: `false`.
    pub adaptive: bool,
    /// Added to the gradient norm, `>= 0`. Default: `1e-12`.
    pub perturb_eps: f64,
}

impl Default for SamConfig {
    fn default() -> Self {
        SamConfig {
            rho: 0.05,
            adaptive: false,
            perturb_eps: 1e-12,
        }
    }
}

/// Options of pytorch-optimizer's SAM that Gradus does not implement.
const NOT_IMPLEMENTED: [&str; 2] = ["use_gc", "foreach"];

impl SamConfig {
    /// Parses and validates the JSON object at `path` (e.g. `train.sam`); errors name the path,
    /// an unknown key suggests the nearest valid one, and `use_gc` / `foreach` are refused.
    pub fn parse(value: &Value, path: &str) -> Result<Self> {
        if let Some(object) = value.as_object() {
            if let Some(key) = NOT_IMPLEMENTED.iter().find(|k| object.contains_key(**k)) {
                return Err(Error::config(
                    join_path(path, key),
                    format!("pytorch-optimizer SAM option `{key}` is not implemented in Gradus"),
                ));
            }
        }
        let config: SamConfig = parse_config(value, path)?;
        config.validate().map_err(|e| e.at(path))?;
        Ok(config)
    }

    /// Checks the reference's ranges (`rho >= 0`, `perturb_eps >= 0`, both finite).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("rho", self.rho), ("perturb_eps", self.perturb_eps)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidHyperparameter(format!(
                    "{name} must be a finite number >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// SAM around an optimizer; see the module docs.
pub struct Sam {
    config: SamConfig,
    inner: Box<dyn Optimizer>,
    /// The weights before `first_step`, while perturbed.
    saved: Option<Perturbation>,
}

/// SAM's first step over a list of parameters, undone by [`Perturbation::restore`]: the
/// weights `w + e_w` of the module docs, with `w` kept bit for bit. [`Sam`] is this plus the
/// inner optimizer's step; a training loop that owns its optimizer elsewhere (the runner)
/// perturbs with it, takes the second pass, restores, and steps.
#[derive(Debug)]
pub struct Perturbation {
    saved: Vec<(Var, Tensor)>,
}

impl Perturbation {
    /// Moves every parameter of `params` that has a gradient in `grads` (the gradients at `w`)
    /// to `w + e_w`. Every update is computed before any weight changes, so an error leaves
    /// them as they were.
    pub fn apply(config: &SamConfig, params: &[NamedVar], grads: &GradStore) -> Result<Self> {
        let factor = factor(config, params, grads)?;
        let mut updates = Vec::new();
        for p in params {
            let w = p.var.as_tensor();
            let Some(g) = grads.get(w) else { continue };
            if g.dims() != w.dims() {
                return Err(Error::ShapeMismatch {
                    context: format!("sam gradient of `{}`", p.name),
                    expected: w.dims().to_vec(),
                    actual: g.dims().to_vec(),
                });
            }
            let g = g.to_dtype(w.dtype())?;
            let scale = Tensor::new(factor, w.device())?.to_dtype(w.dtype())?;
            let direction = if config.adaptive { (w.sqr()? * g)? } else { g };
            let e_w = direction.broadcast_mul(&scale)?;
            updates.push((p.var.clone(), w.copy()?, (w + e_w)?));
        }
        let mut saved = Vec::with_capacity(updates.len());
        for (var, old, new) in updates {
            var.set(&new)?;
            saved.push((var, old));
        }
        Ok(Perturbation { saved })
    }

    /// Puts the weights back to `w`, bit for bit.
    pub fn restore(self) -> Result<()> {
        for (var, old) in &self.saved {
            var.set(old)?;
        }
        Ok(())
    }
}

/// `f32(rho / n)`, the factor of the perturbation, from the gradients at `w`.
fn factor(config: &SamConfig, params: &[NamedVar], grads: &GradStore) -> Result<f32> {
    let mut sum_sq = 0f32;
    for p in params {
        let w = p.var.as_tensor();
        let Some(g) = grads.get(w) else { continue };
        let up = |t: &Tensor| match t.dtype() {
            DType::F16 | DType::BF16 => t.to_dtype(DType::F32),
            _ => Ok(t.clone()),
        };
        let mut g = up(g)?;
        if config.adaptive {
            g = (g * up(w)?.abs()?)?;
        }
        let norm = g.sqr()?.sum_all()?.sqrt()?.to_dtype(DType::F64)?;
        let norm = norm.to_scalar::<f64>()? as f32;
        sum_sq += norm * norm;
    }
    let n = sum_sq.sqrt() + config.perturb_eps as f32;
    Ok((1.0 / n) * config.rho as f32)
}

impl Sam {
    /// Wraps `inner` (any optimizer) with `config` (validated).
    pub fn new(inner: Box<dyn Optimizer>, config: SamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Sam {
            config,
            inner,
            saved: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &SamConfig {
        &self.config
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &dyn Optimizer {
        self.inner.as_ref()
    }

    /// The wrapped optimizer, mutably (schedules set its `lr`).
    pub fn inner_mut(&mut self) -> &mut dyn Optimizer {
        self.inner.as_mut()
    }

    /// Unwraps the inner optimizer.
    pub fn into_inner(self) -> Box<dyn Optimizer> {
        self.inner
    }

    /// Whether the weights are perturbed (between `first_step` and `second_step`).
    pub fn is_perturbed(&self) -> bool {
        self.saved.is_some()
    }

    /// Perturbs the weights: `w ← w + e_w`, from the gradients `grads` at `w`.
    pub fn first_step(&mut self, grads: &GradStore) -> Result<()> {
        if self.saved.is_some() {
            return Err(Error::Unsupported(
                "sam first_step called twice without second_step".into(),
            ));
        }
        let params = self.inner.params();
        self.saved = Some(Perturbation::apply(&self.config, &params, grads)?);
        Ok(())
    }

    /// Restores the weights and steps the inner optimizer with `grads`, the gradients at the
    /// perturbed weights.
    pub fn second_step(&mut self, grads: &GradStore) -> Result<()> {
        let saved = self.saved.take().ok_or_else(|| {
            Error::Unsupported("sam second_step called without first_step".into())
        })?;
        saved.restore()?;
        self.inner.step(grads)
    }

    /// One SAM step: `closure()` gives `(loss, gradients)` at the current weights; it is called
    /// at `w` and at `w + e_w`. Returns the loss at `w`. On an error of the second pass the
    /// weights are restored.
    pub fn step_with_closure<F>(&mut self, mut closure: F) -> Result<f64>
    where
        F: FnMut() -> Result<(f64, GradStore)>,
    {
        let (loss, grads) = closure()?;
        self.first_step(&grads)?;
        match closure() {
            Ok((_, perturbed)) => self.second_step(&perturbed)?,
            Err(e) => {
                if let Some(saved) = self.saved.take() {
                    saved.restore()?;
                }
                return Err(e);
            }
        }
        Ok(loss)
    }

    /// The inner optimizer's state (SAM keeps none between steps).
    pub fn state_dict(&self) -> Result<StateDict> {
        self.inner.state_dict()
    }

    /// Loads the inner optimizer's state.
    pub fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        if self.saved.is_some() {
            return Err(Error::Unsupported(
                "cannot load state while sam weights are perturbed".into(),
            ));
        }
        self.inner.load_state_dict(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use serde_json::json;

    /// SAM around SGD on `L = ½ Σ aᵢ wᵢ²`; returns the weights after one step and ‖e_w‖.
    fn sam_step(w0: &[f64], a: &[f64], config: SamConfig) -> (Vec<f64>, f64) {
        let w = Var::new(w0, &Device::Cpu).unwrap();
        let sgd = crate::SgdConfig {
            lr: 0.1,
            ..Default::default()
        };
        let inner = crate::Sgd::from_named(vec![gradus_core::NamedVar::new("w", w.clone())], sgd);
        let mut sam = Sam::new(Box::new(inner.unwrap()), config).unwrap();
        let at = Tensor::new(a, &Device::Cpu).unwrap();
        let loss = (w.as_tensor().sqr().unwrap() * &at)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.affine(0.5, 0.0).unwrap().backward().unwrap();
        sam.first_step(&grads).unwrap();
        let e = (w.as_tensor() - Tensor::new(w0, &Device::Cpu).unwrap()).unwrap();
        let e_norm = e.sqr().unwrap().sum_all().unwrap().sqrt().unwrap();
        let loss = (w.as_tensor().sqr().unwrap() * &at)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.affine(0.5, 0.0).unwrap().backward().unwrap();
        sam.second_step(&grads).unwrap();
        let e_norm = e_norm.to_scalar::<f64>().unwrap();
        (w.as_tensor().to_vec1::<f64>().unwrap(), e_norm)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// `rho = 0` is the inner optimizer's step, bit for bit; otherwise the (plain)
        /// perturbation has norm `rho` (within the f32 rounding of `rho / n`).
        #[test]
        fn rho_zero_is_the_inner_step_and_the_perturbation_has_norm_rho(
            w0 in proptest::collection::vec(0.1f64..3.0, 3),
            a in proptest::collection::vec(0.1f64..5.0, 3),
            rho in 0.01f64..1.0,
        ) {
            let (got, e) = sam_step(&w0, &a, SamConfig { rho: 0.0, ..Default::default() });
            let plain: Vec<f64> = (0..3).map(|i| w0[i] - 0.1 * (a[i] * w0[i])).collect();
            proptest::prop_assert_eq!(got, plain);
            proptest::prop_assert_eq!(e, 0.0);
            let (_, e) = sam_step(&w0, &a, SamConfig { rho, ..Default::default() });
            proptest::prop_assert!((e - rho).abs() <= 1e-6 * rho, "{} vs {}", e, rho);
        }
    }

    #[test]
    fn config_parses_strictly_and_names_the_path() {
        let c = SamConfig::parse(&json!({"rho": 0.1, "adaptive": true}), "train.sam").unwrap();
        assert_eq!(
            c,
            SamConfig {
                rho: 0.1,
                adaptive: true,
                ..Default::default()
            }
        );
        let e = SamConfig::parse(&json!({"rh": 0.1}), "train.sam")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.sam") && e.contains("did you mean `rho`"),
            "{e}"
        );
        let e = SamConfig::parse(&json!({"use_gc": true}), "train.sam")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid config at train.sam.use_gc: pytorch-optimizer SAM option `use_gc` is not implemented in Gradus");
        let e = SamConfig::parse(&json!({"rho": -1.0}), "train.sam")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid config at train.sam: rho must be a finite number >= 0, got -1"
        );
        assert!(SamConfig::parse(&json!({"adaptive": 1}), "train.sam").is_err());
    }
}
