//! Batch plumbing shared by the image augmentations: shape checks, per-sample parallel
//! application, and splitting a batch into groups of samples that take different paths.
//!
//! Every op first draws all per-sample parameters from the caller's generator in sample order,
//! then runs the pixel work on the samples in parallel; the result does not depend on the
//! number of threads. Ops that need many draws per sample (noise) draw one seed per sample and
//! expand it inside the parallel part.

use gradus_core::plugin::augment::ImageBatch;
use gradus_core::{Error, Result, SeededRng};
use rand::RngCore;
use rayon::prelude::*;

use crate::functional::Chw;

/// Checks that the pixel and target buffers agree with the declared shape; the image shape.
pub(crate) fn dims_of(batch: &ImageBatch, op: &str) -> Result<Chw> {
    let dims = Chw::new(batch.c, batch.h, batch.w);
    let expected = batch.n * dims.len();
    if batch.pixels.len() != expected {
        return Err(Error::ShapeMismatch {
            context: format!("{op}: pixels of the (n, c, h, w) batch"),
            expected: vec![batch.n, batch.c, batch.h, batch.w],
            actual: vec![batch.pixels.len()],
        });
    }
    if let Some(t) = &batch.targets {
        if t.len() != batch.n * batch.num_classes {
            return Err(Error::ShapeMismatch {
                context: format!("{op}: targets of the batch"),
                expected: vec![batch.n, batch.num_classes],
                actual: vec![t.len()],
            });
        }
    }
    Ok(dims)
}

/// An independent generator for one sample, seeded from the caller's stream.
pub(crate) fn sample_rng(rng: &mut SeededRng) -> SeededRng {
    SeededRng::new(rng.next_u64())
}

/// Runs `f(param, sample)` in place on every sample, in parallel.
pub(crate) fn for_each_sample<P: Sync>(
    batch: &mut ImageBatch,
    dims: Chw,
    params: &[P],
    f: impl Fn(&P, &mut [f32]) -> Result<()> + Sync + Send,
) -> Result<()> {
    if dims.is_empty() {
        return Ok(());
    }
    batch
        .pixels
        .par_chunks_mut(dims.len())
        .zip(params.par_iter())
        .try_for_each(|(sample, p)| f(p, sample))
}

/// Runs `f(param, src, dst)` for every sample into a new buffer of images of shape `out`,
/// in parallel, and makes it the batch's pixels.
pub(crate) fn map_samples<P: Sync>(
    batch: &mut ImageBatch,
    dims: Chw,
    out: Chw,
    params: &[P],
    f: impl Fn(&P, &[f32], &mut [f32]) -> Result<()> + Sync + Send,
) -> Result<()> {
    let mut dst = vec![0.0f32; batch.n * out.len()];
    if !dims.is_empty() && !out.is_empty() {
        dst.par_chunks_mut(out.len())
            .zip(batch.pixels.par_chunks(dims.len()))
            .zip(params.par_iter())
            .try_for_each(|((d, s), p)| f(p, s, d))?;
    }
    batch.pixels = dst;
    (batch.c, batch.h, batch.w) = (out.c, out.h, out.w);
    Ok(())
}

/// The samples `indices` of `batch` (with their targets) as a batch of their own.
pub(crate) fn gather(batch: &ImageBatch, dims: Chw, indices: &[usize]) -> ImageBatch {
    let len = dims.len();
    let k = batch.num_classes;
    let mut pixels = Vec::with_capacity(indices.len() * len);
    for &i in indices {
        pixels.extend_from_slice(&batch.pixels[i * len..(i + 1) * len]);
    }
    let targets = batch.targets.as_ref().map(|t| {
        let mut out = Vec::with_capacity(indices.len() * k);
        for &i in indices {
            out.extend_from_slice(&t[i * k..(i + 1) * k]);
        }
        out
    });
    ImageBatch {
        pixels,
        n: indices.len(),
        c: batch.c,
        h: batch.h,
        w: batch.w,
        targets,
        num_classes: k,
    }
}

/// Applies `run(group, sub_batch)` to each group of sample indices (in the order given) and
/// puts the samples back in their places. Groups may change the image size only if they all
/// end with the same size; samples in no group are kept as they are.
pub(crate) fn apply_grouped(
    batch: &mut ImageBatch,
    op: &str,
    groups: &[Vec<usize>],
    mut run: impl FnMut(usize, &mut ImageBatch) -> Result<()>,
) -> Result<()> {
    let dims = dims_of(batch, op)?;
    let n = batch.n;
    // A group holding every sample runs on the batch itself: no copies, any size change.
    if let Some(g) = groups.iter().position(|g| g.len() == n) {
        return run(g, batch);
    }
    let mut owner = vec![usize::MAX; n];
    let mut parts = Vec::with_capacity(groups.len());
    for (g, indices) in groups.iter().enumerate() {
        if indices.is_empty() {
            continue;
        }
        for &i in indices {
            owner[i] = parts.len();
        }
        let mut sub = gather(batch, dims, indices);
        run(g, &mut sub)?;
        dims_of(&sub, op)?;
        parts.push(sub);
    }
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let out = Chw::new(first.c, first.h, first.w);
    let same = |c: usize, h: usize, w: usize| Chw::new(c, h, w) == out;
    let untouched = owner.contains(&usize::MAX);
    for (c, h, w) in parts
        .iter()
        .map(|p| (p.c, p.h, p.w))
        .chain(untouched.then_some((dims.c, dims.h, dims.w)))
    {
        if !same(c, h, w) {
            return Err(Error::ShapeMismatch {
                context: format!(
                    "{op}: samples that take different transforms must end with one image size"
                ),
                expected: vec![out.c, out.h, out.w],
                actual: vec![c, h, w],
            });
        }
    }
    let mut next = vec![0usize; parts.len()];
    let mut pixels = Vec::with_capacity(n * out.len());
    let k = batch.num_classes;
    let mut targets = batch.targets.as_ref().map(|_| Vec::with_capacity(n * k));
    for (i, &o) in owner.iter().enumerate() {
        let (src_pixels, src_targets, j) = if o == usize::MAX {
            (&batch.pixels, batch.targets.as_ref(), i)
        } else {
            let j = next[o];
            next[o] += 1;
            (&parts[o].pixels, parts[o].targets.as_ref(), j)
        };
        pixels.extend_from_slice(&src_pixels[j * out.len()..(j + 1) * out.len()]);
        if let (Some(t), Some(src)) = (targets.as_mut(), src_targets) {
            t.extend_from_slice(&src[j * k..(j + 1) * k]);
        }
    }
    batch.pixels = pixels;
    batch.targets = targets;
    (batch.c, batch.h, batch.w) = (out.c, out.h, out.w);
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Batches for the tests of the image ops.
    use super::*;

    /// A batch of `n` random images in `[0, 1)` with uniform soft targets over 4 classes.
    pub(crate) fn random_batch(n: usize, c: usize, h: usize, w: usize, seed: u64) -> ImageBatch {
        let mut rng = SeededRng::new(seed);
        let pixels = (0..n * c * h * w).map(|_| rng.unit_f64() as f32).collect();
        ImageBatch {
            pixels,
            n,
            c,
            h,
            w,
            targets: Some((0..n).flat_map(|i| one_hot(i % 4, 4)).collect()),
            num_classes: 4,
        }
    }

    /// The one-hot row of `class` among `k`.
    pub(crate) fn one_hot(class: usize, k: usize) -> Vec<f32> {
        (0..k).map(|j| if j == class { 1.0 } else { 0.0 }).collect()
    }

    /// A batch whose `n` samples are all the same random image.
    pub(crate) fn identical_batch(n: usize, c: usize, h: usize, w: usize) -> ImageBatch {
        let one = random_batch(1, c, h, w, 99);
        let mut batch = random_batch(n, c, h, w, 0);
        for i in 0..n {
            batch.pixels[i * c * h * w..(i + 1) * c * h * w].copy_from_slice(&one.pixels);
        }
        batch
    }

    /// Sample `i` of a batch.
    pub(crate) fn sample(batch: &ImageBatch, i: usize) -> &[f32] {
        let len = batch.c * batch.h * batch.w;
        &batch.pixels[i * len..(i + 1) * len]
    }
}

#[cfg(test)]
mod tests {
    use super::testing::random_batch;
    use super::*;

    #[test]
    fn mismatched_buffers_are_shape_errors() {
        let mut b = random_batch(2, 1, 3, 3, 0);
        b.pixels.pop();
        assert!(matches!(dims_of(&b, "t"), Err(Error::ShapeMismatch { .. })));
        let mut b = random_batch(2, 1, 3, 3, 0);
        b.targets = Some(vec![0.0; 3]);
        assert!(matches!(dims_of(&b, "t"), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn grouped_application_puts_samples_back_in_place() {
        let mut b = random_batch(5, 1, 2, 2, 1);
        let orig = b.clone();
        let groups = vec![vec![1, 3], vec![4]];
        apply_grouped(&mut b, "t", &groups, |g, sub| {
            sub.pixels
                .iter_mut()
                .for_each(|v| *v += 10.0 * (g + 1) as f32);
            Ok(())
        })
        .unwrap();
        for i in 0..5 {
            let add = match i {
                1 | 3 => 10.0,
                4 => 20.0,
                _ => 0.0,
            };
            for j in 0..4 {
                assert_eq!(b.pixels[i * 4 + j], orig.pixels[i * 4 + j] + add);
            }
        }
        assert_eq!(b.targets, orig.targets);
        let err = apply_grouped(&mut b, "t", &[vec![0]], |_, sub| {
            sub.h = 1;
            sub.pixels.truncate(2);
            Ok(())
        });
        assert!(matches!(err, Err(Error::ShapeMismatch { .. })));
    }
}
