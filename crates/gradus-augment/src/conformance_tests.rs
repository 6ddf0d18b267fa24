//! Registry-driven checks over every registered augmentation: each builds from JSON, the
//! same seed gives the same bits whatever the thread count, random ops draw per sample, and
//! text ops respect protected words and their documented token counts.

use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch, TextAugmentation};
use gradus_core::registry::{entries, resolve, ImageAugmentationKind, TextAugmentationKind};
use gradus_core::SeededRng;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::batch::testing::{identical_batch, random_batch, sample};

/// Every image op with a config exercising it, and whether it is random.
fn image_cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("horizontal_flip", json!({}), true),
        ("vertical_flip", json!({}), true),
        (
            "random_crop",
            json!({"size": 8, "padding": 2, "padding_mode": "edge"}),
            true,
        ),
        ("center_crop", json!({"size": [6, 5]}), false),
        (
            "random_rotation",
            json!({"degrees": 30, "interpolation": "bilinear"}),
            true,
        ),
        (
            "random_affine",
            json!({"degrees": 10, "translate": [0.1, 0.1], "scale": [0.9, 1.1], "shear": 5}),
            true,
        ),
        ("random_resized_crop", json!({"size": 6}), true),
        (
            "color_jitter",
            json!({"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}),
            true,
        ),
        ("gaussian_noise", json!({}), true),
        ("gaussian_blur", json!({"kernel_size": 3}), true),
        ("random_erasing", json!({"p": 1.0}), true),
        ("mixup", json!({}), false),
        ("cutmix", json!({}), false),
        (
            "sequence",
            json!({"transforms": [{"type": "random_crop", "size": 8, "padding": 1},
            {"type": "horizontal_flip"}]}),
            true,
        ),
        (
            "random_apply",
            json!({"p": 0.7, "transforms": [{"type": "color_jitter", "brightness": 0.5}]}),
            true,
        ),
        (
            "one_of",
            json!({"transforms": [{"type": "gaussian_noise"}, {"type": "random_erasing", "p": 1.0}]}),
            true,
        ),
        (
            "random_order",
            json!({"transforms": [{"type": "random_rotation", "degrees": 20},
            {"type": "color_jitter", "contrast": 0.5}]}),
            true,
        ),
    ]
}

fn build_image(name: &str, config: &Value) -> Box<dyn ImageAugmentation> {
    let mut full = config.clone();
    full["type"] = json!(name);
    let (entry, rest) = resolve::<ImageAugmentationKind>(&full, "augment").unwrap();
    (entry.build)(&rest, "augment").unwrap()
}

fn run_with_threads(op: &dyn ImageAugmentation, threads: usize, seed: u64) -> ImageBatch {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut b = random_batch(16, 3, 8, 8, 7);
    pool.install(|| op.apply(&mut b, &mut SeededRng::new(seed)))
        .unwrap();
    b
}

#[test]
fn every_registered_image_op_is_covered_and_its_defaults_serialize() {
    let mut registered: Vec<&str> = entries::<ImageAugmentationKind>()
        .unwrap()
        .iter()
        .map(|e| {
            assert!((e.default_config)().is_object(), "{}", e.name);
            e.name
        })
        .collect();
    let mut covered: Vec<&str> = image_cases().iter().map(|c| c.0).collect();
    registered.sort_unstable();
    covered.sort_unstable();
    assert_eq!(registered, covered);
}

#[test]
fn same_seed_same_bits_whatever_the_thread_count() {
    for (name, config, _) in image_cases() {
        let op = build_image(name, &config);
        let one = run_with_threads(op.as_ref(), 1, 11);
        let three = run_with_threads(op.as_ref(), 3, 11);
        assert_eq!(one, three, "{name}");
        let bits = |b: &ImageBatch| b.pixels.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&one),
            bits(&run_with_threads(op.as_ref(), 2, 11)),
            "{name}"
        );
    }
}

#[test]
fn random_ops_draw_parameters_per_sample() {
    for (name, config, random) in image_cases() {
        if !random {
            continue;
        }
        let op = build_image(name, &config);
        let mut b = identical_batch(8, 3, 10, 10);
        op.apply(&mut b, &mut SeededRng::new(21)).unwrap();
        assert!(
            (1..8).any(|i| sample(&b, i) != sample(&b, 0)),
            "{name}: all samples got the same parameters"
        );
    }
}

/// How an op may change the token count.
#[derive(Clone, Copy, Debug)]
enum Count {
    Same,
    AtMost,
    AtLeast,
}

fn text_cases() -> Vec<(&'static str, Value, Count)> {
    vec![
        ("synonym_replacement", json!({"n": 3}), Count::Same),
        ("random_insertion", json!({"n": 2}), Count::AtLeast),
        ("random_swap", json!({"n": 2}), Count::Same),
        ("random_deletion", json!({"p": 0.3}), Count::AtMost),
        ("token_masking", json!({"p": 0.3}), Count::Same),
        ("char_noise", json!({"rate": 0.3}), Count::Same),
        ("back_translation", json!({"pivot": "de"}), Count::Same),
    ]
}

fn build_text(name: &str, config: &Value, protected: &[&str]) -> Box<dyn TextAugmentation> {
    let mut full = config.clone();
    full["type"] = json!(name);
    full["protected"] = json!(protected);
    let (entry, rest) = resolve::<TextAugmentationKind>(&full, "text").unwrap();
    (entry.build)(&rest, "text").unwrap()
}

#[test]
fn every_registered_text_op_is_covered_and_builds_from_defaults() {
    let mut registered: Vec<&str> = entries::<TextAugmentationKind>()
        .unwrap()
        .iter()
        .map(|e| {
            let defaults = (e.default_config)();
            (e.build)(&defaults, "text").unwrap();
            e.name
        })
        .collect();
    let mut covered: Vec<&str> = text_cases().iter().map(|c| c.0).collect();
    registered.sort_unstable();
    covered.sort_unstable();
    assert_eq!(registered, covered);
}

const WORDS: &[&str] = &[
    "the", "big", "happy", "child", "Gradus", "said", "quick", "story", "city", "fast", "car",
    "old", "good", "help", "house",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn text_ops_are_seeded_keep_counts_and_protected_words(
        picks in proptest::collection::vec(0usize..15, 0..24), seed in any::<u64>()
    ) {
        let tokens: Vec<String> = picks.iter().map(|&i| WORDS[i].to_string()).collect();
        let protected = |ts: &[String]| ts.iter().filter(|t| *t == "Gradus").count();
        for (name, config, rule) in text_cases() {
            let op = build_text(name, &config, &["gradus"]);
            let out = op.apply(&tokens, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(&out, &op.apply(&tokens, &mut SeededRng::new(seed)).unwrap());
            match rule {
                Count::Same => prop_assert_eq!(out.len(), tokens.len(), "{}", name),
                Count::AtMost => prop_assert!(out.len() <= tokens.len(), "{}", name),
                Count::AtLeast => prop_assert!(out.len() >= tokens.len(), "{}", name),
            }
            prop_assert_eq!(protected(&out), protected(&tokens), "{}", name);
            if matches!(rule, Count::Same) {
                for (o, t) in out.iter().zip(&tokens) {
                    prop_assert!(t != "Gradus" || o == "Gradus", "{} moved a protected word", name);
                }
            }
        }
    }
}
