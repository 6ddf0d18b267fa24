//! The conformance suite every registered optimizer must pass, built-in or plugin.
//!
//! It is public so that a plugin crate can run it on its own optimizers (see
//! `examples/custom-optimizer`). Each check returns `Err` with a message instead of panicking.
//! [`check_all`] runs every check on each path the optimizer has (the reference path, and the
//! fused path when its rule has a kernel), checks that the two paths agree, and steps bf16 and
//! f16 parameters on each ([`check_low_precision`]).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use gradus_core::registry::{entries, OptimizerKind};
use gradus_core::{Error, NamedVar, Result};
use serde_json::{json, Value};

use crate::engine::build::build_optimizer;
use crate::engine::path::UpdatePath;

fn fail(name: &str, message: String) -> Error {
    Error::Unsupported(format!("conformance of `{name}`: {message}"))
}

fn config(name: &str) -> Value {
    json!({"type": name})
}

/// Builds optimizer `name` over `params` from `config` and puts it on `path` (through the
/// `Optimizer` trait, so that plugins not built on `Rule` take part too).
fn build_on(
    config: &Value,
    path: UpdatePath,
    params: &[NamedVar],
) -> Result<Box<dyn gradus_core::Optimizer>> {
    let mut opt = build_optimizer(config, "optimizer", params)?;
    opt.set_update_path(path)?;
    Ok(opt)
}

fn vars(dtype: DType) -> Result<Vec<NamedVar>> {
    // host-side: the conformance suite runs where the fused kernels are, on the CPU.
    let dev = Device::Cpu;
    let w = Tensor::new(&[[0.5f64, -1.0, 2.0], [1.5, -0.25, 0.75]], &dev)?.to_dtype(dtype)?;
    let b = Tensor::new(&[0.3f64, -0.7], &dev)?.to_dtype(dtype)?;
    let s = Tensor::new(1.25f64, &dev)?.to_dtype(dtype)?;
    Ok(vec![
        NamedVar::new("layer.weight", Var::from_tensor(&w)?),
        NamedVar::new("layer.bias", Var::from_tensor(&b)?),
        NamedVar::new("scale", Var::from_tensor(&s)?),
    ])
}

/// Gradient of a fixed smooth loss Σ (θ − 0.1)³/3 + θ², evaluated at the current parameters.
fn grads_for(params: &[NamedVar]) -> Result<GradStore> {
    let mut loss: Option<Tensor> = None;
    for p in params {
        let t = p.var.as_tensor();
        let term = ((((t - 0.1)?.powf(3.0)? / 3.0)? + t.sqr()?)?).sum_all()?;
        loss = Some(match loss {
            None => term,
            Some(l) => (l + term)?,
        });
    }
    match loss {
        Some(l) => Ok(l.backward()?),
        None => Ok(GradStore::default()),
    }
}

fn values(params: &[NamedVar]) -> Result<Vec<Vec<u64>>> {
    params
        .iter()
        .map(|p| {
            let flat = p.var.as_tensor().flatten_all()?.to_dtype(DType::F64)?;
            Ok(flat
                .to_vec1::<f64>()?
                .into_iter()
                .map(f64::to_bits)
                .collect())
        })
        .collect()
}

/// Largest learning rate the defaults check steps with: its test loss is cubic (unbounded
/// below), so a reference default of 1 (schedule-free SGD's) diverges on it as the reference
/// itself does; a larger default learning rate is lowered to this one after building.
const DEFAULTS_MAX_LR: f64 = 0.1;

/// Builds from its defaults, keeps shapes and dtypes, and stays finite over 20 steps (with the
/// learning rate capped at [`DEFAULTS_MAX_LR`]).
pub fn check_defaults_shapes_finite(name: &str, path: UpdatePath) -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        let params = vars(dtype)?;
        let mut opt = build_on(&config(name), path, &params)?;
        if opt.learning_rate().is_ok_and(|lr| lr > DEFAULTS_MAX_LR) {
            opt.set_learning_rate(DEFAULTS_MAX_LR)?;
        }
        let shapes: Vec<Vec<usize>> = params.iter().map(|p| p.var.dims().to_vec()).collect();
        for _ in 0..20 {
            opt.step(&grads_for(&params)?)?;
        }
        for (p, shape) in params.iter().zip(&shapes) {
            if p.var.dims() != shape.as_slice() || p.var.dtype() != dtype {
                return Err(fail(name, format!("`{}` changed shape or dtype", p.name)));
            }
            let finite = p
                .var
                .as_tensor()
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            if finite.iter().any(|v| !v.is_finite()) {
                return Err(fail(name, format!("`{}` became non-finite", p.name)));
            }
        }
    }
    Ok(())
}

/// With bf16 and f16 parameters on `path` (`Reference`, or `Auto`: the fused kernels where
/// they are eligible, so a wrapper whose own sync has no low-precision kernel still runs), with
/// and without master weights: 20 steps keep shapes and dtypes and stay finite, the state dict
/// holds nothing narrower than f32 (the default `"state_dtype": "f32"`), and with master weights
/// every parameter has an f32 master copy (`…<param>.master_weight`) that moved (a bf16
/// parameter itself may not: a step below half its ulp rounds away, which is what the master
/// copy is for).
pub fn check_low_precision(name: &str, path: UpdatePath) -> Result<()> {
    for dtype in [DType::BF16, DType::F16] {
        for master in [false, true] {
            let params = vars(dtype)?;
            let start = values(&params)?;
            let config = json!({"type": name, "master_weights": master});
            let mut opt = build_on(&config, path, &params)?;
            if opt.learning_rate().is_ok_and(|lr| lr > DEFAULTS_MAX_LR) {
                opt.set_learning_rate(DEFAULTS_MAX_LR)?;
            }
            let case = format!("{dtype:?} (master weights {master}, {path} path)");
            for _ in 0..20 {
                opt.step(&grads_for(&params)?)?;
            }
            for p in &params {
                let t = p.var.as_tensor();
                let finite = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                if t.dtype() != dtype || finite.iter().any(|v| !v.is_finite()) {
                    return Err(fail(
                        name,
                        format!("`{}` changed dtype or became non-finite in {case}", p.name),
                    ));
                }
            }
            let state = opt.state_dict()?;
            for key in state.names() {
                let Some(t) = state.get(key) else { continue };
                if matches!(t.dtype(), DType::BF16 | DType::F16) {
                    return Err(fail(
                        name,
                        format!("state `{key}` is {:?}, not f32, in {case}", t.dtype()),
                    ));
                }
            }
            if master {
                for (p, start) in params.iter().zip(&start) {
                    let suffix = format!("{}.{}", p.name, crate::precision::MASTER_WEIGHT);
                    let Some(copy) = state.names().find(|k| k.ends_with(&suffix)) else {
                        return Err(fail(
                            name,
                            format!("no master copy of `{}` in {case}", p.name),
                        ));
                    };
                    let copy = state.require(copy, p.var.dims())?;
                    let moved = copy.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                    if moved.iter().map(|v| v.to_bits()).eq(start.iter().copied()) {
                        return Err(fail(
                            name,
                            format!("the master copy of `{}` did not move in {case}", p.name),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Minimizes `loss` from `start` with the best of several learning rates; returns the best
/// ratio final/initial loss.
fn best_ratio(
    name: &str,
    path: UpdatePath,
    start: &[f64],
    steps: usize,
    loss: fn(&Tensor) -> Result<Tensor>,
) -> Result<f64> {
    let mut best = f64::INFINITY;
    for lr in [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0] {
        // host-side: the conformance suite runs where the fused kernels are, on the CPU.
        let x = Var::new(start, &Device::Cpu)?;
        let params = vec![NamedVar::new("x", x.clone())];
        // Through the trait rather than the JSON, so that a wrapper without an `lr` field of
        // its own (Lookahead) sets its inner optimizer's.
        let mut opt = build_on(&config(name), path, &params)?;
        opt.set_learning_rate(lr)?;
        let initial = loss(x.as_tensor())?.to_scalar::<f64>()?;
        for _ in 0..steps {
            let l = loss(x.as_tensor())?;
            opt.step(&l.backward()?)?;
        }
        let last = loss(x.as_tensor())?.to_scalar::<f64>()?;
        if last.is_finite() {
            best = best.min(last / initial);
        }
    }
    Ok(best)
}

fn quadratic(x: &Tensor) -> Result<Tensor> {
    // Condition number 100: ½ Σ cᵢ xᵢ² with c = (1, 10, 100).
    let c = Tensor::new(&[1.0f64, 10.0, 100.0], x.device())?;
    Ok(((x.sqr()? * c)?.sum_all()? * 0.5)?)
}

fn rosenbrock(x: &Tensor) -> Result<Tensor> {
    let a = x.get(0)?;
    let b = x.get(1)?;
    let first = (1.0 - &a)?.sqr()?;
    let second = ((b - a.sqr()?)?.sqr()? * 100.0)?;
    Ok((first + second)?)
}

/// Reduces an ill-conditioned quadratic by 100x and Rosenbrock (from (−1, 1)) by 10x within
/// 1,000 (quadratic) or 3,000 (Rosenbrock) steps, for at least one learning rate of a fixed grid.
pub fn check_convergence(name: &str, path: UpdatePath) -> Result<()> {
    let q = best_ratio(name, path, &[1.0, 1.0, 1.0], 1000, quadratic)?;
    if q > 1e-2 {
        return Err(fail(
            name,
            format!("quadratic only reduced to {q:.3e} of its start"),
        ));
    }
    let r = best_ratio(name, path, &[-1.0, 1.0], 3000, rosenbrock)?;
    if r > 1e-1 {
        return Err(fail(
            name,
            format!("Rosenbrock only reduced to {r:.3e} of its start"),
        ));
    }
    Ok(())
}

/// Saves state after 5 steps to a safetensors file, loads it into a fresh optimizer over a copy
/// of the parameters, and checks that the next 3 steps are bit-identical.
pub fn check_state_round_trip(name: &str, path: UpdatePath, dir: &std::path::Path) -> Result<()> {
    let params = vars(DType::F64)?;
    let mut opt = build_on(&config(name), path, &params)?;
    for _ in 0..5 {
        opt.step(&grads_for(&params)?)?;
    }
    let file = dir.join(format!("{name}-{path}.safetensors"));
    opt.state_dict()?.save(&file)?;
    let copies = params
        .iter()
        .map(|p| {
            Ok(NamedVar::new(
                p.name.clone(),
                Var::from_tensor(&p.var.as_tensor().copy()?)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut resumed = build_on(&config(name), path, &copies)?;
    // host-side: the conformance suite runs where the fused kernels are, on the CPU.
    resumed.load_state_dict(&gradus_core::StateDict::load(&file, &Device::Cpu)?)?;
    for step in 0..3 {
        opt.step(&grads_for(&params)?)?;
        resumed.step(&grads_for(&copies)?)?;
        if values(&params)? != values(&copies)? {
            return Err(fail(
                name,
                format!("resumed run diverged at step {step} after loading ({path} path)"),
            ));
        }
    }
    Ok(())
}

/// Names of every registered optimizer.
pub fn registered() -> Result<Vec<&'static str>> {
    Ok(entries::<OptimizerKind>()?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

/// Whether optimizer `name` has a fused kernel (its config accepts `"path": "fused"`).
pub fn has_fused_path(name: &str) -> Result<bool> {
    let params = vars(DType::F64)?;
    let mut opt = build_optimizer(&config(name), "optimizer", &params)?;
    Ok(opt.set_update_path(UpdatePath::Fused).is_ok())
}

/// The fused and the reference path agree over 10 steps in f64 (parameters within 1e-10
/// relative) and export the same state-dict keys.
pub fn check_paths_agree(name: &str) -> Result<()> {
    let run = |path: UpdatePath| -> Result<(Vec<Vec<f64>>, Vec<String>)> {
        let params = vars(DType::F64)?;
        let mut opt = build_on(&config(name), path, &params)?;
        for _ in 0..10 {
            opt.step(&grads_for(&params)?)?;
        }
        let values = values(&params)?
            .into_iter()
            .map(|bits| bits.into_iter().map(f64::from_bits).collect())
            .collect();
        let keys = opt.state_dict()?.names().map(str::to_string).collect();
        Ok((values, keys))
    };
    let (fused, fused_keys) = run(UpdatePath::Fused)?;
    let (reference, reference_keys) = run(UpdatePath::Reference)?;
    if fused_keys != reference_keys {
        return Err(fail(
            name,
            format!("state keys differ: fused {fused_keys:?}, reference {reference_keys:?}"),
        ));
    }
    for (f, r) in fused.iter().flatten().zip(reference.iter().flatten()) {
        if (f - r).abs() > 1e-10 * f.abs().max(r.abs()).max(1e-3) {
            return Err(fail(
                name,
                format!("fused and reference paths disagree: {f} vs {r}"),
            ));
        }
    }
    Ok(())
}

/// Whether optimizer `name` is closure-driven (L-BFGS): its plain `step(&GradStore)` is an
/// [`Error::Unsupported`] that says it needs a closure, and leaves the parameters as they were.
/// Such optimizers are checked by their golden traces through their closure API instead.
pub fn needs_closure(name: &str) -> Result<bool> {
    let params = vars(DType::F64)?;
    let before = values(&params)?;
    let mut opt = build_optimizer(&config(name), "optimizer", &params)?;
    match opt.step(&grads_for(&params)?) {
        Err(Error::Unsupported(message)) if message.contains("closure") => {
            if values(&params)? != before {
                return Err(fail(name, "a refused step changed the parameters".into()));
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Runs every check on optimizer `name`, on each of its paths, and checks that they agree
/// (a closure-driven optimizer only has to refuse the plain step cleanly: [`needs_closure`]).
pub fn check_all(name: &str, dir: &std::path::Path) -> Result<()> {
    if needs_closure(name)? {
        return Ok(());
    }
    let fused = has_fused_path(name)?;
    let mut paths = vec![UpdatePath::Reference];
    if fused {
        paths.push(UpdatePath::Fused);
    }
    for path in paths {
        check_defaults_shapes_finite(name, path)?;
        check_convergence(name, path)?;
        check_state_round_trip(name, path, dir)?;
    }
    check_low_precision(name, UpdatePath::Reference)?;
    if fused {
        check_low_precision(name, UpdatePath::Auto)?;
    }
    if fused {
        check_paths_agree(name)?;
    }
    Ok(())
}
