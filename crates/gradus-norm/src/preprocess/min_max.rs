//! Min-max scaling of each feature to a range.

use candle_core::Tensor;
use gradus_core::plugin::preprocessor::Preprocessor;
use gradus_core::{Error, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::features::{like, load, not_fitted, Features};

/// `y = x * scale + min_`, per feature, with
/// `scale = (range_max - range_min) / (data_max - data_min)` and `min_ = range_min - data_min * scale`
/// from the training split, so the training data spans `feature_range`; `inverse`:
/// `x = (y - min_) / scale`. As `sklearn.preprocessing.MinMaxScaler`, including its constant
/// features: a data range below `10 * eps` counts as 1, so a constant feature maps to
/// `range_min` (no division by zero). With `clip`, outputs are clamped to `feature_range`
/// (then `inverse` can no longer restore out-of-range values).
///
/// State: `data_min`, `data_max` (f64, the feature shape).
#[derive(Debug, Clone)]
pub struct MinMax {
    config: MinMaxConfig,
    data_min: Option<Tensor>,
    data_max: Option<Tensor>,
    /// `(scale, min_)`, derived from the data range on fit / load.
    affine: Option<(Tensor, Tensor)>,
}

/// Config of [`MinMax`] (sklearn's keyword names).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MinMaxConfig {
    /// Target range `[min, max]`, `min < max`. Default: `[0.0, 1.0]` (sklearn MinMaxScaler).
    pub feature_range: (f64, f64),
    /// Clamp transformed values to `feature_range`. Default: `false` (sklearn MinMaxScaler).
    pub clip: bool,
}

impl Default for MinMaxConfig {
    fn default() -> Self {
        MinMaxConfig {
            feature_range: (0.0, 1.0),
            clip: false,
        }
    }
}

impl MinMax {
    /// An unfitted min-max scaler; `feature_range` must be finite with `min < max`.
    pub fn new(config: MinMaxConfig) -> Result<Self> {
        let (lo, hi) = config.feature_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(Error::InvalidHyperparameter(format!(
                "Minimum of desired feature range must be smaller than maximum. Got ({lo}, {hi})."
            )));
        }
        Ok(MinMax {
            config,
            data_min: None,
            data_max: None,
            affine: None,
        })
    }

    fn set(&mut self, data_min: Tensor, data_max: Tensor) -> Result<()> {
        let (lo, hi) = self.config.feature_range;
        let lows = data_min.flatten_all()?.to_vec1::<f64>()?;
        let highs = data_max.flatten_all()?.to_vec1::<f64>()?;
        let scale: Vec<f64> = lows
            .iter()
            .zip(&highs)
            .map(|(l, h)| {
                let range = h - l;
                (hi - lo)
                    / if range < 10.0 * f64::EPSILON {
                        1.0
                    } else {
                        range
                    }
            })
            .collect();
        let offset: Vec<f64> = lows.iter().zip(&scale).map(|(l, s)| lo - l * s).collect();
        let shape = data_min.dims().to_vec();
        let device = data_min.device().clone();
        self.affine = Some((
            Tensor::from_vec(scale, shape.as_slice(), &device)?,
            Tensor::from_vec(offset, shape.as_slice(), &device)?,
        ));
        (self.data_min, self.data_max) = (Some(data_min), Some(data_max));
        Ok(())
    }

    fn fitted(&self) -> Result<(&Tensor, &Tensor)> {
        self.affine
            .as_ref()
            .map(|(scale, offset)| (scale, offset))
            .ok_or_else(|| not_fitted("min_max"))
    }
}

impl Preprocessor for MinMax {
    fn fit(&mut self, train: &Tensor) -> Result<()> {
        let features = Features::read(train, "min_max")?;
        let lows = features.per_feature(|v| v.iter().copied().fold(f64::INFINITY, f64::min));
        let highs = features.per_feature(|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        self.set(features.tensor(lows)?, features.tensor(highs)?)
    }

    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let (scale, offset) = self.fitted()?;
        let y = x
            .broadcast_mul(&like(scale, x, "min_max")?)?
            .broadcast_add(&like(offset, x, "min_max")?)?;
        let (lo, hi) = self.config.feature_range;
        Ok(if self.config.clip {
            y.clamp(lo, hi)?
        } else {
            y
        })
    }

    fn inverse(&self, x: &Tensor) -> Result<Tensor> {
        let (scale, offset) = self.fitted()?;
        Ok(x.broadcast_sub(&like(offset, x, "min_max")?)?
            .broadcast_div(&like(scale, x, "min_max")?)?)
    }

    fn state(&self) -> StateDict {
        let mut sd = StateDict::new();
        if let (Some(lo), Some(hi)) = (&self.data_min, &self.data_max) {
            sd.insert("data_min", lo.clone());
            sd.insert("data_max", hi.clone());
        }
        sd
    }

    fn load_state(&mut self, state: &StateDict) -> Result<()> {
        let mut loaded = load(state, &["data_min", "data_max"], "min_max")?.into_iter();
        match (loaded.next(), loaded.next()) {
            (Some(lo), Some(hi)) => self.set(lo, hi),
            _ => Err(Error::StateMismatch(
                "min_max: incomplete saved state".into(),
            )),
        }
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Preprocessor>> {
    Ok(Box::new(MinMax::new(gradus_core::config::parse_config(
        config, path,
    )?)?))
}

gradus_core::register_preprocessor!(
    "min_max",
    "per-feature scaling of the training range to feature_range (sklearn MinMaxScaler)",
    MinMaxConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn maps_the_training_range_and_constant_features() {
        let dev = Device::Cpu;
        let train = Tensor::new(&[[1.0f64, 7.0], [3.0, 7.0], [5.0, 7.0]], &dev).unwrap();
        let mut m = MinMax::new(MinMaxConfig {
            feature_range: (-1.0, 1.0),
            clip: false,
        })
        .unwrap();
        m.fit(&train).unwrap();
        let y = m.transform(&train).unwrap().to_vec2::<f64>().unwrap();
        assert_eq!(y, [[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]);
        assert_eq!(
            m.inverse(&m.transform(&train).unwrap())
                .unwrap()
                .to_vec2::<f64>()
                .unwrap(),
            train.to_vec2::<f64>().unwrap()
        );
        let mut clipped = MinMax::new(MinMaxConfig {
            clip: true,
            ..Default::default()
        })
        .unwrap();
        clipped.load_state(&m.state()).unwrap();
        let far = Tensor::new(&[[100.0f64, 7.0]], &dev).unwrap();
        assert_eq!(
            clipped.transform(&far).unwrap().to_vec2::<f64>().unwrap(),
            [[1.0, 0.0]]
        );
    }

    #[test]
    fn bad_range_and_unfitted_use_are_errors() {
        let err = MinMax::new(MinMaxConfig {
            feature_range: (1.0, 0.0),
            clip: false,
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("must be smaller than maximum"),
            "{err}"
        );
        let m = MinMax::new(MinMaxConfig::default()).unwrap();
        let x = Tensor::new(&[[1.0f64]], &Device::Cpu).unwrap();
        assert!(m
            .transform(&x)
            .unwrap_err()
            .to_string()
            .contains("not fitted"));
    }
}
