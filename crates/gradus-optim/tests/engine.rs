//! The open engine seen from outside the crate, as a plugin sees it: rules defined here get the
//! fused path through the public `Kernel` trait, including reduce-then-apply kernels; a rule
//! without a kernel is refused the fused path by its type; the update path is a value set per
//! optimizer, from code or from JSON.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::{NamedVar, Optimizer, Result};
use gradus_optim::{
    build_optimizer, Buffers, Chunk, Elem, GroupedOptimizer, Kernel, NoKernel, Rule, Scalars, Sums,
    UpdatePath,
};
use serde::{Deserialize, Serialize};

/// A LAMB-shaped rule: momentum m ← β m + g, then θ ← θ − γ (‖θ‖ / ‖m‖) m, the trust ratio
/// taken over the whole tensor. Its kernel reduces (updating m and summing ‖θ‖², ‖m‖²) and then
/// applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TrustConfig {
    lr: f64,
    beta: f64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig { lr: 0.1, beta: 0.9 }
    }
}

#[derive(Debug, Clone, Copy)]
struct TrustStep {
    lr: f64,
    beta: f64,
}

struct TrustKernel;

impl Kernel<TrustStep> for TrustKernel {
    const REDUCES: bool = true;

    #[inline(always)]
    fn reduce<T: Elem>(step: &TrustStep, chunk: Chunk<'_, T>, sums: &mut Sums) {
        let Chunk {
            param: p,
            grad: g,
            state: [m, ..],
            ..
        } = chunk;
        let beta = T::of(step.beta);
        for i in 0..p.len() {
            let mi = m[i] * beta + g[i];
            m[i] = mi;
            sums[0] += p[i].to_f64() * p[i].to_f64();
            sums[1] += mi.to_f64() * mi.to_f64();
        }
    }

    #[inline(always)]
    fn apply<T: Elem>(step: &TrustStep, chunk: Chunk<'_, T>, sums: &Sums) {
        let Chunk {
            param: p,
            state: [m, ..],
            ..
        } = chunk;
        let coef = T::of(step.lr * sums[0].sqrt() / sums[1].sqrt());
        for i in 0..p.len() {
            p[i] = p[i] - m[i] * coef;
        }
    }
}

impl Rule for TrustConfig {
    const NAME: &'static str = "trust_test";
    gradus_optim::hyperparameters!("lr" => lr, "beta" => beta);
    type Step = TrustStep;
    type Kernel = TrustKernel;

    fn validate(&self) -> Result<()> {
        gradus_optim::validate::lr(self.lr)
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        vec!["momentum_buffer"]
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> TrustStep {
        TrustStep {
            lr: self.lr,
            beta: self.beta,
        }
    }

    fn update(
        &self,
        step: &TrustStep,
        param: &Tensor,
        grad: &Tensor,
        buffers: &mut Buffers,
    ) -> Result<Tensor> {
        let m = buffers.get_or("momentum_buffer", || Ok(grad.zeros_like()?))?;
        let m = ((m * step.beta)? + grad)?;
        buffers.set("momentum_buffer", m.clone());
        let norm = |t: &Tensor| -> Result<f64> {
            Ok(t.to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?
                .sqrt())
        };
        let coef = step.lr * norm(param)? / norm(&m)?;
        Ok((param - (m * coef)?)?)
    }
}

/// A rule with only a reference path: θ ← θ − γ g.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PlainConfig {
    lr: f64,
}

impl Rule for PlainConfig {
    const NAME: &'static str = "plain_test";
    gradus_optim::hyperparameters!("lr" => lr);
    type Step = f64;
    type Kernel = NoKernel;

    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn plan(&self, _t: u64, _scalars: &mut Scalars) -> f64 {
        self.lr
    }

    fn update(&self, lr: &f64, param: &Tensor, grad: &Tensor, _: &mut Buffers) -> Result<Tensor> {
        Ok((param - (grad * *lr)?)?)
    }
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2_000_001) as f64 / 1_000_000.0 - 1.0
        })
        .collect()
}

fn vars(sizes: &[usize], dtype: DType) -> Vec<NamedVar> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let t = Tensor::from_vec(values(n, i as u64 + 1), n, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            NamedVar::new(format!("p{i}"), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

fn grads(params: &[NamedVar], step: u64) -> GradStore {
    let mut store = GradStore::default();
    for (i, p) in params.iter().enumerate() {
        let n = p.var.elem_count();
        let g = Tensor::from_vec(values(n, 100 * step + i as u64), n, &Device::Cpu)
            .unwrap()
            .to_dtype(p.var.dtype())
            .unwrap();
        store.insert(p.var.as_tensor(), g);
    }
    store
}

fn flat(p: &NamedVar) -> Vec<f64> {
    p.var
        .as_tensor()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Runs `steps` steps of `rule` on `path` and returns every parameter's values and the state.
fn run<R: Rule>(
    rule: R,
    sizes: &[usize],
    dtype: DType,
    path: UpdatePath,
    steps: u64,
) -> Vec<Vec<f64>> {
    let params = vars(sizes, dtype);
    let mut opt = GroupedOptimizer::from_named(params.clone(), rule).unwrap();
    opt.set_update_path(path);
    for step in 0..steps {
        opt.apply(&grads(&params, step)).unwrap();
    }
    let mut out: Vec<Vec<f64>> = params.iter().map(flat).collect();
    let state = Optimizer::state_dict(&opt).unwrap();
    for name in state.names() {
        let t = state.get(name).unwrap();
        out.push(
            t.flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap(),
        );
    }
    out
}

fn assert_close(a: &[Vec<f64>], b: &[Vec<f64>], rel: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (u, v) in x.iter().zip(y) {
            // Floor 1: the values are O(1), and θ − c·m cancels near zero.
            assert!(
                (u - v).abs() <= rel * u.abs().max(v.abs()).max(1.0),
                "{u} vs {v}"
            );
        }
    }
}

#[test]
fn a_reduce_then_apply_kernel_from_outside_the_crate_matches_its_reference() {
    // 100_003 elements: several chunks, reduced on rayon's pool; plus small and empty tensors,
    // each with its own trust ratio.
    let sizes = [100_003, 7, 1, 0, 40_000];
    for (dtype, rel) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let fused = run(TrustConfig::default(), &sizes, dtype, UpdatePath::Fused, 4);
        let reference = run(
            TrustConfig::default(),
            &sizes,
            dtype,
            UpdatePath::Reference,
            4,
        );
        assert_close(&fused, &reference, rel);
    }
}

#[test]
fn a_reduction_is_deterministic() {
    let a = run(
        TrustConfig::default(),
        &[300_001],
        DType::F32,
        UpdatePath::Fused,
        3,
    );
    let b = run(
        TrustConfig::default(),
        &[300_001],
        DType::F32,
        UpdatePath::Fused,
        3,
    );
    assert_eq!(a, b);
}

#[test]
fn a_rule_without_a_kernel_is_refused_the_fused_path_by_its_type() {
    let params = vars(&[3], DType::F64);
    let mut opt = GroupedOptimizer::from_named(params.clone(), PlainConfig { lr: 0.5 }).unwrap();
    let err = Optimizer::set_update_path(&mut opt, UpdatePath::Fused).unwrap_err();
    assert!(
        err.to_string().contains("`plain_test` has no fused kernel"),
        "{err}"
    );
    // Forced anyway (the inherent setter), the step fails before anything changes.
    opt.set_update_path(UpdatePath::Fused);
    let before = flat(&params[0]);
    let err = opt.apply(&grads(&params, 0)).unwrap_err();
    assert!(err.to_string().contains("has no fused kernel"), "{err}");
    assert_eq!(flat(&params[0]), before);
    assert!(opt.param_state("p0").unwrap().step == 0);
    // On auto it runs on the reference path.
    opt.set_update_path(UpdatePath::Auto);
    opt.apply(&grads(&params, 0)).unwrap();
    assert_eq!(opt.param_state("p0").unwrap().step, 1);
}

#[test]
fn the_path_is_a_json_field_of_the_optimizer() {
    let params = vars(&[4], DType::F32);
    for (json, path) in [
        (serde_json::json!({"type": "adam"}), UpdatePath::Auto),
        (
            serde_json::json!({"type": "adam", "path": "fused"}),
            UpdatePath::Fused,
        ),
        (
            serde_json::json!({"type": "sgd", "path": "reference"}),
            UpdatePath::Reference,
        ),
    ] {
        let opt = build_optimizer(&json, "optimizer", &params).unwrap();
        assert_eq!(opt.update_path(), path);
    }
    let err = build_optimizer(
        &serde_json::json!({"type": "adam", "path": "fast"}),
        "optimizer",
        &params,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("optimizer.path"), "{err}");
    assert!(err.contains("fused"), "{err}");
    // A group cannot choose its own path: the path belongs to the optimizer.
    let json = serde_json::json!({"type": "sgd", "groups": [{"params": "*", "path": "fused"}]});
    let err = build_optimizer(&json, "optimizer", &params)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("optimizer.groups[0]"), "{err}");
}

#[test]
fn two_optimizers_on_one_thread_keep_their_own_paths() {
    // Nothing process-wide: one optimizer forced to fused and one to reference, stepped in
    // turn, each follow their own path (an f16 parameter whose LAMB state is kept in f16 can
    // only take the reference path: LAMB's kernel reduces over its state before it applies).
    let half = vec![NamedVar::new(
        "h",
        Var::from_tensor(
            &Tensor::new(&[1f32, -2.0], &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap(),
        )
        .unwrap(),
    )];
    let mut fused = build_optimizer(
        &serde_json::json!({"type": "lamb", "path": "fused", "state_dtype": "param"}),
        "optimizer",
        &half,
    )
    .unwrap();
    let mut reference = build_optimizer(
        &serde_json::json!({"type": "lamb", "path": "reference", "state_dtype": "param"}),
        "optimizer",
        &half,
    )
    .unwrap();
    let g = grads(&half, 0);
    reference.step(&g).unwrap();
    let err = fused.step(&g).unwrap_err().to_string();
    assert!(err.contains("the fused path cannot update `h`"), "{err}");
    reference.step(&g).unwrap();
}
