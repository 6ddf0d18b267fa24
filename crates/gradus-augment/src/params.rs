//! Config value shapes shared by the image augmentations (torchvision accepts a number or a
//! pair for most ranges) and the checks torchvision applies to them.

use gradus_core::config::display_path;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};

/// A number `v` or a `[min, max]` pair; what a single number means depends on the field
/// (`[-v, v]` for angles, `[1 - v, 1 + v]` for color factors, ...).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged, expecting = "a number or a [min, max] pair")]
pub enum Range {
    /// A single number.
    One(f64),
    /// `[min, max]`.
    Two([f64; 2]),
}

/// An image size: `s` (square) or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged, expecting = "an integer or a [height, width] pair")]
pub enum Size {
    /// A square `s x s`.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Size {
    /// `[height, width]`.
    pub fn hw(self) -> [usize; 2] {
        match self {
            Size::One(s) => [s, s],
            Size::Two(hw) => hw,
        }
    }
}

/// Padding: `p` on every side, `[left/right, top/bottom]`, or `[left, top, right, bottom]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "an integer, [left/right, top/bottom] or [left, top, right, bottom]"
)]
pub enum Padding {
    /// The same padding on every side.
    One(usize),
    /// `[left and right, top and bottom]`.
    Two([usize; 2]),
    /// `[left, top, right, bottom]`.
    Four([usize; 4]),
}

impl Padding {
    /// `[left, top, right, bottom]`.
    pub fn ltrb(self) -> [usize; 4] {
        match self {
            Padding::One(p) => [p; 4],
            Padding::Two([x, y]) => [x, y, x, y],
            Padding::Four(p) => p,
        }
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidHyperparameter(message)
}

/// torchvision's `_check_input`: a single `v >= 0` becomes `[center - v, center + v]` (the low
/// end clipped at 0 when `clip_zero`), a pair is taken as is; the result must satisfy
/// `bound[0] <= min <= max <= bound[1]`.
pub(crate) fn check_range(
    name: &str,
    value: Range,
    center: f64,
    bound: [f64; 2],
    clip_zero: bool,
) -> Result<[f64; 2]> {
    let r = match value {
        Range::One(v) => {
            if v.is_nan() || v < 0.0 {
                return Err(invalid(format!(
                    "If {name} is a single number, it must be non negative, got {v}."
                )));
            }
            let low = center - v;
            [if clip_zero { low.max(0.0) } else { low }, center + v]
        }
        Range::Two(pair) => pair,
    };
    if !(bound[0] <= r[0] && r[0] <= r[1] && r[1] <= bound[1]) {
        return Err(invalid(format!(
            "{name} values should be between {bound:?}, but got {r:?}."
        )));
    }
    Ok(r)
}

/// A `[min, max]` pair with `min <= max`, both finite (`scale`, `ratio`, ...).
pub(crate) fn check_pair(name: &str, pair: [f64; 2]) -> Result<[f64; 2]> {
    if !(pair[0].is_finite() && pair[1].is_finite() && pair[0] <= pair[1]) {
        return Err(invalid(format!(
            "{name} should be of kind (min, max) with finite min <= max, got {pair:?}"
        )));
    }
    Ok(pair)
}

/// A probability in `[0, 1]`.
pub(crate) fn check_probability(name: &str, p: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(format!(
            "{name} should be a floating point value in the interval [0, 1], got {p}"
        )));
    }
    Ok(p)
}

/// A required size, with both sides positive.
pub(crate) fn check_size(name: &str, size: Option<Size>) -> Result<[usize; 2]> {
    let hw = size
        .ok_or_else(|| invalid(format!("{name} is required")))?
        .hw();
    if hw.contains(&0) {
        return Err(invalid(format!("{name} must be positive, got {hw:?}")));
    }
    Ok(hw)
}

/// A uniform draw in `[r[0], r[1])` (as `torch.empty(1).uniform_(a, b)`).
pub(crate) fn uniform(rng: &mut SeededRng, r: [f64; 2]) -> f64 {
    r[0] + (r[1] - r[0]) * rng.unit_f64()
}

/// Python's `int(round(x))` (half to even) for non-negative `x`.
pub(crate) fn round_half_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Reports a construction error at the component's JSON path.
pub(crate) fn at_path<T>(path: &str, built: Result<T>) -> Result<T> {
    built.map_err(|e| match e {
        Error::InvalidHyperparameter(message) => Error::config(display_path(path), message),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_torchvision_check_input() {
        let b = check_range(
            "brightness",
            Range::One(0.4),
            1.0,
            [0.0, f64::INFINITY],
            true,
        );
        assert_eq!(b.unwrap(), [0.6, 1.4]);
        let clipped = check_range("contrast", Range::One(2.0), 1.0, [0.0, f64::INFINITY], true);
        assert_eq!(clipped.unwrap(), [0.0, 3.0]);
        let err = check_range("hue", Range::Two([-0.6, 0.1]), 0.0, [-0.5, 0.5], false);
        assert_eq!(
            err.unwrap_err().to_string(),
            "hue values should be between [-0.5, 0.5], but got [-0.6, 0.1]."
        );
        assert!(check_range(
            "degrees",
            Range::One(-1.0),
            0.0,
            [f64::MIN, f64::MAX],
            false
        )
        .is_err());
    }

    #[test]
    fn sizes_and_ranges_parse_from_numbers_or_pairs() {
        let s: Size = serde_json::from_value(serde_json::json!(32)).unwrap();
        assert_eq!(s.hw(), [32, 32]);
        let s: Size = serde_json::from_value(serde_json::json!([24, 32])).unwrap();
        assert_eq!(s.hw(), [24, 32]);
        let err = serde_json::from_value::<Range>(serde_json::json!("x")).unwrap_err();
        assert!(
            err.to_string().contains("a number or a [min, max] pair"),
            "{err}"
        );
        assert!(check_size("size", None).is_err());
        assert!(check_size("size", Some(Size::Two([0, 3]))).is_err());
    }
}
