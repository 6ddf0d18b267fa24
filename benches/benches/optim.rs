//! Optimizer step benchmarks: every Gradus optimizer, fused and reference paths, against
//! `candle_nn::AdamW` / `candle_nn::SGD` and a memory-bandwidth probe; and the MLP
//! 784-512-512-10 training step. Writes `target/gradus-bench/summary.{md,json}`.

use std::time::{Duration, Instant};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use criterion::{BenchmarkId, Criterion, SamplingMode};
use gradus_benches::floor;
use gradus_benches::mlp::{fused_adam_step_ms, LayersMlp, Mlp};
use gradus_benches::{
    bytes_per_param, layouts, machine, out_dir, write_summary, AllocReport, Layout, MlpRow, Mode,
    Probe, Recorder, Row,
};
use gradus_core::NamedVar;
use gradus_optim::{build_optimizer, UpdatePath};
// Links the plugin crate so that its `signum` registration is kept.
use custom_optimizer as _;

/// Optimizer names (registry) and their state buffers under default hyperparameters.
const OPTIMIZERS: &[(&str, usize)] = &[
    ("sgd", 0),
    ("adagrad", 1),
    ("rmsprop", 1),
    ("adam", 2),
    ("adamw", 2),
    ("nadam", 2),
    ("radam", 2),
    ("adamax", 2),
    ("adadelta", 2),
    ("lamb", 2),
    ("lars", 1),
    ("adan", 4),
    ("adopt", 2),
    ("ademamix", 3),
    ("adabelief", 2),
    ("rprop", 2),
    ("asgd", 1),
    // Vectors: the unfactored second moment, on its fused kernel (two passes).
    ("adafactor", 1),
    ("lion", 1),
    ("adamw_schedule_free", 2),
    ("sgd_schedule_free", 1),
    // Two passes per step over p0, s, exp_avg, exp_avg_sq (the group-level reduce, then apply).
    ("prodigy", 4),
    // Its inner AdamW's two buffers; the slow weights are read and written once every k = 5 steps.
    ("lookahead", 2),
    // The plugin example's Signum (examples/custom-optimizer): its own crate, its own kernel.
    ("signum", 1),
];

fn params(layout: Layout) -> (Vec<Var>, GradStore) {
    let mut grads = GradStore::default();
    let vars: Vec<Var> = (0..layout.count)
        .map(|i| {
            let base = (i % 7) as f32 * 0.1;
            let v = Var::from_tensor(
                &(Tensor::ones(layout.len, DType::F32, &Device::Cpu).unwrap()
                    * (0.5 + base) as f64)
                    .unwrap(),
            )
            .unwrap();
            let g = (Tensor::ones(layout.len, DType::F32, &Device::Cpu).unwrap() * 1e-2).unwrap();
            grads.insert(v.as_tensor(), g);
            v
        })
        .collect();
    (vars, grads)
}

fn named(vars: &[Var]) -> Vec<NamedVar> {
    vars.iter()
        .enumerate()
        .map(|(i, v)| NamedVar::new(format!("p{i}"), v.clone()))
        .collect()
}

fn timed(rec: &Recorder, id: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let elapsed = start.elapsed();
    rec.push(id, elapsed, iters);
    elapsed
}

fn bench_steps(c: &mut Criterion, mode: Mode, rec: &Recorder) {
    for layout in layouts(mode) {
        let mut group = c.benchmark_group(format!("step/{}", layout.name));
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        group.warm_up_time(Duration::from_millis(1));
        for state in [0usize, 1, 2] {
            let id = format!("probe{state}/{}", layout.name);
            let mut probe = Probe::new(layout.total(), state);
            group.measurement_time(mode.measurement());
            group.bench_function(
                BenchmarkId::new(format!("probe{state}"), layout.name),
                |b| b.iter_custom(|iters| timed(rec, &id, iters, || probe.run())),
            );
        }
        for &(name, _) in OPTIMIZERS {
            for (path, label) in [
                (UpdatePath::Fused, "fused"),
                (UpdatePath::Reference, "reference"),
            ] {
                let (vars, grads) = params(layout);
                let config = serde_json::json!({ "type": name });
                let mut opt = build_optimizer(&config, "optimizer", &named(&vars)).unwrap();
                opt.set_update_path(path).unwrap();
                let id = format!("{name}/{label}/{}", layout.name);
                // Slow paths: one step per sample.
                group.measurement_time(if path == UpdatePath::Fused {
                    mode.measurement()
                } else {
                    Duration::from_millis(1)
                });
                group.bench_function(
                    BenchmarkId::new(format!("{name}/{label}"), layout.name),
                    |b| b.iter_custom(|iters| timed(rec, &id, iters, || opt.step(&grads).unwrap())),
                );
            }
        }
        {
            let (vars, grads) = params(layout);
            let id = format!("sgd/inplace_loop/{}", layout.name);
            group.bench_function(BenchmarkId::new("inplace_loop", layout.name), |b| {
                b.iter_custom(|iters| {
                    timed(rec, &id, iters, || floor::step(&vars, &grads).unwrap())
                })
            });
        }
        group.measurement_time(Duration::from_millis(1));
        {
            let (vars, grads) = params(layout);
            let mut opt = candle_nn::AdamW::new(vars, candle_nn::ParamsAdamW::default()).unwrap();
            let id = format!("adamw/candle_nn/{}", layout.name);
            group.bench_function(BenchmarkId::new("candle_nn_adamw", layout.name), |b| {
                b.iter_custom(|iters| timed(rec, &id, iters, || opt.step(&grads).unwrap()))
            });
        }
        {
            let (vars, grads) = params(layout);
            let mut opt = candle_nn::SGD::new(vars, 1e-3).unwrap();
            let id = format!("sgd/candle_nn/{}", layout.name);
            group.bench_function(BenchmarkId::new("candle_nn_sgd", layout.name), |b| {
                b.iter_custom(|iters| timed(rec, &id, iters, || opt.step(&grads).unwrap()))
            });
        }
        group.finish();
    }
}

/// Records `pairs` ratios (time of `many` / time of `one`, whatever the two are) under `key`,
/// the two timed back to back in alternating order after a warm-up (state buffers allocated
/// and touched).
fn paired(rec: &Recorder, key: &str, pairs: usize, mut one: impl FnMut(), mut many: impl FnMut()) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64()
    };
    for _ in 0..3 {
        time(&mut one);
        time(&mut many);
    }
    for i in 0..pairs {
        let (t_one, t_many) = if i % 2 == 0 {
            let a = time(&mut one);
            (a, time(&mut many))
        } else {
            let b = time(&mut many);
            (time(&mut one), b)
        };
        rec.push_ratio(key, t_many / t_one);
    }
}

/// Many tensors against one of the same total, fused path: steps of the two layouts timed back
/// to back in alternating order, and the median of the per-pair ratios, so that a shift in
/// the machine's memory bandwidth during the run (seen here: up to ±40 % between minutes)
/// affects both sides of each ratio alike.
fn bench_many_vs_one(mode: Mode, rec: &Recorder) {
    let layouts = layouts(mode);
    let pairs = mode.pairs();
    for many in layouts.iter().filter(|l| l.count > 1) {
        let Some(one) = layouts
            .iter()
            .find(|l| l.count == 1 && l.total() == many.total())
        else {
            continue;
        };
        for &(name, _) in OPTIMIZERS {
            let config = serde_json::json!({ "type": name });
            let (one_vars, one_grads) = params(*one);
            let (many_vars, many_grads) = params(*many);
            let mut one_opt = build_optimizer(&config, "optimizer", &named(&one_vars)).unwrap();
            let mut many_opt = build_optimizer(&config, "optimizer", &named(&many_vars)).unwrap();
            one_opt.set_update_path(UpdatePath::Fused).unwrap();
            many_opt.set_update_path(UpdatePath::Fused).unwrap();
            paired(
                rec,
                &format!("{name}/paired/{}", many.name),
                pairs,
                || one_opt.step(&one_grads).unwrap(),
                || many_opt.step(&many_grads).unwrap(),
            );
        }
        let (one_vars, one_grads) = params(*one);
        let (many_vars, many_grads) = params(*many);
        paired(
            rec,
            &format!("sgd/inplace_loop/paired/{}", many.name),
            pairs,
            || floor::step(&one_vars, &one_grads).unwrap(),
            || floor::step(&many_vars, &many_grads).unwrap(),
        );
    }
}

/// Each optimizer's fused step (and the in-place floor) against the bandwidth probe for the
/// same streams and total, timed in back-to-back pairs like [`bench_many_vs_one`]: the probe
/// ratio with the machine's bandwidth shifts cancelled.
fn bench_vs_probe(mode: Mode, rec: &Recorder) {
    let pairs = mode.pairs();
    for layout in layouts(mode) {
        let l = layout.name;
        for &(name, state) in OPTIMIZERS {
            let config = serde_json::json!({ "type": name });
            let (vars, grads) = params(layout);
            let mut opt = build_optimizer(&config, "optimizer", &named(&vars)).unwrap();
            opt.set_update_path(UpdatePath::Fused).unwrap();
            let mut probe = Probe::new(layout.total(), state);
            paired(
                rec,
                &format!("{name}/fused/probe_paired/{l}"),
                pairs,
                || probe.run(),
                || opt.step(&grads).unwrap(),
            );
        }
        let (vars, grads) = params(layout);
        let mut probe = Probe::new(layout.total(), 0);
        paired(
            rec,
            &format!("sgd/inplace_loop/probe_paired/{l}"),
            pairs,
            || probe.run(),
            || floor::step(&vars, &grads).unwrap(),
        );
    }
}

/// The low-precision fused Adam steps of one tensor: bf16 and f16 parameters and gradients with
/// f32 state (the default), and bf16 with f32 master weights.
const LOW_PRECISION: &[(&str, DType, bool)] = &[
    ("bf16", DType::BF16, false),
    ("f16", DType::F16, false),
    ("bf16+master", DType::BF16, true),
];

/// Bytes one low-precision Adam step moves per parameter: θ (2, read and written), g (2,
/// read), the two f32 moments (4 each, read and written), and the f32 master copy when kept.
fn low_precision_bytes(master: bool) -> usize {
    2 * 2 + 2 + 2 * 4 * 2 + if master { 4 * 2 } else { 0 }
}

/// Each low-precision fused Adam step against the f32 bandwidth probe of two state buffers
/// (28 bytes a parameter), timed in back-to-back pairs as [`bench_vs_probe`]; the step's own
/// times are kept for its row.
fn bench_low_precision(mode: Mode, rec: &Recorder) {
    let pairs = mode.pairs();
    for layout in layouts(mode).into_iter().filter(|l| l.count == 1) {
        let l = layout.name;
        for &(label, dtype, master) in LOW_PRECISION {
            let (vars, grads) = params(layout);
            let mut low_grads = GradStore::default();
            let low_vars: Vec<Var> = vars
                .iter()
                .map(|v| {
                    let low = Var::from_tensor(&v.as_tensor().to_dtype(dtype).unwrap()).unwrap();
                    let g = grads.get(v.as_tensor()).unwrap().to_dtype(dtype).unwrap();
                    low_grads.insert(low.as_tensor(), g);
                    low
                })
                .collect();
            let config = serde_json::json!({"type": "adam", "master_weights": master});
            let mut opt = build_optimizer(&config, "optimizer", &named(&low_vars)).unwrap();
            opt.set_update_path(UpdatePath::Fused).unwrap();
            let mut probe = Probe::new(layout.total(), 2);
            let step_id = format!("adam/fused_{label}/{l}");
            paired(
                rec,
                &format!("adam/fused_{label}/probe_paired/{l}"),
                pairs,
                || probe.run(),
                || {
                    let start = Instant::now();
                    opt.step(&low_grads).unwrap();
                    rec.push(&step_id, start.elapsed(), 1);
                },
            );
        }
    }
}

/// The rows of [`bench_low_precision`].
fn low_precision_rows(mode: Mode, rec: &Recorder) -> Vec<Row> {
    let mut rows = Vec::new();
    for layout in layouts(mode).into_iter().filter(|l| l.count == 1) {
        let l = layout.name;
        let n = layout.total() as f64;
        for &(label, _, master) in LOW_PRECISION {
            let Some(ms) = rec.median_ms(&format!("adam/fused_{label}/{l}")) else {
                continue;
            };
            rows.push(Row {
                optimizer: "adam".into(),
                layout: l.into(),
                dtype: label.into(),
                path: "fused".into(),
                median_ms: ms,
                gb_per_s: n * low_precision_bytes(master) as f64 / (ms * 1e-3) / 1e9,
                probe_ratio: rec
                    .median_ms(&format!("probe2/{l}"))
                    .map_or(f64::NAN, |p| ms / p),
                probe_ratio_paired: rec
                    .median_ratio(&format!("adam/fused_{label}/probe_paired/{l}")),
                speedup_vs_candle_nn: None,
                // The reference path of a 1e7 bf16 tensor is not timed (seconds of Candle ops
                // per step); the f32 row of the same layout is the comparison.
                speedup_vs_reference: None,
                vs_one_tensor: None,
                vs_one_tensor_paired: None,
            });
        }
    }
    rows
}

/// `clip_grad_norm` (L2, always scaling) on the fused path in place, the fused path with a new
/// tensor per gradient (`GradStore::insert`), and the tensor-op path. Each timed call is
/// followed by an untimed doubling so that the gradients keep their magnitude.
fn bench_clip(c: &mut Criterion, mode: Mode, rec: &Recorder) {
    use gradus_optim::clip::kernels::{norm, scale_in_place, scaled_copy};
    use gradus_optim::clip::{clip_grad_norm, NormType};
    for layout in layouts(mode) {
        let mut group = c.benchmark_group(format!("clip/{}", layout.name));
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        group.warm_up_time(Duration::from_millis(1));
        for label in ["fused", "fused_copy", "reference"] {
            let (vars, mut grads) = params(layout);
            let id = format!("clip_grad_norm/{label}/{}", layout.name);
            group.measurement_time(if label == "reference" {
                Duration::from_millis(1)
            } else {
                mode.measurement()
            });
            group.bench_function(BenchmarkId::new(label, layout.name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t0 = Instant::now();
                        match label {
                            "fused" => {
                                clip_grad_norm(
                                    &vars,
                                    &mut grads,
                                    1e-3,
                                    NormType::P(2.0),
                                    false,
                                    UpdatePath::Fused,
                                )
                                .unwrap();
                            }
                            "fused_copy" => {
                                let gs: Vec<Tensor> = vars
                                    .iter()
                                    .map(|v| grads.get(v.as_tensor()).unwrap().clone())
                                    .collect();
                                let norms: Vec<f64> = {
                                    use rayon::prelude::*;
                                    gs.par_iter()
                                        .map(|g| norm(g, NormType::P(2.0)).unwrap())
                                        .collect()
                                };
                                let t = NormType::P(2.0).of_values(&norms);
                                let coef = (1e-3 / (t + 1e-6)).min(1.0);
                                for (v, g) in vars.iter().zip(&gs) {
                                    let new = scaled_copy(g, coef).unwrap().unwrap();
                                    grads.insert(v.as_tensor(), new);
                                }
                            }
                            _ => {
                                clip_grad_norm(
                                    &vars,
                                    &mut grads,
                                    1e-3,
                                    NormType::P(2.0),
                                    false,
                                    UpdatePath::Reference,
                                )
                                .unwrap();
                            }
                        }
                        let dt = t0.elapsed();
                        rec.push(&id, dt, 1);
                        total += dt;
                        for v in &vars {
                            let g = grads.get(v.as_tensor()).unwrap();
                            let scale = 1e-2
                                / g.flatten_all()
                                    .unwrap()
                                    .get(0)
                                    .unwrap()
                                    .to_scalar::<f32>()
                                    .unwrap() as f64;
                            scale_in_place(g, scale).unwrap();
                        }
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

/// The MLP step variants: Gradus Adam fused and reference, `candle_nn::AdamW`, Gradus Adam
/// fused over bf16 parameters (f32 state and master weights), all on a `candle_nn::Linear`
/// model; and Gradus Adam fused on the same MLP built from Gradus's layers (the runner's model,
/// whose linear layers are fused ops).
const MLP_KINDS: [&str; 5] = [
    "gradus_adam_fused",
    "gradus_adam_reference",
    "candle_nn_adamw",
    "gradus_adam_fused_bf16",
    "gradus_layers_adam_fused",
];

fn bench_mlp(c: &mut Criterion, mode: Mode, rec: &Recorder) {
    let batch = if mode == Mode::Test { 4 } else { 128 };
    let mut group = c.benchmark_group("mlp");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(mode.measurement());
    for kind in MLP_KINDS {
        // bf16 parameters with f32 state and master weights, on the fused path.
        let bf16 = kind.ends_with("bf16");
        let layers = kind.starts_with("gradus_layers");
        let mlp = Mlp::with_dtype(batch, if bf16 { DType::BF16 } else { DType::F32 });
        let layers_mlp = layers.then(|| LayersMlp::new(batch));
        let vars = match &layers_mlp {
            Some(m) => m.varmap.all_vars(),
            None => mlp.varmap.all_vars(),
        };
        let mut gradus: Option<gradus_optim::Adam> = None;
        let mut candle: Option<candle_nn::AdamW> = None;
        if kind == "candle_nn_adamw" {
            candle = Some(candle_nn::AdamW::new(vars, candle_nn::ParamsAdamW::default()).unwrap());
        } else {
            let mut opt = gradus_optim::Adam::new(vars, Default::default()).unwrap();
            if bf16 {
                let precision = gradus_optim::Precision {
                    master_weights: true,
                    ..Default::default()
                };
                opt.set_precision(precision).unwrap();
            }
            let path = if kind.contains("fused") {
                UpdatePath::Fused
            } else {
                UpdatePath::Reference
            };
            opt.set_update_path(path);
            gradus = Some(opt);
        }
        let (step_id, opt_id) = (format!("mlp/{kind}/step"), format!("mlp/{kind}/opt"));
        group.bench_function(kind, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    let grads = match &layers_mlp {
                        Some(m) => m.grads(),
                        None => mlp.grads(),
                    };
                    let t1 = Instant::now();
                    match (&mut gradus, &mut candle) {
                        (Some(o), _) => o.apply(&grads).unwrap(),
                        (_, Some(o)) => o.step(&grads).unwrap(),
                        _ => {}
                    }
                    let t2 = Instant::now();
                    rec.push(&step_id, t2 - t0, 1);
                    rec.push(&opt_id, t2 - t1, 1);
                    total += t2 - t0;
                }
                total
            })
        });
    }
    group.finish();
}

fn summarize(mode: Mode, rec: &Recorder) -> (Vec<Row>, Vec<MlpRow>) {
    let mut rows = Vec::new();
    for layout in layouts(mode) {
        let l = layout.name;
        let n = layout.total() as f64;
        let probe = |state: usize| rec.median_ms(&format!("probe{state}/{l}"));
        for state in [0usize, 1, 2] {
            if let Some(ms) = probe(state) {
                rows.push(Row {
                    optimizer: format!("probe ({state} state buffers)"),
                    layout: l.into(),
                    dtype: "f32".into(),
                    path: "probe".into(),
                    median_ms: ms,
                    gb_per_s: n * bytes_per_param(state) as f64 / (ms * 1e-3) / 1e9,
                    probe_ratio: 1.0,
                    probe_ratio_paired: None,
                    speedup_vs_candle_nn: None,
                    speedup_vs_reference: None,
                    vs_one_tensor: None,
                    vs_one_tensor_paired: None,
                });
            }
        }
        let clip_ref = rec.median_ms(&format!("clip_grad_norm/reference/{l}"));
        for path in ["fused", "fused_copy", "reference"] {
            let Some(ms) = rec.median_ms(&format!("clip_grad_norm/{path}/{l}")) else {
                continue;
            };
            rows.push(Row {
                optimizer: "clip_grad_norm".into(),
                layout: l.into(),
                dtype: "f32".into(),
                path: path.into(),
                median_ms: ms,
                // Norm pass reads g, scale pass reads and writes it: 12 bytes, as probe 0.
                gb_per_s: n * 12.0 / (ms * 1e-3) / 1e9,
                probe_ratio: probe(0).map_or(f64::NAN, |p| ms / p),
                probe_ratio_paired: None,
                speedup_vs_candle_nn: None,
                speedup_vs_reference: clip_ref.map(|r| r / ms),
                vs_one_tensor: (layout.count > 1)
                    .then(|| rec.median_ms(&format!("clip_grad_norm/{path}/1x10000000")))
                    .flatten()
                    .map(|one| ms / one),
                vs_one_tensor_paired: None,
            });
        }
        for &(name, state) in OPTIMIZERS {
            let candle_name = match name {
                "adam" | "adamw" => Some("adamw"),
                "sgd" => Some("sgd"),
                _ => None,
            };
            let candle = candle_name.and_then(|c| rec.median_ms(&format!("{c}/candle_nn/{l}")));
            let reference = rec.median_ms(&format!("{name}/reference/{l}"));
            let mut paths = vec!["fused", "reference"];
            if candle.is_some() && name != "adam" {
                paths.push("candle_nn");
            }
            if name == "sgd" {
                paths.push("inplace_loop");
            }
            for path in paths {
                let Some(ms) = rec.median_ms(&format!("{name}/{path}/{l}")) else {
                    continue;
                };
                let vs_one = (layout.count > 1)
                    .then(|| rec.median_ms(&format!("{name}/{path}/1x10000000")))
                    .flatten()
                    .map(|one| ms / one);
                rows.push(Row {
                    optimizer: name.into(),
                    layout: l.into(),
                    dtype: "f32".into(),
                    path: path.into(),
                    median_ms: ms,
                    gb_per_s: n * bytes_per_param(state) as f64 / (ms * 1e-3) / 1e9,
                    probe_ratio: probe(state).map_or(f64::NAN, |p| ms / p),
                    probe_ratio_paired: matches!(path, "fused" | "inplace_loop")
                        .then(|| rec.median_ratio(&format!("{name}/{path}/probe_paired/{l}")))
                        .flatten(),
                    speedup_vs_candle_nn: candle.map(|c| c / ms),
                    speedup_vs_reference: reference.map(|r| r / ms),
                    vs_one_tensor: vs_one,
                    vs_one_tensor_paired: match path {
                        "fused" => rec.median_ratio(&format!("{name}/paired/{l}")),
                        "inplace_loop" => rec.median_ratio(&format!("{name}/{path}/paired/{l}")),
                        _ => None,
                    },
                });
            }
        }
    }
    rows.extend(low_precision_rows(mode, rec));
    let mlp = MLP_KINDS
        .iter()
        .filter_map(|k| {
            let step = rec.median_ms(&format!("mlp/{k}/step"))?;
            let opt = rec.median_ms(&format!("mlp/{k}/opt"))?;
            Some(MlpRow {
                optimizer: k.to_string(),
                allocator: "system".into(),
                step_ms: step,
                optimizer_ms: opt,
                optimizer_share: opt / step,
            })
        })
        .collect();
    (rows, mlp)
}

fn main() {
    let mode = Mode::detect();
    let rec = Recorder::default();
    let mut c = Criterion::default().configure_from_args();
    bench_steps(&mut c, mode, &rec);
    bench_many_vs_one(mode, &rec);
    bench_vs_probe(mode, &rec);
    bench_low_precision(mode, &rec);
    bench_clip(&mut c, mode, &rec);
    bench_mlp(&mut c, mode, &rec);
    c.final_summary();
    let (rows, mut mlp) = summarize(mode, &rec);
    // The plain loop the `alloc` bench runs under mimalloc, here under the system allocator.
    let (batch, steps) = match mode {
        Mode::Test => (4, 2),
        Mode::Quick => (128, 40),
        Mode::Full => (128, 200),
    };
    let (step_ms, opt_ms) = fused_adam_step_ms(batch, steps);
    mlp.push(MlpRow {
        optimizer: "mlp_step_system_alloc".into(),
        allocator: "system".into(),
        step_ms,
        optimizer_ms: opt_ms,
        optimizer_share: opt_ms / step_ms,
    });
    if mode == Mode::Test {
        assert!(
            !rows.is_empty() && mlp.len() == MLP_KINDS.len() + 1,
            "every benchmark ran once"
        );
        return;
    }
    let alloc: AllocReport = std::fs::read_to_string(out_dir().join("alloc.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    mlp.extend(alloc.mlp);
    match write_summary(machine(mode), &rows, &mlp, &alloc.memory) {
        Ok(dir) => println!("summary written to {}", dir.join("summary.md").display()),
        Err(e) => eprintln!("could not write the summary: {e}"),
    }
}
