//! The deterministic pixel cores against torchvision 0.29.2 `transforms.v2.functional`
//! (`tests/data/torchvision.json`, generator described in `tests/data/README.md`).

use gradus_augment::functional::{
    self as f, AffineParams, Chw, Interpolation, PadCrop, PaddingMode,
};
use serde_json::Value;

/// Largest allowed absolute difference (f32 images in [0, 1]).
const TOL: f32 = 1e-5;

fn cases() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/torchvision.json");
    let text = std::fs::read_to_string(path).expect("golden file is part of the crate");
    let root: Value = serde_json::from_str(&text).expect("golden file is valid JSON");
    root["cases"].as_array().expect("cases array").clone()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn shape(v: &Value) -> [usize; 4] {
    let s: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    [s[0], s[1], s[2], s[3]]
}

fn num(p: &Value, key: &str) -> f64 {
    p[key].as_f64().unwrap_or_else(|| panic!("param {key}"))
}

fn pair(p: &Value, key: &str) -> [f64; 2] {
    let a = p[key].as_array().unwrap();
    [a[0].as_f64().unwrap(), a[1].as_f64().unwrap()]
}

fn interpolation(p: &Value) -> Interpolation {
    match p["interpolation"].as_str().unwrap() {
        "nearest" => Interpolation::Nearest,
        _ => Interpolation::Bilinear,
    }
}

/// Runs the core of one case on one image, writing `out`.
fn run_case(op: &str, p: &Value, src: &[f32], dims: Chw, out: &mut [f32]) {
    let usize_of = |k: &str| num(p, k) as usize;
    match op {
        "horizontal_flip" | "vertical_flip" | "adjust_brightness" | "adjust_contrast"
        | "adjust_saturation" | "adjust_hue" | "erase" => {
            out.copy_from_slice(src);
            match op {
                "horizontal_flip" => f::horizontal_flip(out, dims),
                "vertical_flip" => f::vertical_flip(out, dims),
                "adjust_brightness" => f::adjust_brightness(out, num(p, "factor")),
                "adjust_contrast" => f::adjust_contrast(out, dims, num(p, "factor")),
                "adjust_saturation" => f::adjust_saturation(out, dims, num(p, "factor")).unwrap(),
                "adjust_hue" => f::adjust_hue(out, dims, num(p, "factor")).unwrap(),
                _ => {
                    let window = ["top", "left", "height", "width"].map(usize_of);
                    f::erase(out, dims, window, &[num(p, "value") as f32]);
                }
            }
        }
        "rotate" => f::rotate(
            src,
            dims,
            num(p, "angle"),
            interpolation(p),
            num(p, "fill") as f32,
            None,
            out,
        ),
        "affine" => {
            let params = AffineParams {
                angle: num(p, "angle"),
                translate: pair(p, "translate"),
                scale: num(p, "scale"),
                shear: pair(p, "shear"),
                center: None,
            };
            f::affine(
                src,
                dims,
                &params,
                interpolation(p),
                num(p, "fill") as f32,
                out,
            )
        }
        "pad_crop" => {
            let mode = match p["padding_mode"].as_str().unwrap() {
                "constant" => PaddingMode::Constant,
                "reflect" => PaddingMode::Reflect,
                _ => PaddingMode::Edge,
            };
            let op = PadCrop {
                padding: [usize_of("padding"); 4],
                mode,
                fill: 0.0,
                top: usize_of("top"),
                left: usize_of("left"),
                height: usize_of("height"),
                width: usize_of("width"),
            };
            f::pad_crop(src, dims, &op, out)
        }
        "center_crop" => {
            let [h, w] = pair(p, "size").map(|v| v as usize);
            f::pad_crop(src, dims, &f::center_crop_anchor(dims, h, w), out)
        }
        "resized_crop" => {
            assert_eq!(p["antialias"], Value::Bool(false));
            let window = ["top", "left", "height", "width"].map(usize_of);
            let size = pair(p, "size").map(|v| v as usize);
            f::resized_crop(src, dims, window, size, out)
        }
        "gaussian_blur" => {
            let k = pair(p, "kernel_size").map(|v| v as usize);
            let mut scratch = vec![0.0; dims.len()];
            f::gaussian_blur(src, dims, k, pair(p, "sigma"), out, &mut scratch).unwrap()
        }
        other => panic!("golden op `{other}` has no core"),
    }
}

#[test]
fn every_core_matches_torchvision() {
    let mut report = Vec::new();
    for case in cases() {
        let op = case["op"].as_str().unwrap();
        let [n, c, h, w] = shape(&case["input_shape"]);
        let [_, oc, oh, ow] = shape(&case["output_shape"]);
        let (input, expected) = (floats(&case["input"]), floats(&case["output"]));
        let dims = Chw::new(c, h, w);
        let out_len = oc * oh * ow;
        let mut got = vec![f32::NAN; n * out_len];
        for i in 0..n {
            let src = &input[i * dims.len()..(i + 1) * dims.len()];
            run_case(
                op,
                &case["params"],
                src,
                dims,
                &mut got[i * out_len..(i + 1) * out_len],
            );
        }
        assert_eq!(got.len(), expected.len(), "{op}: output length");
        let err = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        report.push(format!("{op} {}: max abs error {err:.3e}", case["params"]));
        assert!(
            err <= TOL,
            "{} differs from torchvision by {err:e} (> {TOL:e})",
            case["torchvision_call"]
        );
    }
    // Shown with `cargo test -- --nocapture`; the figures quoted in docs/augmentation.md.
    println!("{}", report.join("\n"));
}
