//! The optimizers whose step is matrix-shaped (issue #15): Muon (Newton-Schulz through Candle
//! matmuls, with its auxiliary AdamW on the biases) and Adafactor (factored row/column second
//! moments on Candle ops), against fused AdamW, one step on the parameters of the bench's MLP
//! 784-512-512-10 (weights as (out, in) matrices and their biases, f32), fixed gradients.
//!
//! Neither Muon nor Adafactor's factored statistics have a fused kernel: the issue lets them stay
//! on Candle ops, measured. `cargo test --benches` runs each step once.

use std::time::Duration;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use criterion::Criterion;
use gradus_benches::Mode;
use gradus_core::NamedVar;
use gradus_optim::build_optimizer;
use serde_json::json;

/// The MLP's parameters, `(name, shape)`.
const SHAPES: &[(&str, &[usize])] = &[
    ("fc1.weight", &[512, 784]),
    ("fc1.bias", &[512]),
    ("fc2.weight", &[512, 512]),
    ("fc2.bias", &[512]),
    ("fc3.weight", &[10, 512]),
    ("fc3.bias", &[10]),
];

fn params() -> (Vec<NamedVar>, GradStore) {
    let mut grads = GradStore::default();
    let named = SHAPES
        .iter()
        .map(|&(name, shape)| {
            let var = Var::randn(0f32, 0.05, shape, &Device::Cpu).unwrap();
            let grad = Tensor::randn(0f32, 0.01, shape, &Device::Cpu).unwrap();
            grads.insert(var.as_tensor(), grad.to_dtype(DType::F32).unwrap());
            NamedVar::new(name, var)
        })
        .collect();
    (named, grads)
}

fn main() {
    let mode = Mode::detect();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("mlp_params_step");
    group.sample_size(10);
    group.measurement_time(match mode {
        Mode::Test => Duration::from_millis(1),
        Mode::Quick => Duration::from_secs(2),
        Mode::Full => Duration::from_secs(8),
    });
    let configs = [
        ("adamw_fused", json!({"type": "adamw"})),
        (
            "muon_aux_adamw",
            json!({"type": "muon", "adamw_params": ["*.bias"]}),
        ),
        ("adafactor", json!({"type": "adafactor"})),
    ];
    for (label, config) in configs {
        let (named, grads) = params();
        let mut opt = build_optimizer(&config, "optimizer", &named)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        group.bench_function(label, |b| b.iter(|| opt.step(&grads).unwrap()));
    }
    group.finish();
    c.final_summary();
}
