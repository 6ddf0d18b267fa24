//! Low-precision parameters (bf16, f16): the dtype of the optimizer state, optional f32 master
//! weights, and how an updated value is rounded back into the parameter.
//!
//! A bf16 or f16 parameter is stepped in f32, whichever path takes it:
//!
//! ```text
//! θ₃₂ ← master            (master weights)      or   widen(θ)   (without)
//! g₃₂ ← widen(g)
//! s₃₂ ← s                 (state_dtype "f32")   or   widen(s)   (state_dtype "param")
//! θ₃₂, s₃₂ ← the rule's f32 step (its reference update or its fused kernel, unchanged)
//! master ← θ₃₂;   θ ← round(θ₃₂);   s ← s₃₂ (f32) or nearest(s₃₂) (param)
//! ```
//!
//! `widen` is exact; `round` is round-to-nearest-even ([`Rounding::Nearest`], Candle's and the
//! `half` crate's conversion) or seeded stochastic rounding ([`Rounding::Stochastic`]). The
//! rule's scalar coefficients are computed in f64 and rounded to f32, never to the parameter's
//! dtype. f32 state is what keeps a second moment moving: with β₂ = 0.999, v = 1 and g² = 2,
//! the EMA's increment (1 − β₂)(g² − v) = 0.001 is below half a bf16 ulp of 1 (2⁻⁸), so bf16
//! state stays exactly 1.0 while f32 state reaches 1.095 after 100 steps
//! (`tests/low_precision.rs`).
//!
//! f32 and f64 parameters are unaffected by all of this: their state keeps their dtype (state
//! is never narrower than f32) and they need no master copy.
//!
//! **Master weights and outside writes.** With master weights the optimizer owns the
//! parameter's value. Before each step it checks, element by element, that the parameter
//! still holds what the previous step wrote (the previous step's rounding of the master value,
//! recomputed, so nothing extra is stored); an element written from outside (weights loaded,
//! Lookahead's sync, averaging) is taken as the new master value.

use candle_core::{CpuStorage, DType};
use gradus_core::config::{join_path, parse_config, take_field};
use gradus_core::{Error, Result};
use half::{bf16, f16};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::aligned::{AlignedBuf, StateBuf};

/// The dtype a bf16/f16 parameter's optimizer state is kept in (`"state_dtype"`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StateDtype {
    /// f32 state for bf16/f16 parameters (the default; f32/f64 parameters keep their dtype).
    #[default]
    F32,
    /// The parameter's own dtype, for memory: the update is still computed in f32, and the
    /// state is rounded to nearest when stored (so small EMA increments are lost, as they are in
    /// PyTorch's bf16 state).
    Param,
}

/// How an f32 value is rounded into a bf16/f16 parameter (`"rounding"`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// Round to nearest, ties to even (the default).
    #[default]
    Nearest,
    /// Round to one of the two neighbouring values with probabilities that make the expected
    /// value exact: `x` between neighbours `a < b` becomes `b` with probability
    /// `(x − a) / (b − a)`. The draws come from ChaCha8 keyed by (`rounding_seed`, step), with
    /// the parameter's index as the stream and the element's index as the position, so they do
    /// not depend on threads or chunking. Values that round to an infinity or a NaN, and
    /// values exactly representable, round to nearest.
    Stochastic,
}

/// The low-precision settings of one optimizer (every group shares them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Precision {
    /// The dtype of a bf16/f16 parameter's state buffers.
    pub state_dtype: StateDtype,
    /// Keep an f32 copy of each bf16/f16 parameter, step it, and write its rounding into the
    /// parameter. Saved in the state dict as `<param>.master_weight`.
    pub master_weights: bool,
    /// How updated values are rounded into bf16/f16 parameters.
    pub rounding: Rounding,
    /// Seed of stochastic rounding.
    pub rounding_seed: u64,
}

/// The state-dict buffer name of a parameter's f32 master copy.
pub const MASTER_WEIGHT: &str = "master_weight";

/// True for the dtypes this module widens to f32 (bf16, f16).
pub fn is_low_precision(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

impl Precision {
    /// The dtype a step of a `param` parameter computes in: f32 for bf16/f16, else `param`.
    pub fn compute_dtype(param: DType) -> DType {
        if is_low_precision(param) {
            DType::F32
        } else {
            param
        }
    }

    /// The dtype a `param` parameter's state buffers are stored in.
    pub fn state_dtype_of(&self, param: DType) -> DType {
        match self.state_dtype {
            StateDtype::Param => param,
            StateDtype::F32 => Self::compute_dtype(param),
        }
    }

    /// True when a `param` parameter keeps an f32 master copy.
    pub fn keeps_master(&self, param: DType) -> bool {
        self.master_weights && is_low_precision(param)
    }
}

/// The config fields [`take_precision`] reads.
pub const PRECISION_FIELDS: [&str; 4] =
    ["state_dtype", "master_weights", "rounding", "rounding_seed"];

/// Removes and parses the precision fields of an optimizer config at `path`: `state_dtype`
/// (`"f32"` | `"param"`), `master_weights` (bool), `rounding` (`"nearest"` | `"stochastic"`)
/// and `rounding_seed` (unsigned integer); absent fields take their defaults.
pub fn take_precision(config: &mut Value, path: &str) -> Result<Precision> {
    let mut precision = Precision::default();
    if let Some(v) = take_present(config, "state_dtype") {
        precision.state_dtype = parse_config(&v, &join_path(path, "state_dtype"))?;
    }
    if let Some(v) = take_present(config, "master_weights") {
        precision.master_weights = parse_config(&v, &join_path(path, "master_weights"))?;
    }
    if let Some(v) = take_present(config, "rounding") {
        precision.rounding = parse_config(&v, &join_path(path, "rounding"))?;
    }
    if let Some(v) = take_present(config, "rounding_seed") {
        precision.rounding_seed = parse_config(&v, &join_path(path, "rounding_seed"))?;
    }
    if precision.rounding_seed != 0 && precision.rounding == Rounding::Nearest {
        return Err(Error::config(
            join_path(path, "rounding_seed"),
            "a rounding seed only applies to \"rounding\": \"stochastic\"",
        ));
    }
    Ok(precision)
}

fn take_present(config: &mut Value, key: &str) -> Option<Value> {
    take_field(config, key).filter(|v| !v.is_null())
}

/// A 16-bit float a parameter can be stored in: bf16 or f16.
pub trait LowFloat: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// Round to nearest, ties to even.
    fn nearest(x: f32) -> Self;
    /// Exact widening.
    fn widen(self) -> f32;
    /// The bit pattern.
    fn bits(self) -> u16;
    /// From a bit pattern.
    fn from_bits(bits: u16) -> Self;
    /// Widens `src` into `dst` (equal lengths), vectorized by the `half` crate.
    fn widen_slice(src: &[Self], dst: &mut [f32]);
    /// Rounds `src` to nearest into `dst` (equal lengths), vectorized by the `half` crate.
    fn nearest_slice(src: &[f32], dst: &mut [Self]);
    /// The elements of a CPU storage of this dtype.
    fn storage(s: &CpuStorage) -> Option<&[Self]>;
    /// The elements of a CPU storage of this dtype, mutably.
    fn storage_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// The buffer of a state slot of this dtype.
    fn buf_mut(b: &mut StateBuf) -> Option<&mut AlignedBuf<Self>>;
}

macro_rules! impl_low_float {
    ($t:ty, $variant:ident) => {
        impl LowFloat for $t {
            #[inline(always)]
            fn nearest(x: f32) -> Self {
                <$t>::from_f32(x)
            }
            #[inline(always)]
            fn widen(self) -> f32 {
                self.to_f32()
            }
            #[inline(always)]
            fn bits(self) -> u16 {
                self.to_bits()
            }
            #[inline(always)]
            fn from_bits(bits: u16) -> Self {
                <$t>::from_bits(bits)
            }
            fn widen_slice(src: &[Self], dst: &mut [f32]) {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst)
            }
            fn nearest_slice(src: &[f32], dst: &mut [Self]) {
                half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src)
            }
            fn storage(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn storage_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn buf_mut(b: &mut StateBuf) -> Option<&mut AlignedBuf<Self>> {
                match b {
                    StateBuf::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

impl_low_float!(bf16, BF16);
impl_low_float!(f16, F16);

/// Stochastic rounding of `x` with the uniform draw `r` (32 random bits): the nearest value
/// `n`, or its neighbour on `x`'s side, chosen with the probabilities of [`Rounding::Stochastic`].
pub fn round_stochastic<H: LowFloat>(x: f32, r: u32) -> H {
    let n = H::nearest(x);
    let nf = n.widen();
    if nf == x || !x.is_finite() || !nf.is_finite() {
        return n;
    }
    // The neighbour on x's side: one step of the magnitude bits, the sign kept (an IEEE
    // half's magnitudes are ordered like its bit patterns). n has x's sign (±0 included).
    let other = if nf.abs() > x.abs() {
        H::from_bits(n.bits() - 1)
    } else {
        H::from_bits(n.bits() + 1)
    };
    let of = other.widen();
    if !of.is_finite() {
        return n;
    }
    let p_other = (f64::from(x) - f64::from(nf)) / (f64::from(of) - f64::from(nf));
    let u = f64::from(r) / 4_294_967_296.0;
    if u < p_other {
        other
    } else {
        n
    }
}

/// Where a parameter's stochastic draws come from in one step: ChaCha8 keyed by the seed and
/// the step, with the parameter's index as the stream.
#[derive(Debug, Clone, Copy)]
pub struct DrawKey {
    seed: u64,
    stream: u64,
}

impl DrawKey {
    /// The draws of parameter `index`'s step `step` under `seed`.
    pub fn new(seed: u64, step: u64, index: usize) -> Self {
        // SplitMix64's increment spreads consecutive steps over unrelated keys.
        let seed = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        DrawKey {
            seed,
            stream: index as u64,
        }
    }

    /// The generator positioned at element `offset`'s draw.
    fn at(&self, offset: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(offset as u128);
        rng
    }
}

/// How one step writes an f32 value into a bf16/f16 parameter.
#[derive(Debug, Clone, Copy)]
pub enum Rounder {
    /// Round to nearest.
    Nearest,
    /// Stochastic rounding with the draws of this key.
    Stochastic(DrawKey),
}

impl Rounder {
    /// The rounder of parameter `index`'s step `step` under `precision`.
    pub fn new(precision: &Precision, step: u64, index: usize) -> Self {
        match precision.rounding {
            Rounding::Nearest => Rounder::Nearest,
            Rounding::Stochastic => {
                Rounder::Stochastic(DrawKey::new(precision.rounding_seed, step, index))
            }
        }
    }

    /// Rounds `src` (the elements from `offset` on) into `dst`.
    pub fn round<H: LowFloat>(&self, src: &[f32], dst: &mut [H], offset: usize) {
        match self {
            Rounder::Nearest => H::nearest_slice(src, dst),
            Rounder::Stochastic(key) => {
                let mut rng = key.at(offset);
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = round_stochastic(s, rng.next_u32());
                }
            }
        }
    }

    /// True when `written` is what [`Rounder::round`] makes of `value` at element `offset`,
    /// element by element, into `same`.
    pub fn matches<H: LowFloat>(
        &self,
        value: &[f32],
        written: &[H],
        offset: usize,
        same: &mut [bool],
    ) {
        match self {
            Rounder::Nearest => {
                for ((s, &v), &w) in same.iter_mut().zip(value).zip(written) {
                    *s = H::nearest(v).bits() == w.bits();
                }
            }
            Rounder::Stochastic(key) => {
                let mut rng = key.at(offset);
                for ((s, &v), &w) in same.iter_mut().zip(value).zip(written) {
                    *s = round_stochastic::<H>(v, rng.next_u32()).bits() == w.bits();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stochastic_rounding_returns_a_neighbour_and_is_unbiased() {
        let x = 1.0f32 + 0.3 * 2f32.powi(-7); // 30 % of a bf16 ulp above 1
        let key = DrawKey::new(7, 1, 0);
        let mut rng = key.at(0);
        let n = 200_000;
        let mut sum = 0f64;
        for _ in 0..n {
            let r: bf16 = round_stochastic(x, rng.next_u32());
            assert!(r == bf16::ONE || r == bf16::from_f32(1.0 + 2f32.powi(-7)));
            sum += f64::from(r.to_f32());
        }
        let mean = sum / n as f64;
        assert!((mean - f64::from(x)).abs() < 2e-5, "mean {mean} vs {x}");
    }

    #[test]
    fn stochastic_rounding_keeps_signs_subnormals_and_exact_values() {
        assert_eq!(round_stochastic::<f16>(2.5, 0), f16::from_f32(2.5));
        let tiny = -1e-8f32; // below f16's smallest subnormal (6e-8)
        for r in [0, u32::MAX] {
            let h: f16 = round_stochastic(tiny, r);
            assert!(h.to_f32() <= 0.0 && h.to_f32() >= -6e-8);
        }
        assert!(round_stochastic::<f16>(f32::NAN, 5).is_nan());
        assert_eq!(round_stochastic::<f16>(1e6, 0), f16::INFINITY);
    }

    #[test]
    fn draws_do_not_depend_on_where_a_chunk_starts() {
        let values: Vec<f32> = (0..1000).map(|i| 1.0 + i as f32 * 1e-4).collect();
        let rounder = Rounder::Stochastic(DrawKey::new(3, 9, 2));
        let mut whole = vec![bf16::ZERO; 1000];
        rounder.round(&values, &mut whole, 0);
        let mut parts = vec![bf16::ZERO; 1000];
        let (a, b) = parts.split_at_mut(337);
        rounder.round(&values[..337], a, 0);
        rounder.round(&values[337..], b, 337);
        assert_eq!(whole, parts);
        let mut same = vec![false; 1000];
        rounder.matches(&values, &whole, 0, &mut same);
        assert!(same.iter().all(|s| *s));
    }

    #[test]
    fn precision_fields_parse_and_name_their_path() {
        let mut config = serde_json::json!({"lr": 0.1, "state_dtype": "param",
            "master_weights": true, "rounding": "stochastic", "rounding_seed": 4});
        let p = take_precision(&mut config, "optimizer").unwrap();
        assert_eq!(p.state_dtype, StateDtype::Param);
        assert!(p.master_weights);
        assert_eq!(p.rounding, Rounding::Stochastic);
        assert_eq!(p.rounding_seed, 4);
        assert_eq!(config, serde_json::json!({"lr": 0.1}));
        let mut bad = serde_json::json!({"state_dtype": "bf16"});
        let e = take_precision(&mut bad, "optimizer")
            .unwrap_err()
            .to_string();
        assert!(e.contains("optimizer.state_dtype"), "{e}");
        let mut seed_only = serde_json::json!({"rounding_seed": 4});
        assert!(take_precision(&mut seed_only, "optimizer").is_err());
    }
}
