//! Binary keep-masks drawn from the seeded generator, stored as bitsets, and the fused op that
//! applies them.
//!
//! A mask has one bit per *unit* (an element, a channel, a sample); a unit covers `group`
//! consecutive elements of the contiguous input. Applying it computes, per element,
//!
//! ```text
//! y = kept_scale * x + kept_shift     where the unit is kept
//! y = dropped_value                   where it is dropped
//! ```
//!
//! which covers inverted dropout (`1/(1-p)`, 0, 0) and alpha dropout (`a`, `a*alpha*p`,
//! `-a*alpha*(1-p)`). On CPU, for f32 and f64, a custom Candle op reads the bitset directly; its
//! backward pass keeps only the bitset (1 bit per unit) and computes `dy * kept_scale` on kept
//! units. Other devices and dtypes expand the bitset to a `u8` tensor and use ordinary ops.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use gradus_core::{Result, SeededRng};
use rand::RngCore;

/// One bit per unit: set = kept. Drawn with `P(dropped) = p` from 32-bit uniform integers
/// (dropped when `u < round(p * 2^32)`, so the probability is `p` to within `2^-33`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepMask {
    words: Vec<u64>,
    len: usize,
}

impl KeepMask {
    /// Draws `len` independent units, each dropped with probability `p`, from `rng`.
    pub fn draw(len: usize, p: f64, rng: &mut SeededRng) -> Self {
        let threshold = (p.clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64;
        let mut words = vec![0u64; len.div_ceil(64)];
        for i in 0..len {
            if u64::from(rng.next_u32()) >= threshold {
                words[i / 64] |= 1 << (i % 64);
            }
        }
        KeepMask { words, len }
    }

    /// Number of units.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mask has no unit.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether unit `i` is kept.
    pub fn is_kept(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Number of kept units.
    pub fn kept_count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The mask as a `u8` tensor of 0/1 with `len` elements.
    pub fn to_u8_tensor(&self, device: &Device) -> Result<Tensor> {
        let bytes: Vec<u8> = (0..self.len).map(|i| u8::from(self.is_kept(i))).collect();
        Ok(Tensor::from_vec(bytes, self.len, device)?)
    }
}

/// The per-element affine map of a mask application (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskMap {
    pub kept_scale: f64,
    pub kept_shift: f64,
    pub dropped_value: f64,
}

impl MaskMap {
    /// Inverted dropout: kept units scaled by `scale`, dropped ones zero.
    pub fn scale(scale: f64) -> Self {
        MaskMap {
            kept_scale: scale,
            kept_shift: 0.0,
            dropped_value: 0.0,
        }
    }
}

struct MaskedAffine {
    mask: Arc<KeepMask>,
    group: usize,
    map: MaskMap,
}

impl MaskedAffine {
    fn run<T>(&self, xs: &[T], to: impl Fn(f64) -> T) -> Vec<T>
    where
        T: Copy + std::ops::Mul<Output = T> + std::ops::Add<Output = T>,
    {
        let (scale, shift, dropped) = (
            to(self.map.kept_scale),
            to(self.map.kept_shift),
            to(self.map.dropped_value),
        );
        // Skipping a zero shift keeps -0.0 inputs bit-identical to `x * scale`.
        let add_shift = self.map.kept_shift != 0.0;
        let group = self.group.max(1);
        let mut out = Vec::with_capacity(xs.len());
        for (u, chunk) in xs.chunks(group).enumerate() {
            if self.mask.is_kept(u) {
                if add_shift {
                    out.extend(chunk.iter().map(|&x| x * scale + shift));
                } else {
                    out.extend(chunk.iter().map(|&x| x * scale));
                }
            } else {
                out.extend(std::iter::repeat_n(dropped, chunk.len()));
            }
        }
        out
    }
}

impl CustomOp1 for MaskedAffine {
    fn name(&self) -> &'static str {
        "gradus-masked-affine"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gradus-masked-affine needs a contiguous input")
        };
        if end - start != self.mask.len() * self.group {
            candle_core::bail!(
                "gradus-masked-affine: {} elements for {} units of {}",
                end - start,
                self.mask.len(),
                self.group
            )
        }
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.run(&v[start..end], |x| x as f32)),
            CpuStorage::F64(v) => CpuStorage::F64(self.run(&v[start..end], |x| x)),
            _ => candle_core::bail!("gradus-masked-affine: only f32 and f64 are fused"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad_map = MaskedAffine {
            mask: self.mask.clone(),
            group: self.group,
            map: MaskMap::scale(self.map.kept_scale),
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&grad_map)?))
    }
}

/// Applies `mask` (each unit covering `group` consecutive elements of `x` in row-major order)
/// with the affine `map`; differentiable with respect to `x`.
pub(crate) fn apply(x: &Tensor, mask: KeepMask, group: usize, map: MaskMap) -> Result<Tensor> {
    let fused = matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
    if fused {
        let op = MaskedAffine {
            mask: Arc::new(mask),
            group,
            map,
        };
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    portable(x, &mask, group, map)
}

/// The device- and dtype-generic path: the bits expanded to a `(units, 1)` factor broadcast
/// over each group, then ordinary (differentiable) tensor ops.
fn portable(x: &Tensor, mask: &KeepMask, group: usize, map: MaskMap) -> Result<Tensor> {
    let units = mask.len();
    let keep = mask
        .to_u8_tensor(x.device())?
        .to_dtype(x.dtype())?
        .reshape((units, 1))?;
    let mult = keep.affine(map.kept_scale, 0.0)?;
    let add = keep.affine(map.kept_shift - map.dropped_value, map.dropped_value)?;
    let flat = x.reshape((units, group))?;
    let y = flat.broadcast_mul(&mult)?.broadcast_add(&add)?;
    Ok(y.reshape(x.shape())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn p_zero_keeps_everything() {
        let m = KeepMask::draw(130, 0.0, &mut SeededRng::new(1));
        assert_eq!(m.kept_count(), 130);
        assert!((0..130).all(|i| m.is_kept(i)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The fused CPU op and the portable tensor path agree, forward and backward.
        #[test]
        fn fused_and_portable_paths_agree(
            seed in any::<u64>(),
            units in 1usize..20,
            group in 1usize..5,
            p in 0.0f64..0.9,
            shift in -1.0f64..1.0,
            dropped in -1.0f64..1.0,
        ) {
            let mut rng = SeededRng::new(seed);
            let n = units * group;
            let x = rng.normal_tensor(&[n], 0.0, 1.0, DType::F64, &Device::Cpu).unwrap();
            let mask = KeepMask::draw(units, p, &mut rng);
            let map = MaskMap { kept_scale: 1.0 / (1.0 - p), kept_shift: shift, dropped_value: dropped };
            let var = candle_core::Var::from_tensor(&x).unwrap();
            let fused = apply(var.as_tensor(), mask.clone(), group, map).unwrap();
            let g_fused = fused.sum_all().unwrap().backward().unwrap();
            let gf = g_fused.get(var.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
            let portable = portable(var.as_tensor(), &mask, group, map).unwrap();
            let gp = portable.sum_all().unwrap().backward().unwrap()
                .get(var.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
            for (a, b) in fused.to_vec1::<f64>().unwrap().iter().zip(portable.to_vec1::<f64>().unwrap()) {
                prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
            }
            prop_assert_eq!(gf, gp);
        }
    }
}
