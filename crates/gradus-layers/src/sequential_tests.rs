//! Tests of [`Sequential`](super::Sequential), [`build_layer`](crate::build_layer) and the
//! `residual` block.

use super::*;
use crate::testing::{assert_all_close, fctx, grads_of};
use gradus_core::Error;
use serde_json::json;

fn model(layers: Value, input: &[usize], seed: u64) -> Result<(VarMap, Sequential)> {
    let vars = VarMap::new();
    let mut rng = SeededRng::new(seed);
    let layers = layers.as_array().cloned().unwrap_or_default();
    let m = Sequential::build(
        &layers,
        "model.layers",
        input,
        &vars,
        &mut rng,
        DType::F64,
        &Device::Cpu,
    )?;
    Ok((vars, m))
}

fn var(vars: &VarMap, name: &str) -> Tensor {
    vars.data().lock().unwrap()[name].as_tensor().clone()
}

fn names(vars: &VarMap) -> Vec<String> {
    let mut n: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
    n.sort();
    n
}

fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|i| ((i * 29 % 17) as f64 - 8.0) / 5.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn shapes_names_and_summary_of_a_cnn() {
    let layers = json!([
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "test_doubler"},
        {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "out": 10}
    ]);
    let (vars, mut m) = model(layers, &[1, 8, 8], 0).unwrap();
    let summary: Vec<(String, Vec<usize>)> = vec![
        ("conv2d".into(), vec![4, 8, 8]),
        ("test_doubler".into(), vec![4, 8, 8]),
        ("relu".into(), vec![4, 8, 8]),
        ("max_pool2d".into(), vec![4, 4, 4]),
        ("flatten".into(), vec![64]),
        ("linear".into(), vec![10]),
    ];
    assert_eq!(m.describe(), summary);
    assert_eq!(m.output_shape(), vec![10]);
    assert_eq!(
        names(&vars),
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.5.bias",
            "layers.5.weight"
        ]
    );
    let y = m.forward(&input(&[3, 1, 8, 8]), &mut fctx(true)).unwrap();
    assert_eq!(y.dims(), &[3, 10]);
    // Every parameter receives a gradient.
    let grads = grads_of(&y.sqr().unwrap().sum_all().unwrap(), &vars);
    assert_eq!(grads.len(), 4);
    assert!(grads.values().all(|g| g.iter().any(|v| *v != 0.0)));
}

#[test]
fn same_seed_same_bits() {
    let layers =
        json!([{"type": "flatten"}, {"type": "linear", "out": 7}, {"type": "linear", "out": 2}]);
    let bits = |seed| {
        let (vars, _) = model(layers.clone(), &[2, 3], seed).unwrap();
        names(&vars)
            .iter()
            .flat_map(|n| {
                var(&vars, n)
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            })
            .map(f64::to_bits)
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(5), bits(5));
    assert_ne!(bits(5), bits(6));
}

#[test]
fn shape_errors_name_layer_shapes_and_path() {
    // conv2d after flatten: a rank error.
    let err = model(
        json!([{"type": "flatten"}, {"type": "conv2d", "out_channels": 2, "kernel_size": 3}]),
        &[1, 8, 8],
        0,
    )
    .err()
    .expect("an error");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Config { ref path, .. } if path == "model.layers[1]"),
        "{text}"
    );
    assert!(
        text.contains("`conv2d`") && text.contains("[64]") && text.contains("(C, H, W)"),
        "{text}"
    );
    // A kernel larger than the image: both shapes.
    let err = model(
        json!([{"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2}, {"type": "conv2d", "out_channels": 2, "kernel_size": 5}]),
        &[1, 6, 6],
        0,
    )
    .err().expect("an error");
    match &err {
        Error::ShapeMismatch {
            context,
            expected,
            actual,
        } => {
            assert!(
                context.contains("`conv2d` layer at model.layers[2]"),
                "{context}"
            );
            assert_eq!(expected, &vec![1, 5, 5]);
            assert_eq!(actual, &vec![1, 3, 3]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A normalization layer that rejects its input.
    let err = model(json!([{"type": "test_doubler"}]), &[], 0)
        .err()
        .expect("an error");
    assert!(err.to_string().contains("model.layers[0]"), "{err}");
    // The forward pass checks the batch shape too.
    let (_, mut m) = model(json!([{"type": "relu"}]), &[3], 0).unwrap();
    let err = m
        .forward(&input(&[2, 4]), &mut fctx(false))
        .expect_err("an error");
    assert!(
        matches!(err, Error::ShapeMismatch { ref expected, ref actual, .. } if expected == &vec![2, 3] && actual == &vec![2, 4])
    );
}

#[test]
fn unknown_type_lists_layers_and_normalizations() {
    let err = model(
        json!([{"type": "relu"}, {"type": "lineer", "out": 3}]),
        &[4],
        0,
    )
    .err()
    .expect("an error");
    match &err {
        Error::UnknownName {
            path,
            valid,
            suggestion,
            ..
        } => {
            assert_eq!(path, "model.layers[1].type");
            assert!(
                valid.contains(&"linear".to_string())
                    && valid.contains(&"test_doubler".to_string())
            );
            assert_eq!(suggestion.as_deref(), Some("linear"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = model(json!([{"type": "test_dubler"}]), &[4], 0)
        .err()
        .expect("an error");
    assert!(
        err.to_string().ends_with("did you mean `test_doubler`?"),
        "{err}"
    );
    let err = model(
        json!([{"type": "linear", "out": 3, "biass": false}]),
        &[4],
        0,
    )
    .err()
    .expect("an error");
    assert!(
        err.to_string().contains("at model.layers[0]") && err.to_string().contains("`bias`"),
        "{err}"
    );
}

#[test]
fn buffers_are_prefixed_and_round_trip() {
    let layers = json!([
        {"type": "relu"},
        {"type": "test_doubler"},
        {"type": "residual", "layers": [{"type": "relu"}, {"type": "test_doubler"}]}
    ]);
    let (_, mut m) = model(layers.clone(), &[2], 0).unwrap();
    m.forward(&input(&[1, 2]), &mut fctx(true)).unwrap();
    let saved = m.buffers();
    assert_eq!(
        saved.names().collect::<Vec<_>>(),
        ["layers.1.calls", "layers.2.layers.1.calls"]
    );
    let (_, mut fresh) = model(layers, &[2], 0).unwrap();
    fresh.load_buffers(&saved).unwrap();
    let back = fresh.buffers();
    assert_eq!(
        back.get("layers.2.layers.1.calls")
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        vec![1.0]
    );
    let err = fresh
        .load_buffers(&gradus_core::StateDict::new())
        .expect_err("an error");
    assert!(err.to_string().contains("calls"), "{err}");
}

#[test]
fn running_statistics_are_reset_and_switched_through_every_container() {
    let layers = json!([
        {"type": "test_doubler"},
        {"type": "relu"},
        {"type": "residual", "layers": [{"type": "test_doubler"}, {"type": "relu"}],
         "projection": {"type": "test_doubler"}}
    ]);
    let (_, mut m) = model(layers, &[2], 0).unwrap();
    let calls = |m: &Sequential| -> Vec<f64> {
        let b = m.buffers();
        [
            "layers.0.calls",
            "layers.2.layers.0.calls",
            "layers.2.projection.calls",
        ]
        .iter()
        .map(|k| b.get(k).unwrap().to_vec1::<f64>().unwrap()[0])
        .collect()
    };
    m.forward(&input(&[1, 2]), &mut fctx(true)).unwrap();
    assert_eq!(calls(&m), [1.0, 1.0, 1.0]);
    // Through the `Layer` trait, as `update_bn` sees a model: the top level, the residual's
    // body and its projection are all reached.
    let layer: &mut dyn Layer = &mut m;
    assert_eq!(layer.reset_running_stats().unwrap(), 3);
    layer.set_cumulative_stats(true).unwrap();
    layer.forward(&input(&[1, 2]), &mut fctx(true)).unwrap();
    assert_eq!(calls(&m), [100.0, 100.0, 100.0]);
    m.set_cumulative_stats(false).unwrap();
    m.forward(&input(&[1, 2]), &mut fctx(true)).unwrap();
    assert_eq!(calls(&m), [101.0, 101.0, 101.0]);
    // A model without such layers resets nothing.
    let (_, mut plain) = model(json!([{"type": "relu"}]), &[2], 0).unwrap();
    assert_eq!(plain.reset_running_stats().unwrap(), 0);
    assert_eq!(Layer::output_shape(&plain), vec![2]);
}

#[test]
fn residual_without_projection_adds_the_input() {
    let layers = json!([{"type": "residual", "layers": [
        {"type": "linear", "out": 3, "bias": false, "init": {"type": "test_constant", "value": 0.5}},
        {"type": "tanh"}
    ]}]);
    let (vars, mut m) = model(layers, &[3], 0).unwrap();
    assert_eq!(names(&vars), ["layers.0.layers.0.weight"]);
    let x = input(&[2, 3]);
    let y = m.forward(&x, &mut fctx(false)).unwrap();
    let f = (x.sum_keepdim(1).unwrap() * 0.5)
        .unwrap()
        .tanh()
        .unwrap()
        .broadcast_as((2, 3))
        .unwrap();
    assert_all_close(&y, &(f + &x).unwrap(), 1e-12);
}

#[test]
fn residual_with_projection_adds_the_projected_input() {
    let layers = json!([{"type": "residual",
        "layers": [{"type": "linear", "out": 2}, {"type": "relu"}],
        "projection": {"type": "linear", "out": 2, "bias": false}}]);
    let (vars, mut m) = model(layers, &[3], 1).unwrap();
    assert_eq!(m.output_shape(), vec![2]);
    assert_eq!(
        names(&vars),
        [
            "layers.0.layers.0.bias",
            "layers.0.layers.0.weight",
            "layers.0.projection.weight"
        ]
    );
    let x = input(&[4, 3]);
    let y = m.forward(&x, &mut fctx(true)).unwrap();
    let w = var(&vars, "layers.0.layers.0.weight");
    let b = var(&vars, "layers.0.layers.0.bias");
    let p = var(&vars, "layers.0.projection.weight");
    let f = x
        .matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(&b)
        .unwrap()
        .relu()
        .unwrap();
    let expected = (f + x.matmul(&p.t().unwrap()).unwrap()).unwrap();
    assert_all_close(&y, &expected, 1e-12);
    let grads = grads_of(&y.sum_all().unwrap(), &vars);
    assert_eq!(grads.len(), 3);
}

#[test]
fn residual_shape_mismatch_is_an_error() {
    let err = model(
        json!([{"type": "residual", "layers": [{"type": "linear", "out": 2}]}]),
        &[3],
        0,
    )
    .err()
    .expect("an error");
    match &err {
        Error::ShapeMismatch {
            context,
            expected,
            actual,
        } => {
            assert!(
                context.contains("model.layers[0]") && context.contains("projection"),
                "{context}"
            );
            assert_eq!((expected, actual), (&vec![3], &vec![2]));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = model(
        json!([{"type": "residual", "layers": [{"type": "linear", "out": 2}], "projection": {"type": "linear", "out": 4}}]),
        &[3],
        0,
    )
    .err().expect("an error");
    assert!(
        matches!(err, Error::ShapeMismatch { ref expected, .. } if expected == &vec![4]),
        "{err}"
    );
    let err = model(
        json!([{"type": "residual", "layers": [{"type": "bogus"}]}]),
        &[3],
        0,
    )
    .err()
    .expect("an error");
    assert!(
        err.to_string().contains("model.layers[0].layers[0].type"),
        "{err}"
    );
    let err = model(json!([{"type": "residual", "layers": []}]), &[3], 0)
        .err()
        .expect("an error");
    assert!(err.to_string().contains("model.layers[0].layers"), "{err}");
}
