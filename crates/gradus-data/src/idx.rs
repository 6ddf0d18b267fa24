//! MNIST-style IDX image and label files, plain or gzipped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::data::{DataSource, Dataset};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tensors;

/// Images and labels in the IDX format of MNIST, Fashion-MNIST and EMNIST.
///
/// An IDX file is the magic `00 00 08 D` (unsigned bytes, `D` dimensions), `D` big-endian
/// `u32` sizes, then the bytes in row-major order. `images` must be 3-D `(N, H, W)` and
/// `labels` 1-D `(N,)` with the same `N`. Either file may be gzipped (detected by its magic
/// `1f 8b`, whatever its name). Pixels become `f32` in `[0, 1]` (`p / 255`, as torchvision's
/// `ToTensor`), images `(N, 1, H, W)`; targets are `(N,)` `u32` with
/// `num_classes = max(label) + 1`.
///
/// The sizes a header declares are checked against the bytes actually there before any
/// buffer of that size is allocated, so a corrupt or hostile header claiming billions of
/// items is an error, not an out-of-memory abort: a plain file must hold exactly the declared
/// bytes; a gzipped one is first checked against deflate's largest expansion ratio (1032:1),
/// then decompressed into a buffer that grows only with the data actually decoded.
#[derive(Debug, Clone)]
pub struct IdxSource {
    config: IdxConfig,
}

/// Configuration of [`IdxSource`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IdxConfig {
    /// The image file, e.g. `train-images-idx3-ubyte.gz` (required).
    pub images: PathBuf,
    /// The label file, e.g. `train-labels-idx1-ubyte.gz` (required).
    pub labels: PathBuf,
}

/// The unsigned-byte element type, the only one MNIST-family files use.
const UBYTE: u8 = 0x08;
/// Deflate cannot expand data by more than about 1032:1 (RFC 1951 block limits).
const MAX_DEFLATE_RATIO: u64 = 1032;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl IdxSource {
    /// Validates `config`; `path` is its JSON path, named in errors.
    pub fn new(config: IdxConfig, path: &str) -> Result<Self> {
        for (field, file) in [("images", &config.images), ("labels", &config.labels)] {
            if file.as_os_str().is_empty() {
                return Err(Error::config(
                    join_path(path, field),
                    format!("an idx source needs `{field}`"),
                ));
            }
        }
        Ok(IdxSource { config })
    }

    /// Reads both files.
    pub fn read(&self) -> Result<Dataset> {
        let (image_dims, pixels) = read_idx(&self.config.images, 3)?;
        let (label_dims, labels) = read_idx(&self.config.labels, 1)?;
        if image_dims[0] != label_dims[0] {
            return Err(Error::ShapeMismatch {
                context: format!(
                    "idx item counts of {} (images) and {} (labels)",
                    self.config.images.display(),
                    self.config.labels.display()
                ),
                expected: vec![image_dims[0]],
                actual: vec![label_dims[0]],
            });
        }
        let features = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let shape = [image_dims[0], 1, image_dims[1], image_dims[2]];
        tensors::classification(
            features,
            &shape,
            labels.into_iter().map(u32::from).collect(),
        )
    }
}

/// Reads an unsigned-byte IDX file of `ndim` dimensions: its sizes and its bytes.
pub fn read_idx(path: &Path, ndim: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let corrupt = |message: String| Error::CorruptFile {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 2];
    let got = read_up_to(&mut reader, &mut head).map_err(|e| Error::io(path, e))?;
    let gzipped = got == 2 && head == GZIP_MAGIC;
    let mut input: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::MultiGzDecoder::new(head.chain(reader)))
    } else {
        Box::new(head[..got].chain(reader))
    };
    let read_err =
        |what: &str, e: std::io::Error| corrupt(format!("truncated or corrupt {what} ({e})"));

    let mut magic = [0u8; 4];
    input
        .read_exact(&mut magic)
        .map_err(|e| read_err("header", e))?;
    if magic[..2] != [0, 0] {
        return Err(corrupt(format!(
            "not an IDX file: magic {:02x} {:02x} {:02x} {:02x} should start 00 00",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    if magic[2] != UBYTE {
        return Err(corrupt(format!(
            "element type 0x{:02x} is not supported; only unsigned bytes (0x08), as MNIST, \
             Fashion-MNIST and EMNIST use",
            magic[2]
        )));
    }
    if usize::from(magic[3]) != ndim {
        return Err(corrupt(format!(
            "expected {ndim} dimension(s), the header declares {}",
            magic[3]
        )));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut size = [0u8; 4];
        input
            .read_exact(&mut size)
            .map_err(|e| read_err("header", e))?;
        dims.push(u32::from_be_bytes(size) as usize);
    }
    let declared = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| corrupt(format!("declared sizes {dims:?} overflow")))?;
    if declared == 0 {
        return Err(corrupt(format!("declared sizes {dims:?} hold no data")));
    }
    let header_len = 4 + 4 * ndim as u64;
    if gzipped {
        if declared > file_len.saturating_mul(MAX_DEFLATE_RATIO) {
            return Err(corrupt(format!(
                "header declares sizes {dims:?} ({declared} bytes), more than a {file_len}-byte \
                 gzip file can hold"
            )));
        }
    } else if header_len + declared != file_len {
        return Err(corrupt(format!(
            "header declares sizes {dims:?} ({declared} bytes) but the file holds {} bytes of data",
            file_len.saturating_sub(header_len)
        )));
    }
    // Bounded before a byte of data is decoded (a gzip bomb declares what it inflates to).
    let origin = path.display().to_string();
    gradus_core::limits::data_bytes(&origin, "the declared data", declared)?;
    gradus_core::limits::tensor_elements(&origin, "the declared data", &dims)?;
    // A plain file's size was just checked, so its declared size is safe to reserve; a gzipped
    // stream's buffer grows only with the bytes actually decoded. One byte past the declared
    // size is enough to detect trailing data.
    let mut data = Vec::with_capacity(if gzipped { 0 } else { declared as usize });
    input
        .take(declared + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err("data", e))?;
    if data.len() as u64 != declared {
        let found = if data.len() as u64 > declared {
            format!("more than {declared}")
        } else {
            data.len().to_string()
        };
        return Err(corrupt(format!(
            "header declares sizes {dims:?} ({declared} bytes) but the data holds {found} bytes"
        )));
    }
    Ok((dims, data))
}

/// Fills as much of `buf` as the reader has (fewer bytes only at end of file).
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl DataSource for IdxSource {
    fn load(&self, _rng: &mut SeededRng) -> Result<Dataset> {
        self.read()
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn DataSource>> {
    let config: IdxConfig = parse_config(config, path)?;
    Ok(Box::new(IdxSource::new(config, path)?))
}

gradus_core::register_data_source!(
    "idx",
    "MNIST-style IDX image and label files (optionally gzipped)",
    IdxConfig,
    build
);

#[cfg(test)]
mod tests;
