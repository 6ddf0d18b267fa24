//! L-BFGS (torch.optim.LBFGS, PyTorch 2.15), a closure-driven quasi-Newton method.
//!
//! Limited-memory BFGS (Nocedal, "Updating quasi-Newton matrices with limited storage", Math.
//! Comp. 1980; Liu & Nocedal 1989) over the flattened parameters `x`, with `g = ∇f(x)`:
//!
//! ```text
//! per outer step: evaluate f, g; stop if max|g| <= tolerance_grad
//! up to max_iter inner iterations:
//!   first ever:  d = −g, H_diag = 1
//!   else:        y = g − g_prev, s = t·d; if y·s > 1e-10 push (y, s, ρ = 1/(y·s)) (keep
//!                history_size), H_diag = y·s / y·y; d = −H g by the two-loop recursion
//!   t = min(1, 1/Σ|g|)·lr on the very first iteration, else lr; stop if g·d > −tolerance_change
//!   line_search_fn null:  x ← x + t·d, re-evaluate (not after the last iteration)
//!   "strong_wolfe":       t from torch's _strong_wolfe (cubic interpolation, c1 1e-4, c2 0.9,
//!                         at most max_eval − evaluations so far), x ← x + t·d
//!   stop on max_iter, max_eval evaluations, max|g| <= tolerance_grad, max|t·d| <=
//!   tolerance_change or |f − f_prev| < tolerance_change
//! ```
//!
//! The search runs in f64 on host vectors whatever the parameters' dtype (torch runs it in the
//! parameters' dtype); parameters are written back in their own dtype and device. Defaults
//! (torch.optim.LBFGS): `lr` 1, `max_iter` 20, `max_eval` `max_iter·5/4`, `tolerance_grad`
//! 1e-7, `tolerance_change` 1e-9, `history_size` 100, `line_search_fn` null. L-BFGS needs a
//! closure: [`Lbfgs::step_with_closure`] calls it for `(loss, gradients)` at the current
//! parameters; a plain `step(&GradStore)` is an error (the runner needs full batching).
//! torch's `maximize` is not implemented (parsing it is an error naming it).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use gradus_core::config::{join_path, parse_config};
use gradus_core::{Error, NamedVar, Optimizer, Result, StateDict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// L-BFGS's config: torch.optim.LBFGS's keyword names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
// Not a grouped optimizer: no `groups`, no `path` in `gradus schema` (see its `build`).
#[schemars(extend("x-grouped" = false))]
pub struct LbfgsConfig {
    /// Step length factor, `>= 0`. Default: `1` (torch.optim.LBFGS).
    pub lr: f64,
    /// Inner iterations per outer step, `>= 1`. Default: `20`.
    pub max_iter: usize,
    /// Function evaluations per outer step; `null` = `max_iter * 5 / 4`. Default: `null`.
    pub max_eval: Option<usize>,
    /// First-order optimality tolerance on `max|g|`. Default: `1e-7`.
    pub tolerance_grad: f64,
    /// Tolerance on function value / parameter changes. Default: `1e-9`.
    pub tolerance_change: f64,
    /// Number of correction pairs kept, `>= 1`. Default: `100`.
    pub history_size: usize,
    /// `null` (fixed step `lr`) or `"strong_wolfe"`. Default: `null`.
    pub line_search_fn: Option<String>,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search_fn: None,
        }
    }
}

impl LbfgsConfig {
    /// Checks ranges (torch's wording for `lr`) and `line_search_fn`.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidHyperparameter(m));
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return bad(format!("Invalid learning rate: {}", self.lr));
        }
        if self.max_iter == 0 || self.history_size == 0 || self.max_eval == Some(0) {
            return bad("max_iter, max_eval and history_size must be at least 1".into());
        }
        match self.line_search_fn.as_deref() {
            None | Some("strong_wolfe") => Ok(()),
            Some(other) => bad(format!(
                "only 'strong_wolfe' is supported as line_search_fn, got '{other}'"
            )),
        }
    }

    fn max_eval(&self) -> usize {
        self.max_eval.unwrap_or(self.max_iter * 5 / 4)
    }
}

/// The state torch keeps (its names): carried across outer steps.
#[derive(Debug, Clone, Default)]
struct State {
    d: Vec<f64>,
    t: f64,
    old_dirs: Vec<Vec<f64>>,
    old_stps: Vec<Vec<f64>>,
    ro: Vec<f64>,
    h_diag: f64,
    prev_flat_grad: Option<Vec<f64>>,
    prev_loss: f64,
    n_iter: u64,
    func_evals: u64,
}

/// L-BFGS over a fixed list of parameters; see the module docs.
pub struct Lbfgs {
    params: Vec<NamedVar>,
    config: LbfgsConfig,
    state: State,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| {
        if v.abs() > m || v.is_nan() {
            v.abs()
        } else {
            m
        }
    })
}

/// torch's `_cubic_interpolate` (two points, no bounds given = their interval).
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

impl Lbfgs {
    /// L-BFGS over `params` with `config` (validated).
    pub fn new(params: Vec<NamedVar>, config: LbfgsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Lbfgs {
            params,
            config,
            state: State::default(),
        })
    }

    /// Inner iterations run so far (torch's `n_iter`).
    pub fn n_iter(&self) -> u64 {
        self.state.n_iter
    }

    /// Closure evaluations so far (torch's `func_evals`).
    pub fn func_evals(&self) -> u64 {
        self.state.func_evals
    }

    fn flat_params(&self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for p in &self.params {
            let t = p.var.as_tensor().flatten_all()?.to_dtype(DType::F64)?;
            out.extend(t.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    fn set_flat(&self, flat: &[f64]) -> Result<()> {
        let mut offset = 0;
        for p in &self.params {
            let t = p.var.as_tensor();
            let n = t.elem_count();
            let v = Tensor::from_slice(&flat[offset..offset + n], t.shape(), t.device())?;
            p.var.set(&v.to_dtype(t.dtype())?)?;
            offset += n;
        }
        Ok(())
    }

    fn flat_grad(&self, grads: &GradStore) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for p in &self.params {
            let t = p.var.as_tensor();
            match grads.get(t) {
                Some(g) if g.dims() != t.dims() => {
                    return Err(Error::ShapeMismatch {
                        context: format!("lbfgs gradient of `{}`", p.name),
                        expected: t.dims().to_vec(),
                        actual: g.dims().to_vec(),
                    })
                }
                Some(g) => out.extend(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?),
                None => out.extend(std::iter::repeat_n(0.0, t.elem_count())),
            }
        }
        Ok(out)
    }

    fn evaluate<F>(&self, closure: &mut F) -> Result<(f64, Vec<f64>)>
    where
        F: FnMut() -> Result<(f64, GradStore)>,
    {
        let (loss, grads) = closure()?;
        Ok((loss, self.flat_grad(&grads)?))
    }

    /// f and g at `x + t·d` (the parameters are put back to `x` afterwards).
    fn directional<F>(
        &self,
        closure: &mut F,
        x: &[f64],
        t: f64,
        d: &[f64],
    ) -> Result<(f64, Vec<f64>)>
    where
        F: FnMut() -> Result<(f64, GradStore)>,
    {
        let moved: Vec<f64> = x.iter().zip(d).map(|(xi, di)| xi + t * di).collect();
        self.set_flat(&moved)?;
        let out = self.evaluate(closure);
        self.set_flat(x)?;
        out
    }

    /// One outer step (torch's `step(closure)`): returns the loss of the first evaluation.
    pub fn step_with_closure<F>(&mut self, mut closure: F) -> Result<f64>
    where
        F: FnMut() -> Result<(f64, GradStore)>,
    {
        let c = self.config.clone();
        let max_eval = c.max_eval();
        let (orig_loss, mut flat_grad) = self.evaluate(&mut closure)?;
        let mut loss = orig_loss;
        let mut current_evals = 1usize;
        self.state.func_evals += 1;
        if max_abs(&flat_grad) <= c.tolerance_grad {
            return Ok(orig_loss);
        }
        let mut x = self.flat_params()?;
        let mut st = std::mem::take(&mut self.state);
        let mut n_iter = 0;
        while n_iter < c.max_iter {
            n_iter += 1;
            st.n_iter += 1;
            if st.n_iter == 1 {
                st.d = flat_grad.iter().map(|g| -g).collect();
                st.old_dirs.clear();
                st.old_stps.clear();
                st.ro.clear();
                st.h_diag = 1.0;
            } else {
                let prev = st
                    .prev_flat_grad
                    .as_ref()
                    .expect("set after the first iteration");
                let y: Vec<f64> = flat_grad.iter().zip(prev).map(|(a, b)| a - b).collect();
                let s: Vec<f64> = st.d.iter().map(|v| v * st.t).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if st.old_dirs.len() == c.history_size {
                        st.old_dirs.remove(0);
                        st.old_stps.remove(0);
                        st.ro.remove(0);
                    }
                    st.h_diag = ys / dot(&y, &y);
                    st.old_dirs.push(y);
                    st.old_stps.push(s);
                    st.ro.push(1.0 / ys);
                }
                let num_old = st.old_dirs.len();
                let mut al = vec![0.0; num_old];
                let mut q: Vec<f64> = flat_grad.iter().map(|g| -g).collect();
                for i in (0..num_old).rev() {
                    al[i] = dot(&st.old_stps[i], &q) * st.ro[i];
                    for (qj, yj) in q.iter_mut().zip(&st.old_dirs[i]) {
                        *qj += -al[i] * yj;
                    }
                }
                let mut r: Vec<f64> = q.iter().map(|v| v * st.h_diag).collect();
                for (i, al_i) in al.iter().enumerate() {
                    let be_i = dot(&st.old_dirs[i], &r) * st.ro[i];
                    for (rj, sj) in r.iter_mut().zip(&st.old_stps[i]) {
                        *rj += (al_i - be_i) * sj;
                    }
                }
                st.d = r;
            }
            st.prev_flat_grad = Some(flat_grad.clone());
            st.prev_loss = loss;
            st.t = if st.n_iter == 1 {
                (1.0f64).min(1.0 / flat_grad.iter().map(|g| g.abs()).sum::<f64>()) * c.lr
            } else {
                c.lr
            };
            let gtd = dot(&flat_grad, &st.d);
            if gtd > -c.tolerance_change {
                break;
            }
            let mut ls_func_evals = 0;
            let mut opt_cond = false;
            if c.line_search_fn.is_some() {
                let (f_new, g_new, t, evals) = self.strong_wolfe(
                    &mut closure,
                    &x,
                    st.t,
                    &st.d,
                    (loss, &flat_grad, gtd),
                    c.tolerance_change,
                    max_eval.saturating_sub(current_evals),
                )?;
                loss = f_new;
                flat_grad = g_new;
                st.t = t;
                ls_func_evals = evals;
                x = x.iter().zip(&st.d).map(|(xi, di)| xi + t * di).collect();
                self.set_flat(&x)?;
                opt_cond = max_abs(&flat_grad) <= c.tolerance_grad;
            } else {
                x = x.iter().zip(&st.d).map(|(xi, di)| xi + st.t * di).collect();
                self.set_flat(&x)?;
                if n_iter != c.max_iter {
                    let (l, g) = self.evaluate(&mut closure)?;
                    loss = l;
                    flat_grad = g;
                    opt_cond = max_abs(&flat_grad) <= c.tolerance_grad;
                    ls_func_evals = 1;
                }
            }
            current_evals += ls_func_evals;
            st.func_evals += ls_func_evals as u64;
            if n_iter == c.max_iter
                || current_evals >= max_eval
                || opt_cond
                || st.d.iter().map(|v| (v * st.t).abs()).fold(0.0, f64::max) <= c.tolerance_change
                || (loss - st.prev_loss).abs() < c.tolerance_change
            {
                break;
            }
        }
        self.state = st;
        Ok(orig_loss)
    }

    /// torch's `_strong_wolfe` (c1 1e-4, c2 0.9): `(f, g, t, evaluations)`.
    #[allow(clippy::too_many_arguments)]
    fn strong_wolfe<F>(
        &self,
        closure: &mut F,
        x: &[f64],
        mut t: f64,
        d: &[f64],
        (f, g, gtd): (f64, &[f64], f64),
        tolerance_change: f64,
        max_ls: usize,
    ) -> Result<(f64, Vec<f64>, f64, usize)>
    where
        F: FnMut() -> Result<(f64, GradStore)>,
    {
        let (c1, c2) = (1e-4, 0.9);
        let d_norm = max_abs(d);
        let (mut f_new, mut g_new) = self.directional(closure, x, t, d)?;
        let mut evals = 1;
        let mut gtd_new = dot(&g_new, d);
        let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (0.0, f, g.to_vec(), gtd);
        let mut done = false;
        let mut ls_iter = 0;
        let mut br: Vec<f64> = Vec::new();
        let mut br_f: Vec<f64> = Vec::new();
        let mut br_g: Vec<Vec<f64>> = Vec::new();
        let mut br_gtd: Vec<f64> = Vec::new();
        while ls_iter < max_ls {
            if f_new > f + c1 * t * gtd || (ls_iter > 1 && f_new >= f_prev) {
                br = vec![t_prev, t];
                br_f = vec![f_prev, f_new];
                br_g = vec![g_prev.clone(), g_new.clone()];
                br_gtd = vec![gtd_prev, gtd_new];
                break;
            }
            if gtd_new.abs() <= -c2 * gtd {
                br = vec![t];
                br_f = vec![f_new];
                br_g = vec![g_new.clone()];
                done = true;
                break;
            }
            if gtd_new >= 0.0 {
                br = vec![t_prev, t];
                br_f = vec![f_prev, f_new];
                br_g = vec![g_prev.clone(), g_new.clone()];
                br_gtd = vec![gtd_prev, gtd_new];
                break;
            }
            let min_step = t + 0.01 * (t - t_prev);
            let max_step = t * 10.0;
            let tmp = t;
            t = cubic_interpolate(
                (t_prev, f_prev, gtd_prev),
                (t, f_new, gtd_new),
                Some((min_step, max_step)),
            );
            t_prev = tmp;
            f_prev = f_new;
            g_prev = g_new.clone();
            gtd_prev = gtd_new;
            (f_new, g_new) = self.directional(closure, x, t, d)?;
            evals += 1;
            gtd_new = dot(&g_new, d);
            ls_iter += 1;
        }
        if ls_iter == max_ls {
            br = vec![0.0, t];
            br_f = vec![f, f_new];
            br_g = vec![g.to_vec(), g_new.clone()];
        }
        let mut insuf_progress = false;
        let (mut low, mut high) = if br_f[0] <= br_f[br_f.len() - 1] {
            (0, 1)
        } else {
            (1, 0)
        };
        while !done && ls_iter < max_ls {
            if (br[1] - br[0]).abs() * d_norm < tolerance_change {
                break;
            }
            t = cubic_interpolate(
                (br[0], br_f[0], br_gtd[0]),
                (br[1], br_f[1], br_gtd[1]),
                None,
            );
            let (bmax, bmin) = (br[0].max(br[1]), br[0].min(br[1]));
            let eps = 0.1 * (bmax - bmin);
            if (bmax - t).min(t - bmin) < eps {
                if insuf_progress || t >= bmax || t <= bmin {
                    t = if (t - bmax).abs() < (t - bmin).abs() {
                        bmax - eps
                    } else {
                        bmin + eps
                    };
                    insuf_progress = false;
                } else {
                    insuf_progress = true;
                }
            } else {
                insuf_progress = false;
            }
            (f_new, g_new) = self.directional(closure, x, t, d)?;
            evals += 1;
            gtd_new = dot(&g_new, d);
            ls_iter += 1;
            if f_new > f + c1 * t * gtd || f_new >= br_f[low] {
                br[high] = t;
                br_f[high] = f_new;
                br_g[high] = g_new.clone();
                br_gtd[high] = gtd_new;
                (low, high) = if br_f[0] <= br_f[1] { (0, 1) } else { (1, 0) };
            } else {
                if gtd_new.abs() <= -c2 * gtd {
                    done = true;
                } else if gtd_new * (br[high] - br[low]) >= 0.0 {
                    br[high] = br[low];
                    br_f[high] = br_f[low];
                    br_g[high] = br_g[low].clone();
                    br_gtd[high] = br_gtd[low];
                }
                br[low] = t;
                br_f[low] = f_new;
                br_g[low] = g_new.clone();
                br_gtd[low] = gtd_new;
            }
        }
        Ok((br_f[low], br_g[low].clone(), br[low], evals))
    }
}

/// The error of a plain `step(&GradStore)`.
const NEEDS_CLOSURE: &str = "lbfgs needs a closure (it evaluates the loss several times per step): \
     call Lbfgs::step_with_closure, or in a pipeline use full batching (\"batching\": {\"type\": \"full\"})";

impl Lbfgs {
    fn numel(&self) -> usize {
        self.params
            .iter()
            .map(|p| p.var.as_tensor().elem_count())
            .sum()
    }
}

fn rows(list: &[Vec<f64>], n: usize) -> Result<Tensor> {
    let flat: Vec<f64> = list.iter().flatten().copied().collect();
    // host-side: L-BFGS keeps its history as host f64 vectors (the gradients are read back each evaluation).
    Ok(Tensor::from_vec(flat, (list.len(), n), &Device::Cpu)?)
}

fn scalar(sd: &StateDict, name: &str) -> Result<f64> {
    Ok(sd
        .require(name, &[])?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

fn vector(sd: &StateDict, name: &str, n: usize) -> Result<Vec<f64>> {
    Ok(sd
        .require(name, &[n])?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?)
}

impl Optimizer for Lbfgs {
    fn algorithm(&self) -> &str {
        "lbfgs"
    }

    /// Always an error: L-BFGS needs [`Lbfgs::step_with_closure`].
    fn step(&mut self, _grads: &GradStore) -> Result<()> {
        Err(Error::Unsupported(NEEDS_CLOSURE.into()))
    }

    fn params(&self) -> Vec<NamedVar> {
        self.params.clone()
    }

    fn needs_closure(&self) -> bool {
        true
    }

    /// [`Lbfgs::step_with_closure`], through the trait (the runner's full batching).
    fn step_with_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<(f64, GradStore)>,
    ) -> Result<f64> {
        Lbfgs::step_with_closure(self, closure)
    }

    fn group_count(&self) -> usize {
        1
    }

    fn hyperparameter_names(&self) -> Vec<&'static str> {
        vec!["lr"]
    }

    fn hyperparameter(&self, group: usize, name: &str) -> Result<f64> {
        match (group, name) {
            (0, "lr") => Ok(self.config.lr),
            _ => Err(Error::Unsupported(format!(
                "lbfgs has one group and the hyperparameter `lr`, not group {group} `{name}`"
            ))),
        }
    }

    fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) -> Result<()> {
        self.hyperparameter(group, name)?;
        if !(value >= 0.0 && value.is_finite()) {
            return Err(Error::InvalidHyperparameter(format!(
                "Invalid learning rate: {value}"
            )));
        }
        self.config.lr = value;
        Ok(())
    }

    /// torch's state names: `d`, `t`, `old_dirs` and `old_stps` (`[k, n]`), `ro` (`[k]`),
    /// `H_diag`, `prev_flat_grad` (once set), `prev_loss`, `n_iter`, `func_evals` (f64), and
    /// `param_groups.0.lr`.
    fn state_dict(&self) -> Result<StateDict> {
        // host-side: L-BFGS keeps its history as host f64 vectors (the gradients are read back each evaluation).
        let (st, n, cpu) = (&self.state, self.numel(), &Device::Cpu);
        let mut sd = StateDict::new();
        let d = if st.d.is_empty() {
            vec![0.0; n]
        } else {
            st.d.clone()
        };
        sd.insert("d", Tensor::from_vec(d, n, cpu)?);
        sd.insert("t", Tensor::new(st.t, cpu)?);
        sd.insert("old_dirs", rows(&st.old_dirs, n)?);
        sd.insert("old_stps", rows(&st.old_stps, n)?);
        sd.insert("ro", Tensor::from_vec(st.ro.clone(), st.ro.len(), cpu)?);
        sd.insert("H_diag", Tensor::new(st.h_diag, cpu)?);
        if let Some(g) = &st.prev_flat_grad {
            sd.insert("prev_flat_grad", Tensor::from_vec(g.clone(), n, cpu)?);
        }
        sd.insert("prev_loss", Tensor::new(st.prev_loss, cpu)?);
        sd.insert("n_iter", Tensor::new(st.n_iter as f64, cpu)?);
        sd.insert("func_evals", Tensor::new(st.func_evals as f64, cpu)?);
        sd.insert("param_groups.0.lr", Tensor::new(self.config.lr, cpu)?);
        Ok(sd)
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let n = self.numel();
        let k = sd
            .require("ro", &[sd.get("ro").map_or(0, |t| t.elem_count())])?
            .elem_count();
        let split = |name: &str| -> Result<Vec<Vec<f64>>> {
            let t = sd.require(name, &[k, n])?.to_dtype(DType::F64)?;
            Ok(t.to_vec2::<f64>()?)
        };
        let n_iter = scalar(sd, "n_iter")?;
        let state = State {
            d: if n_iter > 0.0 {
                vector(sd, "d", n)?
            } else {
                Vec::new()
            },
            t: scalar(sd, "t")?,
            old_dirs: split("old_dirs")?,
            old_stps: split("old_stps")?,
            ro: vector(sd, "ro", k)?,
            h_diag: scalar(sd, "H_diag")?,
            prev_flat_grad: match sd.get("prev_flat_grad") {
                Some(_) => Some(vector(sd, "prev_flat_grad", n)?),
                None => None,
            },
            prev_loss: scalar(sd, "prev_loss")?,
            n_iter: n_iter as u64,
            func_evals: scalar(sd, "func_evals")? as u64,
        };
        if k > self.config.history_size {
            return Err(Error::StateMismatch(format!(
                "saved lbfgs history has {k} pairs, more than history_size {}",
                self.config.history_size
            )));
        }
        self.config.lr = scalar(sd, "param_groups.0.lr")?;
        self.state = state;
        Ok(())
    }
}

/// Options of torch.optim.LBFGS that Gradus does not implement.
const NOT_IMPLEMENTED: [&str; 1] = ["maximize"];

/// Builds L-BFGS from its JSON config (the registry's constructor). A single group only, as
/// torch (`groups` is refused).
pub fn build(config: &Value, path: &str, params: &[NamedVar]) -> Result<Box<dyn Optimizer>> {
    if let Some(object) = config.as_object() {
        for key in NOT_IMPLEMENTED.iter().chain(&["groups"]) {
            if object.contains_key(*key) {
                return Err(Error::config(
                    join_path(path, key),
                    match *key {
                        "groups" => {
                            "lbfgs doesn't support per-parameter options (parameter groups)"
                                .to_string()
                        }
                        _ => {
                            format!("torch.optim.LBFGS option `{key}` is not implemented in Gradus")
                        }
                    },
                ));
            }
        }
    }
    let config: LbfgsConfig = parse_config(config, path)?;
    config.validate().map_err(|e| e.at(path))?;
    Ok(Box::new(Lbfgs::new(params.to_vec(), config)?))
}

gradus_core::register_optimizer!(
    "lbfgs",
    "L-BFGS with optional strong-Wolfe line search (torch.optim.LBFGS; needs a closure / full batching)",
    LbfgsConfig,
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use serde_json::json;

    #[test]
    fn config_errors_name_the_path_and_plain_step_says_closure() {
        let x = Var::new(&[1f64, 2.0], &Device::Cpu).unwrap();
        let params = vec![NamedVar::new("x", x.clone())];
        let err = |v: Value| build(&v, "optimizer", &params).err().unwrap().to_string();
        assert!(err(json!({"maximize": true})).contains("optimizer.maximize"));
        assert!(err(json!({"groups": []})).contains("parameter groups"));
        assert!(err(json!({"line_search_fn": "armijo"})).contains("only 'strong_wolfe'"));
        assert!(err(json!({"lr": -1.0}))
            .starts_with("invalid config at optimizer: Invalid learning rate: -1"));
        assert!(err(json!({"history": 3})).contains("did you mean `history_size`"));
        let mut opt = build(&json!({}), "optimizer", &params).unwrap();
        let e = opt.step(&GradStore::default()).unwrap_err().to_string();
        assert!(e.contains("needs a closure") && e.contains("full"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// On a convex quadratic, an outer step never increases the loss, and the state
        /// round-trips: a resumed copy takes the next step bit for bit.
        #[test]
        fn quadratic_descends_and_state_round_trips(
            a in proptest::collection::vec(0.5f64..5.0, 3),
            x0 in proptest::collection::vec(-3.0f64..3.0, 3),
            wolfe in proptest::bool::ANY,
        ) {
            let config = LbfgsConfig {
                max_iter: 3,
                line_search_fn: wolfe.then(|| "strong_wolfe".to_string()),
                lr: if wolfe { 1.0 } else { 0.1 },
                ..Default::default()
            };
            let run = |opt: &mut Lbfgs, x: &Var| {
                let at = Tensor::new(a.as_slice(), &Device::Cpu).unwrap();
                opt.step_with_closure(|| {
                    let l = (x.as_tensor().sqr()? * &at)?.sum_all()?.affine(0.5, 0.0)?;
                    Ok((l.to_scalar::<f64>()?, l.backward()?))
                }).unwrap()
            };
            let x = Var::new(x0.as_slice(), &Device::Cpu).unwrap();
            let mut opt = Lbfgs::new(vec![NamedVar::new("x", x.clone())], config.clone()).unwrap();
            let l0 = run(&mut opt, &x);
            let l1 = run(&mut opt, &x);
            proptest::prop_assert!(l1 <= l0 + 1e-12, "{} > {}", l1, l0);
            let y = Var::new(x.as_tensor().to_vec1::<f64>().unwrap().as_slice(), &Device::Cpu).unwrap();
            let mut resumed = Lbfgs::new(vec![NamedVar::new("x", y.clone())], config).unwrap();
            resumed.load_state_dict(&opt.state_dict().unwrap()).unwrap();
            run(&mut opt, &x);
            run(&mut resumed, &y);
            proptest::prop_assert_eq!(x.as_tensor().to_vec1::<f64>().unwrap(), y.as_tensor().to_vec1::<f64>().unwrap());
            proptest::prop_assert_eq!(opt.func_evals(), resumed.func_evals());
        }
    }
}
