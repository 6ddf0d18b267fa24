//! PCA whitening (and ZCA whitening): decorrelated features of unit variance.

use candle_core::{Device, Tensor};
use gradus_core::plugin::preprocessor::Preprocessor;
use gradus_core::{Error, Result, StateDict};
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::features::{like, load, mean, not_fitted, Features};

const WHAT: &str = "pca_whiten";

/// Whitening fitted on the training split, as `sklearn.decomposition.PCA(whiten=True)`.
///
/// With the training features flattened to `X` (n × f), `μ` their column means and
/// `C = (X - μ)ᵀ(X - μ) / (n - 1)`, the eigendecomposition `C = V Λ Vᵀ` (eigenvalues
/// `λ₁ ≥ … ≥ λ_f`, each eigenvector signed so that its largest-magnitude entry is positive,
/// sklearn's `svd_flip` convention) gives the first `k` components `V_k` and the scales
/// `s_j = √(λ_j + eps)`:
///
/// - PCA (default): `y = (x - μ) V_k diag(1/s)`, shape `(N, k)`;
///   `inverse`: `x = y diag(s) V_kᵀ + μ` (exact when `k = f`, the projection otherwise);
/// - ZCA (`"zca": true`, all components): `y = (x - μ) V diag(1/s) Vᵀ`, the shape of `x`
///   (whitened images stay images); `inverse`: `x = y V diag(s) Vᵀ + μ`.
///
/// **Zero-variance directions** (constant features, more features than samples, or a single
/// training sample, whose covariance is taken as 0): an
/// eigenvalue with `λ_j + eps <= λ₁ · f · ε` (`ε` = f64 machine epsilon), zero up to the
/// rounding of the decomposition, gets `s_j = 1` instead of a division by ~0, so no NaN or
/// infinity appears; those outputs are ~0 on the training data. sklearn divides by the
/// (near-)zero variance there instead.
///
/// State: `mean` (the feature shape), `components` (`k × f`, rows are `V_kᵀ`) and `scale`
/// (`k`), f64: exactly what the transform applies.
#[derive(Debug, Clone)]
pub struct PcaWhiten {
    config: PcaWhitenConfig,
    fit: Option<Fit>,
}

/// Config of [`PcaWhiten`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PcaWhitenConfig {
    /// Components kept, `null` = all features. Default: `null` (sklearn's `n_components=None`
    /// with more samples than features).
    pub n_components: Option<usize>,
    /// Added to every eigenvalue before the square root. Default: 0 (sklearn).
    pub eps: f64,
    /// ZCA whitening: rotate back into the feature space (needs every component).
    /// Default: `false`.
    pub zca: bool,
}

impl Default for PcaWhitenConfig {
    fn default() -> Self {
        PcaWhitenConfig {
            n_components: None,
            eps: 0.0,
            zca: false,
        }
    }
}

/// The fitted statistics and the two matrices derived from them.
#[derive(Debug, Clone)]
struct Fit {
    mean: Tensor,
    components: Tensor,
    scale: Tensor,
    /// `f × k` (PCA) or `f × f` (ZCA): `(x - μ) · whiten`.
    whiten: Tensor,
    /// `k × f` or `f × f`: `y · color + μ`.
    color: Tensor,
}

impl Fit {
    /// The derived matrices from `mean`, `components` (k × f) and `scale` (k), all f64.
    fn new(mean: Tensor, components: Tensor, scale: Tensor, zca: bool) -> Result<Fit> {
        let inv = scale.recip()?.unsqueeze(1)?;
        let scaled_rows = components.broadcast_mul(&inv)?; // diag(1/s) V_kᵀ
        let colored_rows = components.broadcast_mul(&scale.unsqueeze(1)?)?; // diag(s) V_kᵀ
        let (whiten, color) = if zca {
            let v = components.t()?;
            (
                v.matmul(&scaled_rows)?.contiguous()?,
                v.matmul(&colored_rows)?.contiguous()?,
            )
        } else {
            (scaled_rows.t()?.contiguous()?, colored_rows)
        };
        Ok(Fit {
            mean,
            components,
            scale,
            whiten,
            color,
        })
    }
}

impl PcaWhiten {
    /// An unfitted whitening; rejects a negative or non-finite `eps`, `n_components = 0`, and
    /// ZCA with fewer components than features (checked at fit).
    pub fn new(config: PcaWhitenConfig) -> Result<Self> {
        Self::at(config, WHAT)
    }

    /// [`PcaWhiten::new`], naming the config's JSON `path` in errors.
    fn at(config: PcaWhitenConfig, path: &str) -> Result<Self> {
        if !(config.eps.is_finite() && config.eps >= 0.0) {
            return Err(Error::config(
                format!("{path}.eps"),
                format!("must be finite and >= 0, got {}", config.eps),
            ));
        }
        if config.n_components == Some(0) {
            return Err(Error::config(
                format!("{path}.n_components"),
                "must be at least 1 (or null for all), got 0",
            ));
        }
        Ok(PcaWhiten { config, fit: None })
    }

    fn fitted(&self) -> Result<&Fit> {
        self.fit.as_ref().ok_or_else(|| not_fitted(WHAT))
    }

    /// The number of components (the output width of the PCA transform), once fitted.
    pub fn components(&self) -> Option<usize> {
        self.fit.as_ref().map(|f| f.components.dims()[0])
    }
}

/// Eigenvalues (descending) and eigenvectors (as rows, sklearn's signs) of the covariance of
/// `features` about their column means `mean`.
fn decompose(features: &Features, mean: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (n, f) = (features.n, features.f);
    let centered = DMatrix::from_fn(n, f, |i, j| features.data[i * f + j] - mean[j]);
    // One sample has no spread: its covariance is taken as 0, so every direction keeps scale 1.
    let cov = centered.tr_mul(&centered) / (n.max(2) as f64 - 1.0);
    let eigen = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..f).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let values = order
        .iter()
        .map(|&j| eigen.eigenvalues[j].max(0.0))
        .collect();
    let vectors =
        order
            .iter()
            .map(|&j| {
                let column = eigen.eigenvectors.column(j);
                let largest = column.iter().copied().fold(0.0f64, |best, v| {
                    if v.abs() > best.abs() {
                        v
                    } else {
                        best
                    }
                });
                let sign = if largest < 0.0 { -1.0 } else { 1.0 };
                column.iter().map(|v| v * sign).collect()
            })
            .collect();
    (values, vectors)
}

impl Preprocessor for PcaWhiten {
    fn fit(&mut self, train: &Tensor) -> Result<()> {
        let features = Features::read(train, WHAT)?;
        let f = features.f;
        let k = self.config.n_components.unwrap_or(f);
        if k > f {
            return Err(Error::InvalidHyperparameter(format!(
                "{WHAT}: n_components = {k} exceeds the {f} features of the training data"
            )));
        }
        if self.config.zca && k != f {
            return Err(Error::InvalidHyperparameter(format!(
                "{WHAT}: ZCA whitening needs every component ({f}), n_components is {k}"
            )));
        }
        let mean = features.per_feature(mean);
        let (values, vectors) = decompose(&features, &mean);
        let floor = values.first().copied().unwrap_or(0.0) * f as f64 * f64::EPSILON;
        let scale: Vec<f64> = values[..k]
            .iter()
            .map(|&l| {
                let l = l + self.config.eps;
                if l <= floor {
                    1.0
                } else {
                    l.sqrt()
                }
            })
            .collect();
        let components: Vec<f64> = vectors[..k].iter().flatten().copied().collect();
        // host-side: preprocessors fit and transform the host-side data pipeline.
        let dev = Device::Cpu;
        self.fit = Some(Fit::new(
            features.tensor(mean)?,
            Tensor::from_vec(components, (k, f), &dev)?,
            Tensor::from_vec(scale, k, &dev)?,
            self.config.zca,
        )?);
        Ok(())
    }

    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        let fit = self.fitted()?;
        let centered = x.broadcast_sub(&like(&fit.mean, x, WHAT)?)?;
        let n = x.dims()[0];
        let flat = centered.reshape((n, fit.components.dims()[1]))?;
        let whiten = fit.whiten.to_device(x.device())?.to_dtype(x.dtype())?;
        let y = flat.matmul(&whiten)?;
        Ok(if self.config.zca {
            y.reshape(x.dims())?
        } else {
            y
        })
    }

    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let fit = self.fitted()?;
        // ZCA output has the features' shape, PCA output one value per component.
        let space = if self.config.zca {
            &fit.mean
        } else {
            &fit.scale
        };
        like(space, y, WHAT)?;
        let n = y.dims()[0];
        let flat = y.reshape((n, space.elem_count()))?;
        let color = fit.color.to_device(y.device())?.to_dtype(y.dtype())?;
        let mut shape = vec![n];
        shape.extend_from_slice(fit.mean.dims());
        let x = flat.matmul(&color)?.reshape(shape)?;
        Ok(x.broadcast_add(&like(&fit.mean, &x, WHAT)?)?)
    }

    fn state(&self) -> StateDict {
        let mut sd = StateDict::new();
        if let Some(fit) = &self.fit {
            sd.insert("mean", fit.mean.clone());
            sd.insert("components", fit.components.clone());
            sd.insert("scale", fit.scale.clone());
        }
        sd
    }

    fn load_state(&mut self, state: &StateDict) -> Result<()> {
        // The three have different shapes, so each is loaded on its own.
        let get = |name: &str| -> Result<Tensor> { Ok(load(state, &[name], WHAT)?.remove(0)) };
        let (mean, components, scale) = (get("mean")?, get("components")?, get("scale")?);
        let f = mean.elem_count();
        let k = scale.elem_count();
        let expected = [k, f];
        if components.dims() != expected || scale.dims() != [k] {
            return Err(Error::ShapeMismatch {
                context: format!("{WHAT} saved `components` for {f} features and `scale`"),
                expected: expected.to_vec(),
                actual: components.dims().to_vec(),
            });
        }
        if self.config.zca && k != f {
            return Err(Error::StateMismatch(format!(
                "{WHAT}: saved state has {k} components of {f} features, ZCA needs all"
            )));
        }
        self.fit = Some(Fit::new(mean, components, scale, self.config.zca)?);
        Ok(())
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Preprocessor>> {
    let config: PcaWhitenConfig = gradus_core::config::parse_config(config, path)?;
    Ok(Box::new(PcaWhiten::at(config, path)?))
}

gradus_core::register_preprocessor!(
    "pca_whiten",
    "PCA (or ZCA) whitening from the training split's covariance: decorrelated, unit variance",
    PcaWhitenConfig,
    build
);

#[cfg(test)]
#[path = "pca_whiten_tests.rs"]
mod tests;
