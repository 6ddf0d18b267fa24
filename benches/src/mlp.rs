//! The 784-512-512-10 MLP training step (ReLU, cross-entropy; f32, or bf16 parameters) shared
//! by the benches.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, Optimizer as _, VarBuilder, VarMap};
// Links the initializers' registrations (the layers' default `torch_linear_default`).
use gradus_init as _;

/// 784-512-512-10 MLP with ReLU, cross-entropy on fixed inputs and labels.
pub struct Mlp {
    /// The parameters.
    pub varmap: VarMap,
    layers: Vec<candle_nn::Linear>,
    x: Tensor,
    y: Tensor,
}

impl Mlp {
    /// A model with Candle's default initialization and a fixed batch of `batch` inputs.
    pub fn new(batch: usize) -> Mlp {
        Self::with_dtype(batch, DType::F32)
    }

    /// [`Mlp::new`] with parameters and inputs of `dtype`; the loss is taken in f32 from the
    /// widened logits (as the runner does for a bf16/f16 model).
    pub fn with_dtype(batch: usize, dtype: DType) -> Mlp {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
        let dims = [784, 512, 512, 10];
        let layers = (0..3)
            .map(|i| candle_nn::linear(dims[i], dims[i + 1], vb.pp(format!("fc{i}"))).unwrap())
            .collect();
        let xs: Vec<f32> = (0..batch * 784)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let ys: Vec<u32> = (0..batch as u32).map(|i| (i * 7) % 10).collect();
        Mlp {
            varmap,
            layers,
            x: Tensor::from_vec(xs, (batch, 784), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
            y: Tensor::new(ys.as_slice(), &Device::Cpu).unwrap(),
        }
    }

    /// Forward and backward: the gradients of the loss.
    pub fn grads(&self) -> GradStore {
        let mut h = self.x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h).unwrap();
            if i < 2 {
                h = h.relu().unwrap();
            }
        }
        let h = h.to_dtype(DType::F32).unwrap();
        let loss = candle_nn::loss::cross_entropy(&h, &self.y).unwrap();
        loss.backward().unwrap()
    }
}

/// The same MLP built from Gradus's layers (`gradus_layers::Sequential` of `linear` and
/// `relu`, the runner's model), on the same fixed batch.
pub struct LayersMlp {
    /// The parameters.
    pub varmap: VarMap,
    model: std::cell::RefCell<gradus_layers::Sequential>,
    x: Tensor,
    y: Tensor,
}

impl LayersMlp {
    /// A model with Gradus's default initialization (PyTorch's) and `batch` inputs.
    pub fn new(batch: usize) -> LayersMlp {
        let varmap = VarMap::new();
        let layers: Vec<serde_json::Value> = [512, 512]
            .iter()
            .flat_map(|out| {
                [
                    serde_json::json!({"type": "linear", "out": out}),
                    serde_json::json!({"type": "relu"}),
                ]
            })
            .chain([serde_json::json!({"type": "linear", "out": 10})])
            .collect();
        let mut rng = gradus_core::SeededRng::new(0);
        let model = gradus_layers::Sequential::build(
            &layers,
            "model.layers",
            &[784],
            &varmap,
            &mut rng,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let plain = Mlp::new(batch);
        LayersMlp {
            varmap,
            model: std::cell::RefCell::new(model),
            x: plain.x,
            y: plain.y,
        }
    }

    /// Forward and backward: the gradients of the loss.
    pub fn grads(&self) -> GradStore {
        let mut rng = gradus_core::SeededRng::new(0);
        let mut ctx = gradus_core::plugin::layer::ForwardContext {
            train: true,
            rng: &mut rng,
        };
        let h = self.model.borrow_mut().forward(&self.x, &mut ctx).unwrap();
        let loss = candle_nn::loss::cross_entropy(&h, &self.y).unwrap();
        loss.backward().unwrap()
    }
}

/// Median forward + backward + step time and median step time (ms) of Gradus Adam on the
/// fused path over `steps` steps (after 3 warm-up steps): the same loop in every bench binary,
/// so that global allocators can be compared.
pub fn fused_adam_step_ms(batch: usize, steps: usize) -> (f64, f64) {
    let mlp = Mlp::new(batch);
    let mut opt = gradus_optim::Adam::new(mlp.varmap.all_vars(), Default::default()).unwrap();
    opt.set_update_path(gradus_optim::UpdatePath::Fused);
    let (mut step, mut optim) = (Vec::new(), Vec::new());
    for i in 0..steps + 3 {
        let t0 = Instant::now();
        let grads = mlp.grads();
        let t1 = Instant::now();
        opt.apply(&grads).unwrap();
        let t2 = Instant::now();
        if i >= 3 {
            step.push((t2 - t0).as_secs_f64() * 1e3);
            optim.push((t2 - t1).as_secs_f64() * 1e3);
        }
    }
    (median(&mut step), median(&mut optim))
}

/// The median of `v` (NaN when empty).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}
