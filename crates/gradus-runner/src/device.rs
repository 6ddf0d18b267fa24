//! Where a pipeline trains: the pipeline's `"device"` field and the `--device` flag of `run`,
//! `resume` and `validate` (the flag wins), `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
//!
//! A device needs the Candle backend compiled into the binary: `cuda` and `metal` are cargo
//! features of the `gradus` crates (forwarded to candle-core and candle-nn). Asking for a device
//! the binary was not built for is bad input (exit code 2) naming the feature to enable, before
//! anything is built. The data pipeline (loading, splitting, preprocessing, augmentation) stays on
//! the host; batches move to the device at the model's input.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use gradus_core::{Error, Result};

/// A device named in a pipeline or on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
    /// An Apple Metal GPU by ordinal (`metal` is `metal:0`).
    Metal(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (kind, ordinal) = match text.split_once(':') {
            Some((kind, n)) => {
                let n = n.parse::<usize>().map_err(|_| {
                    format!("{text:?}: the device ordinal after `:` must be a number, e.g. cuda:1")
                })?;
                (kind, Some(n))
            }
            None => (text, None),
        };
        match (kind, ordinal) {
            ("cpu", None) => Ok(DeviceSpec::Cpu),
            ("cpu", Some(_)) => Err(format!("{text:?}: the CPU takes no ordinal, use \"cpu\"")),
            ("cuda", n) => Ok(DeviceSpec::Cuda(n.unwrap_or(0))),
            ("metal", n) => Ok(DeviceSpec::Metal(n.unwrap_or(0))),
            _ => {
                let hint = gradus_core::suggest::nearest(kind, &["cpu", "cuda", "metal"])
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                Err(format!(
                    "unknown device {text:?}{hint}: expected cpu, cuda, cuda:N, metal or metal:N"
                ))
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Parses the pipeline's `device` field, an error at `path` when it names no device.
    pub fn parse(text: &str, path: &str) -> Result<DeviceSpec> {
        text.parse().map_err(|message| Error::config(path, message))
    }

    /// The cargo feature this device needs (`None` for the CPU).
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            DeviceSpec::Cpu => None,
            DeviceSpec::Cuda(_) => Some("cuda"),
            DeviceSpec::Metal(_) => Some("metal"),
        }
    }

    /// Whether this binary was built with the device's backend.
    pub fn compiled_in(&self) -> bool {
        match self {
            DeviceSpec::Cpu => true,
            DeviceSpec::Cuda(_) => cfg!(feature = "cuda"),
            DeviceSpec::Metal(_) => cfg!(feature = "metal"),
        }
    }

    /// Checks that the binary can use this device at all (an error at `path` naming the cargo
    /// feature otherwise), without opening it.
    pub fn check_compiled(&self, path: &str) -> Result<()> {
        match self.feature() {
            Some(feature) if !self.compiled_in() => Err(Error::config(
                path,
                format!(
                    "device {self} needs gradus built with the `{feature}` feature \
                     (cargo install gradus-runner --features {feature}, or \
                     cargo run --release -p gradus-runner --features {feature}); \
                     this binary has the CPU only"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Opens the device: an error at `path` when the binary lacks its backend or the device
    /// does not exist (no such GPU, no driver).
    pub fn open(&self, path: &str) -> Result<Device> {
        self.check_compiled(path)?;
        let opened = match self {
            // host-side: the CPU asked for.
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(*n),
            DeviceSpec::Metal(n) => Device::new_metal(*n),
        };
        opened.map_err(|e| Error::config(path, format!("device {self} cannot be opened: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_and_without_ordinals() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!("metal".parse(), Ok(DeviceSpec::Metal(0)));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        for spec in [DeviceSpec::Cpu, DeviceSpec::Cuda(1), DeviceSpec::Metal(0)] {
            assert_eq!(spec.to_string().parse(), Ok(spec));
        }
    }

    #[test]
    fn bad_names_are_explained() {
        let err = "cuba".parse::<DeviceSpec>().unwrap_err();
        assert!(err.contains("did you mean `cuda`"), "{err}");
        let err = "cuda:x".parse::<DeviceSpec>().unwrap_err();
        assert!(err.contains("ordinal"), "{err}");
        let err = "cpu:0".parse::<DeviceSpec>().unwrap_err();
        assert!(err.contains("no ordinal"), "{err}");
    }

    #[test]
    fn the_cpu_opens_and_a_missing_backend_names_its_feature() {
        assert!(DeviceSpec::Cpu.open("device").unwrap().is_cpu());
        for spec in [DeviceSpec::Cuda(0), DeviceSpec::Metal(0)] {
            if spec.compiled_in() {
                continue;
            }
            let err = spec.open("device").unwrap_err().to_string();
            let feature = spec.feature().unwrap();
            assert!(err.contains("at device"), "{err}");
            assert!(err.contains(&format!("--features {feature}")), "{err}");
        }
    }
}
