//! Every case of `tests/data/*.json` (PyTorch `torch.nn` in float64, see `tests/data/README.md`):
//! three training steps (output; gradients of `sum(output * R)` with respect to input, weight
//! and bias; running statistics) and one evaluation step, through the JSON/registry path, in
//! f64 (within 1e-10 relative) and in f32 (within 1e-5 relative).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gradus_core::plugin::layer::{ForwardContext, Layer, LayerContext};
use gradus_core::registry::{lookup, NormalizationKind};
use gradus_core::SeededRng;
use gradus_norm as _;
use serde_json::Value;

fn cases() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut cases: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(cases.len(), 8, "expected the 8 golden norm cases");
    cases
}

/// The registered name of a golden `kind`.
fn component(kind: &str) -> &'static str {
    match kind {
        "batch_norm1d" | "batch_norm2d" => "batch_norm",
        "layer_norm" => "layer_norm",
        "group_norm" => "group_norm",
        "instance_norm2d" => "instance_norm",
        other => panic!("unknown golden kind {other}"),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Largest relative error `|got - want| / max(1, |want|)`; fails above `tol`.
fn compare(what: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: relative error {worst:e} > {tol:e}");
    worst
}

/// Runs one golden case in `dtype`; returns the largest error seen.
fn run_case(name: &str, case: &Value, dtype: DType, tol: f64) -> f64 {
    let dev = Device::Cpu;
    let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
    let entry =
        lookup::<NormalizationKind>(component(case["kind"].as_str().unwrap()), "type").unwrap();
    let vars = VarMap::new();
    let mut rng = SeededRng::new(0);
    let mut layer: Box<dyn Layer> = {
        let mut ctx = LayerContext {
            input_shape: shape[1..].to_vec(),
            vars: &vars,
            prefix: "norm".into(),
            path: String::new(),
            rng: &mut rng,
            dtype,
            device: dev.clone(),
        };
        (entry.build)(&case["config"], name, &mut ctx).unwrap()
    };
    assert_eq!(layer.output_shape(), shape[1..].to_vec(), "{name}");
    // Set the golden affine parameters into the registered variables.
    let mut params: Vec<(&str, Var)> = Vec::new();
    for key in ["weight", "bias"] {
        let var = vars
            .data()
            .lock()
            .unwrap()
            .get(&format!("norm.{key}"))
            .cloned();
        match (&case[key], var) {
            (Value::Null, None) => {}
            (golden, Some(var)) => {
                let t = Tensor::new(floats(golden), &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                var.set(&t.reshape(var.shape()).unwrap()).unwrap();
                params.push((key, var));
            }
            (_, None) => panic!("{name}: golden has `{key}` but the layer registered none"),
        }
    }
    let tensor = |v: &Value| {
        Tensor::new(floats(v), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
            .reshape(shape.as_slice())
            .unwrap()
    };
    let mut worst: f64 = 0.0;
    for (k, step) in case["train_steps"].as_array().unwrap().iter().enumerate() {
        let x = Var::from_tensor(&tensor(&step["input"])).unwrap();
        let mut fctx = ForwardContext {
            train: true,
            rng: &mut rng,
        };
        let y = layer.forward(x.as_tensor(), &mut fctx).unwrap();
        worst = worst.max(compare(
            &format!("{name} step {k} output"),
            &values(&y),
            &floats(&step["output"]),
            tol,
        ));
        let loss = (y * tensor(&step["upstream_grad"]))
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap();
        worst = worst.max(compare(
            &format!("{name} step {k} grad_input"),
            &values(gx),
            &floats(&step["grad_input"]),
            tol,
        ));
        for (key, var) in &params {
            let g = grads.get(var.as_tensor()).unwrap();
            let want = floats(&step[format!("grad_{key}").as_str()]);
            worst = worst.max(compare(
                &format!("{name} step {k} grad_{key}"),
                &values(g),
                &want,
                tol,
            ));
        }
        if let Some(mean) = step.get("running_mean_after") {
            let buffers = layer.buffers();
            let got_mean = values(buffers.get("running_mean").unwrap());
            let got_var = values(buffers.get("running_var").unwrap());
            worst = worst.max(compare(
                &format!("{name} step {k} running_mean"),
                &got_mean,
                &floats(mean),
                tol,
            ));
            worst = worst.max(compare(
                &format!("{name} step {k} running_var"),
                &got_var,
                &floats(&step["running_var_after"]),
                tol,
            ));
        }
    }
    let mut fctx = ForwardContext {
        train: false,
        rng: &mut rng,
    };
    let y = layer
        .forward(&tensor(&case["eval"]["input"]), &mut fctx)
        .unwrap();
    worst = worst.max(compare(
        &format!("{name} eval output"),
        &values(&y),
        &floats(&case["eval"]["output"]),
        tol,
    ));
    worst
}

#[test]
fn every_case_matches_pytorch_in_f64() {
    for (name, case) in cases() {
        let worst = run_case(&name, &case, DType::F64, 1e-10);
        eprintln!("f64 {name}: largest relative error {worst:e}");
    }
}

#[test]
fn every_case_matches_pytorch_in_f32() {
    for (name, case) in cases() {
        let worst = run_case(&name, &case, DType::F32, 1e-5);
        eprintln!("f32 {name}: largest relative error {worst:e}");
    }
}

/// The plain Candle-module path (`BatchNorm::new` + `ModuleT`, `LayerNorm::new` + `Module`)
/// gives the same numbers as the registry path on the golden cases.
#[test]
fn plain_candle_modules_match_pytorch() {
    use candle_core::ModuleT;
    use candle_nn::VarBuilder;
    use gradus_norm::{BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig};
    let dev = Device::Cpu;
    for (name, case) in cases() {
        let kind = case["kind"].as_str().unwrap();
        if kind != "batch_norm2d" && kind != "layer_norm" {
            continue;
        }
        let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F64, &dev);
        let module: Box<dyn ModuleT> = if kind == "layer_norm" {
            let cfg: LayerNormConfig = serde_json::from_value(case["config"].clone()).unwrap();
            let ln = LayerNorm::new(&shape[1..], cfg, vb.pp("m")).unwrap();
            Box::new(ln)
        } else {
            let cfg: BatchNormConfig = serde_json::from_value(case["config"].clone()).unwrap();
            Box::new(BatchNorm::new(shape[1], cfg, vb.pp("m")).unwrap())
        };
        for key in ["weight", "bias"] {
            let var = vars
                .data()
                .lock()
                .unwrap()
                .get(&format!("m.{key}"))
                .cloned()
                .unwrap();
            let t = Tensor::new(floats(&case[key]), &dev)
                .unwrap()
                .reshape(var.shape())
                .unwrap();
            var.set(&t).unwrap();
        }
        let tensor = |v: &Value| {
            Tensor::new(floats(v), &dev)
                .unwrap()
                .reshape(shape.as_slice())
                .unwrap()
        };
        for step in case["train_steps"].as_array().unwrap() {
            let y = module.forward_t(&tensor(&step["input"]), true).unwrap();
            compare(
                &format!("{name} plain output"),
                &values(&y),
                &floats(&step["output"]),
                1e-10,
            );
        }
        let y = module
            .forward_t(&tensor(&case["eval"]["input"]), false)
            .unwrap();
        compare(
            &format!("{name} plain eval"),
            &values(&y),
            &floats(&case["eval"]["output"]),
            1e-10,
        );
    }
}

/// Every registered normalization builds from its defaults (plus `num_groups` for group norm)
/// on an image-shaped input and keeps the shape.
#[test]
fn every_normalization_builds_from_defaults() {
    let dev = Device::Cpu;
    for entry in gradus_core::registry::entries::<NormalizationKind>().unwrap() {
        let mut config = (entry.default_config)();
        if entry.name == "group_norm" {
            config["num_groups"] = serde_json::json!(2);
        }
        let vars = VarMap::new();
        let mut rng = SeededRng::new(0);
        let mut ctx = LayerContext {
            input_shape: vec![4, 3, 3],
            vars: &vars,
            prefix: "n".into(),
            path: String::new(),
            rng: &mut rng,
            dtype: DType::F32,
            device: dev.clone(),
        };
        let mut layer = (entry.build)(&config, "layers[0]", &mut ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.name));
        let x = Tensor::ones((2, 4, 3, 3), DType::F32, &dev).unwrap();
        let mut fctx = ForwardContext {
            train: true,
            rng: &mut rng,
        };
        assert_eq!(
            layer.forward(&x, &mut fctx).unwrap().dims(),
            &[2, 4, 3, 3],
            "{}",
            entry.name
        );
        assert!(layer.output_shape() == vec![4, 3, 3], "{}", entry.name);
    }
}
