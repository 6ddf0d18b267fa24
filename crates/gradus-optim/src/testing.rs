//! Shared strategies and helpers for the optimizer property tests.

use candle_core::{Device, Var};
use gradus_core::NamedVar;
use proptest::prelude::*;

use crate::clip::NormType;
use crate::engine::grouped::GroupedOptimizer;
use crate::engine::rule::Rule;

/// A norm order: infinity, 2, 1, or any p in [0.5, 4).
pub fn norm_strategy() -> impl Strategy<Value = NormType> {
    prop_oneof![
        Just(NormType::Inf),
        Just(NormType::P(2.0)),
        Just(NormType::P(1.0)),
        (0.5f64..4.0).prop_map(NormType::P)
    ]
}

/// One or two small f64 parameter vectors with moderate values.
pub fn small_params() -> impl Strategy<Value = Vec<Vec<f64>>> {
    prop::collection::vec(prop::collection::vec(-3.0f64..3.0, 1..6), 1..3)
}

/// Runs `steps` updates on the loss Σθ² (gradient 2θ); returns all values before and after.
pub fn run_steps<R: Rule>(cfg: R, params: &[Vec<f64>], steps: usize) -> (Vec<f64>, Vec<f64>) {
    let vars: Vec<Var> = params
        .iter()
        .map(|p| Var::new(p.as_slice(), &Device::Cpu).unwrap())
        .collect();
    let named = vars
        .iter()
        .enumerate()
        .map(|(i, v)| NamedVar::new(format!("p{i}"), v.clone()))
        .collect();
    let mut opt = GroupedOptimizer::from_named(named, cfg).unwrap();
    for _ in 0..steps {
        let mut loss = vars[0].as_tensor().sqr().unwrap().sum_all().unwrap();
        for v in &vars[1..] {
            loss = (loss + v.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        opt.apply(&loss.backward().unwrap()).unwrap();
    }
    let after = vars
        .iter()
        .flat_map(|v| v.as_tensor().to_vec1::<f64>().unwrap())
        .collect();
    (params.concat(), after)
}

/// Runs `steps` updates with the constant gradient `grad` for every coordinate.
pub fn run_steps_with_grad<R: Rule>(
    cfg: R,
    params: &[Vec<f64>],
    steps: usize,
    grad: f64,
) -> (Vec<f64>, Vec<f64>) {
    let vars: Vec<Var> = params
        .iter()
        .map(|p| Var::new(p.as_slice(), &Device::Cpu).unwrap())
        .collect();
    let named = vars
        .iter()
        .enumerate()
        .map(|(i, v)| NamedVar::new(format!("p{i}"), v.clone()))
        .collect();
    let mut opt = GroupedOptimizer::from_named(named, cfg).unwrap();
    for _ in 0..steps {
        let mut grads = candle_core::backprop::GradStore::default();
        for v in &vars {
            grads.insert(
                v.as_tensor(),
                (v.as_tensor().zeros_like().unwrap() + grad).unwrap(),
            );
        }
        opt.apply(&grads).unwrap();
    }
    let after = vars
        .iter()
        .flat_map(|v| v.as_tensor().to_vec1::<f64>().unwrap())
        .collect();
    (params.concat(), after)
}

/// Asserts element-wise `|a − b| ≤ tol · max(1, |b|)`.
pub fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * e.abs().max(1.0),
            "index {i}: {a} vs {e}"
        );
    }
}
