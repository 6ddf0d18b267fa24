//! `drop_path`: stochastic depth, dropping whole samples of a residual branch.

use std::sync::Mutex;

use candle_core::Tensor;
use gradus_core::plugin::layer::{Layer, LayerContext};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer_util::{at_field, check_p, impl_module_t, Shaped, Stochastic};
use crate::mask::{apply, KeepMask, MaskMap};

/// Stochastic depth (Huang et al. 2016), as `torchvision.ops.StochasticDepth` / timm's
/// `DropPath`.
///
/// Put on a residual branch (`x + drop_path(f(x))`): in training, mode `row` keeps each
/// sample's branch output with probability `1 - p`, mode `batch` the whole batch's:
///
/// ```text
/// y[n, ...] = m[n] * x[n, ...] / (1 - p),    m[n] ~ Bernoulli(1 - p)     (row)
/// ```
///
/// and evaluation is the identity. Symbols: `p` = `p`, `mode` = `mode`. Default `p = 0.0`
/// (timm.layers.DropPath; torchvision requires it), `mode = "row"` (torchvision).
#[derive(Debug)]
pub struct DropPath {
    p: f64,
    mode: DropPathMode,
    rng: Mutex<SeededRng>,
}

/// Which units stochastic depth drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropPathMode {
    /// Each sample independently.
    Row,
    /// The whole batch at once.
    Batch,
}

/// Configuration of [`DropPath`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DropPathConfig {
    /// Probability of dropping the branch, in `[0, 1)`. Default: `0.0` (timm.layers.DropPath).
    pub p: f64,
    /// `"row"` (per sample) or `"batch"`. Default: `"row"` (torchvision.ops.StochasticDepth).
    pub mode: DropPathMode,
}

impl Default for DropPathConfig {
    fn default() -> Self {
        DropPathConfig {
            p: 0.0,
            mode: DropPathMode::Row,
        }
    }
}

impl DropPath {
    /// Stochastic depth with probability `p`; `seed` seeds the generator used through `ModuleT`.
    pub fn new(p: f64, mode: DropPathMode, seed: u64) -> Result<Self> {
        check_p(p)?;
        Ok(DropPath {
            p,
            mode,
            rng: Mutex::new(SeededRng::new(seed)),
        })
    }

    /// The output for a batch `x` of shape `(N, ...)`.
    pub fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        if !train || self.p == 0.0 || x.elem_count() == 0 {
            return Ok(x.clone());
        }
        let n = x.dims().first().copied().unwrap_or(1).max(1);
        let units = match self.mode {
            DropPathMode::Row => n,
            DropPathMode::Batch => 1,
        };
        let mask = KeepMask::draw(units, self.p, rng);
        apply(
            x,
            mask,
            x.elem_count() / units,
            MaskMap::scale(1.0 / (1.0 - self.p)),
        )
    }
}

impl Stochastic for DropPath {
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        DropPath::forward_with(self, x, train, rng)
    }
}

impl_module_t!(DropPath);

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: DropPathConfig = gradus_core::config::parse_config(config, path)?;
    let module = DropPath::new(config.p, config.mode, 0).map_err(|e| at_field(e, path, "p"))?;
    Ok(Box::new(Shaped {
        module,
        output_shape: ctx.input_shape.clone(),
    }))
}

gradus_core::register_layer!(
    "drop_path",
    "stochastic depth: drop whole samples of a residual branch (torchvision StochasticDepth)",
    DropPathConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{f32s, tiled};
    use proptest::prelude::*;

    #[test]
    fn batch_mode_drops_all_or_nothing() {
        let x = tiled(&[1.0, 2.0, 3.0], 8, &[3]);
        let layer = DropPath::new(0.5, DropPathMode::Batch, 0).unwrap();
        for seed in 0..20 {
            let y = f32s(
                &layer
                    .forward_with(&x, true, &mut SeededRng::new(seed))
                    .unwrap(),
            );
            let zeros = y.iter().filter(|v| **v == 0.0).count();
            assert!(zeros == 0 || zeros == y.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whole samples are dropped; dropped fraction ~ p; mean ~ input; eval identity.
        #[test]
        fn drops_whole_samples(seed in any::<u64>(), p in 0.0f64..0.9) {
            let per = 6;
            let draws = 1000;
            let mut rng = SeededRng::new(seed);
            let x: Vec<f32> = (0..per).map(|_| 0.5 + rng.unit_f64() as f32).collect();
            let big = tiled(&x, draws, &[2, 3]);
            let layer = DropPath::new(p, DropPathMode::Row, 0).unwrap();
            let y = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            let values = f32s(&y);
            let mut dropped = 0usize;
            for sample in values.chunks(per) {
                let zeros = sample.iter().filter(|v| **v == 0.0).count();
                prop_assert!(zeros == 0 || zeros == per);
                dropped += usize::from(zeros == per);
            }
            let frac = dropped as f64 / draws as f64;
            prop_assert!((frac - p).abs() <= 6.0 * (p * (1.0 - p) / draws as f64).sqrt() + 1e-9);
            crate::testing::assert_unbiased(&y, &x, draws, p / (1.0 - p));
            let again = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(f32s(&again), values);
            prop_assert_eq!(f32s(&layer.forward_with(&big, false, &mut rng).unwrap()), f32s(&big));
        }
    }
}
