//! Property tests: the fused path equals the reference path for every optimizer and option,
//! on random shapes (0-d and empty included) and hyperparameters, in f32 and f64; state moves
//! between the paths through `state_dict`; mixed eligible/ineligible parameter lists work.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::{Error, NamedVar};
use proptest::prelude::*;

use crate::engine::grouped::GroupedOptimizer;
use crate::engine::path::UpdatePath;
use crate::engine::rule::Rule;
use crate::*;

/// Deterministic values in [-2, 2) from `seed` (a 64-bit LCG; tests only).
fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

fn make_vars(shapes: &[Vec<usize>], dtypes: &[DType], seed: u64) -> Vec<NamedVar> {
    shapes
        .iter()
        .zip(dtypes.iter().cycle())
        .enumerate()
        .map(|(i, (shape, &dtype))| {
            let n = shape.iter().product();
            let t = Tensor::from_vec(values(seed + i as u64, n), shape.as_slice(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            NamedVar::new(format!("p{i}"), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

fn grads_for(vars: &[NamedVar], step: u64, seed: u64) -> GradStore {
    let mut grads = GradStore::default();
    for (i, v) in vars.iter().enumerate() {
        let t = v.var.as_tensor();
        let g = values(seed ^ (step * 7919 + i as u64 * 104729), t.elem_count());
        let g = Tensor::from_vec(g, t.dims(), &Device::Cpu).unwrap();
        grads.insert(t, g.to_dtype(t.dtype()).unwrap());
    }
    grads
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-6,
        _ => 1e-2,
    }
}

fn assert_near(
    a: &[f64],
    b: &[f64],
    tol: f64,
    what: &str,
) -> std::result::Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let ok = x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * y.abs().max(1e-30);
        prop_assert!(ok, "{what}[{i}]: fused {x} vs reference {y}");
    }
    Ok(())
}

/// Runs `steps` steps on two copies of the same parameters, one per path, and compares
/// parameters and every state tensor.
fn compare<R: Rule>(
    cfg: R,
    shapes: &[Vec<usize>],
    dtypes: &[DType],
    seed: u64,
    steps: u64,
    fused_path: UpdatePath,
) -> std::result::Result<(), TestCaseError> {
    let a = make_vars(shapes, dtypes, seed);
    let b = make_vars(shapes, dtypes, seed);
    let mut fused = GroupedOptimizer::from_named(a.clone(), cfg.clone()).unwrap();
    fused.set_update_path(fused_path);
    let mut reference = GroupedOptimizer::from_named(b.clone(), cfg).unwrap();
    reference.set_update_path(UpdatePath::Reference);
    for step in 0..steps {
        fused.apply(&grads_for(&a, step, seed)).unwrap();
        reference.apply(&grads_for(&b, step, seed)).unwrap();
    }
    assert_match(&a, &b, &fused, &reference)
}

/// Parameters `a` (stepped by `fused`) equal `b` (stepped by `reference`) within the dtype's
/// tolerance, and so do the two state dicts, key for key.
fn assert_match<R: Rule>(
    a: &[NamedVar],
    b: &[NamedVar],
    fused: &GroupedOptimizer<R>,
    reference: &GroupedOptimizer<R>,
) -> std::result::Result<(), TestCaseError> {
    for (x, y) in a.iter().zip(b) {
        let tol = tolerance(x.var.dtype());
        assert_near(
            &flat(x.var.as_tensor()),
            &flat(y.var.as_tensor()),
            tol,
            &x.name,
        )?;
    }
    let (sa, sb) = (fused.state_dict().unwrap(), reference.state_dict().unwrap());
    prop_assert_eq!(
        sa.names().collect::<Vec<_>>(),
        sb.names().collect::<Vec<_>>()
    );
    for name in sb.names() {
        let (x, y) = (sa.get(name).unwrap(), sb.get(name).unwrap());
        prop_assert_eq!(x.dims(), y.dims());
        prop_assert_eq!(x.dtype(), y.dtype());
        assert_near(&flat(x), &flat(y), tolerance(y.dtype()).max(1e-12), name)?;
    }
    Ok(())
}

fn shapes() -> impl Strategy<Value = Vec<Vec<usize>>> {
    prop::collection::vec(prop::collection::vec(0usize..6, 0..3), 1..4)
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F64)]
}

fn unit() -> impl Strategy<Value = f64> {
    0.0f64..0.999
}

fn wd() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.0f64..0.2]
}

fn betas() -> impl Strategy<Value = (f64, f64)> {
    (0.0f64..0.99, 0.5f64..0.9999)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sgd(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.5, momentum in prop_oneof![Just(0.0), unit()],
           dampening in prop_oneof![Just(0.0), unit()], weight_decay in wd(), nesterov in any::<bool>(), maximize in any::<bool>()) {
        let nesterov = nesterov && momentum > 0.0;
        let dampening = if nesterov { 0.0 } else { dampening };
        let cfg = SgdConfig { lr, momentum, dampening, weight_decay, nesterov, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adagrad(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.5, lr_decay in 0.0f64..0.1,
               weight_decay in wd(), initial_accumulator_value in 0.0f64..1.0, eps in 1e-10f64..1e-3, maximize in any::<bool>()) {
        let cfg = AdagradConfig { lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn rmsprop(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, alpha in unit(), eps in 1e-8f64..1e-3,
               weight_decay in wd(), momentum in prop_oneof![Just(0.0), unit()], centered in any::<bool>(), maximize in any::<bool>()) {
        let cfg = RmspropConfig { lr, alpha, eps, weight_decay, momentum, centered, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adam(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), eps in 1e-8f64..1e-3,
            weight_decay in wd(), amsgrad in any::<bool>(), maximize in any::<bool>(), decoupled_weight_decay in any::<bool>()) {
        let cfg = AdamConfig { lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adamw(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), eps in 1e-8f64..1e-3,
             weight_decay in wd(), amsgrad in any::<bool>(), maximize in any::<bool>()) {
        let cfg = AdamWConfig { lr, betas, eps, weight_decay, amsgrad, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn nadam(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), eps in 1e-8f64..1e-3,
             weight_decay in wd(), momentum_decay in 0.0f64..0.01, decoupled_weight_decay in any::<bool>(), maximize in any::<bool>()) {
        let cfg = NadamConfig { lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn radam(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, b1 in 0.0f64..0.99, b2 in prop_oneof![0.5f64..0.9, 0.9f64..0.9999],
             eps in 1e-8f64..1e-3, weight_decay in wd(), decoupled_weight_decay in any::<bool>(), maximize in any::<bool>()) {
        // Small β₂ makes ρₜ > 5 early, so both branches of the rectification run.
        let cfg = RadamConfig { lr, betas: (b1, b2), eps, weight_decay, decoupled_weight_decay, maximize };
        compare(cfg, &s, &[d], seed, 8, UpdatePath::Fused)?;
    }

    #[test]
    fn adamax(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), eps in 1e-8f64..1e-3,
              weight_decay in wd(), maximize in any::<bool>()) {
        let cfg = AdamaxConfig { lr, betas, eps, weight_decay, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adadelta(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..2.0, rho in unit(), eps in 1e-8f64..1e-3,
                weight_decay in wd(), maximize in any::<bool>()) {
        let cfg = AdadeltaConfig { lr, rho, eps, weight_decay, maximize };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn lamb(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), eps in 1e-8f64..1e-3,
            weight_decay in wd(), weight_decouple in any::<bool>(), fixed_decay in any::<bool>(), grad_averaging in any::<bool>(),
            adam in any::<bool>(), maximize in any::<bool>()) {
        let cfg = LambConfig { lr, betas, eps, weight_decay, weight_decouple, fixed_decay, grad_averaging, adam, maximize, ..LambConfig::default() };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn lars(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.5, momentum in prop_oneof![Just(0.0), unit()],
            dampening in prop_oneof![Just(0.0), unit()], weight_decay in wd(), trust_coefficient in 1e-3f64..1.0,
            nesterov in any::<bool>(), maximize in any::<bool>()) {
        let cfg = LarsConfig { lr, momentum, dampening, weight_decay, trust_coefficient, nesterov, maximize, ..LarsConfig::default() };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adan(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, b in (0.5f64..0.99, 0.5f64..0.99, 0.5f64..0.999),
            eps in 1e-8f64..1e-3, weight_decay in wd(), weight_decouple in any::<bool>(), maximize in any::<bool>()) {
        let cfg = AdanConfig { lr, betas: b, eps, weight_decay, weight_decouple, maximize, ..AdanConfig::default() };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adopt(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), eps in 1e-8f64..1e-3,
             weight_decay in wd(), weight_decouple in any::<bool>(), fixed_decay in any::<bool>(), maximize in any::<bool>()) {
        let cfg = AdoptConfig { lr, betas, eps, weight_decay, weight_decouple, fixed_decay, maximize, ..AdoptConfig::default() };
        compare(cfg, &s, &[d], seed, 4, UpdatePath::Fused)?;
    }

    #[test]
    fn ademamix(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, b in (0.5f64..0.99, 0.5f64..0.999, 0.9f64..0.9999),
                alpha in 0.0f64..10.0, t in prop_oneof![Just(None), (1.0f64..10.0).prop_map(Some)], eps in 1e-8f64..1e-3,
                weight_decay in wd(), weight_decouple in any::<bool>(), maximize in any::<bool>()) {
        let cfg = AdemamixConfig { lr, betas: b, alpha, t_alpha_beta3: t, eps, weight_decay, weight_decouple, maximize, ..AdemamixConfig::default() };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    #[test]
    fn adabelief(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, b1 in 0.0f64..0.99, b2 in prop_oneof![0.5f64..0.9, 0.9f64..0.9999],
                 eps in 1e-16f64..1e-3, weight_decay in wd(), weight_decouple in any::<bool>(), rectify in any::<bool>(),
                 degenerated_to_sgd in any::<bool>(), ams_bound in any::<bool>(), maximize in any::<bool>()) {
        let cfg = AdabeliefConfig { lr, betas: (b1, b2), eps, weight_decay, weight_decouple, rectify, degenerated_to_sgd, ams_bound, maximize, ..AdabeliefConfig::default() };
        compare(cfg, &s, &[d], seed, 8, UpdatePath::Fused)?;
    }

    #[test]
    fn lion(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..0.1, betas in betas(), weight_decay in wd(),
            weight_decouple in any::<bool>(), fixed_decay in any::<bool>(), maximize in any::<bool>()) {
        let cfg = LionConfig { lr, betas, weight_decay, weight_decouple, fixed_decay, maximize, ..LionConfig::default() };
        compare(cfg, &s, &[d], seed, 3, UpdatePath::Fused)?;
    }

    /// Prodigy's group-level two-pass step: both paths, every option, several tensors per group.
    #[test]
    fn prodigy(s in shapes(), d in dtype(), seed in any::<u64>(), lr in 0.0f64..2.0, betas in betas(),
               beta3 in prop_oneof![Just(None), unit().prop_map(Some)], d_coef in 0.1f64..2.0,
               growth_rate in prop_oneof![Just(None), (1.0f64..2.0).prop_map(Some)], weight_decay in wd(),
               fixed_decay in any::<bool>(), bias_correction in any::<bool>(), safeguard_warmup in any::<bool>(),
               maximize in any::<bool>()) {
        let cfg = ProdigyConfig { lr, betas, beta3, d_coef, growth_rate, weight_decay, fixed_decay, bias_correction,
                                  safeguard_warmup, maximize, ..ProdigyConfig::default() };
        compare(cfg, &s, &[d], seed, 4, UpdatePath::Fused)?;
    }

    /// A Prodigy group with f32, f16 and f64 parameters: auto runs the fused passes on f32 and
    /// f64 and the reference passes on f16, all adding to one group estimate.
    #[test]
    fn prodigy_mixed_paths_in_one_group(s in shapes(), seed in any::<u64>()) {
        let cfg = ProdigyConfig { weight_decay: 0.01, ..ProdigyConfig::default() };
        compare(cfg, &s, &[DType::F32, DType::F16, DType::F64], seed, 4, UpdatePath::Auto)?;
    }

    /// f32, f64 and f16 parameters in one list: auto runs the fused kernel on the first two and
    /// the reference path on f16, and matches an all-reference run.
    #[test]
    fn mixed_eligible_and_ineligible(s in shapes(), seed in any::<u64>(), amsgrad in any::<bool>()) {
        let cfg = AdamConfig { lr: 0.01, amsgrad, weight_decay: 0.01, ..AdamConfig::default() };
        compare(cfg, &s, &[DType::F32, DType::F16, DType::F64], seed, 3, UpdatePath::Auto)?;
    }
}

/// Tensors larger than one chunk are split over threads: the split must not change a value.
#[test]
fn multi_chunk_tensors_match() {
    let shapes = [vec![100_003], vec![3, 50_000]];
    for d in [DType::F32, DType::F64] {
        compare(
            AdamWConfig::default(),
            &shapes,
            &[d],
            7,
            2,
            UpdatePath::Fused,
        )
        .unwrap();
        let sgd = SgdConfig {
            momentum: 0.9,
            nesterov: true,
            ..SgdConfig::default()
        };
        compare(sgd, &shapes, &[d], 8, 2, UpdatePath::Fused).unwrap();
    }
}

/// The reducing kernels (LAMB's and LARS's trust ratios, Prodigy's group sums) over tensors of
/// many chunks: the partial sums reduced on rayon's pool give the reference path's sums up to
/// summation order, so parameters agree to rounding (compared absolutely: θ − r·u cancels near
/// zero).
#[test]
fn reducing_kernels_over_many_chunks_match() {
    fn close<R: Rule>(cfg: R, seed: u64) {
        let shapes = [vec![100_003], vec![3, 50_000]];
        for d in [DType::F32, DType::F64] {
            let (a, b) = (
                make_vars(&shapes, &[d], seed),
                make_vars(&shapes, &[d], seed),
            );
            let mut fused = GroupedOptimizer::from_named(a.clone(), cfg.clone()).unwrap();
            fused.set_update_path(UpdatePath::Fused);
            let mut reference = GroupedOptimizer::from_named(b.clone(), cfg.clone()).unwrap();
            reference.set_update_path(UpdatePath::Reference);
            for step in 0..3 {
                fused.apply(&grads_for(&a, step, seed)).unwrap();
                reference.apply(&grads_for(&b, step, seed)).unwrap();
            }
            let tol = if d == DType::F64 { 1e-13 } else { 1e-5 };
            for (x, y) in a.iter().zip(&b) {
                for (u, v) in flat(x.var.as_tensor()).iter().zip(flat(y.var.as_tensor())) {
                    assert!((u - v).abs() <= tol, "{} {d:?}: {u} vs {v}", x.name);
                }
            }
        }
    }
    close(
        LambConfig {
            lr: 0.01,
            weight_decay: 0.01,
            ..LambConfig::default()
        },
        9,
    );
    close(
        LarsConfig {
            lr: 0.1,
            weight_decay: 0.01,
            nesterov: true,
            ..LarsConfig::default()
        },
        10,
    );
    close(
        ProdigyConfig {
            weight_decay: 0.01,
            ..ProdigyConfig::default()
        },
        11,
    );
}

/// A step of many small tensors (over the serial threshold in all) runs them in parallel, each
/// readying its own buffers there; every kernel's specialized loops (maximize, weight decay)
/// must still match the reference path.
#[test]
fn many_small_tensors_in_parallel_match() {
    let shapes: Vec<Vec<usize>> = (0..40).map(|i| vec![1_700 + 97 * (i % 5)]).collect();
    let d = [DType::F32, DType::F64];
    for maximize in [false, true] {
        let wd = 0.01;
        let sgd = SgdConfig {
            weight_decay: wd,
            maximize,
            ..SgdConfig::default()
        };
        compare(sgd, &shapes, &d, 1, 2, UpdatePath::Fused).unwrap();
        let adagrad = AdagradConfig {
            weight_decay: wd,
            maximize,
            ..AdagradConfig::default()
        };
        compare(adagrad, &shapes, &d, 2, 2, UpdatePath::Fused).unwrap();
        let rmsprop = RmspropConfig {
            weight_decay: wd,
            maximize,
            centered: true,
            momentum: 0.5,
            ..RmspropConfig::default()
        };
        compare(rmsprop, &shapes, &d, 3, 2, UpdatePath::Fused).unwrap();
        let adam = AdamConfig {
            weight_decay: wd,
            maximize,
            amsgrad: true,
            ..AdamConfig::default()
        };
        compare(adam, &shapes, &d, 4, 2, UpdatePath::Fused).unwrap();
        let adamw = AdamWConfig {
            maximize,
            ..AdamWConfig::default()
        };
        compare(adamw, &shapes, &d, 5, 2, UpdatePath::Fused).unwrap();
        let nadam = NadamConfig {
            weight_decay: wd,
            maximize,
            ..NadamConfig::default()
        };
        compare(nadam, &shapes, &d, 6, 2, UpdatePath::Fused).unwrap();
        let radam = RadamConfig {
            weight_decay: wd,
            maximize,
            decoupled_weight_decay: true,
            ..RadamConfig::default()
        };
        compare(radam, &shapes, &d, 7, 7, UpdatePath::Fused).unwrap();
        let adamax = AdamaxConfig {
            weight_decay: wd,
            maximize,
            ..AdamaxConfig::default()
        };
        compare(adamax, &shapes, &d, 8, 2, UpdatePath::Fused).unwrap();
        let adadelta = AdadeltaConfig {
            weight_decay: wd,
            maximize,
            ..AdadeltaConfig::default()
        };
        compare(adadelta, &shapes, &d, 9, 2, UpdatePath::Fused).unwrap();
    }
}

/// A parallel step (over 64 Ki elements, several batches of parameters) mixing fused (f32,
/// f64) and reference-path (f16) parameters, with some gradients missing in some steps, leaves
/// every parameter and state buffer as the reference path alone does, step counts included.
#[test]
fn parallel_batches_mix_paths_and_skip_missing_gradients() {
    let shapes: Vec<Vec<usize>> = (0..45).map(|i| vec![1_700 + 31 * (i % 3)]).collect();
    let dtypes = [DType::F32, DType::F16, DType::F64];
    let cfg = AdamConfig {
        amsgrad: true,
        weight_decay: 0.01,
        ..AdamConfig::default()
    };
    let (a, b) = (
        make_vars(&shapes, &dtypes, 11),
        make_vars(&shapes, &dtypes, 11),
    );
    let mut auto = GroupedOptimizer::from_named(a.clone(), cfg.clone()).unwrap();
    auto.set_update_path(UpdatePath::Auto);
    let mut reference = GroupedOptimizer::from_named(b.clone(), cfg).unwrap();
    reference.set_update_path(UpdatePath::Reference);
    for step in 0..4u64 {
        let without = |vars: &[NamedVar]| {
            let mut grads = grads_for(vars, step, 11);
            for (i, v) in vars.iter().enumerate() {
                if (i as u64 + step) % 7 == 3 {
                    grads.remove(v.var.as_tensor());
                }
            }
            grads
        };
        auto.apply(&without(&a)).unwrap();
        reference.apply(&without(&b)).unwrap();
    }
    assert_match(&a, &b, &auto, &reference).unwrap();
    let sa = auto.state_dict().unwrap();
    // Parameter 3 had no gradient in step 0, parameter 2 none in step 1: 3 steps each.
    for p in ["p2", "p3"] {
        let steps = sa.get(&format!("{p}.step")).unwrap();
        assert_eq!(steps.to_scalar::<f64>().unwrap(), 3.0, "{p}");
    }
}

/// The specialized kernels are bit-identical to the reference path (`x · 1 = x`,
/// `x · -1 = -x`), checked on a parallel step with weight decay and `maximize`.
#[test]
fn specialized_kernels_are_bit_identical() {
    fn exact<R: Rule>(cfg: R, seed: u64) {
        let shapes: Vec<Vec<usize>> = (0..40).map(|_| vec![1_700]).collect();
        let (a, b) = (
            make_vars(&shapes, &[DType::F32], seed),
            make_vars(&shapes, &[DType::F32], seed),
        );
        let mut fused = GroupedOptimizer::from_named(a.clone(), cfg.clone()).unwrap();
        fused.set_update_path(UpdatePath::Fused);
        let mut reference = GroupedOptimizer::from_named(b.clone(), cfg).unwrap();
        reference.set_update_path(UpdatePath::Reference);
        for step in 0..2 {
            fused.apply(&grads_for(&a, step, seed)).unwrap();
            reference.apply(&grads_for(&b, step, seed)).unwrap();
        }
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                flat(x.var.as_tensor()),
                flat(y.var.as_tensor()),
                "{}",
                x.name
            );
        }
    }
    for maximize in [false, true] {
        let wd = 0.01;
        exact(
            AdamConfig {
                weight_decay: wd,
                maximize,
                ..AdamConfig::default()
            },
            1,
        );
        exact(
            AdamaxConfig {
                weight_decay: wd,
                maximize,
                ..AdamaxConfig::default()
            },
            2,
        );
        exact(
            AdagradConfig {
                weight_decay: wd,
                maximize,
                ..AdagradConfig::default()
            },
            3,
        );
        exact(
            RmspropConfig {
                weight_decay: wd,
                maximize,
                ..RmspropConfig::default()
            },
            4,
        );
        exact(
            AdadeltaConfig {
                weight_decay: wd,
                maximize,
                ..AdadeltaConfig::default()
            },
            5,
        );
        exact(
            NadamConfig {
                weight_decay: wd,
                maximize,
                ..NadamConfig::default()
            },
            6,
        );
        exact(
            RadamConfig {
                weight_decay: wd,
                maximize,
                ..RadamConfig::default()
            },
            7,
        );
        exact(
            SgdConfig {
                weight_decay: wd,
                maximize,
                ..SgdConfig::default()
            },
            8,
        );
    }
}

/// Two steps fused, a checkpoint, two steps on the reference path (and the other way round)
/// equal four steps on one path.
#[test]
fn state_moves_between_paths_through_a_checkpoint() {
    let shapes = [vec![4, 3], vec![], vec![0, 2]];
    let cfg = NadamConfig {
        weight_decay: 0.1,
        ..NadamConfig::default()
    };
    for (first, second) in [
        (UpdatePath::Fused, UpdatePath::Reference),
        (UpdatePath::Reference, UpdatePath::Fused),
    ] {
        let a = make_vars(&shapes, &[DType::F64], 3);
        let b = make_vars(&shapes, &[DType::F64], 3);
        let mut straight = GroupedOptimizer::from_named(a.clone(), cfg.clone()).unwrap();
        straight.set_update_path(UpdatePath::Reference);
        let mut one = GroupedOptimizer::from_named(b.clone(), cfg.clone()).unwrap();
        one.set_update_path(first);
        for step in 0..2 {
            straight.apply(&grads_for(&a, step, 3)).unwrap();
            one.apply(&grads_for(&b, step, 3)).unwrap();
        }
        let mut two = GroupedOptimizer::from_named(b.clone(), cfg.clone()).unwrap();
        two.set_update_path(second);
        two.load_state_dict(&one.state_dict().unwrap()).unwrap();
        for step in 2..4 {
            straight.apply(&grads_for(&a, step, 3)).unwrap();
            two.apply(&grads_for(&b, step, 3)).unwrap();
        }
        for (x, y) in a.iter().zip(&b) {
            assert_near(
                &flat(x.var.as_tensor()),
                &flat(y.var.as_tensor()),
                1e-12,
                &x.name,
            )
            .unwrap();
        }
        // Switching path on the same optimizer mid-run also keeps the state.
        one.set_update_path(second);
        one.apply(&grads_for(&b, 9, 3)).unwrap();
        assert_eq!(one.param_state("p0").unwrap().step, 3);
        assert_eq!(one.param_state("p0").unwrap().buffers.len(), 2);
    }
}

#[test]
fn forcing_the_fused_path_on_an_ineligible_parameter_is_an_error_before_any_update() {
    let vars = make_vars(&[vec![3], vec![2]], &[DType::F32, DType::F16], 1);
    let before: Vec<Vec<f64>> = vars.iter().map(|v| flat(v.var.as_tensor())).collect();
    // Every CPU float parameter is eligible; an f16 one whose state is kept in f16 is not for
    // LAMB, whose kernel reduces over the state before it applies.
    let mut opt = crate::Lamb::from_named(vars.clone(), crate::LambConfig::default()).unwrap();
    let precision = crate::Precision {
        state_dtype: crate::StateDtype::Param,
        ..Default::default()
    };
    opt.set_precision(precision).unwrap();
    opt.set_update_path(UpdatePath::Fused);
    let err = opt.apply(&grads_for(&vars, 0, 1)).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(
        err.to_string().contains("`p1`") && err.to_string().contains("state_dtype"),
        "{err}"
    );
    let after: Vec<Vec<f64>> = vars.iter().map(|v| flat(v.var.as_tensor())).collect();
    assert_eq!(before, after);
    assert_eq!(opt.param_state("p0").unwrap().step, 0);
}
