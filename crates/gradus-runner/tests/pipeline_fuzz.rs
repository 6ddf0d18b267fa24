//! No input makes pipeline building panic: proptest over mutated versions of the default
//! pipeline (keys removed, renamed, values replaced by other JSON types).

use gradus_runner::experiment::build;
use gradus_runner::pipeline::{Pipeline, DEFAULT_PIPELINE};
use proptest::prelude::*;
use serde_json::{json, Value};

fn paths(value: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let mut p = prefix.clone();
                p.push(k.clone());
                out.push(p.clone());
                paths(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                out.push(p.clone());
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

fn replacement(kind: u8) -> Value {
    match kind % 8 {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(0),
        3 => json!(1e308),
        4 => json!("x"),
        5 => json!([]),
        6 => json!({}),
        _ => json!(true),
    }
}

fn mutate(root: &mut Value, path: &[String], op: u8, kind: u8) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for key in parents {
        node = match node {
            Value::Object(m) => m.get_mut(key).unwrap(),
            Value::Array(a) => &mut a[key.parse::<usize>().unwrap()],
            _ => return,
        };
    }
    match (node, op % 3) {
        (Value::Object(m), 0) => {
            m.remove(last);
        }
        (Value::Object(m), 1) => {
            if let Some(v) = m.remove(last) {
                m.insert(format!("{last}_typo"), v);
            }
        }
        (Value::Object(m), _) => {
            m.insert(last.clone(), replacement(kind));
        }
        (Value::Array(a), _) => {
            a[last.parse::<usize>().unwrap()] = replacement(kind);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mutated_pipelines_never_panic(choice in any::<prop::sample::Index>(), op in any::<u8>(), kind in any::<u8>()) {
        let mut value: Value = serde_json::from_str(DEFAULT_PIPELINE).unwrap();
        let mut all = Vec::new();
        paths(&value, Vec::new(), &mut all);
        let path = all[choice.index(all.len())].clone();
        mutate(&mut value, &path, op, kind);
        // Keep runs short: only building is exercised, never training.
        if let Ok(pipeline) = Pipeline::from_value(&value) {
            let _ = build(pipeline);
        }
    }
}

#[test]
fn the_shipped_example_is_the_built_in_pipeline() {
    // The built-in pipeline lives inside the crate (so that the published crate has it); the
    // copy under examples/ is what users open and must not drift from it.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/pipelines/digits-mlp.json"
    );
    let shipped = std::fs::read_to_string(example).unwrap();
    assert_eq!(
        shipped, DEFAULT_PIPELINE,
        "examples/pipelines/digits-mlp.json differs from crates/gradus-runner/pipelines/digits-mlp.json: copy one onto the other"
    );
}
