//! Training speed of the runner (issue #22): samples/s of whole training epochs of the digits MLP
//! and CNN pipelines (the runner's own `train_step` over every batch, augmentation and clipping
//! included, no I/O: no console, metrics, checkpoints or plots), and each CNN layer's forward and
//! backward time on one training batch. Writes `target/gradus-bench/train.{md,json}`.
//!
//! Per layer, the input is a leaf variable of the shape the layer receives in the model (batch
//! 64, the pipeline's), the layer is in training mode (batch statistics, dropout masks), and the
//! backward pass is that of `sum(y * r)` for a fixed `r`, so it computes the input gradient and
//! the layer's parameter gradients, as inside the model. `backward` is the median of forward +
//! backward minus the median forward. What the layers do not account for of a training step is
//! the rest of the runner's step: batch gather and augmentation, the loss, clipping, the
//! optimizer and candle's graph bookkeeping.
//!
//! Candle's workers spin as the `gradus` binary sets them (`gradus_runner::threads`) unless
//! `CANDLE_BARRIER_POOL_SPIN_LIMIT` is exported: `CANDLE_BARRIER_POOL_SPIN_LIMIT=25000` measures
//! candle's default.
//!
//! `cargo test --benches` (criterion's test mode) trains two batches of each pipeline and times
//! each layer once, and writes no summary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use criterion::{Criterion, Throughput};
use gradus_benches::{machine, out_dir, Mode};
use gradus_core::plugin::layer::ForwardContext;
use gradus_core::SeededRng;
use gradus_layers::Sequential;
use gradus_runner::experiment::{build, Experiment};
use gradus_runner::train::step::train_step;
use gradus_runner::train::{fresh_state, StepTiming};
use serde::Serialize;

/// The `gradus` binary's allocator, so that the runner's loop is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PIPELINES: [&str; 2] = ["digits-mlp", "digits-cnn"];

fn pipeline_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/pipelines")
        .join(format!("{name}.json"))
}

fn experiment(name: &str) -> Experiment {
    let pipeline = gradus_runner::run::load_pipeline(Some(&pipeline_path(name)))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    build(pipeline).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Trains `batches` batches of epoch `epoch` (all of them for `None`); returns the samples.
fn train_epoch(
    exp: &mut Experiment,
    state: &mut gradus_runner::checkpoint::TrainingState,
    epoch: usize,
    batches: Option<usize>,
) -> usize {
    let mut timing = StepTiming::default();
    let all = exp.loader.epoch_indices(epoch).expect("epoch batches");
    let take = batches.unwrap_or(all.len()).min(all.len());
    let mut samples = 0;
    for indices in &all[..take] {
        train_step(exp, state, indices, &mut timing).expect("training step");
        samples += indices.len();
    }
    samples
}

#[derive(Debug, Serialize)]
struct PipelineRow {
    pipeline: String,
    samples_per_epoch: usize,
    epochs: usize,
    median_epoch_seconds: f64,
    samples_per_second: f64,
}

#[derive(Debug, Serialize)]
struct LayerRow {
    index: usize,
    layer: String,
    input: Vec<usize>,
    forward_ms: f64,
    backward_ms: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Whole epochs of each pipeline, timed one by one (the model keeps training, as in a run).
fn bench_pipelines(c: &mut Criterion, mode: Mode) -> Vec<PipelineRow> {
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("train_epoch");
    group.sample_size(10);
    group.measurement_time(match mode {
        Mode::Test => Duration::from_millis(1),
        Mode::Quick => Duration::from_secs(5),
        Mode::Full => Duration::from_secs(20),
    });
    for name in PIPELINES {
        let mut exp = experiment(name);
        let mut state = fresh_state(exp.pipeline.seed);
        let batches = (mode == Mode::Test).then_some(2);
        let per_epoch = train_epoch(&mut exp, &mut state, 0, batches);
        let mut seconds = Vec::new();
        let mut epoch = 1;
        group.throughput(Throughput::Elements(per_epoch as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    let one = Instant::now();
                    train_epoch(&mut exp, &mut state, epoch, batches);
                    seconds.push(one.elapsed().as_secs_f64());
                    epoch += 1;
                }
                started.elapsed()
            })
        });
        let epoch_seconds = median(seconds.clone());
        rows.push(PipelineRow {
            pipeline: name.to_string(),
            samples_per_epoch: per_epoch,
            epochs: seconds.len(),
            median_epoch_seconds: epoch_seconds,
            samples_per_second: per_epoch as f64 / epoch_seconds,
        });
    }
    group.finish();
    rows
}

/// The CNN's layers one by one, each built alone for the input shape it has in the model.
fn bench_layers(c: &mut Criterion, mode: Mode) -> Vec<LayerRow> {
    let exp = experiment("digits-cnn");
    let configs = exp.pipeline.model.layers.clone();
    let batch = match mode {
        Mode::Test => 4,
        _ => 64,
    };
    let mut shape = exp.model.input_shape().to_vec();
    let summary = exp.model.describe();
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("cnn_layer");
    group.sample_size(20);
    group.measurement_time(mode.measurement().max(Duration::from_millis(1)));
    for (i, (config, (kind, out_shape))) in configs.iter().zip(&summary).enumerate() {
        let vars = VarMap::new();
        let mut rng = SeededRng::new(i as u64);
        let mut layer = Sequential::build(
            std::slice::from_ref(config),
            "model.layers",
            &shape,
            &vars,
            &mut rng,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap_or_else(|e| panic!("layer {i}: {e}"));
        let mut dims = vec![batch];
        dims.extend_from_slice(&shape);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, dims.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
        let mut out_dims = vec![batch];
        out_dims.extend_from_slice(out_shape);
        let r = Tensor::randn(0f32, 1.0, out_dims.as_slice(), &Device::Cpu).unwrap();
        let mut layer_rng = SeededRng::new(7);
        let (mut forward, mut both) = (Vec::new(), Vec::new());
        group.bench_function(format!("{i}_{kind}_forward_backward"), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    let t0 = Instant::now();
                    let mut ctx = ForwardContext {
                        train: true,
                        rng: &mut layer_rng,
                    };
                    let y = layer.forward(x.as_tensor(), &mut ctx).expect("forward");
                    let t1 = Instant::now();
                    let grads = (y * &r)
                        .and_then(|p| p.sum_all())
                        .and_then(|l| l.backward());
                    grads.expect("backward");
                    forward.push((t1 - t0).as_secs_f64());
                    both.push(t0.elapsed().as_secs_f64());
                }
                started.elapsed()
            })
        });
        let forward_ms = median(forward) * 1e3;
        rows.push(LayerRow {
            index: i,
            layer: kind.clone(),
            input: dims,
            forward_ms,
            backward_ms: median(both) * 1e3 - forward_ms,
        });
        shape = out_shape.clone();
    }
    group.finish();
    rows
}

fn markdown(pipelines: &[PipelineRow], layers: &[LayerRow], machine: &serde_json::Value) -> String {
    let mut md = format!(
        "# Training speed (`cargo bench -p gradus-benches --bench train`)\n\nmachine: {machine}\n\n\
         | pipeline | samples/epoch | epochs timed | median epoch (s) | samples/s |\n|---|---:|---:|---:|---:|\n"
    );
    for p in pipelines {
        md.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.0} |\n",
            p.pipeline, p.samples_per_epoch, p.epochs, p.median_epoch_seconds, p.samples_per_second
        ));
    }
    md.push_str(
        "\nDigits CNN, one training batch per layer:\n\n\
         | # | layer | input | forward (ms) | backward (ms) |\n|---:|---|---|---:|---:|\n",
    );
    let (mut fwd, mut bwd) = (0.0, 0.0);
    for l in layers {
        fwd += l.forward_ms;
        bwd += l.backward_ms;
        md.push_str(&format!(
            "| {} | {} | {:?} | {:.3} | {:.3} |\n",
            l.index, l.layer, l.input, l.forward_ms, l.backward_ms
        ));
    }
    md.push_str(&format!("| | all layers | | {fwd:.3} | {bwd:.3} |\n"));
    md
}

fn main() {
    // As the `gradus` binary does (an exported CANDLE_BARRIER_POOL_SPIN_LIMIT is kept, which
    // is how candle's default, 25000, is measured against it).
    gradus_runner::threads::quiet_candle_workers();
    let mode = Mode::detect();
    let mut c = Criterion::default().configure_from_args();
    let pipelines = bench_pipelines(&mut c, mode);
    let layers = bench_layers(&mut c, mode);
    c.final_summary();
    if mode == Mode::Test {
        assert_eq!(pipelines.len(), PIPELINES.len(), "every pipeline trained");
        assert!(
            layers.iter().all(|l| l.forward_ms.is_finite()),
            "every layer timed"
        );
        return;
    }
    let machine = machine(mode);
    let dir = out_dir();
    let json =
        serde_json::json!({"machine": machine, "pipelines": pipelines, "cnn_layers": layers});
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("train.json"), json.to_string()))
        .and_then(|()| {
            std::fs::write(
                dir.join("train.md"),
                markdown(&pipelines, &layers, &machine),
            )
        });
    match written {
        Ok(()) => println!(
            "training summary written to {}",
            dir.join("train.md").display()
        ),
        Err(e) => eprintln!("could not write the training summary: {e}"),
    }
}
