//! Every gain and fan value of `tests/data/init.json` (PyTorch `torch.nn.init`, see
//! `tests/data/README.md`), and the initializers' bounds against the formulas it states.

use gradus_core::registry::{lookup, InitializerKind};
use gradus_init::{calculate_gain, fan_in_and_fan_out, linear_bias_bound, XavierUniform};
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/init.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-15 * b.abs().max(1.0)
}

#[test]
fn every_gain_matches_pytorch() {
    let g = golden();
    let gains = g["calculate_gain"].as_object().unwrap();
    assert!(gains.len() >= 8);
    let mut worst: f64 = 0.0;
    for (key, expected) in gains {
        let (name, param) = match key.split_once(':') {
            Some((name, p)) => (name, Some(p.parse::<f64>().unwrap())),
            None => (key.as_str(), None),
        };
        let expected = expected.as_f64().unwrap();
        let got = calculate_gain(name, param).unwrap();
        worst = worst.max((got - expected).abs());
        assert!(close(got, expected), "{key}: {got} vs {expected}");
    }
    eprintln!("largest gain error: {worst:e}");
}

#[test]
fn every_fan_matches_pytorch_and_one_dim_is_the_same_error() {
    let g = golden();
    for case in g["fans"].as_array().unwrap() {
        let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
        match case.get("error") {
            Some(message) => {
                let err = fan_in_and_fan_out(&shape).unwrap_err();
                let message = message.as_str().unwrap();
                assert!(err.to_string().contains(message), "{err} lacks {message}");
            }
            None => {
                let (fan_in, fan_out) = fan_in_and_fan_out(&shape).unwrap();
                assert_eq!(fan_in as u64, case["fan_in"].as_u64().unwrap(), "{shape:?}");
                assert_eq!(
                    fan_out as u64,
                    case["fan_out"].as_u64().unwrap(),
                    "{shape:?}"
                );
            }
        }
    }
}

#[test]
fn formula_bounds_on_the_golden_shapes() {
    let g = golden();
    for case in g["fans"].as_array().unwrap() {
        let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
        if case.get("error").is_some() {
            // Every fan-based initializer refuses the 1-D shape, through the registry too.
            for name in [
                "xavier_uniform",
                "xavier_normal",
                "kaiming_uniform",
                "kaiming_normal",
                "lecun_uniform",
                "lecun_normal",
                "orthogonal",
                "torch_linear_default",
            ] {
                let entry = lookup::<InitializerKind>(name, "type").unwrap();
                let init = (entry.build)(&serde_json::json!({}), "init").unwrap();
                let mut rng = gradus_core::SeededRng::new(0);
                let r = init.init(
                    &shape,
                    candle_core::DType::F32,
                    &candle_core::Device::Cpu,
                    &mut rng,
                );
                assert!(r.is_err(), "{name} accepted {shape:?}");
            }
            continue;
        }
        let fan_in = case["fan_in"].as_f64().unwrap();
        let fan_out = case["fan_out"].as_f64().unwrap();
        let xavier = XavierUniform::new(Default::default()).unwrap();
        assert!(close(
            xavier.bound(&shape).unwrap(),
            (6.0 / (fan_in + fan_out)).sqrt()
        ));
        assert!(close(
            linear_bias_bound(&shape).unwrap(),
            1.0 / fan_in.sqrt()
        ));
    }
}

#[test]
fn every_registered_initializer_builds_from_defaults() {
    let names = [
        "zeros",
        "ones",
        "uniform",
        "normal",
        "trunc_normal",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "lecun_uniform",
        "lecun_normal",
        "orthogonal",
        "eye",
        "torch_linear_default",
    ];
    for name in names {
        let entry = lookup::<InitializerKind>(name, "type").unwrap();
        let defaults = (entry.default_config)();
        let init = (entry.build)(&defaults, "init").unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut rng = gradus_core::SeededRng::new(5);
        let w = init
            .init(
                &[6, 4],
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
                &mut rng,
            )
            .unwrap();
        assert_eq!(w.dims(), &[6, 4], "{name}");
        assert_eq!(w.dtype(), candle_core::DType::F32, "{name}");
    }
    // `constant` has a required field; its default config is rejected with a clear message.
    let entry = lookup::<InitializerKind>("constant", "type").unwrap();
    assert!((entry.build)(&(entry.default_config)(), "init").is_err());
}
