//! Every component of this crate is registered, builds from its defaults, and behaves as an
//! identity (layers in evaluation mode) or a well-formed regularizer.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gradus_core::plugin::layer::{ForwardContext, LayerContext};
use gradus_core::registry::{catalog, lookup, LayerKind, RegularizerKind};
use gradus_core::{NamedVar, SeededRng};
use gradus_regularize as _;

const REGULARIZERS: [&str; 5] = ["l1", "l2", "elastic_net", "max_norm", "weight_decay"];
const LAYERS: [&str; 6] = [
    "dropout",
    "dropout2d",
    "alpha_dropout",
    "gaussian_dropout",
    "drop_connect",
    "drop_path",
];

#[test]
fn regularizers_are_listed_and_build_from_defaults() {
    let listed = catalog(Some("regularizer")).unwrap();
    let params = [
        NamedVar::new(
            "fc.weight",
            Var::ones((3, 4), DType::F32, &Device::Cpu).unwrap(),
        ),
        NamedVar::new("fc.bias", Var::ones(3, DType::F32, &Device::Cpu).unwrap()),
    ];
    for name in REGULARIZERS {
        let entry = listed.iter().find(|e| e.name == name).expect(name);
        assert!(entry.defaults.is_object(), "{name}");
        let reg = lookup::<RegularizerKind>(name, "r.type").unwrap();
        let mut built = (reg.build)(&entry.defaults, "r").unwrap();
        if let Some(p) = built.penalty(&params).unwrap() {
            assert_eq!(p.dims(), &[] as &[usize], "{name}");
        }
        built.after_step(&params, 0.1).unwrap();
        // Biases are never touched by default.
        let bias = params[1].var.as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!(bias, vec![1.0; 3], "{name}");
    }
}

#[test]
fn layers_are_listed_build_and_eval_is_identity() {
    let listed = catalog(Some("layer")).unwrap();
    for name in LAYERS {
        let entry = listed.iter().find(|e| e.name == name).expect(name);
        let mut config = entry.defaults.clone();
        if name == "drop_connect" {
            config["out_features"] = serde_json::json!(4);
        }
        let vars = VarMap::new();
        let mut rng = SeededRng::new(0);
        let mut ctx = LayerContext {
            input_shape: vec![4, 3, 4],
            vars: &vars,
            prefix: "layers.0".to_string(),
            path: String::new(),
            rng: &mut rng,
            dtype: DType::F32,
            device: Device::Cpu,
        };
        let build = lookup::<LayerKind>(name, "layers[0].type").unwrap().build;
        let mut layer = build(&config, "layers[0]", &mut ctx).unwrap();
        assert_eq!(layer.output_shape(), vec![4, 3, 4], "{name}");
        let x = Tensor::ones((2, 4, 3, 4), DType::F32, &Device::Cpu).unwrap();
        let mut fwd_rng = SeededRng::new(1);
        let mut fctx = ForwardContext {
            train: true,
            rng: &mut fwd_rng,
        };
        let y = layer.forward(&x, &mut fctx).unwrap();
        assert_eq!(y.dims(), &[2, 4, 3, 4], "{name}");
        if name != "drop_connect" {
            fctx.train = false;
            let y = layer.forward(&x, &mut fctx).unwrap();
            assert_eq!(
                y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{name}"
            );
        } else {
            let names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
            assert!(names.contains(&"layers.0.weight".to_string()), "{names:?}");
        }
        // p = 1 is rejected with the path of the field.
        let mut bad = config.clone();
        bad["p"] = serde_json::json!(1.0);
        let vars = VarMap::new();
        let mut rng = SeededRng::new(0);
        let mut ctx = LayerContext {
            input_shape: vec![4, 3, 4],
            vars: &vars,
            prefix: "layers.0".to_string(),
            path: String::new(),
            rng: &mut rng,
            dtype: DType::F32,
            device: Device::Cpu,
        };
        let err = build(&bad, "layers[0]", &mut ctx).err().expect(name);
        assert!(err.to_string().contains("layers[0].p"), "{name}: {err}");
    }
}
