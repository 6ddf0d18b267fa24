//! Synthetic data sets for quick experiments and tests.

mod classification;
mod regression;

use gradus_core::config::{join_path, parse_config};
use gradus_core::plugin::data::{DataSource, Dataset};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Generated data sets, after scikit-learn's `make_moons`, `make_blobs` and `make_regression`,
/// and the two-arm spirals of the CS231n notes. All features are `f32`; `noise` is the
/// standard deviation of Gaussian noise `N(0, noise^2)` added as each kind says.
///
/// | `kind` | features | targets | generator |
/// | --- | --- | --- | --- |
/// | `two_moons` | `(n, 2)` | 2 classes | outer half circle `(cos t, sin t)`, inner `(1 - cos t, 0.5 - sin t)`, `t` evenly spaced in `[0, pi]`; noise on both coordinates |
/// | `spirals` | `(n, 2)` | `classes` (default 2) | arm `k`: `r (cos a, sin a)`, `r = (i + 1) / n_k` in `(0, 1]`, `a = 2 pi k / classes + 3 pi r` (1.5 turns); noise on both coordinates |
/// | `blobs` | `(n, features)` (default 2) | `classes` (default 3) | centres uniform in `[-10, 10]^features`, samples `centre + N(0, noise^2)` |
/// | `linear` | `(n, features)` (default 1) | `(n, 1)` real | `x ~ N(0, 1)`, `y = x . w + b + e`, `w_j, b ~ N(0, 1)` |
/// | `polynomial` | `(n, 1)` | `(n, 1)` real | `x ~ U(-1, 1)`, `y = sum_k c_k x^k + e` for `k = 0..=degree` (default 3), `c_k ~ N(0, 1)` |
///
/// Classes get `n / classes` samples each, the first `n % classes` one more (as scikit-learn),
/// and classification rows are shuffled (scikit-learn's `shuffle=True`).
///
/// **Determinism.** With `seed` set, every draw comes from `SeededRng::new(seed)`, so the data
/// set is the same whatever else the pipeline draws; with `seed: null` the draws come from the
/// generator passed to [`DataSource::load`] (the pipeline's seed). Either way the same seed
/// gives the same bits. Draw order: parameters (centres, weights), then samples, then noise,
/// then the shuffle.
#[derive(Debug, Clone)]
pub struct Synthetic {
    config: SyntheticConfig,
}

/// Which data set [`Synthetic`] generates.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticKind {
    /// Two interleaving half circles (binary classification).
    #[default]
    TwoMoons,
    /// Interleaved spiral arms, one per class.
    Spirals,
    /// Isotropic Gaussian clusters, one per class.
    Blobs,
    /// Linear regression.
    Linear,
    /// Polynomial regression in one variable.
    Polynomial,
}

/// Configuration of [`Synthetic`]; the optional fields apply to the kinds named, and setting
/// one for another kind is an error.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// The generator. Default: `"two_moons"`.
    pub kind: SyntheticKind,
    /// Number of samples. Default: `100` (scikit-learn `n_samples`).
    pub n: usize,
    /// Standard deviation of the added Gaussian noise. Default: `null`, meaning `1.0` for
    /// `blobs` (scikit-learn `cluster_std`) and `0.0` for the others (scikit-learn `noise`).
    pub noise: Option<f64>,
    /// Seed of a generator of its own. Default: `null`, draw from the pipeline's generator.
    pub seed: Option<u64>,
    /// Number of classes of `spirals` (default 2) or `blobs` (default 3, scikit-learn `centers`).
    pub classes: Option<usize>,
    /// Number of features of `blobs` (default 2) or `linear` (default 1).
    pub features: Option<usize>,
    /// Degree of `polynomial`. Default: `3`.
    pub degree: Option<usize>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            kind: SyntheticKind::TwoMoons,
            n: 100,
            noise: None,
            seed: None,
            classes: None,
            features: None,
            degree: None,
        }
    }
}

/// The validated parameters of one generator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    n: usize,
    noise: f64,
    classes: usize,
    features: usize,
    degree: usize,
}

impl Synthetic {
    /// Validates `config`; `path` is its JSON path, named in errors.
    pub fn new(config: SyntheticConfig, path: &str) -> Result<Self> {
        use SyntheticKind::*;
        let kind = config.kind;
        let allowed =
            |field: &str, value: Option<usize>, kinds: &[SyntheticKind], what: &str| match value {
                Some(_) if !kinds.contains(&kind) => Err(Error::config(
                    join_path(path, field),
                    format!("`{field}` applies only to kind {what}, not {kind:?}"),
                )),
                Some(0) => Err(Error::config(
                    join_path(path, field),
                    format!("`{field}` must be at least 1"),
                )),
                _ => Ok(()),
            };
        allowed(
            "classes",
            config.classes,
            &[Spirals, Blobs],
            "spirals or blobs",
        )?;
        allowed(
            "features",
            config.features,
            &[Blobs, Linear],
            "blobs or linear",
        )?;
        allowed("degree", config.degree, &[Polynomial], "polynomial")?;
        if let Some(noise) = config.noise {
            if !(noise.is_finite() && noise >= 0.0) {
                return Err(Error::config(
                    join_path(path, "noise"),
                    format!("noise must be finite and >= 0, got {noise}"),
                ));
            }
        }
        let synthetic = Synthetic { config };
        let params = synthetic.params();
        let min_n = match kind {
            TwoMoons => 2,
            Spirals | Blobs => params.classes,
            Linear | Polynomial => 1,
        };
        if params.n < min_n {
            return Err(Error::config(
                join_path(path, "n"),
                format!("{kind:?} needs at least {min_n} samples, got {}", params.n),
            ));
        }
        // Bounded before anything is generated (the degree adds columns to `polynomial`).
        let columns = params.features.max(params.degree + 1);
        gradus_core::limits::tensor_elements(
            &join_path(path, "n"),
            "the features",
            &[params.n, columns],
        )?;
        Ok(synthetic)
    }

    fn params(&self) -> Params {
        use SyntheticKind::*;
        let c = &self.config;
        Params {
            n: c.n,
            noise: c.noise.unwrap_or(if c.kind == Blobs { 1.0 } else { 0.0 }),
            classes: c.classes.unwrap_or(if c.kind == Blobs { 3 } else { 2 }),
            features: c.features.unwrap_or(if c.kind == Blobs { 2 } else { 1 }),
            degree: c.degree.unwrap_or(3),
        }
    }
}

impl DataSource for Synthetic {
    fn load(&self, rng: &mut SeededRng) -> Result<Dataset> {
        let mut own;
        let rng = match self.config.seed {
            Some(seed) => {
                own = SeededRng::new(seed);
                &mut own
            }
            None => rng,
        };
        let p = self.params();
        match self.config.kind {
            SyntheticKind::TwoMoons => classification::two_moons(p, rng),
            SyntheticKind::Spirals => classification::spirals(p, rng),
            SyntheticKind::Blobs => classification::blobs(p, rng),
            SyntheticKind::Linear => regression::linear(p, rng),
            SyntheticKind::Polynomial => regression::polynomial(p, rng),
        }
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn DataSource>> {
    let config: SyntheticConfig = parse_config(config, path)?;
    Ok(Box::new(Synthetic::new(config, path)?))
}

gradus_core::register_data_source!(
    "synthetic",
    "generated two moons, spirals, Gaussian blobs, linear or polynomial regression",
    SyntheticConfig,
    build
);

#[cfg(test)]
mod tests;
