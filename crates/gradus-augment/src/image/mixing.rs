//! Shared pieces of `mixup` and `cutmix`: the Beta draw, the partner of each sample and the
//! label mix.

use gradus_core::plugin::augment::ImageBatch;
use gradus_core::{Error, Result, SeededRng};
use rand_distr::{Beta, Distribution};

/// torchvision's check: `alpha > 0`.
pub(crate) fn check_alpha(alpha: f64) -> Result<Beta<f64>> {
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(Error::InvalidHyperparameter(format!(
            "Alpha should be greater than 0, got {alpha}"
        )));
    }
    Beta::new(alpha, alpha)
        .map_err(|e| Error::InvalidHyperparameter(format!("Beta({alpha}, {alpha}): {e}")))
}

/// `lambda ~ Beta(alpha, alpha)`.
pub(crate) fn draw_lambda(beta: &Beta<f64>, rng: &mut SeededRng) -> f64 {
    beta.sample(rng)
}

/// The partner of sample `i`: sample `i - 1` (cyclically), as torchvision's `roll(1, 0)`.
pub(crate) fn partner(i: usize, n: usize) -> usize {
    (i + n - 1) % n
}

/// The soft targets of the batch, or an error naming the op when it has none.
pub(crate) fn require_targets(batch: &ImageBatch, op: &str) -> Result<()> {
    if batch.targets.is_none() {
        return Err(Error::Unsupported(format!(
            "{op} mixes the labels too: the batch needs soft targets (ImageBatch::targets is None)"
        )));
    }
    Ok(())
}

/// `t_i <- lam_i t_i + (1 - lam_i) t_partner(i)` on the original targets.
pub(crate) fn mix_targets(batch: &mut ImageBatch, lams: &[f64]) {
    let (n, k) = (batch.n, batch.num_classes);
    let Some(targets) = batch.targets.as_mut() else {
        return;
    };
    let orig = targets.clone();
    for (i, &lam) in lams.iter().enumerate() {
        let j = partner(i, n);
        for c in 0..k {
            targets[i * k + c] =
                orig[j * k + c] * (1.0 - lam) as f32 + orig[i * k + c] * lam as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_must_be_positive_and_partners_roll_by_one() {
        assert!(check_alpha(0.0).is_err());
        assert!(check_alpha(0.2).is_ok());
        assert_eq!(
            (0..3).map(|i| partner(i, 3)).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
    }
}
