//! Registry-driven checks of every preprocessor: fitting reads only the tensor it is given,
//! transforming other splits leaves the fitted state alone, and the state survives a save/load
//! through a safetensors file (inference uses exactly the training statistics).

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::preprocessor::Preprocessor;
use gradus_core::registry::{entries, PreprocessorKind};
use gradus_core::{SeededRng, StateDict};
use gradus_norm as _;
use proptest::prelude::*;

fn all() -> Vec<(&'static str, Box<dyn Preprocessor>)> {
    entries::<PreprocessorKind>()
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.name,
                (e.build)(&(e.default_config)(), "preprocess").unwrap(),
            )
        })
        .collect()
}

fn bits(sd: &StateDict) -> Vec<(String, Vec<u64>)> {
    sd.iter()
        .map(|(name, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            (name.to_string(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

#[test]
fn every_preprocessor_is_registered() {
    let names: Vec<&str> = all().iter().map(|(n, _)| *n).collect();
    for expected in ["center", "min_max", "standardize"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn fitting_reads_only_the_given_split(
        seed in any::<u64>(), n_train in 1usize..10, n_other in 1usize..10, f in 1usize..5, poison in 0usize..3,
    ) {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(seed);
        let train = rng.normal_tensor(&[n_train, f, 2], 1.0, 3.0, DType::F64, &dev).unwrap();
        // The other split holds values that would change (or break) any statistic that read them.
        let other = match poison {
            0 => Tensor::full(f64::NAN, (n_other, f, 2), &dev).unwrap(),
            1 => Tensor::full(1e300, (n_other, f, 2), &dev).unwrap(),
            _ => rng.normal_tensor(&[n_other, f, 2], -50.0, 9.0, DType::F64, &dev).unwrap(),
        };
        let everything = Tensor::cat(&[&train, &other], 0).unwrap();
        let train_view = everything.narrow(0, 0, n_train).unwrap();
        for ((name, mut alone), (_, mut from_view)) in all().into_iter().zip(all()) {
            alone.fit(&train.copy().unwrap()).unwrap();
            from_view.fit(&train_view).unwrap();
            prop_assert_eq!(bits(&alone.state()), bits(&from_view.state()), "{}", name);
            let before = bits(&alone.state());
            // `inverse` takes what `transform` gives (for `pca_whiten`, component space).
            let transformed = alone.transform(&other).unwrap();
            alone.inverse(&transformed).unwrap();
            prop_assert_eq!(before, bits(&alone.state()), "{} changed state on transform", name);
        }
    }
}

#[test]
fn state_round_trips_through_a_file() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SeededRng::new(3);
    let train = rng
        .normal_tensor(&[20, 4], 5.0, 2.0, DType::F32, &dev)
        .unwrap();
    let test = rng
        .normal_tensor(&[7, 4], 5.0, 2.0, DType::F32, &dev)
        .unwrap();
    for ((name, mut fitted), (_, mut restored)) in all().into_iter().zip(all()) {
        fitted.fit(&train).unwrap();
        let path = dir.path().join(format!("{name}.safetensors"));
        fitted.state().save(&path).unwrap();
        restored
            .load_state(&StateDict::load(&path, &dev).unwrap())
            .unwrap();
        let a = fitted.transform(&test).unwrap().to_vec2::<f32>().unwrap();
        let b = restored.transform(&test).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(a, b, "{name}");
        assert!(restored.load_state(&StateDict::new()).is_err(), "{name}");
    }
}
