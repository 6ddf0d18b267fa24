//! Floats that may be infinite or NaN, in JSON (whose numbers cannot be): a finite value is a
//! JSON number, a non-finite one the string `"inf"`, `"-inf"` or `"nan"`. Every f64 round-trips
//! exactly (serde_json writes finite floats in shortest round-trip form).
//!
//! Use with serde's `with` attribute: `#[serde(with = "gradus_core::json_float")]` on an `f64`
//! field, `#[serde(with = "gradus_core::json_float::option")]` on an `Option<f64>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Number(f64),
    Text(String),
}

fn to_repr(value: f64) -> Repr {
    match value {
        v if v.is_finite() => Repr::Number(v),
        v if v.is_nan() => Repr::Text("nan".into()),
        v if v > 0.0 => Repr::Text("inf".into()),
        _ => Repr::Text("-inf".into()),
    }
}

fn from_repr<E: serde::de::Error>(repr: Repr) -> Result<f64, E> {
    match repr {
        Repr::Number(v) => Ok(v),
        Repr::Text(t) => match t.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(E::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"nan\", got \"{}\"",
                crate::config::elide(other, 40)
            ))),
        },
    }
}

/// Serializes an `f64`: a number, or `"inf"` / `"-inf"` / `"nan"`.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    to_repr(*value).serialize(serializer)
}

/// Deserializes what [`serialize`] writes.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    from_repr(Repr::deserialize(deserializer)?)
}

/// The same for an `Option<f64>` (`None` is `null`).
pub mod option {
    use super::*;

    /// Serializes an `Option<f64>`: `null`, a number, or `"inf"` / `"-inf"` / `"nan"`.
    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        value.map(to_repr).serialize(serializer)
    }

    /// Deserializes what [`serialize`] writes.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        Option::<Repr>::deserialize(deserializer)?
            .map(from_repr)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::option")]
        y: Option<f64>,
    }

    #[test]
    fn every_f64_round_trips_through_json_text() {
        let values = [
            0.0,
            -0.0,
            1e300,
            -1e-310,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for x in values {
            for y in [None, Some(x)] {
                let text = serde_json::to_string(&Record { x, y }).unwrap();
                let back: Record = serde_json::from_str(&text).unwrap();
                assert!(
                    back.x.to_bits() == x.to_bits() || (x.is_nan() && back.x.is_nan()),
                    "{text}"
                );
                match (y, back.y) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(
            serde_json::to_string(&Record {
                x: f64::INFINITY,
                y: Some(f64::NAN)
            })
            .unwrap(),
            r#"{"x":"inf","y":"nan"}"#
        );
        let err = serde_json::from_str::<Record>(r#"{"x":"lots","y":null}"#).unwrap_err();
        assert!(err.to_string().contains("\"inf\""), "{err}");
    }
}
