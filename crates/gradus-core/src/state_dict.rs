//! Named tensors that save to and load from safetensors, atomically and checksummed.
//!
//! Files carry a CRC-32 of every tensor's bytes in the safetensors metadata
//! (`"gradus": "gradus-state-dict-v1;crc32=<hex>"`, one key so that the header, and so the
//! file, is byte-identical for identical tensors), and a file whose data was damaged after
//! writing is rejected, not loaded.
//! Files written by other tools (no checksum) are accepted when structurally valid.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::tensor::{SafeTensors, View};

use crate::error::{Error, Result};

const METADATA_KEY: &str = "gradus";
const FORMAT: &str = "gradus-state-dict-v1";

/// What the metadata of a file said about it.
struct Tags {
    /// It carried a Gradus checksum (which matched).
    checksummed: bool,
    /// Its run tag.
    run: Option<String>,
}

/// An ordered map from names (`layers.0.weight`, `layers.0.weight.exp_avg`, `step`) to tensors.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    tensors: BTreeMap<String, Tensor>,
}

impl StateDict {
    /// An empty state dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// The tensor stored as `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The tensor stored as `name`, which must exist and have `shape`; errors name both sides.
    pub fn require(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let tensor = self.tensors.get(name).ok_or_else(|| {
            Error::StateMismatch(format!(
                "missing `{name}` in saved state (it has: {})",
                self.summary_of_names()
            ))
        })?;
        if tensor.dims() != shape {
            return Err(Error::ShapeMismatch {
                context: format!("saved state `{name}`"),
                expected: shape.to_vec(),
                actual: tensor.dims().to_vec(),
            });
        }
        Ok(tensor)
    }

    /// Removes and returns `name`.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Adds every tensor of `other` under `prefix.` (e.g. `optimizer.`).
    pub fn extend_prefixed(&mut self, prefix: &str, other: &StateDict) {
        for (name, tensor) in &other.tensors {
            self.tensors
                .insert(format!("{prefix}.{name}"), tensor.clone());
        }
    }

    /// The tensors stored under `prefix.`, with the prefix removed.
    pub fn sub(&self, prefix: &str) -> StateDict {
        let head = format!("{prefix}.");
        StateDict {
            tensors: self
                .tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&head).map(|k| (k.to_string(), v.clone())))
                .collect(),
        }
    }

    /// Serializes to safetensors bytes with a checksum in the metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_tagged(None)
    }

    /// [`StateDict::to_bytes`], with `run` (an identity of the run that wrote it) in the
    /// metadata (`gradus: <format>;crc32=<hex>;run=<id>`), checked by
    /// [`StateDict::load_checked`].
    pub fn to_bytes_tagged(&self, run: Option<&str>) -> Result<Vec<u8>> {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.contiguous()?)))
            .collect::<Result<Vec<_>>>()?;
        let mut hasher = crc32fast::Hasher::new();
        for (_, tensor) in &tensors {
            hasher.update(&tensor.data());
        }
        // One metadata entry (safetensors writes a HashMap's entries in no fixed order, and
        // equal state must give equal bytes).
        let mut value = format!("{FORMAT};crc32={:08x}", hasher.finalize());
        if let Some(run) = run {
            value.push_str(&format!(";run={run}"));
        }
        let metadata = HashMap::from([(METADATA_KEY.to_string(), value)]);
        safetensors::tensor::serialize(tensors, Some(metadata))
            .map_err(|e| Error::Unsupported(format!("cannot serialize state: {e}")))
    }

    /// Parses safetensors bytes; `origin` names the source in errors. A Gradus checksum, when
    /// present, must match.
    pub fn from_bytes(bytes: &[u8], device: &Device, origin: &Path) -> Result<Self> {
        Self::decode(bytes, device, origin).map(|(sd, _)| sd)
    }

    /// Parses bytes that must carry a Gradus checksum (a file without one is rejected, so that
    /// renaming the metadata key cannot turn the check off) and the run tag `run`.
    pub fn from_bytes_checked(
        bytes: &[u8],
        device: &Device,
        origin: &Path,
        run: &str,
    ) -> Result<Self> {
        let (sd, tags) = Self::decode(bytes, device, origin)?;
        let corrupt = |message: String| Error::CorruptFile {
            path: origin.to_path_buf(),
            message,
        };
        if !tags.checksummed {
            return Err(corrupt(
                "no Gradus checksum in its metadata: not a file this run wrote, or damaged".into(),
            ));
        }
        match tags.run.as_deref() {
            Some(found) if found == run => Ok(sd),
            Some(found) => Err(corrupt(format!(
                "written by another run (run id {found}, this run is {run}): files from another \
                 run or seed cannot be mixed into this checkpoint"
            ))),
            None => Err(corrupt(format!(
                "no run id in its metadata (this run is {run})"
            ))),
        }
    }

    fn decode(bytes: &[u8], device: &Device, origin: &Path) -> Result<(Self, Tags)> {
        let corrupt = |message: String| Error::CorruptFile {
            path: origin.to_path_buf(),
            message,
        };
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| corrupt(format!("not a valid safetensors file ({e})")))?;
        let parsed = SafeTensors::deserialize(bytes)
            .map_err(|e| corrupt(format!("not a valid safetensors file ({e})")))?;
        let mut names = parsed.names();
        names.sort_unstable();
        let mut hasher = crc32fast::Hasher::new();
        let mut tensors = BTreeMap::new();
        for name in names {
            let view = parsed
                .tensor(name)
                .map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
            hasher.update(view.data());
            let tensor = view
                .load(device)
                .map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
            tensors.insert(name.to_string(), tensor);
        }
        let stored = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY));
        let mut checksummed = false;
        let fields: Vec<&str> = stored.map(|v| v.split(';').collect()).unwrap_or_default();
        let field = |key: &str| fields.iter().find_map(|f| f.strip_prefix(key));
        if let Some(expected) = field("crc32=") {
            let actual = format!("{:08x}", hasher.finalize());
            if actual != expected {
                return Err(corrupt(format!(
                    "checksum mismatch (stored {expected}, computed {actual}): the data is damaged"
                )));
            }
            checksummed = true;
        }
        let run = field("run=").map(str::to_string);
        Ok((StateDict { tensors }, Tags { checksummed, run }))
    }

    /// Writes to `path` atomically: a temporary file in the same folder, flushed, then renamed
    /// over `path`. A crash or error leaves any existing file at `path` untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        write_atomically(path, &bytes)
    }

    /// Reads `path`, rejecting a truncated, malformed or checksum-failing file.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, device, path)
    }

    /// [`StateDict::save`] with the run tag `run` ([`StateDict::to_bytes_tagged`]).
    pub fn save_tagged(&self, path: impl AsRef<Path>, run: &str) -> Result<()> {
        write_atomically(path.as_ref(), &self.to_bytes_tagged(Some(run))?)
    }

    /// Reads `path`, which must carry a matching Gradus checksum and the run tag `run`
    /// ([`StateDict::from_bytes_checked`]).
    pub fn load_checked(path: impl AsRef<Path>, device: &Device, run: &str) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes_checked(&bytes, device, path, run)
    }

    fn summary_of_names(&self) -> String {
        let names: Vec<&str> = self.names().take(8).collect();
        let more = self.len().saturating_sub(names.len());
        if more > 0 {
            format!("{}, ... {more} more", names.join(", "))
        } else if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename (atomic on one file system).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".gradus-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    // Temporary files are created 0600; the result should read like any other written file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let permissions = std::fs::Permissions::from_mode(0o644);
        tmp.as_file()
            .set_permissions(permissions)
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn sample() -> StateDict {
        let dev = Device::Cpu;
        let mut sd = StateDict::new();
        sd.insert(
            "w",
            Tensor::new(
                &[[1.5f32, -2.25, f32::MIN_POSITIVE], [3.0, 1e-30, -0.0]],
                &dev,
            )
            .unwrap(),
        );
        sd.insert(
            "b",
            Tensor::new(&[0.1f64, 0.2, 0.30000000000000004], &dev).unwrap(),
        );
        sd.insert("step", Tensor::new(7u32, &dev).unwrap());
        sd
    }

    fn bits(t: &Tensor) -> Vec<u64> {
        let flat = t.flatten_all().unwrap();
        match t.dtype() {
            DType::F32 => flat
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits() as u64)
                .collect(),
            DType::F64 => flat
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect(),
            DType::U32 => flat
                .to_vec1::<u32>()
                .unwrap()
                .iter()
                .map(|&v| v as u64)
                .collect(),
            other => panic!("unexpected dtype {other:?}"),
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        let sd = sample();
        sd.save(&path).unwrap();
        let back = StateDict::load(&path, &Device::Cpu).unwrap();
        assert_eq!(
            back.names().collect::<Vec<_>>(),
            sd.names().collect::<Vec<_>>()
        );
        for (name, tensor) in sd.iter() {
            let other = back.get(name).unwrap();
            assert_eq!(other.dtype(), tensor.dtype());
            assert_eq!(other.dims(), tensor.dims());
            assert_eq!(bits(other), bits(tensor), "{name}");
        }
    }

    #[test]
    fn identical_state_gives_identical_bytes() {
        assert_eq!(sample().to_bytes().unwrap(), sample().to_bytes().unwrap());
    }

    #[test]
    fn truncated_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        let bytes = sample().to_bytes().unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = StateDict::load(&path, &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::CorruptFile { .. }), "{err}");
    }

    #[test]
    fn flipped_data_byte_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        let mut bytes = sample().to_bytes().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = StateDict::load(&path, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn failed_save_or_corrupt_load_leaves_good_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.safetensors");
        sample().save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // A target that cannot be replaced (a non-empty folder) makes the final rename fail.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("keep"), b"x").unwrap();
        assert!(sample().save(&blocked).is_err());
        assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"x");
        // Loading a corrupt file beside the good one is rejected and changes nothing.
        let corrupt = dir.path().join("corrupt.safetensors");
        std::fs::write(&corrupt, b"garbage").unwrap();
        assert!(StateDict::load(&corrupt, &Device::Cpu).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn save_into_missing_folder_errors_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/folder/state.safetensors");
        let err = sample().save(&path).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn require_names_missing_and_mismatched_shapes() {
        let sd = sample();
        let err = sd.require("w", &[3, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch in saved state `w`: expected [3, 2], got [2, 3]"
        );
        let err = sd.require("v", &[1]).unwrap_err();
        assert!(err.to_string().contains("missing `v`"), "{err}");
    }
}
