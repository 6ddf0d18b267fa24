//! Gradient clipping by global norm and by value, as `torch.nn.utils.clip_grad_norm_` and
//! `torch.nn.utils.clip_grad_value_`; works on any optimizer since it rewrites the `GradStore`.

use std::collections::{HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use gradus_core::config::{display_path, parse_config};
use gradus_core::{Error, NamedVar, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::path::UpdatePath;

pub mod kernels;
mod norm;

pub use norm::NormType;

/// Something whose gradient can be looked up: a [`Var`], a [`Tensor`] or a [`NamedVar`].
pub trait GradParam: Sync {
    /// The tensor the gradient store is keyed by.
    fn tensor(&self) -> &Tensor;
    /// The parameter's name, for messages (`None` for unnamed tensors).
    fn param_name(&self) -> Option<&str> {
        None
    }
}

impl GradParam for Tensor {
    fn tensor(&self) -> &Tensor {
        self
    }
}

impl GradParam for Var {
    fn tensor(&self) -> &Tensor {
        self.as_tensor()
    }
}

impl GradParam for NamedVar {
    fn tensor(&self) -> &Tensor {
        self.var.as_tensor()
    }
    fn param_name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl<T: GradParam + ?Sized> GradParam for &T {
    fn tensor(&self) -> &Tensor {
        (**self).tensor()
    }
    fn param_name(&self) -> Option<&str> {
        (**self).param_name()
    }
}

/// The gradients of `params` present in `grads`, each parameter once (a parameter listed twice
/// is counted once, unlike PyTorch which would count and scale it twice). Borrowed: cloning a
/// gradient is an atomic update of its (cold) reference count, on one thread.
pub(crate) fn present_grads<'a, 'g, P: GradParam>(
    params: &'a [P],
    grads: &'g GradStore,
) -> Vec<(&'a P, &'g Tensor)> {
    // Each lookup reads the parameter's and the gradient's metadata, cache misses after a
    // step streamed the caches: many parameters are looked up in parallel.
    let lookup = |p: &'a P| {
        let t = p.tensor();
        (t.id(), p, grads.get(t))
    };
    let found: Vec<_> = if params.len() >= PARALLEL_LOOKUP {
        params.par_iter().map(lookup).collect()
    } else {
        params.iter().map(lookup).collect()
    };
    let mut seen = HashSet::with_capacity(found.len());
    found
        .into_iter()
        .filter(|(id, _, _)| seen.insert(*id))
        .filter_map(|(_, p, g)| g.map(|g| (p, g)))
        .collect()
}

/// From this many parameters on, gradients are looked up in parallel.
const PARALLEL_LOOKUP: usize = 64;

/// The global norm of the gradients of `params` (parameters without a gradient are skipped);
/// 0 when there are none. Computed as PyTorch: the norm of the per-tensor norms; on `path`
/// (the fused norm pass for eligible gradients unless `Reference`).
pub fn total_norm<P: GradParam>(
    params: &[P],
    grads: &GradStore,
    norm_type: NormType,
    path: UpdatePath,
) -> Result<f64> {
    let present: Vec<&Tensor> = present_grads(params, grads)
        .into_iter()
        .map(|(_, g)| g)
        .collect();
    let norms: Vec<f64> = if fused_clipping(path) {
        kernels::measure(&present, norm_type)?
            .into_iter()
            .map(|m| m.norm)
            .collect()
    } else {
        present
            .iter()
            .map(|g| norm_type.of(g))
            .collect::<Result<_>>()?
    };
    Ok(norm_type.of_values(&norms))
}

/// Whether clipping on `path` takes the fused path for eligible gradients: unless `path` is
/// `Reference`. Clipping never refuses a gradient: under `Fused` too, an ineligible one takes
/// the tensor-op path.
fn fused_clipping(path: UpdatePath) -> bool {
    path != UpdatePath::Reference
}

/// Multiplies every gradient of `present` (measured by the fused norm pass) by `coef`: in
/// place for an eligible gradient whose storage no other listed gradient shares (torch's
/// `mul_`), in parallel; the returned new tensors for a shared one (scaling a shared storage in
/// place once per parameter would scale it twice) and for an ineligible one, built first, from
/// the unscaled values.
fn scale_fused<'a, P: GradParam>(
    present: &[(&'a P, &Tensor)],
    measured: &[kernels::Measured],
    coef: f64,
) -> Result<Vec<(&'a P, Tensor)>> {
    let mut uses: HashMap<usize, usize> = HashMap::with_capacity(measured.len());
    for m in measured {
        if let Some(id) = m.storage {
            *uses.entry(id).or_default() += 1;
        }
    }
    let mut in_place = Vec::with_capacity(present.len());
    let mut replaced = Vec::new();
    for (&(p, g), m) in present.iter().zip(measured) {
        match m.storage {
            // `x · 1` is `x` bit for bit (NaN included): nothing to write.
            Some(_) if unit(m.dtype, coef) => {}
            Some(id) if uses[&id] == 1 => in_place.push(g),
            Some(_) => {
                if let Some(t) = kernels::scaled_copy(g, coef)? {
                    replaced.push((p, t));
                }
            }
            None => {
                let c = Tensor::new(coef, g.device())?.to_dtype(m.dtype)?;
                replaced.push((p, g.broadcast_mul(&c)?));
            }
        }
    }
    in_place
        .par_iter()
        .with_min_len(4)
        .try_for_each(|g| kernels::scale_in_place(g, coef))?;
    Ok(replaced)
}

/// Whether `coef` rounds to exactly 1 in `dtype` (f32 or f64).
fn unit(dtype: DType, coef: f64) -> bool {
    match dtype {
        DType::F32 => coef as f32 == 1.0,
        _ => coef == 1.0,
    }
}

/// Scales the gradients of `params` so that their global norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`; returns the total norm **before** clipping.
///
/// `total = ‖(‖g_1‖_p, …, ‖g_n‖_p)‖_p`, `coef = max_norm/(total + 1e-6)`, and every gradient
/// is multiplied by `min(coef, 1)` — always, as PyTorch does (so a norm below `max_norm` is
/// multiplied by exactly 1). A non-finite total is an error when `error_if_nonfinite`;
/// otherwise the gradients are scaled by the non-finite coefficient (NaN stays NaN), as PyTorch.
/// Norms are accumulated in f64; the coefficient is applied in the gradient's dtype. `path`
/// chooses the implementation (the fused passes for eligible gradients unless `Reference`).
pub fn clip_grad_norm<P: GradParam>(
    params: &[P],
    grads: &mut GradStore,
    max_norm: f64,
    norm_type: NormType,
    error_if_nonfinite: bool,
    path: UpdatePath,
) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::InvalidHyperparameter(format!(
            "max_norm must be >= 0, got {max_norm}"
        )));
    }
    let fused = fused_clipping(path);
    let present = present_grads(params, grads);
    if present.is_empty() {
        return Ok(0.0);
    }
    let gs: Vec<&Tensor> = present.iter().map(|&(_, g)| g).collect();
    let measured = if fused {
        kernels::measure(&gs, norm_type)?
    } else {
        Vec::new()
    };
    let norms: Vec<f64> = if fused {
        measured.iter().map(|m| m.norm).collect()
    } else {
        gs.iter().map(|g| norm_type.of(g)).collect::<Result<_>>()?
    };
    let total = norm_type.of_values(&norms);
    if error_if_nonfinite && !total.is_finite() {
        return Err(Error::NonFinite(format!(
            "The total norm of order {norm_type} for gradients from `parameters` is non-finite, \
             so it cannot be clipped. To disable this error and scale the gradients by the \
             non-finite norm anyway, set `error_if_nonfinite=False`"
        )));
    }
    let coef = max_norm / (total + 1e-6);
    // torch.clamp(coef, max=1.0) keeps NaN (f64::min would not).
    let coef = if coef > 1.0 { 1.0 } else { coef };
    let replaced = if fused {
        scale_fused(&present, &measured, coef)?
    } else {
        present
            .iter()
            .map(|&(p, g)| {
                let c = Tensor::new(coef, g.device())?.to_dtype(g.dtype())?;
                Ok((p, g.broadcast_mul(&c)?))
            })
            .collect::<Result<_>>()?
    };
    for (p, t) in replaced {
        grads.insert(p.tensor(), t);
    }
    Ok(total)
}

/// Clamps every gradient of `params` to `[-clip_value, clip_value]`, as
/// `torch.nn.utils.clip_grad_value_` (NaN stays NaN; ±∞ become ±`clip_value`), on `path` (in
/// place for eligible gradients unless `Reference`).
pub fn clip_grad_value<P: GradParam>(
    params: &[P],
    grads: &mut GradStore,
    clip_value: f64,
    path: UpdatePath,
) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(Error::InvalidHyperparameter(format!(
            "clip_value must be >= 0, got {clip_value}"
        )));
    }
    let fused = fused_clipping(path);
    let mut in_place = Vec::new();
    let mut replaced = Vec::new();
    for (p, g) in present_grads(params, grads) {
        // Clamping is idempotent, so a storage shared by several gradients may be clamped in
        // place once per gradient.
        if fused && kernels::eligible(g) {
            in_place.push(g);
            continue;
        }
        let clamped = g.clamp(-clip_value, clip_value)?;
        // Some backends' max/min drop NaN; keep it as torch.clamp does.
        let is_nan = g.ne(g)?;
        replaced.push((p, is_nan.where_cond(g, &clamped)?));
    }
    in_place
        .par_iter()
        .with_min_len(4)
        .try_for_each(|g| kernels::clamp_in_place(g, clip_value))?;
    for (p, t) in replaced {
        grads.insert(p.tensor(), t);
    }
    Ok(())
}

/// Clipping by global norm: `{"max_norm": 1.0, "norm_type": 2.0, "error_if_nonfinite": false}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipNormConfig {
    /// Largest allowed global norm, `>= 0`. Required (no default in torch.nn.utils.clip_grad_norm_).
    pub max_norm: f64,
    /// Order of the norm: a number `> 0` or `"inf"`. Default: `2.0` (torch.nn.utils.clip_grad_norm_).
    #[serde(default = "two")]
    pub norm_type: NormType,
    /// Fail on a non-finite total norm. Default: `false` (torch.nn.utils.clip_grad_norm_).
    #[serde(default)]
    pub error_if_nonfinite: bool,
    /// Implementation: `"auto"` (fused passes for eligible gradients), `"fused"` (the same:
    /// clipping never refuses a gradient) or `"reference"` (Candle ops). Default: `"auto"`.
    #[serde(default)]
    pub path: UpdatePath,
}

fn two() -> NormType {
    NormType::P(2.0)
}

/// Clipping by value: `{"clip_value": 0.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipValueConfig {
    /// Bound on each gradient element's magnitude, `>= 0`. Required (no default in torch.nn.utils.clip_grad_value_).
    pub clip_value: f64,
    /// Implementation, as in [`ClipNormConfig::path`]. Default: `"auto"`.
    #[serde(default)]
    pub path: UpdatePath,
}

/// Gradient clipping from JSON: by global norm (`max_norm`, ...) or by value (`clip_value`),
/// chosen by the keys present; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[serde(try_from = "Value")]
pub enum ClipConfig {
    /// [`clip_grad_norm`].
    Norm(ClipNormConfig),
    /// [`clip_grad_value`].
    Value(ClipValueConfig),
}

impl TryFrom<Value> for ClipConfig {
    type Error = Error;
    fn try_from(value: Value) -> Result<Self> {
        ClipConfig::parse(&value, "")
    }
}

/// A clipping bound must be a number `>= 0` (`+inf` allowed: no clipping), checked when the
/// config is read so that `validate` rejects it, with its JSON path.
fn check_bound(value: f64, field: &str, path: &str) -> Result<()> {
    if value.is_nan() || value < 0.0 {
        return Err(Error::config(
            gradus_core::config::join_path(path, field),
            format!("must be >= 0, got {value}"),
        ));
    }
    Ok(())
}

impl ClipConfig {
    /// Parses a clip config found at JSON path `path`, naming the path in errors.
    pub fn parse(value: &Value, path: &str) -> Result<Self> {
        let object = value.as_object().ok_or_else(|| {
            Error::config(
                display_path(path),
                "expected an object with `max_norm` or `clip_value`",
            )
        })?;
        match (
            object.contains_key("max_norm"),
            object.contains_key("clip_value"),
        ) {
            (true, true) => Err(Error::config(
                display_path(path),
                "give either `max_norm` (clip by norm) or `clip_value` (clip by value), not both",
            )),
            (false, true) => {
                let config: ClipValueConfig = parse_config(value, path)?;
                check_bound(config.clip_value, "clip_value", path)?;
                Ok(ClipConfig::Value(config))
            }
            // Also reports a missing `max_norm` and unknown keys of the norm form.
            _ => {
                let config: ClipNormConfig = parse_config(value, path)?;
                check_bound(config.max_norm, "max_norm", path)?;
                Ok(ClipConfig::Norm(config))
            }
        }
    }

    /// The implementation this config runs on.
    pub fn path(&self) -> UpdatePath {
        match self {
            ClipConfig::Norm(c) => c.path,
            ClipConfig::Value(c) => c.path,
        }
    }

    /// Sets the implementation (as `"path"` in JSON does).
    pub fn set_path(&mut self, path: UpdatePath) {
        match self {
            ClipConfig::Norm(c) => c.path = path,
            ClipConfig::Value(c) => c.path = path,
        }
    }

    /// Clips the gradients of `params` in `grads`; returns the total norm before clipping for
    /// the norm form, `None` for the value form.
    pub fn apply<P: GradParam>(&self, params: &[P], grads: &mut GradStore) -> Result<Option<f64>> {
        match self {
            ClipConfig::Norm(c) => clip_grad_norm(
                params,
                grads,
                c.max_norm,
                c.norm_type,
                c.error_if_nonfinite,
                c.path,
            )
            .map(Some),
            ClipConfig::Value(c) => {
                clip_grad_value(params, grads, c.clip_value, c.path).map(|_| None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::norm_strategy;
    use candle_core::Device;
    use proptest::prelude::*;
    use serde_json::json;

    fn setup(values: &[Vec<f64>]) -> (Vec<Var>, GradStore) {
        let mut grads = GradStore::default();
        let vars: Vec<Var> = values
            .iter()
            .map(|v| Var::new(vec![0.0f64; v.len()].as_slice(), &Device::Cpu).unwrap())
            .collect();
        for (var, v) in vars.iter().zip(values) {
            grads.insert(
                var.as_tensor(),
                Tensor::new(v.as_slice(), &Device::Cpu).unwrap(),
            );
        }
        (vars, grads)
    }

    fn read(vars: &[Var], grads: &GradStore) -> Vec<Vec<f64>> {
        vars.iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap())
            .collect()
    }

    #[test]
    fn norm_clipping_matches_torch_arithmetic() {
        // Per-tensor norms 5 and 12, total 13 (torch.nn.utils.clip_grad_norm_).
        let (vars, mut grads) = setup(&[vec![3.0, -4.0], vec![12.0]]);
        let total = clip_grad_norm(
            &vars,
            &mut grads,
            1.0,
            NormType::P(2.0),
            false,
            UpdatePath::Auto,
        )
        .unwrap();
        assert_eq!(total, 13.0);
        let coef = 1.0 / (13.0 + 1e-6);
        assert_eq!(
            read(&vars, &grads),
            vec![vec![3.0 * coef, -4.0 * coef], vec![12.0 * coef]]
        );
        // Infinity norm and p = 1.
        let (vars, mut grads) = setup(&[vec![3.0, -4.0], vec![2.0]]);
        assert_eq!(
            total_norm(&vars, &grads, NormType::Inf, UpdatePath::Auto).unwrap(),
            4.0
        );
        assert_eq!(
            total_norm(&vars, &grads, NormType::P(1.0), UpdatePath::Auto).unwrap(),
            9.0
        );
        let total = clip_grad_norm(
            &vars,
            &mut grads,
            2.0,
            NormType::Inf,
            false,
            UpdatePath::Auto,
        )
        .unwrap();
        assert_eq!(total, 4.0);
        assert_eq!(read(&vars, &grads)[0][1], -4.0 * (2.0 / (4.0 + 1e-6)));
        // p = 3: ((27 + 64) + 8)^(1/3), via per-tensor norms.
        let (vars, grads) = setup(&[vec![3.0, -4.0], vec![2.0]]);
        let want = (91f64.powf(1.0 / 3.0).powf(3.0) + 8.0).powf(1.0 / 3.0);
        assert!(
            (total_norm(&vars, &grads, NormType::P(3.0), UpdatePath::Auto).unwrap() - want).abs()
                < 1e-12
        );
    }

    #[test]
    fn non_finite_norms_follow_torch() {
        let (vars, mut grads) = setup(&[vec![f64::NAN, 1.0], vec![2.0]]);
        let err = clip_grad_norm(
            &vars,
            &mut grads,
            1.0,
            NormType::P(2.0),
            true,
            UpdatePath::Auto,
        )
        .unwrap_err();
        assert!(matches!(err, Error::NonFinite(_)), "{err}");
        assert_eq!(read(&vars, &grads)[1], vec![2.0]); // untouched on error
        let total = clip_grad_norm(
            &vars,
            &mut grads,
            1.0,
            NormType::P(2.0),
            false,
            UpdatePath::Auto,
        )
        .unwrap();
        assert!(total.is_nan());
        assert!(read(&vars, &grads).concat().iter().all(|v| v.is_nan()));
        // An infinite gradient: coefficient 0, so inf·0 = NaN and the rest 0.
        let (vars, mut grads) = setup(&[vec![f64::INFINITY, 1.0]]);
        clip_grad_norm(
            &vars,
            &mut grads,
            1.0,
            NormType::P(2.0),
            false,
            UpdatePath::Auto,
        )
        .unwrap();
        let g = read(&vars, &grads).concat();
        assert!(g[0].is_nan() && g[1] == 0.0);
    }

    #[test]
    fn value_clipping_clamps_and_keeps_nan() {
        let (vars, mut grads) = setup(&[vec![-2.0, 0.3, f64::INFINITY, f64::NAN]]);
        clip_grad_value(&vars, &mut grads, 0.5, UpdatePath::Auto).unwrap();
        let g = read(&vars, &grads).concat();
        assert_eq!(&g[..3], &[-0.5, 0.3, 0.5]);
        assert!(g[3].is_nan());
        assert!(clip_grad_value(&vars, &mut grads, -1.0, UpdatePath::Auto).is_err());
    }

    #[test]
    fn missing_gradients_are_skipped_and_f32_is_scaled_in_f32() {
        let a = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let b = Var::new(&[1f32], &Device::Cpu).unwrap();
        let mut grads = GradStore::default();
        grads.insert(
            a.as_tensor(),
            Tensor::new(&[6f32, 8.0], &Device::Cpu).unwrap(),
        );
        let named = [NamedVar::new("a", a.clone()), NamedVar::new("b", b.clone())];
        let total = clip_grad_norm(
            &named,
            &mut grads,
            5.0,
            NormType::P(2.0),
            false,
            UpdatePath::Auto,
        )
        .unwrap();
        assert_eq!(total, 10.0);
        let g = grads.get(a.as_tensor()).unwrap();
        assert_eq!(g.dtype(), DType::F32);
        let want = (5.0 / (10.0 + 1e-6)) as f32;
        assert_eq!(g.to_vec1::<f32>().unwrap(), vec![6.0 * want, 8.0 * want]);
        assert!(grads.get(b.as_tensor()).is_none());
        let empty: [Var; 0] = [];
        assert_eq!(
            clip_grad_norm(
                &empty,
                &mut grads,
                1.0,
                NormType::Inf,
                true,
                UpdatePath::Auto
            )
            .unwrap(),
            0.0
        );
    }

    #[test]
    fn config_parses_both_forms_strictly() {
        let norm =
            ClipConfig::parse(&json!({"max_norm": 0.3, "norm_type": "inf"}), "clip").unwrap();
        assert_eq!(
            norm,
            ClipConfig::Norm(ClipNormConfig {
                max_norm: 0.3,
                norm_type: NormType::Inf,
                error_if_nonfinite: false,
                path: UpdatePath::Auto,
            })
        );
        let plain: ClipConfig = serde_json::from_value(json!({"max_norm": 1.0})).unwrap();
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"max_norm": 1.0, "norm_type": 2.0, "error_if_nonfinite": false, "path": "auto"})
        );
        let value: ClipConfig = serde_json::from_value(json!({"clip_value": 0.5})).unwrap();
        assert_eq!(
            value,
            ClipConfig::Value(ClipValueConfig {
                clip_value: 0.5,
                path: UpdatePath::Auto
            })
        );
        assert_eq!(
            serde_json::to_value(&norm).unwrap()["norm_type"],
            json!("inf")
        );
        let both = ClipConfig::parse(&json!({"max_norm": 1.0, "clip_value": 0.5}), "clip");
        assert!(both.unwrap_err().to_string().contains("not both"));
        let typo = ClipConfig::parse(&json!({"max_norm": 1.0, "norm": 2.0}), "clip").unwrap_err();
        assert!(
            typo.to_string().contains("did you mean `norm_type`"),
            "{typo}"
        );
        for bad in [
            json!({"max_norm": 1.0, "norm_type": 0.0}),
            json!({"max_norm": 1.0, "norm_type": "l2"}),
            json!({}),
        ] {
            assert!(ClipConfig::parse(&bad, "clip").is_err(), "{bad}");
        }
        for bad in [json!({"max_norm": -1.0}), json!({"clip_value": -0.5})] {
            let err = ClipConfig::parse(&bad, "clip").unwrap_err().to_string();
            assert!(
                err.contains("clip.max_norm") || err.contains("clip.clip_value"),
                "{err}"
            );
            assert!(err.contains(">= 0"), "{err}");
        }
    }

    fn grads_strategy() -> impl Strategy<Value = Vec<Vec<f64>>> {
        prop::collection::vec(prop::collection::vec(-100.0f64..100.0, 1..6), 1..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn norm_clipping_never_increases_the_norm_and_keeps_direction(
            values in grads_strategy(), max_norm in 0.0f64..200.0, norm in norm_strategy(),
        ) {
            let (vars, mut grads) = setup(&values);
            let before = clip_grad_norm(&vars, &mut grads, max_norm, norm, true, UpdatePath::Auto).unwrap();
            let after = total_norm(&vars, &grads, norm, UpdatePath::Auto).unwrap();
            prop_assert!(after <= before * (1.0 + 1e-12));
            prop_assert!(after <= max_norm * (1.0 + 1e-9) + 1e-12);
            // Every element scaled by one coefficient in [0, 1].
            let coef = if before > 0.0 { (max_norm / (before + 1e-6)).min(1.0) } else { 1.0 };
            for (g, v) in read(&vars, &grads).concat().iter().zip(values.concat()) {
                prop_assert!((g - v * coef).abs() <= 1e-12 * v.abs());
                prop_assert!(g * v >= 0.0);
            }
            if before + 1e-6 <= max_norm {
                prop_assert_eq!(read(&vars, &grads), values); // the identity, bit for bit
            }
        }

        #[test]
        fn value_clipping_bounds_every_element_and_is_identity_below(
            values in grads_strategy(), clip in 0.0f64..150.0,
        ) {
            let (vars, mut grads) = setup(&values);
            clip_grad_value(&vars, &mut grads, clip, UpdatePath::Auto).unwrap();
            for (g, v) in read(&vars, &grads).concat().iter().zip(values.concat()) {
                prop_assert!(g.abs() <= clip && g * v >= 0.0);
                if v.abs() <= clip {
                    prop_assert_eq!(*g, v);
                }
            }
        }
    }
}
