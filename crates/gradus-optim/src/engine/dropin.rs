//! The optimizer as a Candle program sees it: built from a `VarMap`, a `candle_nn::Optimizer`,
//! and inherent methods for everything a training loop calls, so that no trait import is needed
//! and none clashes with `candle_nn::Optimizer`.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use gradus_core::{NamedVar, Optimizer, Result};

use crate::engine::grouped::GroupedOptimizer;
use crate::engine::groups::GroupSpec;
use crate::engine::rule::Rule;

/// The variables of `varmap`, named by their `VarMap` names, in name order (a `VarMap` is a
/// `HashMap`, whose order differs between processes).
pub fn named_vars(varmap: &VarMap) -> Vec<NamedVar> {
    let data = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut vars: Vec<NamedVar> = data
        .iter()
        .map(|(name, var)| NamedVar::new(name.clone(), var.clone()))
        .collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// Positional names for unnamed variables: `param.0`, `param.1`, ...
fn positional(vars: Vec<Var>) -> Vec<NamedVar> {
    vars.into_iter()
        .enumerate()
        .map(|(i, v)| NamedVar::new(format!("param.{i}"), v))
        .collect()
}

impl<R: Rule> GroupedOptimizer<R> {
    /// Every variable of `varmap`, named by its `VarMap` name: state is keyed by those names
    /// (`fc1.weight.exp_avg`), so it restores into a `VarMap` built the same way in another
    /// process. The way to build an optimizer whose state is saved and restored:
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use candle_nn::{Module, VarBuilder, VarMap};
    /// use gradus_optim::{AdamW, AdamWConfig, StateDict};
    ///
    /// # fn main() -> candle_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let varmap = VarMap::new();
    /// let model = candle_nn::linear(2, 1, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu).pp("fc"))?;
    /// let mut opt = AdamW::from_varmap(&varmap, AdamWConfig::default())?;
    /// let x = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
    /// opt.backward_step(&model.forward(&x)?.sqr()?.mean_all()?)?;
    /// // Save: the weights by VarMap name, the optimizer state by the same names.
    /// varmap.save(dir.path().join("model.safetensors"))?;
    /// opt.state_dict()?.save(dir.path().join("optimizer.safetensors"))?;
    ///
    /// // Restore, in a fresh process: build the model the same way, load the weights, then
    /// // the optimizer state.
    /// let mut restored = VarMap::new();
    /// let model = candle_nn::linear(2, 1, VarBuilder::from_varmap(&restored, DType::F32, &Device::Cpu).pp("fc"))?;
    /// restored.load(dir.path().join("model.safetensors"))?;
    /// let mut opt = AdamW::from_varmap(&restored, AdamWConfig::default())?;
    /// opt.load_state_dict(&StateDict::load(dir.path().join("optimizer.safetensors"), &Device::Cpu)?)?;
    /// opt.backward_step(&model.forward(&x)?.sqr()?.mean_all()?)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_varmap(varmap: &VarMap, hyper: R) -> Result<Self> {
        Self::from_named(named_vars(varmap), hyper)
    }

    /// [`GroupedOptimizer::from_varmap`] with parameter groups: each variable joins the first
    /// spec whose glob pattern matches its `VarMap` name (`*.bias`), else the default group.
    pub fn from_varmap_with_groups(
        varmap: &VarMap,
        hyper: R,
        specs: Vec<GroupSpec<R>>,
    ) -> Result<Self> {
        Self::with_groups(named_vars(varmap), hyper, specs)
    }

    /// Unnamed variables, named `param.0`, `param.1`, ... by position, as
    /// `candle_nn::Optimizer::new` does. Its state dict records a fingerprint of each parameter,
    /// and loading refuses state whose parameters do not hold the same weights (a different
    /// order or set): prefer [`GroupedOptimizer::from_varmap`] for state that is saved.
    pub fn from_vars(vars: Vec<Var>, hyper: R) -> Result<Self> {
        let mut optimizer = Self::from_named(positional(vars), hyper)?;
        optimizer.positional = true;
        Ok(optimizer)
    }

    /// Counterpart of `candle_nn::AdamW::new_lr`: the default hyperparameters with learning
    /// rate `lr`, over unnamed variables (see [`GroupedOptimizer::from_vars`]).
    pub fn new_lr(vars: Vec<Var>, lr: f64) -> Result<Self> {
        let mut hyper = R::default();
        hyper.set("lr", lr);
        Self::from_vars(vars, hyper)
    }

    /// Counterpart of `candle_nn::AdamW::params`: the hyperparameters of the default group
    /// (group 0). The parameters themselves are [`GroupedOptimizer::named_params`].
    pub fn params(&self) -> &R {
        &self.groups[0].hyper
    }

    /// Counterpart of `candle_nn::AdamW::set_params`: replaces the hyperparameters of the
    /// default group (group 0), validated first.
    pub fn set_params(&mut self, hyper: R) -> Result<()> {
        hyper.validate()?;
        self.groups[0].hyper = hyper;
        Ok(())
    }

    /// The parameters this optimizer updates, with their names, in order.
    pub fn named_params(&self) -> Vec<NamedVar> {
        Optimizer::params(self)
    }

    /// Applies one update from `grads` (as `candle_nn::Optimizer::step`).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.apply(grads)
    }

    /// Backpropagates `loss` and applies one update (as `candle_nn::Optimizer::backward_step`).
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.apply(&loss.backward()?)
    }

    /// The learning rate of the default group (NaN for a rule without `lr`), as
    /// `candle_nn::Optimizer::learning_rate`.
    pub fn learning_rate(&self) -> f64 {
        self.groups[0].hyper.get("lr").unwrap_or(f64::NAN)
    }

    /// Sets the learning rate of every group, validated (a negative `lr` is an error).
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        Optimizer::set_learning_rate(self, lr)
    }

    /// Hyperparameter `name` (`lr`, `beta1`, `weight_decay`, ...) of `group`.
    pub fn hyperparameter(&self, group: usize, name: &str) -> Result<f64> {
        Optimizer::hyperparameter(self, group, name)
    }

    /// Sets hyperparameter `name` of `group`, validated as at construction.
    pub fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        Optimizer::set_hyperparameter(self, group, name, value)
    }
}

/// Existing Candle code switches optimizer by changing one type: parameters are named
/// `param.0`, `param.1`, ... in the order given ([`GroupedOptimizer::from_vars`]), and state
/// saved this way is fingerprinted against the weights.
impl<R: Rule> candle_nn::Optimizer for GroupedOptimizer<R> {
    type Config = R;

    fn new(vars: Vec<Var>, config: R) -> candle_core::Result<Self> {
        Ok(GroupedOptimizer::from_vars(vars, config)?)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        Ok(self.apply(grads)?)
    }

    fn learning_rate(&self) -> f64 {
        GroupedOptimizer::learning_rate(self)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        // candle_nn's signature has no error: an invalid lr is kept out (the previous stays).
        let _ = Optimizer::set_learning_rate(self, lr);
    }
}
