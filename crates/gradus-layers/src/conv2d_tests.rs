//! Tests of [`Conv2d`](super::Conv2d) against a naive loop.

use super::*;
use crate::testing::{assert_all_close, assert_tensors_close, context, fctx, grads_of};
use candle_core::DType;
use candle_core::Device;
use candle_nn::VarMap;
use gradus_core::SeededRng;
use serde_json::json;

fn build_conv(config: Value, shape: &[usize]) -> Result<(VarMap, Conv2d)> {
    let vars = VarMap::new();
    let mut rng = SeededRng::new(11);
    let layer = {
        let mut ctx = context(&vars, shape, &mut rng);
        let config: Conv2dConfig = gradus_core::config::parse_config(&config, "m[0]")?;
        Conv2d::from_context(&config, "m[0]", &mut ctx)?
    };
    Ok((vars, layer))
}

/// The definition, one multiply-add at a time (indices as in the formula, hence the lint).
#[allow(clippy::needless_range_loop)]
fn naive(x: &Tensor, layer: &Conv2d) -> Tensor {
    let xs = x.to_vec3::<f64>().unwrap(); // one sample (C, H, W)
    let (c_in, h, w) = (xs.len(), xs[0].len(), xs[0][0].len());
    let kernel: Vec<Vec<Vec<Vec<f64>>>> = (0..layer.weight.dim(0).unwrap())
        .map(|o| layer.weight.get(o).unwrap().to_vec3::<f64>().unwrap())
        .collect();
    let bias = layer.bias.as_ref().map(|b| b.to_vec1::<f64>().unwrap());
    let (out, per_group) = (kernel.len(), kernel[0].len());
    let (kh, kw) = (kernel[0][0].len(), kernel[0][0][0].len());
    let [s_h, s_w] = layer.stride;
    let [p_h, p_w] = layer.padding;
    let d = layer.dilation;
    let out_per_group = out / layer.groups;
    let [_, h_out, w_out] = layer.output_shape[..] else {
        unreachable!()
    };
    let mut y = vec![0.0; out * h_out * w_out];
    for o in 0..out {
        let g = o / out_per_group;
        for i in 0..h_out {
            for j in 0..w_out {
                let mut acc = bias.as_ref().map_or(0.0, |b| b[o]);
                for c in 0..per_group {
                    for u in 0..kh {
                        for v in 0..kw {
                            let r = (s_h * i + d * u) as isize - p_h as isize;
                            let q = (s_w * j + d * v) as isize - p_w as isize;
                            if r >= 0 && q >= 0 && (r as usize) < h && (q as usize) < w {
                                acc += kernel[o][c][u][v]
                                    * xs[g * per_group + c][r as usize][q as usize];
                            }
                        }
                    }
                }
                y[(o * h_out + i) * w_out + j] = acc;
            }
        }
    }
    assert!(c_in == per_group * layer.groups);
    Tensor::from_vec(y, (out, h_out, w_out), &Device::Cpu).unwrap()
}

fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn matches_naive_loop_across_settings() {
    let cases = [
        (json!({"out_channels": 3, "kernel_size": 3}), vec![2, 6, 7]),
        (
            json!({"out_channels": 2, "kernel_size": [2, 3], "stride": 2, "padding": 1}),
            vec![2, 7, 6],
        ),
        (
            json!({"out_channels": 4, "kernel_size": 3, "dilation": 2, "padding": [2, 1], "bias": false}),
            vec![1, 8, 8],
        ),
        (
            json!({"out_channels": 4, "kernel_size": 3, "stride": [1, 2], "groups": 2}),
            vec![4, 5, 6],
        ),
    ];
    for (config, shape) in cases {
        let (_vars, mut layer) = build_conv(config.clone(), &shape).unwrap();
        let x = input(&[2, shape[0], shape[1], shape[2]]);
        let y = layer.forward(&x, &mut fctx(false)).unwrap();
        assert_eq!(&y.dims()[1..], layer.output_shape().as_slice(), "{config}");
        for n in 0..2 {
            let sample = x.get(n).unwrap();
            assert_all_close(&y.get(n).unwrap(), &naive(&sample, &layer), 1e-12);
        }
    }
}

#[test]
fn parameters_use_pytorch_layout_and_bias_bound() {
    let (vars, layer) = build_conv(
        json!({"out_channels": 6, "kernel_size": [3, 2], "groups": 3}),
        &[3, 5, 5],
    )
    .unwrap();
    assert_eq!(layer.weight().dims(), &[6, 1, 3, 2]);
    let bound = 1.0 / 6f64.sqrt(); // fan_in = 1 * 3 * 2
    let b = layer.bias().unwrap().to_vec1::<f64>().unwrap();
    assert!(b.iter().all(|v| v.abs() <= bound));
    assert!(vars.data().lock().unwrap().contains_key("layer.weight"));
}

#[test]
fn gradients_reach_weight_and_bias() {
    let (vars, mut layer) = build_conv(
        json!({"out_channels": 2, "kernel_size": 2, "stride": 2, "padding": 1}),
        &[1, 4, 4],
    )
    .unwrap();
    let x = input(&[3, 1, 4, 4]);
    let y = layer.forward(&x, &mut fctx(true)).unwrap();
    let grads = grads_of(&y.sum_all().unwrap(), &vars);
    // d sum(y) / d b[o] = N * H_out * W_out = 3 * 3 * 3
    assert_eq!(grads["layer.bias"], vec![27.0, 27.0]);
    assert_eq!(grads["layer.weight"].len(), 8);
    assert!(grads["layer.weight"].iter().any(|g| *g != 0.0));
}

#[test]
fn shape_errors_name_both_shapes() {
    let err = build_conv(json!({"out_channels": 2, "kernel_size": 5}), &[1, 3, 3])
        .err()
        .expect("an error");
    match err {
        Error::ShapeMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, vec![1, 5, 5]);
            assert_eq!(actual, vec![1, 3, 3]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = build_conv(json!({"out_channels": 2, "kernel_size": 3}), &[16])
        .err()
        .expect("an error");
    assert!(
        err.to_string().contains("(C, H, W), got shape [16]"),
        "{err}"
    );
    let err = build_conv(
        json!({"out_channels": 3, "kernel_size": 3, "groups": 2}),
        &[4, 5, 5],
    )
    .err()
    .expect("an error");
    assert!(
        err.to_string().starts_with("invalid config at m[0].groups"),
        "{err}"
    );
    let err = build_conv(json!({"kernel_size": 3}), &[4, 5, 5])
        .err()
        .expect("an error");
    assert_eq!(
        err.to_string(),
        "invalid config at m[0].out_channels: missing field `out_channels`"
    );
}

/// Output, input, weight and bias of one pass and their gradients under the loss `sum(y * r)`,
/// `r` a fixed pattern so that every output position weighs differently.
struct Pass {
    loss: f64,
    y: Tensor,
    x: Tensor,
    dx: Tensor,
    w: Tensor,
    dw: Tensor,
    b: Option<(Tensor, Tensor)>,
}

fn pass(layer: &mut Conv2d, vars: &VarMap, x: &Tensor) -> candle_core::Result<Pass> {
    let xv = candle_core::Var::from_tensor(x)?;
    let y = layer
        .forward(xv.as_tensor(), &mut fctx(true))
        .map_err(candle_core::Error::wrap)?;
    let r = Tensor::arange(0u32, y.elem_count() as u32, &Device::Cpu)?
        .to_dtype(y.dtype())?
        .affine(0.37, 0.0)?
        .sin()?
        .reshape(y.dims())?;
    let loss = (&y * &r)?.sum_all()?;
    let grads = loss.backward()?;
    let data = vars.data().lock().unwrap();
    let grad = |t: &Tensor| grads.get(t).cloned().expect("a gradient");
    let w = data["layer.weight"].as_tensor().clone();
    let b = data.get("layer.bias").map(|b| {
        let b = b.as_tensor().clone();
        let db = grad(&b);
        (b, db)
    });
    Ok(Pass {
        loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
        dx: grad(xv.as_tensor()),
        dw: grad(&w),
        x: x.clone(),
        y,
        w,
        b,
    })
}

/// Whether Candle 0.11's conv2d backward runs without an arithmetic panic for input `(h, w)`
/// (already padded when the padding is explicit), its own `padding`, kernel `(kh, kw)`,
/// `stride` and `dilation`. It computes the output padding of the transposed convolution from
/// the height, `h - ((out_h - 1) * stride + dilation * (kh - 1) + 1 - 2 * padding)`, and reuses
/// it for the width; every intermediate is a `usize`, so a negative one panics instead of
/// returning an error.
fn candle_backward_defined(
    (h, w, padding): (usize, usize, usize),
    (kh, kw): (usize, usize),
    stride: usize,
    dilation: usize,
) -> bool {
    let out = |len: usize, k: usize| (len + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
    let covered = |len: usize, k: usize| {
        ((out(len, k) - 1) * stride + dilation * (k - 1) + 1) as i64 - 2 * padding as i64
    };
    let output_padding = h as i64 - covered(h, kh);
    covered(h, kh) >= 0 && output_padding >= 0 && covered(w, kw) + output_padding >= 0
}

/// `sum(a * b)` in f64.
fn dot(a: &Tensor, b: &Tensor) -> f64 {
    let f = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    (f(a) * f(b))
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// The im2col path equals Candle's `conv2d` (the reference path): output and the gradients
    /// of input, weight and bias, f32 within 1e-5 and f64 within 1e-12 (relative, or absolute
    /// below 1).
    #[test]
    fn im2col_path_matches_reference(
        seed in 0u64..1_000,
        (n, per_group, groups, out_per_group) in (1usize..4, 1usize..4, 1usize..3, 1usize..4),
        (h, w, kh, kw) in (1usize..9, 1usize..9, 1usize..4, 1usize..4),
        (s_h, s_w, p_h, p_w, dilation) in (1usize..4, 1usize..4, 0usize..3, 0usize..3, 1usize..3),
        bias in proptest::bool::ANY,
        f64_dtype in proptest::bool::ANY,
    ) {
        let (dtype, tol) = if f64_dtype { (DType::F64, 1e-12) } else { (DType::F32, 1e-5) };
        let c = per_group * groups;
        let config = json!({
            "out_channels": out_per_group * groups, "kernel_size": [kh, kw],
            "stride": [s_h, s_w], "padding": [p_h, p_w], "dilation": dilation,
            "groups": groups, "bias": bias,
        });
        let config: Conv2dConfig = gradus_core::config::parse_config(&config, "m[0]").unwrap();
        let vars = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let built = {
            let mut ctx = crate::testing::context_of(dtype, &vars, &[c, h, w], &mut rng);
            Conv2d::from_context(&config, "m[0]", &mut ctx)
        };
        // Windows larger than the padded input are rejected at build time.
        proptest::prop_assume!(built.is_ok());
        let mut layer = built.unwrap();
        let x = rng.uniform_tensor(&[n, c, h, w], -1.0, 1.0, dtype, &Device::Cpu).unwrap();
        let fast = pass(&mut layer, &vars, &x).unwrap();
        // The loss is linear in x and in (W, b): sum(y r) = <dx, x> + <db, b> = <dW, W> + <db, b>.
        let bias_part = fast.b.as_ref().map_or(0.0, |(b, db)| dot(b, db));
        let scale = tol * 100.0 * fast.loss.abs().max(1.0);
        proptest::prop_assert!((dot(&fast.dx, &fast.x) + bias_part - fast.loss).abs() <= scale);
        proptest::prop_assert!((dot(&fast.dw, &fast.w) + bias_part - fast.loss).abs() <= scale);
        proptest::prop_assert_eq!(fast.b.is_some(), bias);
        layer.reference = true;
        // Candle's conv2d backward fails for some shapes (it sizes the input gradient's width
        // from the height's arithmetic, and underflows a `usize` where the padding exceeds the
        // covered rows); the identities above cover those.
        let reference_input = if p_h == p_w { (h, w, p_h) } else { (h + 2 * p_h, w + 2 * p_w, 0) };
        let reference_stride = if s_h == s_w { s_h } else { 1 };
        proptest::prop_assume!(candle_backward_defined(
            reference_input, (kh, kw), reference_stride, dilation,
        ));
        let Ok(slow) = pass(&mut layer, &vars, &x) else {
            return Ok(());
        };
        assert_tensors_close("y", &fast.y, &slow.y, tol);
        assert_tensors_close("dx", &fast.dx, &slow.dx, tol);
        assert_tensors_close("dW", &fast.dw, &slow.dw, tol);
        if let (Some((_, a)), Some((_, b))) = (&fast.b, &slow.b) {
            assert_tensors_close("db", a, b, tol);
        }
    }
}

#[test]
fn im2col_path_reports_a_wrong_input_shape() {
    let (_vars, mut layer) =
        build_conv(json!({"out_channels": 2, "kernel_size": 3}), &[2, 5, 5]).unwrap();
    let err = layer
        .forward(&input(&[1, 3, 5, 5]), &mut fctx(false))
        .unwrap_err();
    match err {
        Error::ShapeMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, vec![2, 5, 5]);
            assert_eq!(actual, vec![3, 5, 5]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The fused kernel's blocks run in parallel above a size; the result (output and every
/// gradient) is the same to the bit with 1 thread and with 3.
#[test]
fn the_fused_kernel_does_not_depend_on_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (vars, mut layer) = build_conv(
                json!({"out_channels": 32, "kernel_size": 3, "padding": 1}),
                &[8, 12, 12],
            )
            .unwrap();
            // 9 samples: blocks of 4, 4 and 1; 9 * 32 * 72 * 144 = 3.0e6 multiply-adds, above
            // the parallel threshold (2^21).
            let x = input(&[9, 8, 12, 12]);
            let p = pass(&mut layer, &vars, &x).unwrap();
            let bits = |t: &Tensor| {
                t.flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .into_iter()
                    .map(f64::to_bits)
                    .collect::<Vec<_>>()
            };
            let (_, db) = p.b.unwrap();
            (bits(&p.y), bits(&p.dx), bits(&p.dw), bits(&db))
        })
    };
    assert_eq!(run(1), run(3));
}

/// The first layer's input is data: its gradient is not computed (nor returned), and the
/// weight's gradient is the same to the bit as when the input's is.
#[test]
fn no_input_gradient_is_computed_for_data() {
    let (vars, mut layer) =
        build_conv(json!({"out_channels": 4, "kernel_size": 3}), &[2, 6, 6]).unwrap();
    let x = input(&[3, 2, 6, 6]);
    let weight = vars.data().lock().unwrap()["layer.weight"]
        .as_tensor()
        .clone();
    let loss = |layer: &mut Conv2d, x: &Tensor| {
        let y = layer.forward(x, &mut fctx(true)).unwrap();
        y.sqr().unwrap().sum_all().unwrap().backward().unwrap()
    };
    let from_data = loss(&mut layer, &x);
    assert!(from_data.get(&x).is_none());
    let leaf = candle_core::Var::from_tensor(&x).unwrap();
    let from_leaf = loss(&mut layer, leaf.as_tensor());
    assert!(from_leaf.get(leaf.as_tensor()).is_some());
    let dw = |g: &candle_core::backprop::GradStore| {
        g.get(&weight)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    assert_eq!(dw(&from_data), dw(&from_leaf));
}
