//! Tests of the token-id text augmentation path.
use gradus_core::registry::resolve;
use proptest::prelude::*;
use serde_json::json;

use super::*;

const WORDS: &[&str] = &[
    "the", "big", "happy", "child", "Gradus", "said", "quick", "story", "city", "fast", "car",
    "old", "good", "help", "house", "[MASK]",
];

fn vocab() -> Arc<Vocabulary> {
    Arc::new(Vocabulary::new(WORDS.iter().map(|w| w.to_string()).collect()).unwrap())
}

fn string_op(config: &Value) -> Box<dyn TextAugmentation> {
    let (entry, rest) = resolve::<TextAugmentationKind>(config, "t").unwrap();
    (entry.build)(&rest, "t").unwrap()
}

fn with_vocab() -> IdOptions {
    IdOptions {
        vocabulary: Some(vocab()),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn id_ops_match_string_ops_on_a_mapped_vocabulary(
        picks in proptest::collection::vec(0usize..15, 0..24), seed in any::<u64>()
    ) {
        let v = vocab();
        let tokens: Vec<String> = picks.iter().map(|&i| WORDS[i].to_string()).collect();
        let ids = v.encode(&tokens, None).unwrap();
        for config in [
            json!({"type": "random_swap", "n": 3, "protected": ["gradus"]}),
            json!({"type": "random_deletion", "p": 0.3, "protected": ["gradus"]}),
            json!({"type": "token_masking", "p": 0.3, "protected": ["gradus"]}),
            json!({"type": "synonym_replacement", "n": 2, "protected": ["gradus"],
                   "synonyms": {"big": ["old"], "happy": ["good", "fast"]}}),
        ] {
            let words = string_op(&config).apply(&tokens, &mut SeededRng::new(seed)).unwrap();
            let by_id = build_id_augmentation(&config, "t", &with_vocab()).unwrap();
            let out = by_id.apply_ids(&ids, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(v.decode(&out).unwrap(), words, "{}", config["type"]);
        }
    }
}

#[test]
fn bare_ids_work_for_structural_ops_and_protected_ids_stay() {
    let ids: Vec<u32> = (100..120).collect();
    let options = IdOptions {
        protected_ids: vec![105, 110],
        mask_id: Some(0),
        ..Default::default()
    };
    for (config, same_len) in [
        (json!({"type": "random_swap", "n": 10}), true),
        (json!({"type": "token_masking", "p": 0.9}), true),
        (json!({"type": "random_deletion", "p": 0.9}), false),
    ] {
        let op = build_id_augmentation(&config, "t", &options).unwrap();
        let out = op.apply_ids(&ids, &mut SeededRng::new(9)).unwrap();
        assert_ne!(out, ids, "{config}");
        assert!(
            out.contains(&105) && out.contains(&110),
            "{config}: {out:?}"
        );
        if same_len {
            assert_eq!((out.len(), out[5], out[10]), (20, 105, 110), "{config}");
        }
        assert_eq!(out, op.apply_ids(&ids, &mut SeededRng::new(9)).unwrap());
    }
}

#[test]
fn word_ops_go_through_the_vocabulary_or_fail_clearly() {
    let v = vocab();
    let tokens: Vec<String> = ["the", "big", "Gradus", "said", "happy"]
        .iter()
        .map(|w| w.to_string())
        .collect();
    let ids = v.encode(&tokens, None).unwrap();
    // Back-translation of "big"/"happy"/"said" can yield words outside the vocabulary.
    let bt = json!({"type": "back_translation", "protected": ["gradus"]});
    let strict = build_id_augmentation(&bt, "t", &with_vocab()).unwrap();
    let lenient = build_id_augmentation(
        &bt,
        "t",
        &IdOptions {
            unk_id: Some(15),
            protected_ids: vec![1],
            ..with_vocab()
        },
    )
    .unwrap();
    let mut missing = false;
    for seed in 0..16 {
        match strict.apply_ids(&ids, &mut SeededRng::new(seed)) {
            Ok(out) => assert_eq!(out.len(), ids.len()),
            Err(e) => {
                assert!(e.to_string().contains("not in the vocabulary"), "{e}");
                missing = true;
            }
        }
        let out = lenient.apply_ids(&ids, &mut SeededRng::new(seed)).unwrap();
        assert_eq!((out.len(), out[1], out[2]), (5, 1, 4));
    }
    assert!(
        missing,
        "expected some back-translated word outside the vocabulary"
    );

    let bare = IdOptions::default();
    let err = build_id_augmentation(&json!({"type": "synonym_replacement"}), "t", &bare);
    assert!(matches!(err, Err(Error::Unsupported(m)) if m.contains("vocabulary")));
    let err = build_id_augmentation(
        &json!({"type": "random_swap", "protected": ["x"]}),
        "t",
        &bare,
    );
    assert!(matches!(err, Err(Error::Config { path, .. }) if path == "t.protected"));
    let err = build_id_augmentation(&json!({"type": "token_masking"}), "t", &bare);
    assert!(matches!(err, Err(Error::Config { path, .. }) if path == "t.mask_token"));
    let err = build_id_augmentation(&json!({"type": "random_deletion", "p": 3}), "t", &bare);
    assert!(matches!(err, Err(Error::Config { .. })));
    assert!(v.decode(&[99]).is_err());
}

#[test]
fn vocabulary_loads_one_token_per_line_and_rejects_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vocab.txt");
    std::fs::write(&file, "[PAD]\r\nhello\nworld\n").unwrap();
    let v = Vocabulary::load(&file).unwrap();
    assert_eq!(
        (v.len(), v.id("world"), v.token(1)),
        (3, Some(2), Some("hello"))
    );
    assert!(!v.is_empty());
    std::fs::write(&file, "a\nb\na\n").unwrap();
    assert!(matches!(
        Vocabulary::load(&file),
        Err(Error::CorruptFile { .. })
    ));
}
