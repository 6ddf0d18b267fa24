//! The seeded random generator every random choice in Gradus draws from.
//!
//! Candle's own device RNG is global and unseeded per call site; Gradus never uses it. A
//! [`SeededRng`] is ChaCha8 (portable, the same bits on every platform), and
//! [`SeededRng::derive`] gives independent named streams (`"init"`, `"dropout"`, `"shuffle"`) so
//! that adding a random draw in one component never shifts the draws of another.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A seeded, serializable random generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeededRng {
    seed: u64,
    inner: ChaCha8Rng,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng {
            seed,
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The seed this generator (or its parent) was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// An independent stream named `label`, fixed by the seed and the label alone.
    pub fn derive(&self, label: &str) -> SeededRng {
        let mut inner = ChaCha8Rng::seed_from_u64(self.seed);
        inner.set_stream(u64::from(crc32fast::hash(label.as_bytes())) + 1);
        SeededRng {
            seed: self.seed,
            inner,
        }
    }

    /// A uniform `f64` in `[0, 1)`.
    pub fn unit_f64(&mut self) -> f64 {
        self.inner.random::<f64>()
    }

    /// A uniform integer in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        self.inner.random_range(0..n.max(1))
    }

    /// A standard normal `f64`.
    pub fn standard_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.inner)
    }

    /// A uniformly random permutation of `0..n` (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..n as u32).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut self.inner);
        order
    }

    /// A tensor of `shape` with entries uniform in `[low, high)`, drawn in `dtype`'s precision.
    pub fn uniform_tensor(
        &mut self,
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(Error::InvalidHyperparameter(format!(
                "uniform bounds must be finite with low <= high, got [{low}, {high})"
            )));
        }
        let n = shape.iter().product::<usize>();
        let values: Vec<f64> = (0..n)
            .map(|_| low + (high - low) * self.unit_f64())
            .collect();
        from_f64(values, shape, dtype, device)
    }

    /// A tensor of `shape` with normal entries of `mean` and standard deviation `std`.
    pub fn normal_tensor(
        &mut self,
        shape: &[usize],
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "normal needs a finite mean and std >= 0, got mean {mean}, std {std}"
            )));
        }
        let n = shape.iter().product::<usize>();
        let values: Vec<f64> = (0..n)
            .map(|_| mean + std * self.standard_normal())
            .collect();
        from_f64(values, shape, dtype, device)
    }

    /// The generator's full state as JSON, for checkpoints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Restores a generator saved with [`SeededRng::to_json`].
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(value.clone())
            .map_err(|e| Error::StateMismatch(format!("invalid RNG state: {e}")))
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.inner.fill_bytes(dst)
    }
}

fn from_f64(values: Vec<f64>, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    #[test]
    fn same_seed_same_tensors() {
        let dev = Device::Cpu;
        let draw = |seed| {
            let mut rng = SeededRng::new(seed);
            let u = rng
                .uniform_tensor(&[4, 5], -1.0, 1.0, DType::F32, &dev)
                .unwrap();
            let n = rng.normal_tensor(&[7], 0.0, 2.0, DType::F32, &dev).unwrap();
            (bits(&u), bits(&n), rng.permutation(10))
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn derived_streams_are_independent_of_parent_draws() {
        let mut a = SeededRng::new(7);
        let b = SeededRng::new(7);
        a.unit_f64();
        let mut da = a.derive("dropout");
        let mut db = b.derive("dropout");
        assert_eq!(da.next_u64(), db.next_u64());
        let mut other = b.derive("shuffle");
        assert_ne!(b.derive("dropout").next_u64(), other.next_u64());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut rng = SeededRng::new(3);
        rng.unit_f64();
        let mut back = SeededRng::from_json(&rng.to_json()).unwrap();
        assert_eq!(rng.next_u64(), back.next_u64());
    }

    #[test]
    fn invalid_bounds_are_errors() {
        let mut rng = SeededRng::new(0);
        assert!(rng
            .uniform_tensor(&[2], 1.0, 0.0, DType::F32, &Device::Cpu)
            .is_err());
        assert!(rng
            .normal_tensor(&[2], 0.0, -1.0, DType::F32, &Device::Cpu)
            .is_err());
    }

    proptest! {
        #[test]
        fn uniform_stays_in_bounds(seed in any::<u64>(), low in -10.0f64..10.0, width in 0.0f64..5.0) {
            let mut rng = SeededRng::new(seed);
            let t = rng.uniform_tensor(&[64], low, low + width, DType::F64, &Device::Cpu).unwrap();
            for v in t.to_vec1::<f64>().unwrap() {
                prop_assert!(v >= low && v <= low + width);
            }
        }

        #[test]
        fn permutation_is_a_permutation(seed in any::<u64>(), n in 0usize..200) {
            let mut p = SeededRng::new(seed).permutation(n);
            p.sort_unstable();
            prop_assert_eq!(p, (0..n as u32).collect::<Vec<_>>());
        }
    }
}
