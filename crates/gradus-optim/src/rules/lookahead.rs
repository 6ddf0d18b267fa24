//! Lookahead around any registered optimizer (pytorch-optimizer's `Lookahead`).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use gradus_core::config::{join_path, parse_config};
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict, UpdatePath};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::aligned::StateBuf;
use crate::engine::build::{build_optimizer, take_update_path};
use crate::engine::elem::Elem;
use crate::engine::kernel::{Chunk, Kernel, Sums};
use crate::engine::path::ineligibility;
use crate::engine::precision::{Precision, PRECISION_FIELDS};
use crate::engine::step::run_on_state;
use crate::rules::schedule_free::{lerp, lerp_elem};
use crate::validate;

/// The state-dict key of the inner steps since the last sync.
pub const COUNTER_KEY: &str = "lookahead.counter";
/// The state-dict prefix of the inner optimizer's state (`base_optimizer.<key>`).
pub const INNER_PREFIX: &str = "base_optimizer";
/// The state key suffix of a parameter's slow weights (`<param>.slow_params`).
pub const SLOW: &str = "slow_params";

/// The values `pullback_momentum` takes in the reference.
const PULLBACK: [&str; 3] = ["none", "reset", "pullback"];

/// Lookahead: any optimizer's ("fast") steps, pulled every k steps towards slow weights.
///
/// With φ the slow weights (initialized to the parameters θ when the optimizer is built), after
/// every inner step (pytorch-optimizer 4.1.0's `Lookahead`):
///
/// ```text
/// θ ← inner step(θ, g)
/// c ← c + 1
/// if c ≥ k:   c ← 0
///             θ ← lerp(θ, φ, 1 − α) = θ + (1 − α)(φ − θ)     (for each θ with a gradient)
///             φ ← θ
/// ```
///
/// k = `k`, α = `alpha`, the inner optimizer = `optimizer` (any registered optimizer's config,
/// `{"type": "adamw"}` by default); `lerp` is `torch.lerp`'s (from the far end for weights
/// ≥ 0.5), so that both paths and the reference agree to the bit in f64. The sync runs as a fused
/// CPU kernel on contiguous f32/f64 parameters (the slow weights then live in aligned buffers)
/// and in Candle ops otherwise, following the optimizer's update path, which also goes to the
/// inner optimizer. Hyperparameters (and so schedules), `train()` / `eval()` and the eval point
/// are the inner optimizer's. State: `lookahead.counter`, `<param>.slow_params` and the inner
/// optimizer's state under `base_optimizer.`; a resumed run continues bit for bit.
///
/// Paper: Zhang, Lucas, Hinton and Ba, "Lookahead Optimizer: k steps forward, 1 step back"
/// (NeurIPS 2019), <https://arxiv.org/abs/1907.08610>.
///
/// Not implemented (refused, naming the option): `pullback_momentum` other than `"none"` (the
/// reference's `"reset"` and `"pullback"` rewrite the inner optimizer's `momentum_buffer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
// Parameter groups belong to the inner optimizer's config, not to the wrapper.
#[schemars(extend("x-grouped" = false, "x-update-path" = true))]
pub struct LookaheadConfig {
    /// Inner steps between syncs. Default: `5`.
    pub k: u64,
    /// Interpolation α from the slow weights towards the fast ones. Default: `0.5`.
    pub alpha: f64,
    /// Momentum handling at a sync; only `"none"` is implemented. Default: `"none"`.
    #[schemars(extend("enum" = ["none"]))]
    pub pullback_momentum: String,
    /// The inner optimizer's config, with its `type`. Default: `{"type": "adamw"}`.
    #[schemars(schema_with = "inner_optimizer")]
    pub optimizer: Value,
}

/// The schema of `optimizer`: any registered optimizer (in `gradus schema`).
fn inner_optimizer(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    gradus_core::schema::component("optimizer")
}

impl Default for LookaheadConfig {
    fn default() -> Self {
        LookaheadConfig {
            k: 5,
            alpha: 0.5,
            pullback_momentum: "none".into(),
            optimizer: json!({"type": "adamw"}),
        }
    }
}

impl LookaheadConfig {
    /// Checks `k`, `alpha` and `pullback_momentum`, with the reference's wording.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::InvalidHyperparameter(format!(
                "Invalid k value: {} (it must be positive)",
                self.k
            )));
        }
        validate::in_range("alpha", self.alpha, 0.0, 1.0)?;
        match self.pullback_momentum.as_str() {
            "none" => Ok(()),
            "reset" | "pullback" => Err(Error::InvalidHyperparameter(format!(
                "lookahead: `pullback_momentum: \"{}\"` is not implemented (only the default \
                 \"none\")",
                self.pullback_momentum
            ))),
            other => Err(Error::InvalidHyperparameter(format!(
                "Invalid pullback_momentum value: \"{other}\" (one of {}{})",
                PULLBACK.join(", "),
                gradus_core::suggest::nearest(other, PULLBACK)
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default()
            ))),
        }
    }
}

/// The coefficients of a sync: the weight 1 − α of the slow weights in `torch.lerp`.
#[derive(Debug, Clone, Copy)]
pub struct SyncStep {
    weight: f64,
}

/// The sync as a fused kernel over one buffer, the slow weights (no gradient):
/// θ ← lerp(θ, φ, 1 − α), φ ← θ.
#[derive(Debug, Clone, Copy)]
pub struct LookaheadSync;

impl Kernel<SyncStep> for LookaheadSync {
    #[inline(always)]
    fn apply<T: Elem>(step: &SyncStep, chunk: Chunk<'_, T>, _sums: &Sums) {
        let Chunk {
            param: p,
            state: [slow, ..],
            ..
        } = chunk;
        let n = p.len();
        let slow = &mut slow[..n];
        let (w, one_minus_w) = (T::of(step.weight), T::of(1.0 - step.weight));
        // One loop per end of torch.lerp, chosen once.
        if step.weight < 0.5 {
            for i in 0..n {
                let v = lerp_elem(p[i], slow[i], w, one_minus_w, true);
                p[i] = v;
                slow[i] = v;
            }
        } else {
            for i in 0..n {
                let v = lerp_elem(p[i], slow[i], w, one_minus_w, false);
                p[i] = v;
                slow[i] = v;
            }
        }
    }
}

/// A parameter's slow weights, on the path that last synced them.
#[derive(Debug, Clone)]
enum Slow {
    /// A tensor of the parameter's shape and device (reference path), of its dtype, or f32
    /// for a bf16/f16 parameter (so that the pull towards the slow weights is not rounded away).
    Tensor(Tensor),
    /// An aligned buffer of the parameter's dtype (fused path).
    Fused(StateBuf),
}

/// The dtype of a `param` parameter's slow weights: its own, f32 for bf16/f16.
fn slow_dtype(param: DType) -> DType {
    Precision::compute_dtype(param)
}

/// A parameter and its slow weights.
struct Tracked {
    param: NamedVar,
    /// Why the fused sync cannot take it (`None`: it can).
    ineligible: Option<String>,
    slow: Slow,
}

impl Tracked {
    /// The slow weights as a tensor of the parameter's shape and device, in their dtype (a
    /// copy).
    fn slow_tensor(&self) -> Result<Tensor> {
        let t = self.param.var.as_tensor();
        Ok(match &self.slow {
            Slow::Tensor(s) => s.clone(),
            Slow::Fused(b) => b.to_tensor(t.dims())?.to_device(t.device())?,
        })
    }

    /// One sync of this parameter on the fused or the reference path.
    fn sync(&mut self, step: &SyncStep, fused: bool) -> Result<()> {
        let t = self.param.var.as_tensor();
        if fused {
            if let Slow::Tensor(s) = &self.slow {
                self.slow = Slow::Fused(StateBuf::from_tensor(s, t.dtype(), 0, 0)?);
            }
            if let Slow::Fused(buf) = &mut self.slow {
                return run_on_state::<LookaheadSync, SyncStep>(t, step, std::slice::from_mut(buf));
            }
        }
        let slow = self.slow_tensor()?;
        let fast = t.detach().to_dtype(slow.dtype())?;
        let next = lerp(&fast, &slow, step.weight)?;
        if t.elem_count() > 0 {
            self.param.var.set(&next.to_dtype(t.dtype())?)?;
        }
        self.slow = Slow::Tensor(next);
        Ok(())
    }
}

/// Lookahead around an inner optimizer (see [`LookaheadConfig`] for the rule).
pub struct Lookahead {
    inner: Box<dyn Optimizer>,
    k: u64,
    alpha: f64,
    counter: u64,
    tracked: Vec<Tracked>,
    path: UpdatePath,
}

impl Lookahead {
    /// Lookahead around `inner` with `config`'s `k` and `alpha` (its `optimizer` is not read):
    /// the slow weights start at the inner optimizer's parameters.
    pub fn new(inner: Box<dyn Optimizer>, config: &LookaheadConfig) -> Result<Self> {
        config.validate()?;
        let tracked = inner
            .params()
            .into_iter()
            .map(|param| {
                let t = param.var.as_tensor();
                Ok(Tracked {
                    ineligible: ineligibility(t),
                    slow: Slow::Tensor(t.detach().to_dtype(slow_dtype(t.dtype()))?.copy()?),
                    param,
                })
            })
            .collect::<Result<_>>()?;
        let path = inner.update_path();
        Ok(Lookahead {
            inner,
            k: config.k,
            alpha: config.alpha,
            counter: 0,
            tracked,
            path,
        })
    }

    /// The inner optimizer.
    pub fn inner(&self) -> &dyn Optimizer {
        self.inner.as_ref()
    }

    /// Inner steps since the last sync.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl Optimizer for Lookahead {
    fn algorithm(&self) -> &str {
        "lookahead"
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        // With the path forced to fused, an ineligible parameter fails before anything moves.
        if self.path == UpdatePath::Fused {
            for t in &self.tracked {
                if let (Some(why), Some(_)) = (&t.ineligible, grads.get(t.param.var.as_tensor())) {
                    return Err(Error::Unsupported(format!(
                        "the fused path cannot sync `{}`: {why}; use the auto or reference path",
                        t.param.name
                    )));
                }
            }
        }
        self.inner.step(grads)?;
        self.counter += 1;
        if self.counter < self.k {
            return Ok(());
        }
        self.counter = 0;
        let step = SyncStep {
            weight: 1.0 - self.alpha,
        };
        let path = self.path;
        for t in &mut self.tracked {
            if grads.get(t.param.var.as_tensor()).is_none() {
                continue;
            }
            let fused = path != UpdatePath::Reference && t.ineligible.is_none();
            t.sync(&step, fused)?;
        }
        Ok(())
    }

    fn params(&self) -> Vec<NamedVar> {
        self.inner.params()
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

    fn learning_rate(&self) -> Result<f64> {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        self.inner.set_learning_rate(lr)
    }

    /// `lookahead.counter`, `<param>.slow_params`, and the inner optimizer's keys under
    /// `base_optimizer.`.
    fn state_dict(&self) -> Result<StateDict> {
        let mut sd = StateDict::new();
        // host-side: state-dict scalars are host values.
        sd.insert(COUNTER_KEY, Tensor::new(self.counter as f64, &Device::Cpu)?);
        for t in &self.tracked {
            sd.insert(format!("{}.{SLOW}", t.param.name), t.slow_tensor()?);
        }
        sd.extend_prefixed(INNER_PREFIX, &self.inner.state_dict()?);
        Ok(sd)
    }

    fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
        let counter = state
            .require(COUNTER_KEY, &[])?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let mut slows = Vec::with_capacity(self.tracked.len());
        for t in &self.tracked {
            let p = t.param.var.as_tensor();
            let key = format!("{}.{SLOW}", t.param.name);
            let saved = state.require(&key, p.dims())?;
            let dtype = slow_dtype(p.dtype());
            slows.push(saved.to_dtype(dtype)?.to_device(p.device())?.copy()?);
        }
        let head = format!("{INNER_PREFIX}.");
        if let Some(extra) = state.names().find(|n| {
            *n != COUNTER_KEY
                && !n.starts_with(&head)
                && !self.tracked.iter().any(|t| {
                    n.strip_suffix(SLOW).and_then(|h| h.strip_suffix('.'))
                        == Some(t.param.name.as_str())
                })
        }) {
            return Err(Error::StateMismatch(format!(
                "saved state has `{extra}`, which matches no parameter of this lookahead optimizer"
            )));
        }
        self.inner.load_state_dict(&state.sub(INNER_PREFIX))?;
        self.counter = counter as u64;
        for (t, slow) in self.tracked.iter_mut().zip(slows) {
            t.slow = Slow::Tensor(slow);
        }
        Ok(())
    }

    fn train(&mut self) -> Result<()> {
        self.inner.train()
    }

    fn eval(&mut self) -> Result<()> {
        self.inner.eval()
    }

    fn has_eval_point(&self) -> bool {
        self.inner.has_eval_point()
    }

    fn update_path(&self) -> UpdatePath {
        self.path
    }

    fn set_update_path(&mut self, path: UpdatePath) -> Result<()> {
        self.inner.set_update_path(path)?;
        self.path = path;
        Ok(())
    }
}

/// Moves the precision fields of bf16/f16 parameters (`state_dtype`, `master_weights`,
/// `rounding`, `rounding_seed`) given beside Lookahead's own into its inner optimizer's config,
/// where they apply (the inner optimizer's own value wins).
fn forward_precision(config: &mut Value) {
    let Some(object) = config.as_object_mut() else {
        return;
    };
    let fields: Vec<(String, Value)> = PRECISION_FIELDS
        .iter()
        .filter_map(|key| object.remove(*key).map(|v| (key.to_string(), v)))
        .collect();
    if fields.is_empty() {
        return;
    }
    let inner = object
        .entry("optimizer")
        .or_insert_with(|| json!({"type": "adamw"}));
    if let Some(inner) = inner.as_object_mut() {
        for (key, value) in fields {
            inner.entry(key).or_insert(value);
        }
    }
}

/// The registered constructor: the inner optimizer built through the registry from
/// `optimizer` (at `path.optimizer`), then wrapped; `"path"` goes to both.
pub fn build_lookahead(
    config: &Value,
    path: &str,
    params: &[NamedVar],
) -> Result<Box<dyn Optimizer>> {
    let mut config = config.clone();
    let update_path = take_update_path(&mut config, path)?;
    forward_precision(&mut config);
    let cfg: LookaheadConfig = parse_config(&config, path)?;
    cfg.validate()?;
    let inner = build_optimizer(&cfg.optimizer, &join_path(path, "optimizer"), params)?;
    let mut lookahead = Lookahead::new(inner, &cfg)?;
    lookahead
        .set_update_path(update_path)
        .map_err(|e| Error::config(join_path(path, "path"), e.to_string()))?;
    Ok(Box::new(lookahead))
}

gradus_core::register_optimizer!(
    "lookahead",
    "Lookahead, any optimizer pulled every k steps towards slow weights (pytorch-optimizer Lookahead)",
    LookaheadConfig,
    build_lookahead
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use proptest::prelude::*;

    fn vars(values: &[Vec<f64>]) -> Vec<NamedVar> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                NamedVar::new(
                    format!("p{i}"),
                    Var::new(v.as_slice(), &Device::Cpu).unwrap(),
                )
            })
            .collect()
    }

    fn grads(vars: &[NamedVar], scale: f64) -> GradStore {
        let mut g = GradStore::default();
        for v in vars {
            g.insert(v.var.as_tensor(), (v.var.as_tensor() * scale).unwrap());
        }
        g
    }

    fn values(vars: &[NamedVar]) -> Vec<f64> {
        vars.iter()
            .flat_map(|v| v.var.as_tensor().to_vec1::<f64>().unwrap())
            .collect()
    }

    fn build(config: Value, vars: &[NamedVar]) -> Box<dyn Optimizer> {
        build_optimizer(&config, "optimizer", vars).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// α = 1 keeps the fast weights: Lookahead is its inner optimizer.
        #[test]
        fn alpha_one_is_the_inner_optimizer(p in crate::testing::small_params(), k in 1u64..4) {
            let (a, b) = (vars(&p), vars(&p));
            let mut la = build(json!({"type": "lookahead", "k": k, "alpha": 1.0, "optimizer": {"type": "sgd", "lr": 0.1}}), &a);
            let mut sgd = build(json!({"type": "sgd", "lr": 0.1}), &b);
            for _ in 0..7 {
                la.step(&grads(&a, 2.0)).unwrap();
                sgd.step(&grads(&b, 2.0)).unwrap();
            }
            prop_assert_eq!(values(&a), values(&b));
        }

        /// α = 0 returns to the slow weights at every sync: after a multiple of k steps the
        /// parameters are where they started.
        #[test]
        fn alpha_zero_returns_to_the_start_at_every_sync(p in crate::testing::small_params(), k in 1u64..4, fused in any::<bool>()) {
            let a = vars(&p);
            let path = if fused { "fused" } else { "reference" };
            let mut la = build(json!({"type": "lookahead", "k": k, "alpha": 0.0, "path": path, "optimizer": {"type": "adam", "lr": 0.1}}), &a);
            for _ in 0..2 * k {
                la.step(&grads(&a, 2.0)).unwrap();
            }
            prop_assert_eq!(values(&a), p.concat());
        }

        /// The fused sync and the reference sync give the same bits (f64 and f32).
        #[test]
        fn fused_and_reference_syncs_agree(p in crate::testing::small_params(), alpha in 0.0f64..1.0, f32s in any::<bool>()) {
            let dtype = if f32s { DType::F32 } else { DType::F64 };
            let make = || -> Vec<NamedVar> {
                vars(&p).into_iter().map(|v| NamedVar::new(v.name, Var::from_tensor(&v.var.as_tensor().to_dtype(dtype).unwrap()).unwrap())).collect()
            };
            let (a, b) = (make(), make());
            let cfg = |path: &str| json!({"type": "lookahead", "k": 2, "alpha": alpha, "path": path, "optimizer": {"type": "adamw", "lr": 0.05}});
            let (mut fused, mut reference) = (build(cfg("fused"), &a), build(cfg("reference"), &b));
            for _ in 0..5 {
                fused.step(&grads(&a, 2.0)).unwrap();
                reference.step(&grads(&b, 2.0)).unwrap();
            }
            for (x, y) in a.iter().zip(&b) {
                let (x, y) = (x.var.as_tensor().to_dtype(DType::F64).unwrap(), y.var.as_tensor().to_dtype(DType::F64).unwrap());
                prop_assert_eq!(x.to_vec1::<f64>().unwrap(), y.to_vec1::<f64>().unwrap());
            }
        }
    }

    #[test]
    fn options_it_does_not_implement_are_refused_by_name() {
        let p = vars(&[vec![1.0, 2.0]]);
        for (value, wanted) in [
            ("reset", "not implemented"),
            ("pullback", "not implemented"),
            ("pulback", "did you mean \"pullback\""),
        ] {
            let err = build_optimizer(
                &json!({"type": "lookahead", "pullback_momentum": value}),
                "optimizer",
                &p,
            )
            .err()
            .unwrap()
            .to_string();
            assert!(
                err.contains("pullback_momentum") && err.contains(wanted),
                "{err}"
            );
        }
        let err = build_optimizer(
            &json!({"type": "lookahead", "optimizer": {"type": "adamw", "betas": [0.9, 2.0]}}),
            "optimizer",
            &p,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("optimizer.optimizer"), "{err}");
    }

    #[test]
    fn hyperparameters_and_modes_are_the_inner_optimizers() {
        let p = vars(&[vec![1.0, 2.0]]);
        let mut la = build(
            json!({"type": "lookahead", "optimizer": {"type": "adamw_schedule_free", "lr": 0.01}}),
            &p,
        );
        assert_eq!(la.learning_rate().unwrap(), 0.01);
        la.set_learning_rate(0.02).unwrap();
        assert_eq!(la.hyperparameter(0, "lr").unwrap(), 0.02);
        assert!(la.has_eval_point());
        la.step(&grads(&p, 2.0)).unwrap();
        la.eval().unwrap();
        assert!(la.step(&grads(&p, 2.0)).is_err(), "a step in eval mode");
        la.train().unwrap();
        la.step(&grads(&p, 2.0)).unwrap();
    }

    #[test]
    fn state_round_trips_bit_for_bit_mid_cycle() {
        let start = [vec![1.0, -2.0, 0.5], vec![0.25]];
        let (a, b) = (vars(&start), vars(&start));
        let cfg = json!({"type": "lookahead", "k": 3, "optimizer": {"type": "adam", "lr": 0.1}});
        let mut first = build(cfg.clone(), &a);
        for _ in 0..4 {
            first.step(&grads(&a, 2.0)).unwrap();
        }
        let sd = first.state_dict().unwrap();
        assert_eq!(
            sd.get(COUNTER_KEY).unwrap().to_scalar::<f64>().unwrap(),
            1.0
        );
        assert!(sd.get("p0.slow_params").is_some());
        assert!(sd.get("base_optimizer.p0.exp_avg").is_some());
        for (x, y) in a.iter().zip(&b) {
            y.var.set(x.var.as_tensor()).unwrap();
        }
        let mut resumed = build(cfg, &b);
        resumed.load_state_dict(&sd).unwrap();
        for _ in 0..5 {
            first.step(&grads(&a, 2.0)).unwrap();
            resumed.step(&grads(&b, 2.0)).unwrap();
            assert_eq!(values(&a), values(&b));
        }
        let mut extra = sd.clone();
        extra.insert("p9.slow_params", Tensor::new(1.0f64, &Device::Cpu).unwrap());
        let err = resumed.load_state_dict(&extra).unwrap_err().to_string();
        assert!(err.contains("p9.slow_params"), "{err}");
    }
}
