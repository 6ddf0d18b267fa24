//! Hyperparameter checks with PyTorch's wording ("Invalid learning rate: -1").

use gradus_core::{Error, Result};

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter(message()))
    }
}

/// `lr >= 0`.
pub fn lr(lr: f64) -> Result<()> {
    check(lr >= 0.0, || format!("Invalid learning rate: {lr}"))
}

/// `eps >= 0`.
pub fn eps(eps: f64) -> Result<()> {
    check(eps >= 0.0, || format!("Invalid epsilon value: {eps}"))
}

/// `weight_decay >= 0`.
pub fn weight_decay(wd: f64) -> Result<()> {
    check(wd >= 0.0, || format!("Invalid weight_decay value: {wd}"))
}

/// `momentum >= 0`.
pub fn momentum(momentum: f64) -> Result<()> {
    check(momentum >= 0.0, || {
        format!("Invalid momentum value: {momentum}")
    })
}

/// `0 <= beta < 1` for each of `betas`.
pub fn betas(betas: (f64, f64)) -> Result<()> {
    for (index, beta) in [betas.0, betas.1].into_iter().enumerate() {
        check((0.0..1.0).contains(&beta), || {
            format!("Invalid beta parameter at index {index}: {beta}")
        })?;
    }
    Ok(())
}

/// `low <= value <= high` for a named hyperparameter, worded as PyTorch ("Invalid rho value: 2").
pub fn in_range(name: &str, value: f64, low: f64, high: f64) -> Result<()> {
    check((low..=high).contains(&value), || {
        format!("Invalid {name} value: {value}")
    })
}

/// `value >= 0` for a named hyperparameter.
pub fn non_negative(name: &str, value: f64) -> Result<()> {
    check(value >= 0.0, || format!("Invalid {name} value: {value}"))
}
