//! `dropout2d`: channel-wise inverted dropout for `(N, C, H, W)` and `(N, C, L)` inputs.

use std::sync::Mutex;

use candle_core::Tensor;
use gradus_core::plugin::layer::{Layer, LayerContext};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer_util::{at_field, check_p, impl_module_t, Shaped, Stochastic};
use crate::mask::{apply, KeepMask, MaskMap};

/// Channel dropout (Tompson et al. 2015), as `torch.nn.Dropout2d` (and `Dropout1d` for
/// `(N, C, L)` inputs).
///
/// In training each channel `(n, c)` is kept whole with probability `1 - p`:
///
/// ```text
/// y[n, c, ...] = m[n, c] * x[n, c, ...] / (1 - p),    m[n, c] ~ Bernoulli(1 - p)
/// ```
///
/// and evaluation is the identity. Neighbouring activations of a feature map are strongly
/// correlated, so element-wise dropout barely regularizes convolutions; dropping whole maps
/// does. Symbols: `p` = `p`. Default `p = 0.5` (torch.nn.Dropout2d). One mask bit per channel.
#[derive(Debug)]
pub struct Dropout2d {
    p: f64,
    rng: Mutex<SeededRng>,
}

/// Configuration of [`Dropout2d`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Dropout2dConfig {
    /// Probability of zeroing a channel, in `[0, 1)`. Default: `0.5` (torch.nn.Dropout2d).
    pub p: f64,
}

impl Default for Dropout2dConfig {
    fn default() -> Self {
        Dropout2dConfig { p: 0.5 }
    }
}

impl Dropout2d {
    /// Channel dropout with probability `p`; `seed` seeds the generator used through `ModuleT`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        check_p(p)?;
        Ok(Dropout2d {
            p,
            rng: Mutex::new(SeededRng::new(seed)),
        })
    }

    /// The output for `x` of shape `(N, C, H, W)` or `(N, C, L)`.
    pub fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        let dims = x.dims();
        if !(3..=4).contains(&dims.len()) {
            return Err(Error::Unsupported(format!(
                "dropout2d expects an (N, C, H, W) or (N, C, L) input, got shape {dims:?}"
            )));
        }
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let channels = dims[0] * dims[1];
        let group = dims[2..].iter().product();
        let mask = KeepMask::draw(channels, self.p, rng);
        apply(x, mask, group, MaskMap::scale(1.0 / (1.0 - self.p)))
    }
}

impl Stochastic for Dropout2d {
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        Dropout2d::forward_with(self, x, train, rng)
    }
}

impl_module_t!(Dropout2d);

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: Dropout2dConfig = gradus_core::config::parse_config(config, path)?;
    let module = Dropout2d::new(config.p, 0).map_err(|e| at_field(e, path, "p"))?;
    if !(2..=3).contains(&ctx.input_shape.len()) {
        return Err(Error::config(
            path,
            format!(
                "dropout2d needs (C, H, W) or (C, L) samples, got {:?}",
                ctx.input_shape
            ),
        ));
    }
    Ok(Box::new(Shaped {
        module,
        output_shape: ctx.input_shape.clone(),
    }))
}

gradus_core::register_layer!(
    "dropout2d",
    "channel-wise inverted dropout for (N,C,H,W) / (N,C,L) (torch.nn.Dropout2d)",
    Dropout2dConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{f32s, tiled};
    use candle_core::{DType, Device};
    use proptest::prelude::*;

    #[test]
    fn rejects_flat_inputs() {
        let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
        let err = Dropout2d::new(0.5, 0)
            .unwrap()
            .forward_with(&x, true, &mut SeededRng::new(0));
        assert!(err.unwrap_err().to_string().contains("(N, C, H, W)"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Channels are dropped whole; dropped fraction ~ p; mean ~ input; eval is the
        /// identity; same seed, same mask.
        #[test]
        fn drops_whole_channels(seed in any::<u64>(), p in 0.0f64..0.9, rank4 in any::<bool>()) {
            let (c, tail): (usize, Vec<usize>) = if rank4 { (3, vec![3, 2, 2]) } else { (3, vec![3, 4]) };
            let per = tail.iter().product::<usize>();
            let draws = 600;
            let mut rng = SeededRng::new(seed);
            let x: Vec<f32> = (0..per).map(|_| 0.5 + rng.unit_f64() as f32).collect();
            let big = tiled(&x, draws, &tail);
            let layer = Dropout2d::new(p, 0).unwrap();
            let y = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            let values = f32s(&y);
            let group = per / c;
            let mut dropped = 0usize;
            for ch in values.chunks(group) {
                let zeros = ch.iter().filter(|v| **v == 0.0).count();
                prop_assert!(zeros == 0 || zeros == group, "partially dropped channel");
                dropped += usize::from(zeros == group);
            }
            let units = (draws * c) as f64;
            let frac = dropped as f64 / units;
            prop_assert!((frac - p).abs() <= 6.0 * (p * (1.0 - p) / units).sqrt() + 1e-9);
            crate::testing::assert_unbiased(&y, &x, draws, p / (1.0 - p));
            let again = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(f32s(&again), values);
            let eval = layer.forward_with(&big, false, &mut rng).unwrap();
            prop_assert_eq!(f32s(&eval), f32s(&big));
        }
    }
}
