//! Throughput of the realistic image pipeline of `gradus-augment` (issue 7): random crop with
//! padding 4, horizontal flip, color jitter and random erasing, on batches of 256 CIFAR-sized
//! (3x32x32) and 256 MNIST-sized (1x28x28) images, reported in images/s.
//!
//! Each iteration augments a fresh copy of the batch (the copy is made outside the timing), with
//! a generator advanced from one iteration to the next, as in training. MNIST has one channel,
//! so its color jitter is brightness and contrast only (saturation and hue need 3 channels).
//! `cargo test --bench augment` runs each case once (criterion's test mode).

use criterion::{BatchSize, Criterion, Throughput};
use gradus_augment::ImageBatch;
use gradus_core::registry::{resolve, ImageAugmentationKind};
use gradus_core::SeededRng;
use serde_json::{json, Value};

const BATCH: usize = 256;

/// The pipeline for images of `size` pixels with `c` channels.
fn pipeline(size: usize, c: usize) -> Value {
    let jitter = if c == 3 {
        json!({"type": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1})
    } else {
        json!({"type": "color_jitter", "brightness": 0.4, "contrast": 0.4})
    };
    json!({"type": "sequence", "transforms": [
        {"type": "random_crop", "size": size, "padding": 4},
        {"type": "horizontal_flip", "p": 0.5},
        jitter,
        {"type": "random_erasing", "p": 0.5}
    ]})
}

/// A batch of `n` images with pixels in `[0, 1)`.
fn batch(n: usize, c: usize, h: usize, w: usize) -> ImageBatch {
    let mut rng = SeededRng::new(0);
    ImageBatch {
        pixels: (0..n * c * h * w).map(|_| rng.unit_f64() as f32).collect(),
        n,
        c,
        h,
        w,
        targets: None,
        num_classes: 0,
    }
}

fn bench_pipeline(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("augment_pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    for (name, c, size) in [("cifar_3x32x32", 3, 32), ("mnist_1x28x28", 1, 28)] {
        let config = pipeline(size, c);
        let (entry, rest) = match resolve::<ImageAugmentationKind>(&config, "augment") {
            Ok(found) => found,
            Err(e) => panic!("pipeline config: {e}"),
        };
        let op = match (entry.build)(&rest, "augment") {
            Ok(op) => op,
            Err(e) => panic!("pipeline build: {e}"),
        };
        let input = batch(BATCH, c, size, size);
        let mut rng = SeededRng::new(1);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || input.clone(),
                |images| {
                    if let Err(e) = op.apply(images, &mut rng) {
                        panic!("augment: {e}");
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

// What `criterion_main!` does, written out: its generated `pub fn` has no docs.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_pipeline(&mut criterion);
    criterion.final_summary();
}
