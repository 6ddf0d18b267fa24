//! Zero-centering: subtract the per-feature training mean.

use candle_core::Tensor;
use gradus_core::plugin::preprocessor::Preprocessor;
use gradus_core::{Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::features::{fitted, like, load, mean, Features};

/// `y = x - mean`, `mean` the per-feature mean of the training split (every dimension after the
/// batch dimension is a feature: an image gets a per-pixel mean). `inverse`: `x = y + mean`.
/// As `sklearn.preprocessing.StandardScaler(with_std=False)`; state: `mean`.
#[derive(Debug, Clone, Default)]
pub struct Center {
    mean: Option<Tensor>,
}

/// Config of [`Center`]: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CenterConfig {}

impl Center {
    /// An unfitted centering.
    pub fn new() -> Self {
        Center::default()
    }
}

impl Preprocessor for Center {
    fn fit(&mut self, train: &Tensor) -> Result<()> {
        let features = Features::read(train, "center")?;
        self.mean = Some(features.tensor(features.per_feature(mean))?);
        Ok(())
    }

    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_sub(&like(fitted(&self.mean, "center")?, x, "center")?)?)
    }

    fn inverse(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_add(&like(fitted(&self.mean, "center")?, x, "center")?)?)
    }

    fn state(&self) -> StateDict {
        let mut sd = StateDict::new();
        if let Some(mean) = &self.mean {
            sd.insert("mean", mean.clone());
        }
        sd
    }

    fn load_state(&mut self, state: &StateDict) -> Result<()> {
        let mut loaded = load(state, &["mean"], "center")?;
        self.mean = loaded.pop();
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Preprocessor>> {
    let _: CenterConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(Center::new()))
}

gradus_core::register_preprocessor!(
    "center",
    "subtract the per-feature training mean",
    CenterConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn centers_on_the_training_mean_only() {
        let dev = Device::Cpu;
        let mut c = Center::new();
        let x = Tensor::new(&[[0.0f32, 10.0]], &dev).unwrap();
        assert!(c
            .transform(&x)
            .unwrap_err()
            .to_string()
            .contains("not fitted"));
        c.fit(&Tensor::new(&[[1.0f32, 2.0], [3.0, 6.0]], &dev).unwrap())
            .unwrap();
        assert_eq!(
            c.transform(&x).unwrap().to_vec2::<f32>().unwrap(),
            [[-2.0, 6.0]]
        );
        let bad = Tensor::new(&[[1.0f32, 2.0, 3.0]], &dev).unwrap();
        let err = c.transform(&bad).unwrap_err().to_string();
        assert!(err.contains("expected [1, 2], got [1, 3]"), "{err}");
        let mut back = Center::new();
        back.load_state(&c.state()).unwrap();
        assert_eq!(
            back.inverse(&x).unwrap().to_vec2::<f32>().unwrap(),
            [[2.0, 14.0]]
        );
        assert!(Center::new()
            .fit(&Tensor::new(&[[f32::NAN]], &dev).unwrap())
            .is_err());
    }
}
