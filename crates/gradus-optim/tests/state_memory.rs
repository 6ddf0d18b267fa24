//! How much state an optimizer keeps, measured from its state dict after one step on the
//! 784-512-512-10 MLP's parameters: Adafactor's factored second moment (a row and a column
//! vector per matrix) against Adam's two full moments. The figure is in docs/algorithms.md.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::{NamedVar, Optimizer};
use gradus_optim::build_optimizer;
use serde_json::json;

const SHAPES: [(&str, &[usize]); 6] = [
    ("fc1.weight", &[512, 784]),
    ("fc1.bias", &[512]),
    ("fc2.weight", &[512, 512]),
    ("fc2.bias", &[512]),
    ("fc3.weight", &[10, 512]),
    ("fc3.bias", &[10]),
];

fn mlp() -> Vec<NamedVar> {
    SHAPES
        .iter()
        .map(|(name, shape)| NamedVar {
            name: name.to_string(),
            var: Var::from_tensor(&Tensor::ones(*shape, DType::F32, &Device::Cpu).unwrap())
                .unwrap(),
        })
        .collect()
}

/// Elements of per-parameter state (tensors of rank >= 1: moments, not step counters) after
/// one step.
fn state_elements(optimizer: &mut dyn Optimizer, params: &[NamedVar]) -> usize {
    let loss = params
        .iter()
        .map(|p| p.var.as_tensor().sqr().unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    let grads: GradStore = loss.backward().unwrap();
    optimizer.step(&grads).unwrap();
    let state = optimizer.state_dict().unwrap();
    state
        .iter()
        .filter(|(_, t)| t.rank() >= 1)
        .map(|(_, t)| t.elem_count())
        .sum()
}

#[test]
fn adafactor_keeps_a_row_and_a_column_per_matrix_where_adam_keeps_two_full_moments() {
    let params = mlp();
    let count: usize = SHAPES
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let mut adam = build_optimizer(&json!({"type": "adam"}), "optimizer", &params).unwrap();
    let adam_state = state_elements(adam.as_mut(), &params);
    assert_eq!(adam_state, 2 * count);

    let params = mlp();
    let mut adafactor =
        build_optimizer(&json!({"type": "adafactor"}), "optimizer", &params).unwrap();
    let factored = state_elements(adafactor.as_mut(), &params);
    // Matrices: n + m each; vectors: their full variance.
    let expected = (512 + 784) + (512 + 512) + (10 + 512) + 512 + 512 + 10;
    assert_eq!(factored, expected);
    // 3,374 floats against 1,339,668: 0.25 % of Adam's state.
    assert!((factored as f64) < 0.003 * adam_state as f64);
}
