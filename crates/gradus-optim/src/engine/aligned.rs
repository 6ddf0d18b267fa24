//! Optimizer-owned state buffers for the fused path: 64-byte aligned, and placed at a chosen
//! offset within a 4 KiB page, away from the parameter's.
//!
//! When a parameter and its state buffers all start at the same offset within a page, the
//! streams of one step alias in the L1 cache's set index and in the store-to-load forwarding
//! check (4K aliasing), which costs 5-20 % on one thread. Each buffer is a `Vec` over-allocated
//! by a page, and the slice used starts at the element whose address has the wanted page
//! offset: no unsafe code, and the `Vec` is never resized, so the address is stable.

use candle_core::{DType, Device, Tensor};
use gradus_core::Result;

use half::{bf16, f16};

const PAGE: usize = 4096;
const LINE: usize = 64;
/// Distance within a page between the parameter's start and buffer `k`'s: `(k + 1) · SPACING`.
const SPACING: usize = 768;

/// A contiguous run of `len` elements inside a larger `Vec`, starting at a chosen page offset.
#[derive(Debug, Clone)]
pub struct AlignedBuf<T> {
    raw: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    /// `len` copies of `init`, 64-byte aligned, whose first element sits `(slot + 1) · 768`
    /// bytes (modulo 4 KiB, rounded to a cache line) after `avoid`'s page offset.
    pub fn new(len: usize, init: T, avoid: usize, slot: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let pad = (PAGE + LINE) / size;
        let raw = vec![init; len + pad];
        let base = raw.as_ptr() as usize;
        let target = ((avoid % PAGE) / LINE * LINE + (slot + 1) * SPACING) % PAGE / LINE * LINE;
        let shift = (target + PAGE - base % PAGE) % PAGE;
        AlignedBuf {
            raw,
            start: shift / size,
            len,
        }
    }

    /// A buffer holding `values`, placed as [`AlignedBuf::new`] places it.
    pub fn from_values(values: &[T], avoid: usize, slot: usize) -> Self {
        let init = values.first().copied().unwrap_or_default();
        let mut buf = Self::new(values.len(), init, avoid, slot);
        buf.as_mut_slice().copy_from_slice(values);
        buf
    }
}

impl<T> AlignedBuf<T> {
    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.raw[self.start..self.start + self.len]
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.raw[self.start..self.start + self.len]
    }

    /// The address of the first element (for tests of the placement).
    pub fn address(&self) -> usize {
        self.as_slice().as_ptr() as usize
    }
}

/// One state buffer of the fused path: in the parameter's dtype, or f32 for a bf16/f16
/// parameter (see [`precision`](crate::engine::precision)).
#[derive(Debug, Clone)]
pub enum StateBuf {
    /// f32 elements.
    F32(AlignedBuf<f32>),
    /// f64 elements.
    F64(AlignedBuf<f64>),
    /// bf16 elements (a bf16 parameter's state with `"state_dtype": "param"`).
    BF16(AlignedBuf<bf16>),
    /// f16 elements (an f16 parameter's state with `"state_dtype": "param"`).
    F16(AlignedBuf<f16>),
}

impl StateBuf {
    /// A buffer holding `tensor`'s values in `dtype` (f32, f64, bf16 or f16).
    pub fn from_tensor(tensor: &Tensor, dtype: DType, avoid: usize, slot: usize) -> Result<Self> {
        let flat = tensor.flatten_all()?.to_dtype(dtype)?;
        Ok(match dtype {
            DType::F32 => StateBuf::F32(AlignedBuf::from_values(&flat.to_vec1()?, avoid, slot)),
            DType::BF16 => StateBuf::BF16(AlignedBuf::from_values(&flat.to_vec1()?, avoid, slot)),
            DType::F16 => StateBuf::F16(AlignedBuf::from_values(&flat.to_vec1()?, avoid, slot)),
            _ => StateBuf::F64(AlignedBuf::from_values(&flat.to_vec1()?, avoid, slot)),
        })
    }

    /// `len` copies of `init` in `dtype` (f32, f64, bf16 or f16), placed as
    /// [`AlignedBuf::new`] places them.
    pub fn filled(dtype: DType, len: usize, init: f64, avoid: usize, slot: usize) -> Self {
        match dtype {
            DType::F32 => StateBuf::F32(AlignedBuf::new(len, init as f32, avoid, slot)),
            DType::BF16 => StateBuf::BF16(AlignedBuf::new(len, bf16::from_f64(init), avoid, slot)),
            DType::F16 => StateBuf::F16(AlignedBuf::new(len, f16::from_f64(init), avoid, slot)),
            _ => StateBuf::F64(AlignedBuf::new(len, init, avoid, slot)),
        }
    }

    /// The buffer as a CPU tensor of shape `dims` (a copy, so later steps do not change it).
    pub fn to_tensor(&self, dims: &[usize]) -> Result<Tensor> {
        // host-side: the fused kernels' aligned buffers are CPU memory.
        let cpu = &Device::Cpu;
        Ok(match self {
            StateBuf::F32(b) => Tensor::from_slice(b.as_slice(), dims, cpu)?,
            StateBuf::F64(b) => Tensor::from_slice(b.as_slice(), dims, cpu)?,
            StateBuf::BF16(b) => Tensor::from_slice(b.as_slice(), dims, cpu)?,
            StateBuf::F16(b) => Tensor::from_slice(b.as_slice(), dims, cpu)?,
        })
    }

    /// The address of the first element.
    pub fn address(&self) -> usize {
        match self {
            StateBuf::F32(b) => b.address(),
            StateBuf::F64(b) => b.address(),
            StateBuf::BF16(b) => b.address(),
            StateBuf::F16(b) => b.address(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_off_the_parameters_page_offset() {
        for avoid in [0usize, 16, 4096 * 7 + 16, 4095, 2048 + 64] {
            for slot in 0..3 {
                for len in [0usize, 1, 1000] {
                    let b = AlignedBuf::<f32>::new(len, 0.5, avoid, slot);
                    assert_eq!(b.as_slice().len(), len);
                    assert!(b.as_slice().iter().all(|&v| v == 0.5));
                    assert_eq!(b.address() % 64, 0);
                    let gap = (b.address() % PAGE + PAGE - avoid % PAGE) % PAGE;
                    assert!((LINE..=PAGE - LINE).contains(&gap), "gap {gap}");
                }
            }
        }
        let values = [1.0f64, 2.0, 3.0];
        let b = AlignedBuf::from_values(&values, 16, 1);
        assert_eq!(b.as_slice(), &values);
        assert_eq!(b.address() % 64, 0);
    }
}
