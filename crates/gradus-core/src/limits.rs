//! Bounds on sizes taken from a pipeline or a data file, checked before anything is allocated:
//! a typo (`"out": 4294967296`) or a hostile file gets a clear error naming its JSON path or
//! file and the limit, never a capacity-overflow panic or an allocation that the kernel kills.
//!
//! | limit | default | override (environment) |
//! |---|---|---|
//! | elements of one tensor (a layer's weight, one output sample, a data set's features) | 2^28 = 268,435,456 (1 GiB of f32) | `GRADUS_MAX_TENSOR_ELEMENTS` |
//! | bytes of one data file once decompressed | 2^31 (2 GiB) | `GRADUS_MAX_DATA_BYTES` |
//!
//! A real model or data set that needs more sets the variable; the error says which.

use crate::error::{Error, Result};

/// Default largest element count of one tensor: 2^28.
pub const DEFAULT_MAX_TENSOR_ELEMENTS: usize = 1 << 28;
/// Default largest size of one data file after decompression: 2 GiB.
pub const DEFAULT_MAX_DATA_BYTES: u64 = 1 << 31;

const TENSOR_VAR: &str = "GRADUS_MAX_TENSOR_ELEMENTS";
const DATA_VAR: &str = "GRADUS_MAX_DATA_BYTES";

fn from_env<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The largest element count of one tensor in force.
pub fn max_tensor_elements() -> usize {
    from_env(TENSOR_VAR, DEFAULT_MAX_TENSOR_ELEMENTS)
}

/// The largest decompressed size of one data file in force.
pub fn max_data_bytes() -> u64 {
    from_env(DATA_VAR, DEFAULT_MAX_DATA_BYTES)
}

/// The element count of a tensor of shape `dims` (`what`, found at JSON path or file `at`), or
/// an error when it overflows or exceeds [`max_tensor_elements`].
pub fn tensor_elements(at: &str, what: &str, dims: &[usize]) -> Result<usize> {
    let limit = max_tensor_elements();
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match count {
        Some(n) if n <= limit => Ok(n),
        _ => Err(Error::config(
            at,
            format!(
                "{what} of shape {dims:?} would hold more than {limit} elements (the limit; set \
                 {TENSOR_VAR} to allow more)"
            ),
        )),
    }
}

/// Checks a data file's decompressed size `bytes` (`what`, in file `at`) against
/// [`max_data_bytes`].
pub fn data_bytes(at: &str, what: &str, bytes: u64) -> Result<()> {
    let limit = max_data_bytes();
    if bytes > limit {
        return Err(Error::config(
            at,
            format!(
                "{what} would be {bytes} bytes, more than the limit of {limit} (set {DATA_VAR} to \
                 allow more)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_and_huge_shapes_are_errors_naming_the_path() {
        assert_eq!(
            tensor_elements("model.layers[0]", "weight", &[10, 64]).unwrap(),
            640
        );
        let err = tensor_elements("model.layers[0]", "weight", &[usize::MAX, 2]).unwrap_err();
        assert!(err.to_string().contains("model.layers[0]"), "{err}");
        let err = tensor_elements("model.layers[0]", "weight", &[1 << 20, 1 << 20]).unwrap_err();
        assert!(err.to_string().contains(TENSOR_VAR), "{err}");
        assert!(data_bytes("x.idx", "images", 10).is_ok());
        assert!(data_bytes("x.idx", "images", u64::MAX).is_err());
    }
}
