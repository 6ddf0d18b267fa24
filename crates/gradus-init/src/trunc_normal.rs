//! Truncated normal initializer (`torch.nn.init.trunc_normal_`).

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{finite, is_empty};
use crate::special::{normal_cdf, normal_quantile};

/// Draws each entry from `N(mean, std^2)` conditioned on `[a, b]` (absolute bounds, not in
/// units of `std`), by the inverse-CDF method of PyTorch:
/// `alpha = (a - mean) / std`, `beta = (b - mean) / std`,
/// `p ~ U(Phi(alpha), Phi(beta))`, `w = clamp(mean + std * Phi^-1(p), a, b)`.
///
/// Where the window lies wholly above the mean the draw is made in the mirrored window
/// `[-beta, -alpha]` and negated, so both CDF values sit in the lower tail where they are
/// accurate (PyTorch evaluates `erf` near 1 there and loses digits). A window more than about
/// 37 standard deviations from the mean has CDF values that underflow and degenerates to its
/// nearest bound. Like PyTorch, a mean more than 2 std outside `[a, b]` logs a warning.
#[derive(Debug, Clone, Copy)]
pub struct TruncNormal {
    mean: f64,
    std: f64,
    a: f64,
    b: f64,
}

/// Config of [`TruncNormal`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TruncNormalConfig {
    /// Mean of the underlying normal. Default: `0.0` (torch.nn.init.trunc_normal_).
    pub mean: f64,
    /// Standard deviation of the underlying normal, `> 0`. Default: `1.0`
    /// (torch.nn.init.trunc_normal_).
    pub std: f64,
    /// Lower cut-off (absolute). Default: `-2.0` (torch.nn.init.trunc_normal_).
    pub a: f64,
    /// Upper cut-off (absolute). Default: `2.0` (torch.nn.init.trunc_normal_).
    pub b: f64,
}

impl Default for TruncNormalConfig {
    fn default() -> Self {
        TruncNormalConfig {
            mean: 0.0,
            std: 1.0,
            a: -2.0,
            b: 2.0,
        }
    }
}

impl TruncNormal {
    /// A truncated normal; all fields finite, `std > 0`, `a < b`.
    pub fn new(config: TruncNormalConfig) -> Result<Self> {
        let what = "trunc_normal";
        let mean = finite(what, "mean", config.mean)?;
        let std = finite(what, "std", config.std)?;
        let (a, b) = (finite(what, "a", config.a)?, finite(what, "b", config.b)?);
        if std <= 0.0 {
            return Err(Error::InvalidHyperparameter(format!(
                "trunc_normal: `std` must be > 0, got {std}"
            )));
        }
        if a >= b {
            return Err(Error::InvalidHyperparameter(format!(
                "trunc_normal: the cut-offs need a < b, got a={a}, b={b}"
            )));
        }
        if mean < a - 2.0 * std || mean > b + 2.0 * std {
            log::warn!(
                "mean is more than 2 std from [a, b] in trunc_normal. The distribution of values \
                 may be incorrect."
            );
        }
        Ok(TruncNormal { mean, std, a, b })
    }

    /// One draw from the seeded generator.
    fn sample(&self, rng: &mut SeededRng) -> f64 {
        let alpha = (self.a - self.mean) / self.std;
        let beta = (self.b - self.mean) / self.std;
        let (lo, hi, sign) = if alpha > 0.0 {
            (-beta, -alpha, -1.0)
        } else {
            (alpha, beta, 1.0)
        };
        let (l, u) = (normal_cdf(lo), normal_cdf(hi));
        let z = sign * normal_quantile(l + (u - l) * rng.unit_f64());
        (self.mean + self.std * z).clamp(self.a, self.b)
    }
}

impl Initializer for TruncNormal {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        let n = if is_empty(shape) {
            0
        } else {
            shape.iter().product()
        };
        let values: Vec<f64> = (0..n).map(|_| self.sample(rng)).collect();
        Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(TruncNormal::new(
        gradus_core::config::parse_config(config, path)?,
    )?))
}

gradus_core::register_initializer!(
    "trunc_normal",
    "N(mean, std^2) truncated to [a, b] (torch.nn.init.trunc_normal_)",
    TruncNormalConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{draw, mean_var};
    use proptest::prelude::*;
    use std::f64::consts::PI;

    fn pdf(x: f64) -> f64 {
        (-x * x / 2.0).exp() / (2.0 * PI).sqrt()
    }

    /// Mean and variance of the truncated normal (standard closed form).
    fn moments(c: &TruncNormalConfig) -> (f64, f64) {
        let (al, be) = ((c.a - c.mean) / c.std, (c.b - c.mean) / c.std);
        let z = normal_cdf(be) - normal_cdf(al);
        let m = (pdf(al) - pdf(be)) / z;
        let v = 1.0 + (al * pdf(al) - be * pdf(be)) / z - m * m;
        (c.mean + c.std * m, c.std * c.std * v)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn samples_lie_in_the_window_with_the_right_moments(
            seed in any::<u64>(), mean in -2.0f64..2.0, std in 0.1f64..3.0,
            lo in -4.0f64..3.0, width in 0.2f64..4.0,
        ) {
            let cfg = TruncNormalConfig { mean, std, a: mean + lo * std, b: mean + (lo + width) * std };
            let init = TruncNormal::new(cfg.clone()).unwrap();
            let values = draw(&init, &[4000], seed);
            prop_assert!(values.iter().all(|v| *v >= cfg.a && *v <= cfg.b));
            let (m, v) = mean_var(&values);
            let (em, ev) = moments(&cfg);
            // 6 standard errors; kurtosis <= 9 (the exponential limit of a one-sided tail cut).
            let se = ev.sqrt() / (4000f64).sqrt();
            prop_assert!((m - em).abs() <= 6.0 * se + 1e-12, "mean {} vs {}", m, em);
            prop_assert!((v - ev).abs() <= 6.0 * ev * (8.0 / 4000f64).sqrt() + 1e-12, "var {} vs {}", v, ev);
        }
    }

    #[test]
    fn far_tail_window_is_sampled_accurately() {
        // Entirely above the mean by 6-7 std: the mirrored draw keeps every value in range.
        let cfg = TruncNormalConfig {
            mean: 0.0,
            std: 1.0,
            a: 6.0,
            b: 7.0,
        };
        let values = draw(&TruncNormal::new(cfg.clone()).unwrap(), &[2000], 3);
        let (m, _) = mean_var(&values);
        let (em, _) = moments(&cfg);
        assert!(values.iter().all(|v| (6.0..=7.0).contains(v)));
        assert!((m - em).abs() < 0.02, "{m} vs {em}");
    }

    #[test]
    fn invalid_configs_are_errors() {
        let bad = |c: TruncNormalConfig| TruncNormal::new(c).unwrap_err().to_string();
        let d = TruncNormalConfig::default();
        assert!(bad(TruncNormalConfig {
            std: 0.0,
            ..d.clone()
        })
        .contains("> 0"));
        assert!(bad(TruncNormalConfig {
            a: 1.0,
            b: 1.0,
            ..d
        })
        .contains("a < b"));
    }
}
