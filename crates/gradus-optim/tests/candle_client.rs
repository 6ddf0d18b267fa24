//! Gradus as a real Candle program uses it: a model built through `VarMap` and `VarBuilder`,
//! trained with a Gradus optimizer, checkpointed (weights and optimizer state), restored into a
//! fresh `VarMap` and continued: bit-identical to an uninterrupted run. Both optimizer traits
//! are in scope, and nothing clashes: the optimizer types' inherent methods are what is called.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
// Importing the Gradus trait beside candle_nn's is allowed, and changes nothing below.
#[allow(unused_imports)]
use gradus_optim::GradusOptimizer as _;
use gradus_optim::{AdamW, AdamWConfig, StateDict};

/// A small residual block on token embeddings: embed → linear → gelu → linear (+ residual) →
/// mean over tokens → linear head.
struct Model {
    embed: candle_nn::Embedding,
    up: candle_nn::Linear,
    down: candle_nn::Linear,
    head: candle_nn::Linear,
}

const VOCAB: usize = 20;
const DIM: usize = 8;
const HIDDEN: usize = 16;
const CLASSES: usize = 3;

impl Model {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Model {
            embed: candle_nn::embedding(VOCAB, DIM, vb.pp("embed"))?,
            up: candle_nn::linear(DIM, HIDDEN, vb.pp("block.up"))?,
            down: candle_nn::linear(HIDDEN, DIM, vb.pp("block.down"))?,
            head: candle_nn::linear(DIM, CLASSES, vb.pp("head"))?,
        })
    }

    fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.embed.forward(tokens)?;
        let h = self.down.forward(&self.up.forward(&x)?.gelu()?)?;
        let x = (x + h)?;
        self.head.forward(&x.mean(1)?)
    }
}

/// Deterministic values for a variable, from its name (Candle's own initializers draw from the
/// device RNG, which no seed controls, so two VarMaps are filled by name instead).
fn fill(varmap: &VarMap) {
    for nv in gradus_optim::named_vars(varmap) {
        let n = nv.var.elem_count();
        let mut x = nv
            .name
            .bytes()
            .fold(0x9E37_79B9u64, |h, b| h.wrapping_mul(31) ^ b as u64)
            | 1;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as f32 / 2000.0 - 0.5
            })
            .collect();
        let t = Tensor::from_vec(values, nv.var.shape(), &Device::Cpu).unwrap();
        nv.var.set(&t).unwrap();
    }
}

fn batch(step: usize) -> (Tensor, Tensor) {
    let tokens: Vec<u32> = (0..4 * 5)
        .map(|i| ((i * 7 + step * 3) % VOCAB) as u32)
        .collect();
    let labels: Vec<u32> = (0..4).map(|i| ((i + step) % CLASSES) as u32).collect();
    (
        Tensor::from_vec(tokens, (4, 5), &Device::Cpu).unwrap(),
        Tensor::from_vec(labels, 4, &Device::Cpu).unwrap(),
    )
}

fn build() -> (VarMap, Model) {
    let varmap = VarMap::new();
    let model = Model::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    fill(&varmap);
    (varmap, model)
}

/// One training step in the shape of user code: `?` on Gradus results inside a function that
/// returns `candle_core::Result`.
fn train_step(model: &Model, opt: &mut AdamW, step: usize) -> candle_core::Result<f32> {
    let (tokens, labels) = batch(step);
    let logits = model.forward(&tokens)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
    opt.backward_step(&loss)?;
    loss.to_scalar::<f32>()
}

fn snapshot(varmap: &VarMap) -> Vec<(String, Vec<u32>)> {
    gradus_optim::named_vars(varmap)
        .into_iter()
        .map(|nv| {
            let bits = nv
                .var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f32::to_bits)
                .collect();
            (nv.name, bits)
        })
        .collect()
}

fn config() -> AdamWConfig {
    AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::default()
    }
}

#[test]
fn a_checkpoint_restored_into_a_fresh_varmap_continues_bit_identically() -> candle_core::Result<()>
{
    let dir = tempfile::tempdir().unwrap();
    // Uninterrupted: 10 steps.
    let (varmap, model) = build();
    let mut opt = AdamW::from_varmap(&varmap, config())?;
    for step in 0..10 {
        train_step(&model, &mut opt, step)?;
    }
    let uninterrupted = snapshot(&varmap);

    // Interrupted after 5 steps: weights and optimizer state to disk.
    let (varmap, model) = build();
    let mut opt = AdamW::from_varmap(&varmap, config())?;
    for step in 0..5 {
        train_step(&model, &mut opt, step)?;
    }
    varmap.save(dir.path().join("model.safetensors"))?;
    opt.state_dict()?
        .save(dir.path().join("optimizer.safetensors"))?;
    assert!(opt.state_dict()?.get("block.up.weight.exp_avg").is_some());
    drop((varmap, model, opt));

    // Restarted: a fresh VarMap (another HashMap order), the weights, then the state.
    let mut varmap = VarMap::new();
    let model = Model::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    varmap.load(dir.path().join("model.safetensors"))?;
    let mut opt = AdamW::from_varmap(&varmap, config())?;
    opt.load_state_dict(&StateDict::load(
        dir.path().join("optimizer.safetensors"),
        &Device::Cpu,
    )?)?;
    for step in 5..10 {
        train_step(&model, &mut opt, step)?;
    }
    assert_eq!(snapshot(&varmap), uninterrupted);
    Ok(())
}

#[test]
fn the_inherent_api_needs_no_trait_and_mirrors_candle_nn() -> candle_core::Result<()> {
    let (varmap, model) = build();
    // candle_nn::AdamW::new_lr's counterpart.
    let mut opt = AdamW::new_lr(varmap.all_vars(), 0.05)?;
    assert_eq!(opt.learning_rate(), 0.05);
    assert_eq!(opt.params().lr, 0.05);
    opt.set_params(AdamWConfig {
        lr: 0.02,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    })?;
    assert_eq!(opt.hyperparameter(0, "weight_decay")?, 0.0);
    opt.set_hyperparameter(0, "beta1", 0.8)?;
    opt.set_learning_rate(0.03)?;
    assert_eq!(opt.learning_rate(), 0.03);
    assert!(opt.set_learning_rate(-1.0).is_err());
    let (tokens, labels) = batch(0);
    let loss = candle_nn::loss::cross_entropy(&model.forward(&tokens)?, &labels)?;
    // `step` with both traits in scope: the inherent method, no ambiguity.
    opt.step(&loss.backward()?)?;
    // The embedding, and weight and bias of up, down and head.
    assert_eq!(opt.named_params().len(), 7);
    // candle_nn's trait still works for generic code.
    fn generic<O: Optimizer>(o: &mut O) -> f64 {
        o.set_learning_rate(0.04);
        o.learning_rate()
    }
    assert_eq!(generic(&mut opt), 0.04);
    // A Gradus error through `?` into candle_core::Error keeps its message.
    let err: candle_core::Error = opt.set_learning_rate(-1.0).unwrap_err().into();
    assert!(err.to_string().contains("Invalid learning rate"), "{err}");
    Ok(())
}

/// Four tensors of one shape: a model where positional state would load without a shape error.
fn same_shapes() -> (VarMap, Vec<candle_nn::Linear>) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let layers = (0..4)
        .map(|i| candle_nn::linear_no_bias(4, 4, vb.pp(format!("l{i}"))).unwrap())
        .collect();
    fill(&varmap);
    (varmap, layers)
}

fn square_loss(layers: &[candle_nn::Linear]) -> Tensor {
    let mut x = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
    for l in layers {
        x = l.forward(&x).unwrap().tanh().unwrap();
    }
    x.sqr().unwrap().mean_all().unwrap()
}

#[test]
fn positional_state_is_refused_when_the_parameter_order_differs() -> candle_core::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let (varmap, layers) = same_shapes();
    let vars = gradus_optim::named_vars(&varmap)
        .into_iter()
        .map(|nv| nv.var)
        .collect::<Vec<_>>();
    // Built the candle_nn way, from unnamed vars.
    let mut opt = <AdamW as Optimizer>::new(vars.clone(), config())?;
    for _ in 0..3 {
        opt.backward_step(&square_loss(&layers))?;
    }
    varmap.save(dir.path().join("model.safetensors"))?;
    opt.state_dict()?
        .save(dir.path().join("optimizer.safetensors"))?;
    let saved = StateDict::load(dir.path().join("optimizer.safetensors"), &Device::Cpu)?;

    // Same order: loads.
    let mut same = <AdamW as Optimizer>::new(vars.clone(), config())?;
    same.load_state_dict(&saved)?;

    // Another order (what `varmap.all_vars()` gives in another process): every shape matches,
    // and it is refused, pointing at from_varmap.
    let mut reversed_vars = vars.clone();
    reversed_vars.reverse();
    let mut other = <AdamW as Optimizer>::new(reversed_vars, config())?;
    let err = other.load_state_dict(&saved).unwrap_err().to_string();
    assert!(err.contains("from_varmap"), "{err}");
    assert!(err.contains("param.0"), "{err}");
    // Nothing was loaded: its state is still empty.
    assert!(other.state_dict()?.get("param.0.exp_avg").is_none());

    // Named state cannot be confused: a from_varmap optimizer refuses positional state too.
    let mut named = AdamW::from_varmap(&varmap, config())?;
    assert!(named.load_state_dict(&saved).is_err());
    Ok(())
}
