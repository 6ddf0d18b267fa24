//! The sparsity claim, measured: on a linear regression where only a few features matter, L1
//! drives the irrelevant weights to (near) zero, exactly zero with the proximal step, while L2
//! of the same strength only shrinks them.
//!
//! Setup: n = 200 samples, d = 40 standard-normal features, the first 5 informative
//! (true weights +-2 and +-1.5), noise sigma 0.5; loss = 0.5 * mean((X w - y)^2) + penalty;
//! plain full-batch gradient descent written here with Candle's backprop, lr = 0.1, 600 steps,
//! lambda = 0.05 for every penalty.

use candle_core::{DType, Device, Tensor, Var};
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{NamedVar, SeededRng};
use gradus_regularize::{L1Config, L2Config, L1, L2};

const N: usize = 200;
const D: usize = 40;
const INFORMATIVE: usize = 5;
const LR: f64 = 0.1;
const STEPS: usize = 600;
const LAMBDA: f64 = 0.05;
/// "Near zero": well below the typical size of a least-squares weight fitted on noise
/// (sigma / sqrt(n) = 0.035).
const NEAR: f64 = 1e-2;

fn data() -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(2024);
    let x = rng
        .normal_tensor(&[N, D], 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let mut w_true = vec![0.0f64; D];
    w_true[..INFORMATIVE].copy_from_slice(&[2.0, -2.0, 1.5, -1.5, 1.0]);
    let w_true = Tensor::from_vec(w_true, (D, 1), &Device::Cpu).unwrap();
    let noise = rng
        .normal_tensor(&[N, 1], 0.0, 0.5, DType::F64, &Device::Cpu)
        .unwrap();
    let y = (x.matmul(&w_true).unwrap() + noise).unwrap();
    (x, y)
}

/// Trains from zero and returns the final weights.
fn train(reg: &mut dyn Regularizer) -> Vec<f64> {
    let (x, y) = data();
    let w = Var::zeros((1, D), DType::F64, &Device::Cpu).unwrap();
    let params = [NamedVar::new("fc.weight", w.clone())];
    for _ in 0..STEPS {
        let residual = (x.matmul(&w.as_tensor().t().unwrap()).unwrap() - &y).unwrap();
        let mut loss = (residual.sqr().unwrap().mean_all().unwrap() * 0.5).unwrap();
        if let Some(penalty) = reg.penalty(&params).unwrap() {
            loss = (loss + penalty).unwrap();
        }
        let grads = loss.backward().unwrap();
        let g = grads.get(w.as_tensor()).unwrap();
        let next = (w.as_tensor() - (g * LR).unwrap()).unwrap().detach();
        w.set(&next).unwrap();
        reg.after_step(&params, LR).unwrap();
    }
    w.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

struct Counts {
    near_zero: usize,
    exact_zero: usize,
    informative_min: f64,
}

fn counts(w: &[f64]) -> Counts {
    let irrelevant = &w[INFORMATIVE..];
    Counts {
        near_zero: irrelevant.iter().filter(|v| v.abs() < NEAR).count(),
        exact_zero: irrelevant.iter().filter(|v| **v == 0.0).count(),
        informative_min: w[..INFORMATIVE]
            .iter()
            .map(|v| v.abs())
            .fold(f64::INFINITY, f64::min),
    }
}

#[test]
fn l1_makes_irrelevant_weights_sparse_where_l2_does_not() {
    let l1 = |proximal| {
        let config = L1Config {
            lambda: LAMBDA,
            proximal,
            ..L1Config::default()
        };
        L1::new(config, "l1").unwrap()
    };
    let sub = counts(&train(&mut l1(false)));
    let prox = counts(&train(&mut l1(true)));
    let l2 = counts(&train(
        &mut L2::new(
            L2Config {
                lambda: LAMBDA,
                ..L2Config::default()
            },
            "l2",
        )
        .unwrap(),
    ));
    let irrelevant = D - INFORMATIVE;
    eprintln!(
        "of {irrelevant} irrelevant weights, near zero (<{NEAR}) / exactly zero: \
         L1 subgradient {}/{}, L1 proximal {}/{}, L2 {}/{}; smallest informative |w|: {:.3} {:.3} {:.3}",
        sub.near_zero, sub.exact_zero, prox.near_zero, prox.exact_zero, l2.near_zero, l2.exact_zero,
        sub.informative_min, prox.informative_min, l2.informative_min
    );
    // Every method keeps the informative features clearly non-zero.
    for c in [&sub, &prox, &l2] {
        assert!(c.informative_min > 0.5, "an informative weight was lost");
    }
    // L1 (subgradient): most irrelevant weights hover near zero, but the subgradient does not
    // land on exact zeros.
    assert!(
        sub.near_zero >= irrelevant * 3 / 4,
        "L1 near zero: {}",
        sub.near_zero
    );
    // L1 proximal: most irrelevant weights are exactly zero.
    assert!(
        prox.exact_zero >= irrelevant * 3 / 4,
        "proximal exact zeros: {}",
        prox.exact_zero
    );
    assert!(sub.exact_zero < prox.exact_zero);
    // L2 of the same strength: no exact zeros, and far fewer near zero than either L1.
    assert_eq!(l2.exact_zero, 0);
    assert!(
        l2.near_zero * 3 <= sub.near_zero,
        "L2 near zero: {}",
        l2.near_zero
    );
}
