//! IDX round trips on small files written here, and rejection of corrupt, truncated and
//! hostile files.

use std::io::Write;
use std::path::PathBuf;

use super::*;
use gradus_core::plugin::data::Task;
use serde_json::json;

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, UBYTE, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn load(images: &PathBuf, labels: &PathBuf) -> Result<Dataset> {
    let config = json!({"images": images, "labels": labels});
    build(&config, "data")?.load(&mut SeededRng::new(0))
}

/// Three 2x2 images with pixels 0, 10, ..., 110 and labels 1, 0, 4.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..12).map(|k| k * 10).collect();
    (idx_bytes(&[3, 2, 2], &pixels), idx_bytes(&[3], &[1, 0, 4]))
}

fn check_sample(data: &Dataset) {
    assert_eq!(data.features.dims(), [3, 1, 2, 2]);
    assert_eq!(data.task, Task::Classification { num_classes: 5 });
    assert_eq!(data.targets.to_vec1::<u32>().unwrap(), [1, 0, 4]);
    let values = data
        .features
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (k, v) in values.iter().enumerate() {
        assert!(
            (v - (k as f32 * 10.0) / 255.0).abs() <= 1e-7,
            "pixel {k}: {v}"
        );
    }
}

#[test]
fn plain_files_round_trip() {
    let files = Files::new();
    let (images, labels) = sample();
    let data = load(&files.write("img", &images), &files.write("lbl", &labels)).unwrap();
    check_sample(&data);
}

#[test]
fn gzipped_files_round_trip_whatever_their_names() {
    let files = Files::new();
    let (images, labels) = sample();
    let img = files.write("images-idx3-ubyte.gz", &gzip(&images));
    let lbl = files.write("labels-idx1-ubyte", &gzip(&labels));
    check_sample(&load(&img, &lbl).unwrap());
}

fn rejection(images: &[u8], labels: &[u8]) -> String {
    let files = Files::new();
    let err = load(&files.write("img", images), &files.write("lbl", labels)).unwrap_err();
    err.to_string()
}

#[test]
fn hostile_headers_are_rejected_before_allocating() {
    let (_, labels) = sample();
    // 4,294,967,295 images of 28x28: about 3.4 TB if believed.
    let hostile = idx_bytes(&[u32::MAX, 28, 28], &[0; 16]);
    let err = rejection(&hostile, &labels);
    assert!(err.contains("but the file holds 16 bytes of data"), "{err}");
    let err = rejection(&gzip(&hostile), &labels);
    assert!(
        err.contains("more than a") && err.contains("gzip file can hold"),
        "{err}"
    );
    // Sizes whose product overflows u64.
    let err = rejection(&idx_bytes(&[u32::MAX; 3], &[]), &labels);
    assert!(err.contains("overflow"), "{err}");
    // Within deflate's ratio but still a lie: decoding stops at the real end of the stream.
    // Poorly compressible bytes keep the claim under deflate's 1032:1 bound.
    let noise: Vec<u8> = (0u32..784)
        .map(|k| (k.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let lie = gzip(&idx_bytes(&[100, 28, 28], &noise));
    let err = rejection(&lie, &labels);
    assert!(err.contains("but the data holds 784 bytes"), "{err}");
}

#[test]
fn truncated_corrupt_and_mismatched_files_are_rejected() {
    let (images, labels) = sample();
    let err = rejection(&images[..images.len() - 1], &labels);
    assert!(err.contains("file holds 11 bytes"), "{err}");
    let err = rejection(&images[..6], &labels);
    assert!(err.contains("truncated or corrupt header"), "{err}");
    let mut long = images.clone();
    long.push(7);
    assert!(rejection(&long, &labels).contains("file holds 13 bytes"));
    let gz = gzip(&images);
    let err = rejection(&gz[..gz.len() / 2], &labels);
    assert!(err.contains("truncated or corrupt"), "{err}");
    let err = rejection(b"PK\x03\x04 not idx", &labels);
    assert!(err.contains("not an IDX file"), "{err}");
    let mut floats = images.clone();
    floats[2] = 0x0D;
    assert!(rejection(&floats, &labels).contains("element type 0x0d is not supported"));
    let err = rejection(&labels, &labels);
    assert!(
        err.contains("expected 3 dimension(s), the header declares 1"),
        "{err}"
    );
    let err = rejection(&images, &idx_bytes(&[2], &[0, 1]));
    assert!(
        err.contains("shape mismatch") && err.contains("expected [3], got [2]"),
        "{err}"
    );
    let err = rejection(&images, &idx_bytes(&[0], &[]));
    assert!(err.contains("hold no data"), "{err}");
}

#[test]
fn missing_paths_are_config_errors() {
    let err = build(&json!({"images": "a"}), "data").err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid config at data.labels: an idx source needs `labels`"
    );
    let err = load(&"/nonexistent/a".into(), &"/nonexistent/b".into()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn a_gzip_bomb_within_the_ratio_is_refused_by_the_data_limit() {
    // 30,000 x 100 x 100 zero bytes (300 MB) compress to about 300 KB: within the ratio check,
    // past the 2^28-element limit, so refused from the header, before decoding.
    let (_, labels) = sample();
    let mut bomb = Vec::new();
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(&mut bomb, flate2::Compression::best());
        enc.write_all(&idx_bytes(&[30_000, 100, 100], &[])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..286 {
            enc.write_all(&zeros).unwrap();
        }
        enc.finish().unwrap();
    }
    let started = std::time::Instant::now();
    let err = rejection(&bomb, &labels);
    assert!(err.contains("GRADUS_MAX_TENSOR_ELEMENTS"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
