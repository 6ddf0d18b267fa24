//! Composition: `sequence`, `random_apply`, `one_of`, `random_order` (torchvision.transforms.v2
//! Compose, RandomApply, RandomChoice, RandomOrder), deciding per sample.
//!
//! Children are configs resolved by name through the registry, so any registered image
//! augmentation (including another composition or a plugin's own op) can be nested. A choice
//! made per sample splits the batch into groups of samples taking the same path; each group
//! runs as a batch of its own (groups in a fixed order, so draws stay reproducible) and the
//! samples return to their places. Size-changing children must leave every group (and the
//! untouched samples) with one common size.

use std::collections::BTreeMap;

use gradus_core::config::{index_path, join_path, parse_config};
use gradus_core::plugin::augment::{ImageAugmentation, ImageBatch};
use gradus_core::registry::{resolve, ImageAugmentationKind};
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::apply_grouped;
use crate::params::{at_path, check_probability};

/// Builds each config of `transforms` (at `path.transforms[i]`) through the registry.
pub fn build_children(transforms: &[Value], path: &str) -> Result<Vec<Box<dyn ImageAugmentation>>> {
    let list = join_path(path, "transforms");
    transforms
        .iter()
        .enumerate()
        .map(|(i, config)| {
            let at = index_path(&list, i);
            let (entry, rest) = resolve::<ImageAugmentationKind>(config, &at)?;
            (entry.build)(&rest, &at).map_err(|e| e.at(&at))
        })
        .collect()
}

fn run_all(
    children: &[Box<dyn ImageAugmentation>],
    order: impl IntoIterator<Item = usize>,
    batch: &mut ImageBatch,
    rng: &mut SeededRng,
) -> Result<()> {
    for k in order {
        children[k].apply(batch, rng)?;
    }
    Ok(())
}

/// `sequence`: applies `transforms` one after the other to the whole batch.
pub struct Sequence {
    children: Vec<Box<dyn ImageAugmentation>>,
}

/// Config of `sequence` and `random_order`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceConfig {
    /// Child configs, each `{"type": ..., ...}`. Default: none (torchvision Compose).
    #[schemars(schema_with = "gradus_core::schema::image_augmentations")]
    pub transforms: Vec<Value>,
}

impl Sequence {
    /// A sequence of built transforms.
    pub fn new(children: Vec<Box<dyn ImageAugmentation>>) -> Self {
        Sequence { children }
    }
}

impl ImageAugmentation for Sequence {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        run_all(&self.children, 0..self.children.len(), batch, rng)
    }
}

/// `random_apply`: each sample goes through all `transforms` (in order) with probability `p`,
/// else is left as it is.
pub struct RandomApply {
    children: Vec<Box<dyn ImageAugmentation>>,
    p: f64,
}

/// Config of `random_apply`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RandomApplyConfig {
    /// Child configs. Default: none.
    #[schemars(schema_with = "gradus_core::schema::image_augmentations")]
    pub transforms: Vec<Value>,
    /// Probability of applying them to a sample. Default: `0.5` (torchvision RandomApply).
    pub p: f64,
}

impl Default for RandomApplyConfig {
    fn default() -> Self {
        RandomApplyConfig {
            transforms: Vec::new(),
            p: 0.5,
        }
    }
}

impl RandomApply {
    /// Applies `children` to each sample with probability `p`.
    pub fn new(children: Vec<Box<dyn ImageAugmentation>>, p: f64) -> Result<Self> {
        Ok(RandomApply {
            children,
            p: check_probability("p", p)?,
        })
    }
}

impl ImageAugmentation for RandomApply {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let chosen: Vec<usize> = (0..batch.n).filter(|_| rng.unit_f64() < self.p).collect();
        let all = 0..self.children.len();
        apply_grouped(batch, "random_apply", &[chosen], |_, sub| {
            run_all(&self.children, all.clone(), sub, rng)
        })
    }
}

/// `one_of`: each sample goes through one of `transforms`, picked with probabilities `p`
/// (normalised; uniform by default).
pub struct OneOf {
    children: Vec<Box<dyn ImageAugmentation>>,
    cumulative: Vec<f64>,
}

/// Config of `one_of`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OneOfConfig {
    /// Child configs (at least one).
    #[schemars(schema_with = "gradus_core::schema::image_augmentations")]
    pub transforms: Vec<Value>,
    /// Weight of each child, normalised to sum 1. Default: uniform (torchvision
    /// RandomChoice).
    pub p: Option<Vec<f64>>,
}

impl OneOf {
    /// Picks one of `children` per sample with weights `p` (uniform when `None`).
    pub fn new(children: Vec<Box<dyn ImageAugmentation>>, p: Option<Vec<f64>>) -> Result<Self> {
        let invalid = |m: String| Error::InvalidHyperparameter(m);
        if children.is_empty() {
            return Err(invalid("one_of needs at least one transform".to_string()));
        }
        let p = p.unwrap_or_else(|| vec![1.0; children.len()]);
        if p.len() != children.len() {
            return Err(invalid(format!(
                "Length of p doesn't match the number of transforms: {} != {}",
                p.len(),
                children.len()
            )));
        }
        let total: f64 = p.iter().sum();
        if p.iter().any(|v| !(*v >= 0.0 && v.is_finite())) || total <= 0.0 {
            return Err(invalid(format!(
                "p must be non-negative weights with a positive sum, got {p:?}"
            )));
        }
        let mut acc = 0.0;
        let cumulative = p.iter().map(|v| {
            acc += v / total;
            acc
        });
        Ok(OneOf {
            cumulative: cumulative.collect(),
            children,
        })
    }
}

impl ImageAugmentation for OneOf {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let mut groups = vec![Vec::new(); self.children.len()];
        let last = self.children.len() - 1;
        for i in 0..batch.n {
            let u = rng.unit_f64();
            let k = self.cumulative.iter().position(|&c| u < c).unwrap_or(last);
            groups[k].push(i);
        }
        apply_grouped(batch, "one_of", &groups, |k, sub| {
            self.children[k].apply(sub, rng)
        })
    }
}

/// `random_order`: each sample goes through all `transforms` in its own random order.
pub struct RandomOrder {
    children: Vec<Box<dyn ImageAugmentation>>,
}

impl RandomOrder {
    /// Applies all `children` in a random order per sample.
    pub fn new(children: Vec<Box<dyn ImageAugmentation>>) -> Self {
        RandomOrder { children }
    }
}

impl ImageAugmentation for RandomOrder {
    fn apply(&self, batch: &mut ImageBatch, rng: &mut SeededRng) -> Result<()> {
        let mut by_order: BTreeMap<Vec<u32>, Vec<usize>> = BTreeMap::new();
        for i in 0..batch.n {
            by_order
                .entry(rng.permutation(self.children.len()))
                .or_default()
                .push(i);
        }
        let (orders, groups): (Vec<Vec<u32>>, Vec<Vec<usize>>) = by_order.into_iter().unzip();
        apply_grouped(batch, "random_order", &groups, |g, sub| {
            run_all(
                &self.children,
                orders[g].iter().map(|&k| k as usize),
                sub,
                rng,
            )
        })
    }
}

fn build_sequence(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let c: SequenceConfig = parse_config(config, path)?;
    Ok(Box::new(Sequence::new(build_children(
        &c.transforms,
        path,
    )?)))
}

fn build_random_apply(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let c: RandomApplyConfig = parse_config(config, path)?;
    let children = build_children(&c.transforms, path)?;
    Ok(Box::new(at_path(path, RandomApply::new(children, c.p))?))
}

fn build_one_of(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let c: OneOfConfig = parse_config(config, path)?;
    let children = build_children(&c.transforms, path)?;
    Ok(Box::new(at_path(path, OneOf::new(children, c.p))?))
}

fn build_random_order(config: &Value, path: &str) -> Result<Box<dyn ImageAugmentation>> {
    let c: SequenceConfig = parse_config(config, path)?;
    Ok(Box::new(RandomOrder::new(build_children(
        &c.transforms,
        path,
    )?)))
}

gradus_core::register_image_augmentation!(
    "sequence",
    "apply `transforms` one after the other",
    SequenceConfig,
    build_sequence
);
gradus_core::register_image_augmentation!(
    "random_apply",
    "apply all `transforms` to each image with probability p",
    RandomApplyConfig,
    build_random_apply
);
gradus_core::register_image_augmentation!(
    "one_of",
    "apply one of `transforms` per image, picked with weights p",
    OneOfConfig,
    build_one_of
);
gradus_core::register_image_augmentation!(
    "random_order",
    "apply all `transforms` in a random order per image",
    SequenceConfig,
    build_random_order
);

#[cfg(test)]
mod tests;
