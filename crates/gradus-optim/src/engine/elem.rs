//! The element types of the fused kernels (f32, f64): arithmetic as Candle's CPU ops do it.

use std::ops::{Add, Div, Mul, Neg, Sub};

use candle_core::CpuStorage;

use crate::engine::aligned::{AlignedBuf, StateBuf};

/// A float the fused kernels run in. Scalars enter through [`Elem::of`], which rounds an f64
/// coefficient as Candle's `affine` does (`T::from_f64`).
pub trait Elem:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + std::fmt::Debug
    + 'static
{
    /// The f64 value rounded to this type.
    fn of(v: f64) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Widened to f64.
    fn to_f64(self) -> f64;
    /// The machine epsilon (`f32::EPSILON`, `f64::EPSILON`; PyTorch's `finfo(dtype).eps`).
    fn epsilon() -> Self;
    /// Candle's `maximum`: `if a < b { b } else { a }`.
    #[inline(always)]
    fn max_of(a: Self, b: Self) -> Self {
        if a < b {
            b
        } else {
            a
        }
    }
    /// Candle's `sign`: 1 above zero, -1 below, 0 otherwise (also for NaN).
    #[inline(always)]
    fn sign(self) -> Self {
        let zero = Self::of(0.0);
        if self > zero {
            Self::of(1.0)
        } else if self < zero {
            Self::of(-1.0)
        } else {
            zero
        }
    }
    /// The elements of a CPU storage of this dtype.
    fn storage(s: &CpuStorage) -> Option<&[Self]>;
    /// The elements of a CPU storage of this dtype, mutably.
    fn storage_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// The buffer of a state slot of this dtype.
    fn buf_mut(b: &mut StateBuf) -> Option<&mut AlignedBuf<Self>>;
    /// Wraps an aligned buffer as a state slot.
    fn wrap(b: AlignedBuf<Self>) -> StateBuf;
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            #[inline(always)]
            fn of(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn epsilon() -> Self {
                <$t>::EPSILON
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
            fn wrap(b: AlignedBuf<Self>) -> StateBuf {
                StateBuf::$variant(b)
            }
        }
    };
}

impl_elem!(f32, F32);
impl_elem!(f64, F64);
