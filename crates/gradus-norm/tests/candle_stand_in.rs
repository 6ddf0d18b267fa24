//! candle-nn 0.11's `LayerNorm` has no backward pass on contiguous input (its fused kernel is a
//! custom op without one), so a model built with it trains nothing before it. Gradus's
//! `LayerNorm` built from the same `VarBuilder` names (`weight`, `bias`) stands in for it: the
//! same forward values, and gradients that reach its parameters and everything before it.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

fn input() -> Tensor {
    let values: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
    Tensor::from_vec(values, (3, 8), &Device::Cpu).unwrap()
}

/// Builds a layer norm over 8 features with `make`, and returns its output, and whether the
/// gradient of a loss on it reaches the input and the layer's weight.
fn run(make: impl Fn(VarBuilder) -> Box<dyn Module>) -> (Vec<f32>, bool, bool) {
    let varmap = VarMap::new();
    let layer = make(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu).pp("ln"));
    let x = Var::from_tensor(&input()).unwrap();
    let y = layer.forward(x.as_tensor()).unwrap();
    let weights = Tensor::arange(0f32, 24.0, &Device::Cpu)
        .unwrap()
        .reshape((3, 8))
        .unwrap();
    let loss = (y.clone() * weights).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let weight = varmap.data().lock().unwrap()["ln.weight"].clone();
    (
        y.flatten_all().unwrap().to_vec1().unwrap(),
        grads.get(x.as_tensor()).is_some(),
        grads.get(weight.as_tensor()).is_some(),
    )
}

#[test]
fn gradus_layer_norm_stands_in_for_candle_nn_layer_norm_and_has_a_backward() {
    let (candle_out, candle_input_grad, candle_weight_grad) =
        run(|vb| Box::new(candle_nn::layer_norm(8, 1e-5, vb).unwrap()));
    let (gradus_out, gradus_input_grad, gradus_weight_grad) =
        run(|vb| Box::new(gradus_norm::layer_norm::candle_layer_norm(8, 1e-5, vb).unwrap()));
    for (a, b) in candle_out.iter().zip(&gradus_out) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    // What candle-nn 0.11 does today (if this starts failing, candle gained the backward).
    assert!(!candle_input_grad && !candle_weight_grad);
    assert!(gradus_input_grad && gradus_weight_grad);
}

/// Whether the gradient of `sum(f(x) * w)` reaches `x` (`None`: backward failed).
fn reaches_input(f: impl Fn(&Tensor) -> Tensor) -> Option<bool> {
    let x = Var::from_tensor(&input()).unwrap();
    let y = f(x.as_tensor());
    let weights = Tensor::arange(0f32, y.elem_count() as f32, &Device::Cpu)
        .unwrap()
        .reshape(y.shape())
        .unwrap();
    let loss = (y * weights).unwrap().sum_all().unwrap();
    loss.backward().ok().map(|g| g.get(x.as_tensor()).is_some())
}

#[test]
fn candle_nn_fused_ops_without_a_backward_are_recorded() {
    // candle-nn 0.11: these fused ops stop the gradient on contiguous input (a custom op with no
    // backward), where their composed forms pass it on. Recorded in docs/candle-interop.md.
    let alpha = Tensor::ones(8, DType::F32, &Device::Cpu).unwrap();
    let rms = reaches_input(|x| candle_nn::ops::rms_norm(x, &alpha, 1e-5).unwrap());
    let softmax = reaches_input(|x| candle_nn::ops::softmax_last_dim(x).unwrap());
    let composed = reaches_input(|x| candle_nn::ops::softmax(x, 1).unwrap());
    eprintln!("rms_norm: {rms:?}, softmax_last_dim: {softmax:?}, softmax: {composed:?}");
    assert_eq!(composed, Some(true));
    assert_ne!(rms, Some(true));
    assert_ne!(softmax, Some(true));
}
