//! `dropout`: element-wise inverted dropout.

use std::sync::Mutex;

use candle_core::Tensor;
use gradus_core::plugin::layer::{Layer, LayerContext};
use gradus_core::{Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layer_util::{at_field, check_p, impl_module_t, Shaped, Stochastic};
use crate::mask::{apply, KeepMask, MaskMap};

/// Element-wise dropout (Srivastava et al. 2014), inverted as `torch.nn.Dropout`.
///
/// In training, each element is kept with probability `1 - p` and scaled:
///
/// ```text
/// y_i = m_i * x_i / (1 - p),    m_i ~ Bernoulli(1 - p)
/// ```
///
/// so `E[y] = x`; in evaluation `y = x` exactly (the input is returned). Symbols: `p` = `p`.
/// Default `p = 0.5` (torch.nn.Dropout). `p = 0` returns the input without drawing.
/// The mask is a bitset drawn from the seeded generator: the registered layer draws from the
/// model's stream ([`ForwardContext::rng`](gradus_core::plugin::layer::ForwardContext)), the
/// plain module ([`candle_core::ModuleT`]) from its own generator seeded at construction.
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    rng: Mutex<SeededRng>,
}

/// Configuration of [`Dropout`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DropoutConfig {
    /// Probability of zeroing an element, in `[0, 1)`. Default: `0.5` (torch.nn.Dropout).
    pub p: f64,
}

impl Default for DropoutConfig {
    fn default() -> Self {
        DropoutConfig { p: 0.5 }
    }
}

impl Dropout {
    /// Dropout with probability `p`; `seed` seeds the generator used through `ModuleT`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        check_p(p)?;
        Ok(Dropout {
            p,
            rng: Mutex::new(SeededRng::new(seed)),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The output for `x`, drawing the mask from `rng` when `train` is true.
    pub fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mask = KeepMask::draw(x.elem_count(), self.p, rng);
        apply(x, mask, 1, MaskMap::scale(1.0 / (1.0 - self.p)))
    }
}

impl Stochastic for Dropout {
    fn forward_with(&self, x: &Tensor, train: bool, rng: &mut SeededRng) -> Result<Tensor> {
        Dropout::forward_with(self, x, train, rng)
    }
}

impl_module_t!(Dropout);

fn build(config: &Value, path: &str, ctx: &mut LayerContext) -> Result<Box<dyn Layer>> {
    let config: DropoutConfig = gradus_core::config::parse_config(config, path)?;
    let module = Dropout::new(config.p, 0).map_err(|e| at_field(e, path, "p"))?;
    Ok(Box::new(Shaped {
        module,
        output_shape: ctx.input_shape.clone(),
    }))
}

gradus_core::register_layer!(
    "dropout",
    "element-wise inverted dropout (torch.nn.Dropout)",
    DropoutConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{f32s, tiled};
    use candle_core::{DType, Device, ModuleT};
    use proptest::prelude::*;

    #[test]
    fn p_outside_unit_interval_is_an_error() {
        for p in [-0.1, 1.0, 1.5, f64::NAN] {
            let err = Dropout::new(p, 0).unwrap_err();
            assert!(err.to_string().contains("dropout probability"), "{err}");
        }
    }

    #[test]
    fn module_t_uses_its_own_seeded_generator() {
        let x = Tensor::ones((4, 50), DType::F32, &Device::Cpu).unwrap();
        let a = Dropout::new(0.3, 9).unwrap().forward_t(&x, true).unwrap();
        let b = Dropout::new(0.3, 9).unwrap().forward_t(&x, true).unwrap();
        assert_eq!(f32s(&a), f32s(&b));
        let y = Dropout::new(0.3, 9).unwrap().forward_t(&x, false).unwrap();
        assert_eq!(f32s(&y), f32s(&x));
    }

    #[test]
    fn half_precision_goes_through_the_portable_path() {
        let x = Tensor::ones((10, 100), DType::BF16, &Device::Cpu).unwrap();
        let layer = Dropout::new(0.25, 0).unwrap();
        let y = layer
            .forward_with(&x, true, &mut SeededRng::new(4))
            .unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let v = y.to_dtype(DType::F32).unwrap();
        let v = f32s(&v);
        let zeros = v.iter().filter(|t| **t == 0.0).count();
        assert!((200..=300).contains(&zeros), "{zeros}");
        assert!(v.iter().all(|t| *t == 0.0 || (*t - 4.0 / 3.0).abs() < 1e-2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Evaluation mode is the identity, bit for bit.
        #[test]
        fn eval_is_identity(seed in any::<u64>(), p in 0.0f64..0.99, n in 1usize..64) {
            let mut rng = SeededRng::new(seed);
            let x = rng.normal_tensor(&[2, n], 0.0, 3.0, DType::F32, &Device::Cpu).unwrap();
            let y = Dropout::new(p, 0).unwrap().forward_with(&x, false, &mut rng).unwrap();
            prop_assert_eq!(f32s(&y), f32s(&x));
        }

        /// Over many draws the mean is the input and the dropped fraction is p; same seed,
        /// same mask.
        #[test]
        fn unbiased_with_dropped_fraction_p(seed in any::<u64>(), p in 0.0f64..0.9) {
            let n = 32;
            let draws = 400;
            let mut rng = SeededRng::new(seed);
            let x: Vec<f32> = (0..n).map(|_| 0.5 + rng.unit_f64() as f32).collect();
            let big = tiled(&x, draws, &[n]);
            let layer = Dropout::new(p, 0).unwrap();
            let y = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            crate::testing::assert_unbiased(&y, &x, draws, p / (1.0 - p));
            let zeros = f32s(&y).iter().filter(|v| **v == 0.0).count() as f64;
            let total = (n * draws) as f64;
            let tol = 6.0 * (p * (1.0 - p) / total).sqrt() + 1e-9;
            prop_assert!((zeros / total - p).abs() <= tol, "dropped {} vs p {}", zeros / total, p);
            let again = layer.forward_with(&big, true, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(f32s(&again), f32s(&y));
        }
    }
}
