//! `max_norm`: after each step, rescale every unit whose incoming weights have a norm above `c`.

use candle_core::{Tensor, D};
use gradus_core::plugin::regularizer::Regularizer;
use gradus_core::{Error, NamedVar, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::penalty::check_lr;
use crate::select::ParamFilter;

/// Added to the norm before dividing, as `torch.renorm`.
const RENORM_EPS: f64 = 1e-7;

/// Max-norm constraint (Srebro & Shraibman 2005; used with dropout by Srivastava et al. 2014).
///
/// After each optimizer step, for every slice `w_i = w.select(dim, i)` of a selected parameter
/// (with `dim = 0` and PyTorch's `(out, in, ...)` layout, the incoming weights of output unit `i`):
///
/// ```text
/// n_i = ||w_i||_p
/// w_i <- w_i * c / (n_i + 1e-7)     if n_i > c        (unchanged otherwise)
/// ```
///
/// exactly `torch.renorm(w, p, dim, maxnorm)`; afterwards no unit's norm exceeds `c`.
/// Symbols: `c` = `max_value`, `p` = `norm_type`, `dim` = `dim` (negative counts from the end).
/// Default `max_value` is Keras' `keras.constraints.MaxNorm(max_value=2)`; `dim = 0` is Keras'
/// `axis=0` translated to PyTorch's transposed weight layout.
#[derive(Debug)]
pub struct MaxNorm {
    config: MaxNormConfig,
    filter: ParamFilter,
    path: String,
}

/// Configuration of [`MaxNorm`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MaxNormConfig {
    /// Largest allowed norm `c` of a unit's weights. Default: `2.0` (keras.constraints.MaxNorm).
    pub max_value: f64,
    /// Order `p` of the norm (`inf` not expressible in JSON; use a large value). Default: `2.0`.
    pub norm_type: f64,
    /// Dimension indexing the units (slices renormalized independently). Default: `0`
    /// (torch.renorm with the `(out, in)` weight layout: each row).
    pub dim: i64,
    /// Name patterns of the parameters to constrain; empty = weights only. Default: `[]`.
    pub params: Vec<String>,
    /// Name patterns to leave out. Default: `[]`.
    pub exclude: Vec<String>,
}

impl Default for MaxNormConfig {
    fn default() -> Self {
        MaxNormConfig {
            max_value: 2.0,
            norm_type: 2.0,
            dim: 0,
            params: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl MaxNorm {
    /// Validates `config`; `path` names it in errors.
    pub fn new(config: MaxNormConfig, path: &str) -> Result<Self> {
        let at = |f: &str| gradus_core::config::join_path(path, f);
        if !(config.max_value.is_finite() && config.max_value > 0.0) {
            return Err(Error::config(
                at("max_value"),
                format!("max_value must be finite and > 0, got {}", config.max_value),
            ));
        }
        if config.norm_type.is_nan() || config.norm_type <= 0.0 {
            return Err(Error::config(
                at("norm_type"),
                format!("norm_type must be > 0, got {}", config.norm_type),
            ));
        }
        let filter = ParamFilter::new(config.params.clone(), config.exclude.clone());
        Ok(MaxNorm {
            config,
            filter,
            path: path.to_string(),
        })
    }

    /// `w` with every slice along `dim` renormalized to a norm of at most `max_value`.
    pub fn renorm(&self, w: &Tensor) -> Result<Tensor> {
        let rank = w.rank();
        let dim = self.config.dim;
        let d = if dim < 0 { dim + rank as i64 } else { dim };
        if rank == 0 || d < 0 || d >= rank as i64 {
            return Err(Error::config(
                gradus_core::config::join_path(&self.path, "dim"),
                format!(
                    "dim {dim} is out of range for a parameter of shape {:?}",
                    w.dims()
                ),
            ));
        }
        let d = d as usize;
        let moved = w.transpose(0, d)?.contiguous()?;
        let moved_dims = moved.dims().to_vec();
        let rows = moved.reshape((moved_dims[0], ()))?;
        let norms = row_norms(&rows, self.config.norm_type)?;
        let c = self.config.max_value;
        let scaled = norms.affine(1.0, RENORM_EPS)?.recip()?.affine(c, 0.0)?;
        let factor = norms.gt(c)?.where_cond(&scaled, &norms.ones_like()?)?;
        let out = rows
            .broadcast_mul(&factor)?
            .reshape(moved_dims)?
            .transpose(0, d)?;
        Ok(out.contiguous()?)
    }
}

fn row_norms(rows: &Tensor, p: f64) -> Result<Tensor> {
    Ok(if p == 2.0 {
        rows.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?
    } else if p == 1.0 {
        rows.abs()?.sum_keepdim(D::Minus1)?
    } else if p.is_infinite() {
        rows.abs()?.max_keepdim(D::Minus1)?
    } else {
        rows.abs()?.powf(p)?.sum_keepdim(D::Minus1)?.powf(1.0 / p)?
    })
}

impl Regularizer for MaxNorm {
    fn penalty(&self, _params: &[NamedVar]) -> Result<Option<Tensor>> {
        Ok(None)
    }

    fn after_step(&mut self, params: &[NamedVar], lr: f64) -> Result<()> {
        check_lr(lr)?;
        for p in self.filter.select(params, &self.path)? {
            let w = p.var.as_tensor().detach();
            p.var.set(&self.renorm(&w)?)?;
        }
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Regularizer>> {
    let config: MaxNormConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(MaxNorm::new(config, path)?))
}

gradus_core::register_regularizer!(
    "max_norm",
    "max-norm constraint: rescale each unit's weights to norm <= max_value after a step (torch.renorm)",
    MaxNormConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{named, values};
    use proptest::prelude::*;

    #[test]
    fn matches_torch_renorm_on_a_hand_case() {
        // Row norms 5 and 0.5: the first is scaled to 1/(5+1e-7), the second is left alone.
        let p = [named("fc.weight", &[3.0, 4.0, 0.3, 0.4], &[2, 2])];
        let config = MaxNormConfig {
            max_value: 1.0,
            ..MaxNormConfig::default()
        };
        MaxNorm::new(config, "r")
            .unwrap()
            .after_step(&p, 0.1)
            .unwrap();
        let got = values(&p[0].var);
        let s = 1.0 / (5.0 + 1e-7);
        let want = [3.0 * s, 4.0 * s, 0.3, 0.4];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?}");
        }
    }

    #[test]
    fn bad_dim_and_max_value_are_errors() {
        assert!(MaxNorm::new(
            MaxNormConfig {
                max_value: 0.0,
                ..Default::default()
            },
            "r"
        )
        .is_err());
        let p = [named("fc.weight", &[1.0, 2.0], &[1, 2])];
        let config = MaxNormConfig {
            dim: 2,
            ..MaxNormConfig::default()
        };
        let err = MaxNorm::new(config, "r")
            .unwrap()
            .after_step(&p, 0.1)
            .unwrap_err();
        assert!(err.to_string().contains("r.dim"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// After the constraint no unit's norm exceeds c, and units already inside are untouched.
        #[test]
        fn no_unit_above_c(
            rows in 1usize..6,
            cols in 1usize..6,
            seed in any::<u64>(),
            c in 0.05f64..3.0,
            dim in 0i64..2,
            p_kind in 0usize..3,
        ) {
            let mut rng = gradus_core::SeededRng::new(seed);
            let data: Vec<f64> = (0..rows * cols).map(|_| 4.0 * rng.standard_normal()).collect();
            let norm_type = [1.0, 2.0, 3.0][p_kind];
            let p = [named("fc.weight", &data, &[rows, cols])];
            let config = MaxNormConfig { max_value: c, norm_type, dim, ..MaxNormConfig::default() };
            MaxNorm::new(config, "r").unwrap().after_step(&p, 0.01).unwrap();
            let got = values(&p[0].var);
            let units = if dim == 0 { rows } else { cols };
            for u in 0..units {
                let idx = |k: usize| if dim == 0 { u * cols + k } else { k * cols + u };
                let len = if dim == 0 { cols } else { rows };
                let norm = |v: &[f64]| (0..len).map(|k| v[idx(k)].abs().powf(norm_type)).sum::<f64>().powf(1.0 / norm_type);
                let after = norm(&got);
                prop_assert!(after <= c * (1.0 + 1e-12), "unit {} norm {} > {}", u, after, c);
                if norm(&data) <= c {
                    for k in 0..len {
                        prop_assert_eq!(got[idx(k)], data[idx(k)]);
                    }
                }
            }
        }
    }
}
