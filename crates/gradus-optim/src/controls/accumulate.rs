//! Gradient accumulation over `k` micro-batches (mean or sum) before an optimizer step.

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use gradus_core::{Error, NamedVar, Result};
use serde::{Deserialize, Serialize};

/// How micro-batch gradients combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// `(g_1 + … + g_k)/k`: equals the full-batch gradient of a mean loss when the `k`
    /// micro-batches have equal sizes (PyTorch's usual `loss / k` before `backward`).
    #[default]
    Mean,
    /// `g_1 + … + g_k`: the full-batch gradient of a summed loss (PyTorch's plain repeated
    /// `backward`, which adds into `.grad`).
    Sum,
}

/// Gradient accumulation: `{"steps": 4, "reduction": "mean"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccumulateConfig {
    /// Micro-batches per optimizer step, at least 1. Default: `1` (no accumulation).
    pub steps: usize,
    /// `"mean"` or `"sum"`. Default: `"mean"`.
    pub reduction: Reduction,
}

impl Default for AccumulateConfig {
    fn default() -> Self {
        AccumulateConfig {
            steps: 1,
            reduction: Reduction::Mean,
        }
    }
}

/// Accumulates the gradients of a fixed list of parameters over `k` micro-batches.
///
/// Sums are kept in each gradient's dtype, in micro-batch order; a parameter without a
/// gradient in some micro-batch contributes zero there (and is absent from the result if it
/// never had one). With `mean` the sum is divided by `k` (not by the number of micro-batches
/// that had a gradient), as `loss / k` would do.
pub struct GradAccumulator {
    params: Vec<NamedVar>,
    steps: usize,
    reduction: Reduction,
    sums: Vec<Option<Tensor>>,
    count: usize,
}

impl GradAccumulator {
    /// An accumulator for `params` over `config.steps` micro-batches.
    pub fn new(params: Vec<NamedVar>, config: &AccumulateConfig) -> Result<Self> {
        if config.steps == 0 {
            return Err(Error::InvalidHyperparameter(
                "gradient accumulation steps must be at least 1, got 0".into(),
            ));
        }
        Ok(GradAccumulator {
            sums: vec![None; params.len()],
            params,
            steps: config.steps,
            reduction: config.reduction,
            count: 0,
        })
    }

    /// Micro-batches added since the last [`GradAccumulator::take`].
    pub fn count(&self) -> usize {
        self.count
    }

    /// True once `steps` micro-batches have been added.
    pub fn is_ready(&self) -> bool {
        self.count >= self.steps
    }

    /// Adds one micro-batch's gradients; returns whether the accumulator is now ready. Adding
    /// beyond `steps` is an error (take the result first).
    pub fn add(&mut self, grads: &GradStore) -> Result<bool> {
        if self.is_ready() {
            return Err(Error::Unsupported(format!(
                "gradient accumulation already holds {} micro-batches; take the result first",
                self.steps
            )));
        }
        // Compute every new sum first so that an error leaves the accumulator unchanged.
        let mut next = self.sums.clone();
        for (param, sum) in self.params.iter().zip(next.iter_mut()) {
            let Some(g) = grads.get(param.var.as_tensor()) else {
                continue;
            };
            if g.dims() != param.var.dims() {
                return Err(Error::ShapeMismatch {
                    context: format!("gradient of `{}`", param.name),
                    expected: param.var.dims().to_vec(),
                    actual: g.dims().to_vec(),
                });
            }
            *sum = Some(match sum.take() {
                None => g.detach().copy()?,
                Some(s) => (s + g.detach())?,
            });
        }
        self.sums = next;
        self.count += 1;
        Ok(self.is_ready())
    }

    /// The combined gradients of the micro-batches added so far (`mean` divides by `steps`),
    /// as a `GradStore` for [`Optimizer::step`](gradus_core::Optimizer::step); resets.
    pub fn take(&mut self) -> Result<GradStore> {
        let mut out = GradStore::default();
        let scale = match self.reduction {
            Reduction::Mean => 1.0 / self.steps as f64,
            Reduction::Sum => 1.0,
        };
        for (param, sum) in self.params.iter().zip(self.sums.iter_mut()) {
            if let Some(s) = sum.take() {
                let g = if scale == 1.0 {
                    s
                } else {
                    let c = Tensor::new(scale, s.device())?.to_dtype(s.dtype())?;
                    s.broadcast_mul(&c)?
                };
                out.insert(param.var.as_tensor(), g);
            }
        }
        self.count = 0;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    /// Mean squared error of a linear model `x·w + b` and its gradient store.
    fn grads_of(w: &Var, b: &Var, x: &[Vec<f64>], y: &[f64]) -> GradStore {
        let dev = Device::Cpu;
        let n = x.len();
        let xt = Tensor::new(x.concat().as_slice(), &dev)
            .unwrap()
            .reshape((n, x[0].len()))
            .unwrap();
        let yt = Tensor::new(y, &dev).unwrap().reshape((n, 1)).unwrap();
        let pred = xt
            .matmul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        let loss = (pred - yt).unwrap().sqr().unwrap().mean_all().unwrap();
        loss.backward().unwrap()
    }

    fn model(features: usize) -> (Var, Var, Vec<NamedVar>) {
        let w = Var::new(vec![0.5f64; features].as_slice(), &Device::Cpu).unwrap();
        let w = Var::from_tensor(&w.as_tensor().reshape((features, 1)).unwrap()).unwrap();
        let b = Var::new(&[0.1f64], &Device::Cpu).unwrap();
        let named = vec![NamedVar::new("w", w.clone()), NamedVar::new("b", b.clone())];
        (w, b, named)
    }

    fn values(store: &GradStore, vars: &[&Var]) -> Vec<f64> {
        vars.iter()
            .flat_map(|v| {
                store
                    .get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn mean_divides_by_k_and_missing_gradients_count_as_zero() {
        let a = Var::new(&[1f64, 2.0], &Device::Cpu).unwrap();
        let b = Var::new(&[1f64], &Device::Cpu).unwrap();
        let params = vec![NamedVar::new("a", a.clone()), NamedVar::new("b", b.clone())];
        let config = AccumulateConfig {
            steps: 2,
            reduction: Reduction::Mean,
        };
        let mut acc = GradAccumulator::new(params, &config).unwrap();
        let mut g1 = GradStore::default();
        g1.insert(
            a.as_tensor(),
            Tensor::new(&[2f64, 4.0], &Device::Cpu).unwrap(),
        );
        let mut g2 = GradStore::default();
        g2.insert(
            a.as_tensor(),
            Tensor::new(&[4f64, 8.0], &Device::Cpu).unwrap(),
        );
        assert!(!acc.add(&g1).unwrap());
        assert!(acc.add(&g2).unwrap());
        assert!(acc.add(&g2).is_err());
        let out = acc.take().unwrap();
        assert_eq!(
            out.get(a.as_tensor()).unwrap().to_vec1::<f64>().unwrap(),
            vec![3.0, 6.0]
        );
        assert!(out.get(b.as_tensor()).is_none());
        assert_eq!(acc.count(), 0);
        // A gradient of the wrong shape names the parameter and both shapes.
        let mut bad = GradStore::default();
        bad.insert(
            b.as_tensor(),
            Tensor::new(&[1f64, 2.0], &Device::Cpu).unwrap(),
        );
        let err = acc.add(&bad).unwrap_err();
        assert!(err.to_string().contains("`b`"), "{err}");
        assert!(GradAccumulator::new(
            vec![],
            &AccumulateConfig {
                steps: 0,
                ..Default::default()
            }
        )
        .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn k_equal_micro_batches_with_mean_equal_the_full_batch(
            k in 1usize..5, per in 1usize..4, features in 1usize..4,
            seed in prop::collection::vec(-2.0f64..2.0, 64),
        ) {
            let n = k * per;
            let x: Vec<Vec<f64>> = (0..n).map(|i| (0..features).map(|j| seed[(i * 3 + j) % 64]).collect()).collect();
            let y: Vec<f64> = (0..n).map(|i| seed[(i * 7 + 1) % 64]).collect();
            let (w, b, params) = model(features);
            let full = values(&grads_of(&w, &b, &x, &y), &[&w, &b]);
            let mut acc = GradAccumulator::new(params, &AccumulateConfig { steps: k, reduction: Reduction::Mean }).unwrap();
            for chunk in 0..k {
                let range = chunk * per..(chunk + 1) * per;
                acc.add(&grads_of(&w, &b, &x[range.clone()], &y[range])).unwrap();
            }
            prop_assert!(acc.is_ready());
            let accumulated = values(&acc.take().unwrap(), &[&w, &b]);
            for (a, f) in accumulated.iter().zip(&full) {
                prop_assert!((a - f).abs() <= 1e-12 * (1.0 + f.abs()), "{} vs {}", a, f);
            }
        }
    }
}
