//! Weight averaging against PyTorch 2.15 (`tests/data/optim-modern/averaging/`, float64,
//! generator `averaging.py` beside the data): EMA and SWA traces of
//! `torch.optim.swa_utils.AveragedModel` in f64 (within 1e-10 relative) and f32 (within 1e-5),
//! and `update_bn` on a Linear-BatchNorm-ReLU-Linear-BatchNorm model (within 1e-10); then the
//! evaluation recipe: averaged weights and their batch-norm statistics in, training weights and
//! statistics back bit for bit.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::{NamedVar, SeededRng};
use gradus_init as _;
use gradus_layers::Sequential;
use gradus_norm as _;
use gradus_optim::averaging::{update_bn, AveragedModel, AveragingConfig};
use serde_json::Value;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/optim-modern/averaging"
);

fn case(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/{name}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest `|got - want| / max(|want|, 1e-3)`, failing above `tol`.
fn compare(what: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1e-3))
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: relative error {worst:e} > {tol:e}");
    worst
}

fn tensor(data: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(data, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn ema_and_swa_traces_match_pytorch() {
    for name in ["ema-0", "ema-1", "swa-0"] {
        let c = case(name);
        let names: Vec<String> = serde_json::from_value(c["names"].clone()).unwrap();
        let shapes: Vec<Vec<usize>> = serde_json::from_value(c["shapes"].clone()).unwrap();
        let steps: Vec<Vec<Vec<f64>>> = serde_json::from_value(c["params"].clone()).unwrap();
        let expected: Vec<Vec<Vec<f64>>> = serde_json::from_value(c["expected"].clone()).unwrap();
        let counts: Vec<u64> = serde_json::from_value(c["n_averaged"].clone()).unwrap();
        let config = AveragingConfig::parse(&c["averaging"], "averaging").unwrap();
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-5)] {
            let params: Vec<NamedVar> = names
                .iter()
                .zip(&shapes)
                .map(|(n, s)| {
                    NamedVar::new(n, Var::zeros(s.as_slice(), dtype, &Device::Cpu).unwrap())
                })
                .collect();
            let mut avg = AveragedModel::new(&params, config.clone()).unwrap();
            let mut worst = 0.0f64;
            for (k, step) in steps.iter().enumerate() {
                for ((p, data), shape) in params.iter().zip(step).zip(&shapes) {
                    p.var.set(&tensor(data.clone(), shape, dtype)).unwrap();
                }
                avg.update(&params).unwrap();
                assert_eq!(avg.n_averaged(), counts[k], "{name}");
                for (n, want) in names.iter().zip(&expected[k]) {
                    let what = format!("{name} {dtype:?} step {k} {n}");
                    worst = worst.max(compare(&what, &values(avg.get(n).unwrap()), want, tol));
                }
            }
            println!("largest error vs PyTorch: {name} {dtype:?} {worst:e}");
        }
    }
}

/// The golden model, its parameters set from the case, in f64.
fn golden_model(c: &Value) -> (VarMap, Sequential) {
    let vars = VarMap::new();
    let layers: Vec<Value> = serde_json::from_value(c["layers"].clone()).unwrap();
    let input: Vec<usize> = serde_json::from_value(c["input"].clone()).unwrap();
    let model = Sequential::build(
        &layers,
        "model.layers",
        &input,
        &vars,
        &mut SeededRng::new(0),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    for (name, data) in c["params"].as_object().unwrap() {
        let var = vars.data().lock().unwrap()[name].clone();
        var.set(&tensor(floats(data), var.dims(), DType::F64))
            .unwrap();
    }
    (vars, model)
}

fn check_stats(what: &str, model: &Sequential, c: &Value, key: &str) -> f64 {
    let buffers = model.buffers();
    let mut worst = 0.0f64;
    for (layer, want) in c["batch_norm_layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(c[key].as_array().unwrap())
    {
        let layer = layer.as_str().unwrap();
        for stat in ["running_mean", "running_var"] {
            let got = values(buffers.get(&format!("{layer}.{stat}")).unwrap());
            worst = worst.max(compare(
                &format!("{what} {layer}.{stat}"),
                &got,
                &floats(&want[stat]),
                1e-10,
            ));
        }
        let count = buffers
            .get(&format!("{layer}.num_batches_tracked"))
            .unwrap()
            .to_scalar::<i64>()
            .unwrap();
        assert_eq!(
            count,
            want["num_batches_tracked"].as_i64().unwrap(),
            "{what} {layer}"
        );
    }
    worst
}

#[test]
fn update_bn_matches_pytorch() {
    let c = case("update_bn-0");
    let (_vars, mut model) = golden_model(&c);
    let mut rng = SeededRng::new(0);
    let n = c["warmup_batch"].as_u64().unwrap() as usize;
    for x in c["warmup"].as_array().unwrap() {
        let mut ctx = ForwardContext {
            train: true,
            rng: &mut rng,
        };
        model
            .forward(&tensor(floats(x), &[n, 3], DType::F64), &mut ctx)
            .unwrap();
    }
    let mut worst = check_stats("before update_bn", &model, &c, "before");
    let batches: Vec<Tensor> = c["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let n = b["n"].as_u64().unwrap() as usize;
            tensor(floats(&b["data"]), &[n, 3], DType::F64)
        })
        .collect();
    assert_eq!(update_bn(&mut model, &batches, &mut rng).unwrap(), 2);
    worst = worst.max(check_stats("after update_bn", &model, &c, "after"));
    // The configured momentum is back: one more training pass, as PyTorch's.
    let mut ctx = ForwardContext {
        train: true,
        rng: &mut rng,
    };
    model
        .forward(&tensor(floats(&c["extra"]), &[4, 3], DType::F64), &mut ctx)
        .unwrap();
    worst = worst.max(check_stats(
        "after one more pass",
        &model,
        &c,
        "after_extra",
    ));
    println!("largest error vs PyTorch: update_bn {worst:e}");
}

#[test]
fn after_update_bn_a_batch_norm_holds_the_statistics_of_the_data() {
    let vars = VarMap::new();
    let layers = vec![serde_json::json!({"type": "batch_norm"})];
    let mut model = Sequential::build(
        &layers,
        "model.layers",
        &[2],
        &vars,
        &mut SeededRng::new(0),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let rows: Vec<[f64; 2]> = (0..12)
        .map(|i| {
            [
                (i as f64 * 0.7).sin() * 3.0 + 1.0,
                (i * i) as f64 / 10.0 - 2.0,
            ]
        })
        .collect();
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let data = Tensor::from_vec(flat, (12, 2), &Device::Cpu).unwrap();
    let mean = |c: usize| rows.iter().map(|r| r[c]).sum::<f64>() / 12.0;
    let unbiased = |c: usize| rows.iter().map(|r| (r[c] - mean(c)).powi(2)).sum::<f64>() / 11.0;
    let mut rng = SeededRng::new(1);
    // One batch of all the data: exactly its mean and unbiased variance, whatever came before.
    let mut ctx = ForwardContext {
        train: true,
        rng: &mut rng,
    };
    model
        .forward(&(data.clone() * 5.0).unwrap(), &mut ctx)
        .unwrap();
    update_bn(&mut model, [&data], &mut rng).unwrap();
    let b = model.buffers();
    let got_mean = values(b.get("layers.0.running_mean").unwrap());
    let got_var = values(b.get("layers.0.running_var").unwrap());
    for c in 0..2 {
        assert!((got_mean[c] - mean(c)).abs() < 1e-12, "{got_mean:?}");
        assert!((got_var[c] - unbiased(c)).abs() < 1e-12, "{got_var:?}");
    }
    // Three equal batches: the mean of the batch means is the data's mean.
    let thirds: Vec<Tensor> = (0..3).map(|k| data.narrow(0, 4 * k, 4).unwrap()).collect();
    update_bn(&mut model, &thirds, &mut rng).unwrap();
    let got_mean = values(model.buffers().get("layers.0.running_mean").unwrap());
    for c in 0..2 {
        assert!((got_mean[c] - mean(c)).abs() < 1e-12, "{got_mean:?}");
    }
    // A model without batch norm: nothing to do, no forward pass (a wrong shape is not seen).
    let mut plain = Sequential::build(
        &[serde_json::json!({"type": "relu"})],
        "model.layers",
        &[2],
        &VarMap::new(),
        &mut SeededRng::new(0),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let wrong = Tensor::zeros((2, 7), DType::F64, &Device::Cpu).unwrap();
    assert_eq!(update_bn(&mut plain, [&wrong], &mut rng).unwrap(), 0);
    // A failing pass is an error, and the momentum is restored all the same.
    let err = update_bn(&mut model, [&wrong], &mut rng).unwrap_err();
    assert!(err.to_string().contains("[2, 7]"), "{err}");
    let mut ctx = ForwardContext {
        train: true,
        rng: &mut rng,
    };
    model.forward(&data, &mut ctx).unwrap();
    let count = model
        .buffers()
        .get("layers.0.num_batches_tracked")
        .unwrap()
        .to_scalar::<i64>()
        .unwrap();
    assert_eq!(count, 1);
}

fn bits(params: &[NamedVar]) -> Vec<Vec<u64>> {
    params
        .iter()
        .map(|p| {
            values(p.var.as_tensor())
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

fn buffer_bits(model: &Sequential) -> Vec<(String, Vec<u64>)> {
    let b = model.buffers();
    let mut out: Vec<(String, Vec<u64>)> = b
        .iter()
        .map(|(k, t)| {
            (
                k.to_string(),
                values(t).iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn evaluating_with_averaged_weights_and_statistics_leaves_training_untouched() {
    let c = case("update_bn-0");
    let (vars, mut model) = golden_model(&c);
    let params = gradus_optim::named_vars(&vars);
    let config = serde_json::json!({"type": "swa", "start_epoch": 1, "swa_lr": 0.05});
    let mut swa = AveragedModel::new(
        &params,
        AveragingConfig::parse(&config, "averaging").unwrap(),
    )
    .unwrap();
    let mut rng = SeededRng::new(3);
    let x = rng
        .normal_tensor(&[16, 3], 0.0, 2.0, DType::F64, &Device::Cpu)
        .unwrap();
    for _ in 0..4 {
        // An "epoch": a training pass moves the statistics, the weights drift.
        let mut ctx = ForwardContext {
            train: true,
            rng: &mut rng,
        };
        model.forward(&x, &mut ctx).unwrap();
        for p in &params {
            let noise = rng
                .normal_tensor(p.var.dims(), 0.0, 0.1, DType::F64, &Device::Cpu)
                .unwrap();
            p.var.set(&(p.var.as_tensor() + noise).unwrap()).unwrap();
        }
        swa.update(&params).unwrap();
    }
    let (weights, stats) = (bits(&params), buffer_bits(&model));
    // The recipe: save the statistics, swap the averaged weights in, recompute the statistics,
    // evaluate, then restore both.
    let saved = model.buffers();
    let eval = swa
        .with_averaged(&params, || {
            update_bn(&mut model, [&x], &mut rng)?;
            let mut ctx = ForwardContext {
                train: false,
                rng: &mut rng,
            };
            model.forward(&x, &mut ctx)
        })
        .unwrap();
    model.load_buffers(&saved).unwrap();
    assert_eq!(bits(&params), weights);
    assert_eq!(buffer_bits(&model), stats);
    // The evaluation saw the averaged weights: the same output as the averaged model for good.
    swa.copy_into(&params).unwrap();
    update_bn(&mut model, [&x], &mut rng).unwrap();
    let mut ctx = ForwardContext {
        train: false,
        rng: &mut rng,
    };
    let direct = model.forward(&x, &mut ctx).unwrap();
    assert_eq!(values(&eval), values(&direct));
}
