//! Orthogonal initialization (`torch.nn.init.orthogonal_`).
//!
//! Saxe et al. (2013), "Exact solutions to the nonlinear dynamics of learning in deep linear
//! neural networks".

use candle_core::{DType, Device, Tensor};
use gradus_core::plugin::initializer::Initializer;
use gradus_core::{Error, Result, SeededRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{filled, is_empty, non_negative};

/// A (semi-)orthogonal matrix scaled by `gain`, as PyTorch: view the weight as
/// `(rows, cols) = (shape[0], numel / shape[0])`, draw a standard normal matrix of that shape
/// (row-major, from the seeded generator), transpose it when `rows < cols`, take its QR
/// decomposition, multiply column `j` of `Q` by `sign(R[j][j])` so that the result is the unique
/// `Q` of a QR with positive diagonal (Haar-distributed), transpose back, and scale by `gain`.
/// Then `W^T W = gain^2 I` when `rows >= cols` and `W W^T = gain^2 I` otherwise.
///
/// The QR is Householder's, in f64 on the host. PyTorch's `sign(0) = 0` would zero a column in
/// the (probability-zero) event of an exactly zero `R[j][j]`; here that column keeps sign `+1`.
#[derive(Debug, Clone, Copy)]
pub struct Orthogonal {
    gain: f64,
}

/// Config of [`Orthogonal`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OrthogonalConfig {
    /// Scale factor. Default: `1.0` (torch.nn.init.orthogonal_).
    pub gain: f64,
}

impl Default for OrthogonalConfig {
    fn default() -> Self {
        OrthogonalConfig { gain: 1.0 }
    }
}

impl Orthogonal {
    /// An orthogonal initializer; `gain` finite and `>= 0`.
    pub fn new(config: OrthogonalConfig) -> Result<Self> {
        Ok(Orthogonal {
            gain: non_negative("orthogonal", "gain", config.gain)?,
        })
    }
}

/// The `Q` factor (`m x n`, column-major, `m >= n`) of the column-major matrix `a`, with its
/// columns signed so that `diag(R) >= 0`. `a` is overwritten.
fn householder_q(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    let mut reflectors: Vec<Option<Vec<f64>>> = Vec::with_capacity(n);
    let mut diag_sign = vec![1.0; n];
    for k in 0..n {
        let x = &a[k * m + k..(k + 1) * m];
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            reflectors.push(None);
            continue;
        }
        // Reflect x onto alpha * e1 with alpha of the opposite sign of x[0] (no cancellation).
        let alpha = if x[0] >= 0.0 { -norm } else { norm };
        let mut v = x.to_vec();
        v[0] -= alpha;
        let vnorm = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        v.iter_mut().for_each(|t| *t /= vnorm);
        for j in k..n {
            reflect(&v, &mut a[j * m + k..(j + 1) * m]);
        }
        diag_sign[k] = if alpha < 0.0 { -1.0 } else { 1.0 };
        reflectors.push(Some(v));
    }
    // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of the identity.
    let mut q = vec![0.0; m * n];
    for j in 0..n {
        q[j * m + j] = 1.0;
    }
    for (k, v) in reflectors.iter().enumerate().rev() {
        if let Some(v) = v {
            for j in 0..n {
                reflect(v, &mut q[j * m + k..(j + 1) * m]);
            }
        }
    }
    for (j, sign) in diag_sign.iter().enumerate() {
        q[j * m..(j + 1) * m].iter_mut().for_each(|t| *t *= sign);
    }
    q
}

/// `x <- (I - 2 v v^T) x` for a unit vector `v`.
fn reflect(v: &[f64], x: &mut [f64]) {
    let dot: f64 = v.iter().zip(x.iter()).map(|(a, b)| a * b).sum();
    x.iter_mut().zip(v).for_each(|(t, vi)| *t -= 2.0 * dot * vi);
}

impl Initializer for Orthogonal {
    fn init(
        &self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut SeededRng,
    ) -> Result<Tensor> {
        if shape.len() < 2 {
            return Err(Error::Unsupported(format!(
                "Only tensors with 2 or more dimensions are supported by orthogonal, got shape {shape:?}"
            )));
        }
        if is_empty(shape) {
            return filled(shape, 0.0, dtype, device);
        }
        let rows = shape[0];
        let cols = shape.iter().product::<usize>() / rows;
        let flat: Vec<f64> = (0..rows * cols).map(|_| rng.standard_normal()).collect();
        let (m, n) = (rows.max(cols), rows.min(cols));
        // The row-major (rows, cols) buffer is the column-major form of its transpose.
        let mut a = if rows < cols {
            flat
        } else {
            let mut a = vec![0.0; rows * cols];
            for i in 0..rows {
                for j in 0..cols {
                    a[j * rows + i] = flat[i * cols + j];
                }
            }
            a
        };
        let q = householder_q(&mut a, m, n);
        let mut out = vec![0.0; rows * cols];
        if rows < cols {
            // W = Q^T: row i of W is column i of Q, contiguous in column-major.
            out.copy_from_slice(&q);
        } else {
            for i in 0..rows {
                for j in 0..cols {
                    out[i * cols + j] = q[j * rows + i];
                }
            }
        }
        out.iter_mut().for_each(|t| *t *= self.gain);
        Ok(Tensor::from_vec(out, shape, device)?.to_dtype(dtype)?)
    }
}

fn build(config: &Value, path: &str) -> Result<Box<dyn Initializer>> {
    Ok(Box::new(Orthogonal::new(
        gradus_core::config::parse_config(config, path)?,
    )?))
}

gradus_core::register_initializer!(
    "orthogonal",
    "(semi-)orthogonal matrix times gain, QR sign-fixed by diag(R) (torch.nn.init.orthogonal_)",
    OrthogonalConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bits_f32, draw};
    use proptest::prelude::*;

    /// Max |G - gain^2 I| where G is the Gram matrix of the rows (or columns) of the smaller side.
    fn gram_error(w: &[f64], rows: usize, cols: usize, gain: f64) -> f64 {
        // Vectors of the smaller side: columns when rows >= cols, else rows.
        let (n, len) = (rows.min(cols), rows.max(cols));
        let at = |vec: usize, i: usize| {
            if rows >= cols {
                w[i * cols + vec]
            } else {
                w[vec * cols + i]
            }
        };
        let mut worst: f64 = 0.0;
        for p in 0..n {
            for q in 0..n {
                let dot: f64 = (0..len).map(|i| at(p, i) * at(q, i)).sum();
                let target = if p == q { gain * gain } else { 0.0 };
                worst = worst.max((dot - target).abs());
            }
        }
        worst
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn gram_matrix_is_gain_squared_identity(
            rows in 1usize..24, cols in 1usize..24, k in 1usize..3, gain in 0.1f64..3.0, seed in any::<u64>(),
        ) {
            let shape = if k == 1 { vec![rows, cols] } else { vec![rows, cols, k] };
            let o = Orthogonal::new(OrthogonalConfig { gain }).unwrap();
            let w = draw(&o, &shape, seed);
            let err = gram_error(&w, rows, cols * k, gain);
            prop_assert!(err < 1e-12 * gain * gain * 10.0, "error {}", err);
            prop_assert_eq!(bits_f32(&o, &shape, seed), bits_f32(&o, &shape, seed));
        }
    }

    #[test]
    fn diagonal_of_r_is_positive() {
        // For a square draw, Q^T A = R must have a positive diagonal after the sign fix.
        let (m, n) = (5, 5);
        let mut rng = SeededRng::new(11);
        let a: Vec<f64> = (0..m * n).map(|_| rng.standard_normal()).collect();
        let q = householder_q(&mut a.clone(), m, n);
        for j in 0..n {
            let r_jj: f64 = (0..m).map(|i| q[j * m + i] * a[j * m + i]).sum();
            assert!(r_jj > 0.0, "R[{j}][{j}] = {r_jj}");
        }
    }

    #[test]
    fn needs_two_dimensions() {
        let mut rng = SeededRng::new(0);
        let o = Orthogonal::new(OrthogonalConfig::default()).unwrap();
        let err = o
            .init(&[6], DType::F32, &Device::Cpu, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("2 or more dimensions"), "{err}");
        assert!(Orthogonal::new(OrthogonalConfig { gain: f64::NAN }).is_err());
    }
}
