//! The non-finite guard: on a NaN/infinite loss or gradient (or a step that would write one),
//! stop with an error naming the parameter, skip the step, or roll back to the last good
//! parameters and optimizer state with a smaller learning rate.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict};
use serde::{Deserialize, Serialize};

/// What to do about a non-finite value.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NonFinitePolicy {
    /// Stop with [`Error::NonFinite`] naming the loss or the parameter.
    #[default]
    Error,
    /// Drop the step and count it.
    Skip,
    /// Restore the last good parameters and optimizer state, and scale every group's `lr` by
    /// `lr_factor`.
    Rollback,
}

/// The guard's config: `{"policy": "rollback", "lr_factor": 0.5, "snapshot_interval": 1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// `"error"`, `"skip"` or `"rollback"`. Default: `"error"` (PyTorch has no guard; failing
    /// loudly is the safe default).
    pub policy: NonFinitePolicy,
    /// Factor applied to every group's `lr` on a rollback, in `(0, 1]`. Default: `0.5`.
    pub lr_factor: f64,
    /// With `rollback`, good steps between snapshots of the "last good" state. Default: `1`.
    pub snapshot_interval: u64,
    /// Check parameters after each step and undo a step that made them non-finite (costs one
    /// copy of parameters and optimizer state per step). Default: `true`.
    pub verify_step: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            policy: NonFinitePolicy::Error,
            lr_factor: 0.5,
            snapshot_interval: 1,
            verify_step: true,
        }
    }
}

/// The outcome of a guarded step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything finite: the step was (or may be) taken.
    Proceed,
    /// The step was dropped (`skip`).
    Skipped,
    /// Parameters and optimizer state were restored and `lr` scaled (`rollback`).
    RolledBack,
}

/// A deep copy of parameters and optimizer state (not aliasing storage that in-place kernels
/// update).
#[derive(Debug, Clone)]
pub struct Snapshot {
    params: Vec<(NamedVar, Tensor)>,
    optimizer: StateDict,
}

impl Snapshot {
    /// Copies the optimizer's parameters and state.
    pub fn take(optimizer: &dyn Optimizer) -> Result<Self> {
        let params = optimizer
            .params()
            .into_iter()
            .map(|p| {
                let copy = p.var.as_tensor().copy()?;
                Ok((p, copy))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut state = StateDict::new();
        for (name, tensor) in optimizer.state_dict()?.iter() {
            state.insert(name, tensor.copy()?);
        }
        Ok(Snapshot {
            params,
            optimizer: state,
        })
    }

    /// Writes the copied values back into the parameters and the optimizer.
    pub fn restore(&self, optimizer: &mut dyn Optimizer) -> Result<()> {
        for (p, saved) in &self.params {
            p.var.set(saved)?;
        }
        optimizer.load_state_dict(&self.optimizer)
    }
}

/// Describes the first non-finite value among `loss` and the gradients of `params`, if any.
pub fn find_non_finite(
    loss: Option<f64>,
    grads: &GradStore,
    params: &[NamedVar],
) -> Result<Option<String>> {
    if let Some(l) = loss.filter(|l| !l.is_finite()) {
        return Ok(Some(format!("loss is {l}")));
    }
    for p in params {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            if let Some(counts) = non_finite_counts(g)? {
                return Ok(Some(format!("gradient of `{}` has {counts}", p.name)));
            }
        }
    }
    Ok(None)
}

/// The name of the first parameter holding a non-finite value, with counts.
pub fn find_non_finite_param(params: &[NamedVar]) -> Result<Option<String>> {
    for p in params {
        if let Some(counts) = non_finite_counts(p.var.as_tensor())? {
            return Ok(Some(format!("parameter `{}` would get {counts}", p.name)));
        }
    }
    Ok(None)
}

/// `None` when every element is finite, else "2 NaN and 1 infinite of 12 values".
fn non_finite_counts(t: &Tensor) -> Result<Option<String>> {
    if t.elem_count() == 0 {
        return Ok(None);
    }
    // x·0 is NaN exactly for NaN and ±∞, so one reduction decides the common all-finite case.
    let probe = t.affine(0.0, 0.0)?.sum_all()?.to_dtype(DType::F64)?;
    if !probe.to_scalar::<f64>()?.is_nan() {
        return Ok(None);
    }
    let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let nan = values.iter().filter(|v| v.is_nan()).count();
    let inf = values.iter().filter(|v| v.is_infinite()).count();
    Ok(Some(format!(
        "{nan} NaN and {inf} infinite of {} values",
        values.len()
    )))
}

/// Keeps non-finite values out of the parameters: checks each step's loss and gradients, and
/// (with `verify_step`) the parameters after the step, and applies the [`NonFinitePolicy`].
pub struct NonFiniteGuard {
    config: GuardConfig,
    skipped: u64,
    rollbacks: u64,
    good_steps: u64,
    last_good: Option<Snapshot>,
}

impl NonFiniteGuard {
    /// A guard with `config`, validated.
    pub fn new(config: GuardConfig) -> Result<Self> {
        if !(config.lr_factor > 0.0 && config.lr_factor <= 1.0) {
            return Err(Error::InvalidHyperparameter(format!(
                "lr_factor must be in (0, 1], got {}",
                config.lr_factor
            )));
        }
        if config.snapshot_interval == 0 {
            return Err(Error::InvalidHyperparameter(
                "snapshot_interval must be at least 1, got 0".into(),
            ));
        }
        Ok(NonFiniteGuard {
            config,
            skipped: 0,
            rollbacks: 0,
            good_steps: 0,
            last_good: None,
        })
    }

    /// Steps dropped so far (`skip`).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Rollbacks so far (`rollback`).
    pub fn rollbacks(&self) -> u64 {
        self.rollbacks
    }

    /// Classifies a step without taking it: [`Verdict::Proceed`] when `loss` and the gradients
    /// of `params` are finite, else the policy's verdict (counted), or the error naming the
    /// parameter. Does not restore anything; [`NonFiniteGuard::step`] does the whole job.
    pub fn check(
        &mut self,
        loss: Option<f64>,
        grads: &GradStore,
        params: &[NamedVar],
    ) -> Result<Verdict> {
        match find_non_finite(loss, grads, params)? {
            None => Ok(Verdict::Proceed),
            Some(what) => self.verdict(what),
        }
    }

    fn verdict(&mut self, what: String) -> Result<Verdict> {
        match self.config.policy {
            NonFinitePolicy::Error => Err(Error::NonFinite(what)),
            NonFinitePolicy::Skip => {
                self.skipped += 1;
                Ok(Verdict::Skipped)
            }
            NonFinitePolicy::Rollback => {
                self.rollbacks += 1;
                Ok(Verdict::RolledBack)
            }
        }
    }

    /// Records the current parameters and optimizer state as the last good ones.
    pub fn snapshot(&mut self, optimizer: &dyn Optimizer) -> Result<()> {
        self.last_good = Some(Snapshot::take(optimizer)?);
        Ok(())
    }

    /// Restores the last good snapshot (if any) and scales every group's `lr` by `lr_factor`,
    /// starting from the `lr` in force now (so repeated rollbacks compound).
    pub fn restore(&mut self, optimizer: &mut dyn Optimizer) -> Result<()> {
        let lrs = (0..optimizer.group_count())
            .map(|g| optimizer.hyperparameter(g, "lr"))
            .collect::<Result<Vec<_>>>()?;
        if let Some(snapshot) = &self.last_good {
            snapshot.restore(optimizer)?;
        }
        for (g, lr) in lrs.into_iter().enumerate() {
            optimizer.set_hyperparameter(g, "lr", lr * self.config.lr_factor)?;
        }
        Ok(())
    }

    /// A guarded optimizer step: checks `loss` and `grads`, steps, checks the parameters
    /// (`verify_step`), and applies the policy to any non-finite value, so that none reaches
    /// the parameters.
    pub fn step(
        &mut self,
        loss: Option<f64>,
        grads: &GradStore,
        optimizer: &mut dyn Optimizer,
    ) -> Result<Verdict> {
        let params = optimizer.params();
        if let Some(what) = find_non_finite(loss, grads, &params)? {
            return self.handle(what, optimizer);
        }
        let rollback = self.config.policy == NonFinitePolicy::Rollback;
        let due = self
            .good_steps
            .is_multiple_of(self.config.snapshot_interval);
        let backup = if self.config.verify_step || (rollback && due) {
            Some(Snapshot::take(optimizer)?)
        } else {
            None
        };
        if rollback && (due || self.last_good.is_none()) {
            self.last_good = backup.clone();
        }
        if let Err(e) = optimizer.step(grads) {
            // A failed step may have updated some parameters: put them back.
            if let Some(b) = &backup {
                b.restore(optimizer)?;
            }
            return Err(e);
        }
        if self.config.verify_step {
            if let Some(what) = find_non_finite_param(&params)? {
                if let Some(b) = &backup {
                    b.restore(optimizer)?;
                }
                return self.handle(what, optimizer);
            }
        }
        self.good_steps += 1;
        Ok(Verdict::Proceed)
    }

    fn handle(&mut self, what: String, optimizer: &mut dyn Optimizer) -> Result<Verdict> {
        let verdict = self.verdict(what)?;
        if verdict == Verdict::RolledBack {
            self.restore(optimizer)?;
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    /// Plain SGD with momentum, written here: `b ← μ·b + g`, `θ ← θ − lr·b`.
    struct TestSgd {
        params: Vec<NamedVar>,
        lr: f64,
        momentum: f64,
        buffers: Vec<Tensor>,
    }

    impl TestSgd {
        fn new(values: &[Vec<f64>], lr: f64) -> Self {
            let params: Vec<NamedVar> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    NamedVar::new(
                        format!("layer{i}.weight"),
                        Var::new(v.as_slice(), &Device::Cpu).unwrap(),
                    )
                })
                .collect();
            let buffers = params
                .iter()
                .map(|p| p.var.as_tensor().zeros_like().unwrap())
                .collect();
            TestSgd {
                params,
                lr,
                momentum: 0.9,
                buffers,
            }
        }

        fn values(&self) -> Vec<f64> {
            self.params
                .iter()
                .flat_map(|p| p.var.as_tensor().to_vec1::<f64>().unwrap())
                .collect()
        }
    }

    impl Optimizer for TestSgd {
        fn algorithm(&self) -> &str {
            "test_sgd"
        }
        fn step(&mut self, grads: &GradStore) -> Result<()> {
            for (p, b) in self.params.iter().zip(self.buffers.iter_mut()) {
                if let Some(g) = grads.get(p.var.as_tensor()) {
                    *b = (b.affine(self.momentum, 0.0)? + g)?;
                    p.var.set(&(p.var.as_tensor() - b.affine(self.lr, 0.0)?)?)?;
                }
            }
            Ok(())
        }
        fn params(&self) -> Vec<NamedVar> {
            self.params.clone()
        }
        fn group_count(&self) -> usize {
            1
        }
        fn hyperparameter_names(&self) -> Vec<&'static str> {
            vec!["lr"]
        }
        fn hyperparameter(&self, _: usize, _: &str) -> Result<f64> {
            Ok(self.lr)
        }
        fn set_hyperparameter(&mut self, _: usize, _: &str, value: f64) -> Result<()> {
            self.lr = value;
            Ok(())
        }
        fn state_dict(&self) -> Result<StateDict> {
            let mut sd = StateDict::new();
            for (p, b) in self.params.iter().zip(&self.buffers) {
                sd.insert(format!("{}.momentum_buffer", p.name), b.clone());
            }
            sd.insert("param_groups.0.lr", Tensor::new(self.lr, &Device::Cpu)?);
            Ok(sd)
        }
        fn load_state_dict(&mut self, state: &StateDict) -> Result<()> {
            for (p, b) in self.params.iter().zip(self.buffers.iter_mut()) {
                *b = state
                    .require(&format!("{}.momentum_buffer", p.name), p.var.dims())?
                    .clone();
            }
            self.lr = state
                .require("param_groups.0.lr", &[])?
                .to_scalar::<f64>()?;
            Ok(())
        }
    }

    fn grads_for(opt: &TestSgd, values: &[Vec<f64>]) -> GradStore {
        let mut grads = GradStore::default();
        for (p, v) in opt.params.iter().zip(values) {
            grads.insert(
                p.var.as_tensor(),
                Tensor::new(v.as_slice(), &Device::Cpu).unwrap(),
            );
        }
        grads
    }

    fn guard(policy: NonFinitePolicy) -> NonFiniteGuard {
        NonFiniteGuard::new(GuardConfig {
            policy,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn error_policy_names_the_parameter_and_leaves_it_alone() {
        let mut opt = TestSgd::new(&[vec![1.0, 2.0], vec![3.0]], 0.1);
        let grads = grads_for(&opt, &[vec![0.5, 0.5], vec![f64::NAN]]);
        let err = guard(NonFinitePolicy::Error)
            .step(Some(1.0), &grads, &mut opt)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "non-finite value: gradient of `layer1.weight` has 1 NaN and 0 infinite of 1 values"
        );
        assert_eq!(opt.values(), vec![1.0, 2.0, 3.0]);
        let err = guard(NonFinitePolicy::Error)
            .check(Some(f64::INFINITY), &grads, &opt.params())
            .unwrap_err();
        assert!(err.to_string().contains("loss is inf"), "{err}");
    }

    #[test]
    fn skip_counts_and_changes_nothing() {
        let mut opt = TestSgd::new(&[vec![1.0, 2.0]], 0.1);
        let mut g = guard(NonFinitePolicy::Skip);
        let good = grads_for(&opt, &[vec![1.0, 1.0]]);
        assert_eq!(
            g.step(Some(1.0), &good, &mut opt).unwrap(),
            Verdict::Proceed
        );
        let (values, state) = (opt.values(), opt.buffers[0].to_vec1::<f64>().unwrap());
        let bad = grads_for(&opt, &[vec![f64::NEG_INFINITY, 1.0]]);
        assert_eq!(g.step(Some(1.0), &bad, &mut opt).unwrap(), Verdict::Skipped);
        assert_eq!(
            g.step(Some(f64::NAN), &good, &mut opt).unwrap(),
            Verdict::Skipped
        );
        assert_eq!(g.skipped(), 2);
        assert_eq!(opt.values(), values);
        assert_eq!(opt.buffers[0].to_vec1::<f64>().unwrap(), state);
    }

    #[test]
    fn rollback_restores_last_good_state_and_halves_lr() {
        let mut opt = TestSgd::new(&[vec![1.0, 2.0]], 10.0);
        let mut g = NonFiniteGuard::new(GuardConfig {
            policy: NonFinitePolicy::Rollback,
            snapshot_interval: 2,
            ..Default::default()
        })
        .unwrap();
        let good = grads_for(&opt, &[vec![1.0, -1.0]]);
        g.step(None, &good, &mut opt).unwrap(); // snapshot before step 1 (good_steps = 0)
        g.step(None, &good, &mut opt).unwrap(); // no snapshot (good_steps = 1)
        let after_one = {
            let mut o = TestSgd::new(&[vec![1.0, 2.0]], 10.0);
            o.step(&grads_for(&o, &[vec![1.0, -1.0]])).unwrap();
            (o.values(), o.buffers[0].to_vec1::<f64>().unwrap())
        };
        g.step(None, &good, &mut opt).unwrap(); // snapshot after 2 good steps, then step 3
        assert_ne!(opt.values(), after_one.0);
        // A finite but huge gradient makes the step itself overflow (θ − 10·MAX = −∞): the step
        // is undone, then rolled back to the snapshot after two good steps.
        let huge = grads_for(&opt, &[vec![f64::MAX, 1.0]]);
        assert_eq!(g.step(None, &huge, &mut opt).unwrap(), Verdict::RolledBack);
        let mut reference = TestSgd::new(&[vec![1.0, 2.0]], 10.0);
        let reference_grads = grads_for(&reference, &[vec![1.0, -1.0]]);
        reference.step(&reference_grads).unwrap();
        reference.step(&reference_grads).unwrap();
        assert_eq!(opt.values(), reference.values());
        assert_eq!(
            opt.buffers[0].to_vec1::<f64>().unwrap(),
            reference.buffers[0].to_vec1::<f64>().unwrap()
        );
        assert_eq!(opt.lr, 5.0);
        assert_eq!(g.rollbacks(), 1);
        assert!(NonFiniteGuard::new(GuardConfig {
            lr_factor: 0.0,
            ..Default::default()
        })
        .is_err());
    }

    fn grad_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => -10.0f64..10.0,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(f64::MAX),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn no_non_finite_value_ever_reaches_the_parameters(
            steps in prop::collection::vec((prop::collection::vec(grad_value(), 3), -1.0f64..1.0), 1..12),
            policy in prop_oneof![Just(NonFinitePolicy::Error), Just(NonFinitePolicy::Skip), Just(NonFinitePolicy::Rollback)],
            lr in prop_oneof![Just(0.1), Just(1e300)],
        ) {
            let mut opt = TestSgd::new(&[vec![0.5, -0.5], vec![1.0]], lr);
            let mut g = guard(policy);
            for (values, loss) in steps {
                let grads = grads_for(&opt, &[values[..2].to_vec(), values[2..].to_vec()]);
                let outcome = g.step(Some(loss), &grads, &mut opt);
                prop_assert!(opt.values().iter().all(|v| v.is_finite()), "{:?}", opt.values());
                prop_assert!(opt.buffers.iter().all(|b| b.to_vec1::<f64>().unwrap().iter().all(|v| v.is_finite())));
                if outcome.is_err() {
                    prop_assert_eq!(policy, NonFinitePolicy::Error);
                    break;
                }
            }
        }
    }
}
