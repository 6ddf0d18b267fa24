//! Activations against PyTorch's formulas, evaluated independently (plain f64 math, and
//! `math.erf` of Python for the GELU values).

use super::*;
use crate::testing::{assert_close, fctx};
use candle_core::{Device, Var};
use proptest::prelude::*;

const XS: [f64; 6] = [-3.0, -0.5, -1e-3, 0.25, 1.0, 4.0];

fn eval(f: ActivationFn, xs: &[f64]) -> Vec<f64> {
    let x = Tensor::from_slice(xs, xs.len(), &Device::Cpu).unwrap();
    f.apply(&x).unwrap().to_vec1::<f64>().unwrap()
}

fn check(f: ActivationFn, reference: impl Fn(f64) -> f64) {
    for (x, y) in XS.iter().zip(eval(f, &XS)) {
        assert_close(y, reference(*x), 1e-12);
    }
}

#[test]
fn closed_forms_match() {
    check(ActivationFn::Relu, |x| x.max(0.0));
    check(
        ActivationFn::LeakyRelu {
            negative_slope: 0.01,
        },
        |x| if x > 0.0 { x } else { 0.01 * x },
    );
    check(
        ActivationFn::LeakyRelu {
            negative_slope: 2.0,
        },
        |x| if x > 0.0 { x } else { 2.0 * x },
    );
    check(ActivationFn::Elu { alpha: 0.7 }, |x| {
        if x > 0.0 {
            x
        } else {
            0.7 * x.exp_m1()
        }
    });
    check(ActivationFn::Tanh, f64::tanh);
    check(ActivationFn::Sigmoid, |x| 1.0 / (1.0 + (-x).exp()));
    check(ActivationFn::GeluTanh, |x| {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
    });
}

#[test]
fn selu_uses_pytorch_constants() {
    // scale * alpha * (e^-1 - 1) and scale * 2, computed in Python.
    let y = eval(ActivationFn::Selu, &[-1.0, 2.0]);
    assert_close(y[0], -1.1113307378125625, 1e-14);
    assert_close(y[1], 2.101401974710961, 1e-14);
}

#[test]
fn gelu_erf_and_tanh_differ_as_pytorch() {
    // 0.5 x (1 + math.erf(x / sqrt 2)) and the tanh form, from Python's math module.
    let xs = [-2.0, -0.5, 1.0, 3.0];
    let erf = [
        -0.04550026389635842,
        -0.15426876936299344,
        0.8413447460685429,
        2.99595030590511,
    ];
    let tanh = [
        -0.04540230591222494,
        -0.15428599017485606,
        0.8411919906082768,
        2.996362607918227,
    ];
    for (y, e) in eval(ActivationFn::GeluErf, &xs).iter().zip(erf) {
        assert_close(*y, e, 1e-14);
    }
    for (y, e) in eval(ActivationFn::GeluTanh, &xs).iter().zip(tanh) {
        assert_close(*y, e, 1e-12);
    }
}

#[test]
fn softplus_threshold_switches_to_identity() {
    let f = ActivationFn::Softplus {
        beta: 2.0,
        threshold: 20.0,
    };
    // log1p(exp(2 x)) / 2 at x = -1.5 and x = 10 (beta x = 20 is not above the threshold).
    let y = eval(f, &[-1.5, 10.0, 10.5, -400.0]);
    assert_close(y[0], 0.02429367578687103, 1e-13);
    assert_close(y[1], 10.000000001030577, 1e-13);
    assert_eq!(y[2], 10.5);
    assert!(y[3] >= 0.0 && y[3] < 1e-300);
    let d = eval(
        ActivationFn::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        &[1.0],
    );
    assert_close(d[0], 1.3132616875182228, 1e-14);
}

#[test]
fn gradients_flow_through_every_activation() {
    let all = [
        ActivationFn::Relu,
        ActivationFn::LeakyRelu {
            negative_slope: 0.01,
        },
        ActivationFn::Elu { alpha: 1.0 },
        ActivationFn::Selu,
        ActivationFn::GeluErf,
        ActivationFn::GeluTanh,
        ActivationFn::Tanh,
        ActivationFn::Sigmoid,
        ActivationFn::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
    ];
    for f in all {
        let x = Var::from_slice(&[-0.7f64, 0.3, 1.2], 3, &Device::Cpu).unwrap();
        let mut layer = Activation::new(f, &[3]);
        let y = layer.forward(x.as_tensor(), &mut fctx(true)).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        // Every one of them is increasing on x > 0 with slope near 1 at 1.2 (sigmoid/tanh less).
        assert!(g[2] > 0.0, "{f:?}: {g:?}");
        // Compare with a central finite difference.
        let h = 1e-6;
        for (i, x0) in [-0.7f64, 0.3, 1.2].iter().enumerate() {
            let fd = (eval(f, &[x0 + h])[0] - eval(f, &[x0 - h])[0]) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-4, "{f:?} at {x0}: {fd} vs {}", g[i]);
        }
    }
}

#[test]
fn configs_are_strict() {
    let err = gradus_core::config::parse_config::<GeluConfig>(
        &serde_json::json!({"approximate": "erf"}),
        "m[1]",
    )
    .unwrap_err();
    assert!(err.to_string().contains("m[1].approximate"), "{err}");
    let err = gradus_core::config::parse_config::<LeakyReluConfig>(
        &serde_json::json!({"negative_slop": 0.1}),
        "m[1]",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `negative_slope`?"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn shape_preserved_and_relu_non_negative(xs in proptest::collection::vec(-50.0f64..50.0, 1..20)) {
        for y in eval(ActivationFn::Relu, &xs) { prop_assert!(y >= 0.0); }
        for (x, y) in xs.iter().zip(eval(ActivationFn::Softplus { beta: 1.0, threshold: 20.0 }, &xs)) {
            prop_assert!(y >= x.max(0.0) - 1e-12 && y.is_finite());
        }
    }
}
