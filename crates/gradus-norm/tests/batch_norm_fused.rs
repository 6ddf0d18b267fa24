//! The fused CPU batch norm (`BatchNormPath::Auto` on contiguous f32 / f64 CPU tensors) against
//! the Candle-op reference path (`BatchNormPath::Reference`): output, input / weight / bias
//! gradients and running statistics, in training and then in evaluation mode, on random shapes
//! of rank 2 to 4; and its results do not depend on the number of threads.
//!
//! Tolerance: `|fused - reference| <= tol * max(1, max |reference|)` per tensor, `tol = 1e-12`
//! in f64 and `1e-4` in f32. The f32 bound is the Candle path's own error: its f32 sums drift
//! from the f64 result by up to ~2e-5 on these draws (two samples per channel, a small spread),
//! while the fused path's f64 sums stay within `1e-6` of it (checked below).

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gradus_core::SeededRng;
use gradus_norm::{BatchNorm, BatchNormConfig, BatchNormPath};
use proptest::prelude::*;

/// Everything one training step and one evaluation step produce.
#[derive(Debug)]
struct Outcome {
    tensors: Vec<(&'static str, Vec<f64>)>,
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    shape: Vec<usize>,
    dtype: DType,
    config: BatchNormConfig,
    seed: u64,
    scale: f64,
}

/// A layer with random `weight` / `bias` (when affine), then `sum(y * r)`'s gradients of a
/// training step and of an evaluation step, and the running statistics between them.
fn run(case: &Case, path: BatchNormPath) -> Outcome {
    run_in(case, path, case.dtype)
}

/// [`run`] with the random tensors drawn in `case.dtype` and computed in `compute`.
fn run_in(case: &Case, path: BatchNormPath, compute: DType) -> Outcome {
    let dev = Device::Cpu;
    let c = case.shape[1];
    let mut rng = SeededRng::new(case.seed);
    let mut vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, compute, &dev);
    let bn = BatchNorm::new(c, case.config.clone(), vb).unwrap();
    let draw = |rng: &mut SeededRng, shape: &[usize], mean: f64, std: f64| {
        rng.normal_tensor(shape, mean, std, case.dtype, &dev)
            .unwrap()
            .to_dtype(compute)
            .unwrap()
    };
    if case.config.affine {
        let w = draw(&mut rng, &[c], 1.0, 0.5);
        let b = draw(&mut rng, &[c], 0.0, 0.5);
        vars.set_one("weight", w).unwrap();
        vars.set_one("bias", b).unwrap();
    }
    let mut tensors = Vec::new();
    for (train, tag) in [(true, "train"), (false, "eval")] {
        let x = Var::from_tensor(&draw(&mut rng, &case.shape, 3.0, case.scale)).unwrap();
        let r = draw(&mut rng, &case.shape, 0.0, 1.0);
        let y = bn.forward_path(x.as_tensor(), train, path).unwrap();
        assert_eq!(y.dims(), case.shape.as_slice());
        assert_eq!(y.dtype(), compute);
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        tensors.push((tag, values(&y)));
        tensors.push(("grad x", values(grads.get(x.as_tensor()).unwrap())));
        if let (Some(w), Some(b)) = (bn.weight(), bn.bias()) {
            tensors.push(("grad weight", values(grads.get(w).unwrap())));
            tensors.push(("grad bias", values(grads.get(b).unwrap())));
        }
        if let Some((mean, var)) = bn.running_stats().unwrap() {
            tensors.push(("running_mean", values(&mean)));
            tensors.push(("running_var", values(&var)));
        }
    }
    Outcome { tensors }
}

/// The largest `|a - b| / max(1, max |b|)` over every tensor.
fn worst(fused: &Outcome, reference: &Outcome) -> f64 {
    assert_eq!(fused.tensors.len(), reference.tensors.len());
    let mut worst = 0f64;
    for ((what, a), (_, b)) in fused.tensors.iter().zip(&reference.tensors) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (p, q) in a.iter().zip(b) {
            assert!(p.is_finite() && q.is_finite(), "{what}: {p} vs {q}");
            worst = worst.max((p - q).abs() / scale);
        }
    }
    worst
}

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-4,
        _ => 1e-12,
    }
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..6, 0..3),
        2usize..9,
        1usize..5,
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(Some(0.1)), Just(None), Just(Some(1.0))],
        any::<bool>(),
        0.5f64..20.0,
        any::<u64>(),
    )
        .prop_map(
            |(spatial, n, c, f64_, affine, momentum, track, scale, seed)| {
                let mut shape = vec![n, c];
                shape.extend(spatial);
                Case {
                    shape,
                    dtype: if f64_ { DType::F64 } else { DType::F32 },
                    config: BatchNormConfig {
                        affine,
                        momentum,
                        track_running_stats: track,
                        ..Default::default()
                    },
                    seed,
                    scale,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fused_path_matches_the_candle_op_path(case in case_strategy()) {
        let fused = run(&case, BatchNormPath::Auto);
        let reference = run(&case, BatchNormPath::Reference);
        let worst = worst(&fused, &reference);
        prop_assert!(worst <= tolerance(case.dtype), "{:?}: worst {:e}", case, worst);
    }

    /// In f32, with a spread down to 1/30 of the mean (where the Candle path's f32 sums lose
    /// digits), the fused path is within `1e-6` of the same computation in f64, and at least as
    /// close to it as the Candle path.
    #[test]
    fn fused_f32_is_as_accurate_as_the_candle_op_path(case in case_strategy(), scale in 0.1f64..20.0) {
        let case = Case { dtype: DType::F32, scale, ..case };
        let exact = run_in(&case, BatchNormPath::Reference, DType::F64);
        let fused = worst(&run(&case, BatchNormPath::Auto), &exact);
        let reference = worst(&run(&case, BatchNormPath::Reference), &exact);
        prop_assert!(fused <= 1e-6, "{:?}: fused {:e} from f64", case, fused);
        prop_assert!(fused <= reference.max(1e-6), "{:?}: fused {:e}, candle ops {:e}", case, fused, reference);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // 16 * 16 * 64 * 64 = 2^20 elements: the kernels split over the pool.
    let case = Case {
        shape: vec![16, 16, 64, 64],
        dtype: DType::F32,
        config: BatchNormConfig::default(),
        seed: 7,
        scale: 2.0,
    };
    let in_pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run(&case, BatchNormPath::Auto))
    };
    let one = in_pool(1);
    let four = in_pool(4);
    for ((what, a), (_, b)) in one.tensors.iter().zip(&four.tensors) {
        assert_eq!(a, b, "{what}");
    }
    assert!(worst(&one, &run(&case, BatchNormPath::Reference)) <= tolerance(DType::F32));
}

#[test]
fn a_transposed_input_takes_the_fused_path_and_agrees() {
    let dev = Device::Cpu;
    let base = Tensor::arange(0f64, 12.0, &dev)
        .unwrap()
        .reshape((3, 4))
        .unwrap();
    let x = base.t().unwrap(); // (4, 3), not contiguous
    assert!(!x.is_contiguous());
    let config = BatchNormConfig {
        affine: false,
        ..Default::default()
    };
    let bn = BatchNorm::new(3, config, VarBuilder::zeros(DType::F64, &dev)).unwrap();
    let fused = values(&bn.forward_t(&x, true).unwrap());
    let reference = values(&bn.forward_path(&x, true, BatchNormPath::Reference).unwrap());
    assert_eq!(fused.len(), 12);
    for (p, q) in fused.iter().zip(&reference) {
        assert!((p - q).abs() <= 1e-12, "{p} vs {q}");
    }
}
