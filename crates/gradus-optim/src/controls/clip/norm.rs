//! The order of a vector norm, as `torch.nn.utils.clip_grad_norm_` takes it.

use candle_core::{DType, Tensor};
use gradus_core::Result;
use serde::{Deserialize, Serialize};

/// The order `p` of a vector norm: any `p > 0`, or infinity (the largest magnitude).
///
/// In JSON: a number, or the string `"inf"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NormRepr", into = "NormRepr")]
pub enum NormType {
    /// `(Σ|g|^p)^(1/p)`, `p > 0`.
    P(f64),
    /// `max|g|`.
    Inf,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NormRepr {
    Number(f64),
    Text(String),
}

impl TryFrom<NormRepr> for NormType {
    type Error = String;
    fn try_from(repr: NormRepr) -> std::result::Result<Self, String> {
        match repr {
            NormRepr::Number(p) if p == f64::INFINITY => Ok(NormType::Inf),
            NormRepr::Number(p) if p > 0.0 && p.is_finite() => Ok(NormType::P(p)),
            NormRepr::Text(t) if t == "inf" => Ok(NormType::Inf),
            NormRepr::Number(p) => Err(format!("norm_type must be > 0 or \"inf\", got {p}")),
            NormRepr::Text(t) => Err(format!(
                "norm_type must be a number or \"inf\", got \"{t}\""
            )),
        }
    }
}

impl From<NormType> for NormRepr {
    fn from(norm: NormType) -> Self {
        match norm {
            NormType::P(p) => NormRepr::Number(p),
            NormType::Inf => NormRepr::Text("inf".into()),
        }
    }
}

/// The schema of what the parser accepts (`NormRepr`): a number `> 0`, or `"inf"`.
impl schemars::JsonSchema for NormType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NormType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The order p of the norm: a number > 0, or \"inf\" (the largest magnitude).",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"const": "inf"}
            ]
        })
    }
}

impl std::fmt::Display for NormType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NormType::P(p) => write!(f, "{p}"),
            NormType::Inf => f.write_str("inf"),
        }
    }
}

impl NormType {
    /// The norm of one tensor, accumulated in f64 (f32 on Metal, which has no f64).
    pub fn of(&self, t: &Tensor) -> Result<f64> {
        if t.elem_count() == 0 {
            return Ok(0.0);
        }
        let acc = if t.device().is_metal() {
            DType::F32
        } else {
            DType::F64
        };
        let abs = t.flatten_all()?.to_dtype(acc)?.abs()?;
        let scalar = |x: Tensor| -> Result<f64> { Ok(x.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        Ok(match *self {
            NormType::Inf => scalar(abs.max(0)?)?,
            NormType::P(1.0) => scalar(abs.sum_all()?)?,
            NormType::P(2.0) => scalar(abs.sqr()?.sum_all()?)?.sqrt(),
            NormType::P(p) => scalar(abs.powf(p)?.sum_all()?)?.powf(1.0 / p),
        })
    }

    /// The norm of a vector of norms (the second stage of PyTorch's `_get_total_norm`).
    pub fn of_values(&self, values: &[f64]) -> f64 {
        match *self {
            // NaN-propagating maximum, as torch's.
            NormType::Inf => values.iter().fold(0.0, |m: f64, &v| {
                if v.is_nan() || m.is_nan() {
                    f64::NAN
                } else {
                    m.max(v)
                }
            }),
            NormType::P(1.0) => values.iter().sum(),
            NormType::P(2.0) => values.iter().map(|v| v * v).sum::<f64>().sqrt(),
            NormType::P(p) => values.iter().map(|v| v.powf(p)).sum::<f64>().powf(1.0 / p),
        }
    }
}
