//! L-BFGS against torch.optim.LBFGS traces (`tests/data/lbfgs/`, PyTorch 2.15, float64):
//! Rosenbrock 2-D and 10-D and a least-squares problem, with and without the strong-Wolfe line
//! search. Tolerance: 1e-10 relative on losses and parameters; evaluation and iteration counts
//! exactly.

use candle_core::{Device, Tensor, Var};
use gradus_optim::lbfgs::{Lbfgs, LbfgsConfig};
use gradus_optim::NamedVar;
use serde_json::Value;

const A: [[f64; 4]; 6] = [
    [1.0, 2.0, 0.5, -1.0],
    [0.0, 1.0, -1.0, 2.0],
    [3.0, -0.5, 1.0, 0.0],
    [1.0, 1.0, 1.0, 1.0],
    [-2.0, 0.5, 0.25, 1.5],
    [0.5, -1.0, 2.0, -0.5],
];
const B: [f64; 6] = [1.0, -2.0, 0.5, 3.0, -1.0, 2.0];

fn loss(problem: &str, x: &Tensor) -> candle_core::Result<Tensor> {
    match problem {
        "lstsq" => {
            let a = Tensor::new(&A, x.device())?;
            let b = Tensor::new(&B, x.device())?;
            let r = (a.matmul(&x.unsqueeze(1)?)?.squeeze(1)? - b)?;
            r.sqr()?.sum_all()? * 0.5
        }
        _ => {
            let n = x.dim(0)?;
            let head = x.narrow(0, 0, n - 1)?;
            let tail = x.narrow(0, 1, n - 1)?;
            let a = ((tail - head.sqr()?)?.sqr()? * 100.0)?;
            let b = head.affine(-1.0, 1.0)?.sqr()?;
            (a + b)?.sum_all()
        }
    }
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-10 * want.abs().max(1e-8),
        "{what}: got {got}, want {want}"
    );
}

fn replay(name: &str) {
    let path = format!(
        "{}/tests/data/lbfgs/lbfgs-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let c: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let problem = c["problem"].as_str().unwrap().to_string();
    let x0: Vec<f64> = c["x0"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let x = Var::new(x0.as_slice(), &Device::Cpu).unwrap();
    let mut config = c["optimizer"].clone();
    config.as_object_mut().unwrap().remove("type");
    let config: LbfgsConfig = gradus_core::config::parse_config(&config, "optimizer").unwrap();
    let mut opt = Lbfgs::new(vec![NamedVar::new("x", x.clone())], config).unwrap();
    for (k, s) in c["steps"].as_array().unwrap().iter().enumerate() {
        let l = opt
            .step_with_closure(|| {
                let l = loss(&problem, x.as_tensor())?;
                Ok((l.to_scalar::<f64>()?, l.backward()?))
            })
            .unwrap();
        close(l, s["loss"].as_f64().unwrap(), &format!("{name} loss {k}"));
        let got = x.as_tensor().to_vec1::<f64>().unwrap();
        for (i, w) in s["x"].as_array().unwrap().iter().enumerate() {
            close(
                got[i],
                w.as_f64().unwrap(),
                &format!("{name} x[{i}] after step {k}"),
            );
        }
        assert_eq!(
            opt.func_evals(),
            s["func_evals"].as_u64().unwrap(),
            "{name} func_evals {k}"
        );
        assert_eq!(
            opt.n_iter(),
            s["n_iter"].as_u64().unwrap(),
            "{name} n_iter {k}"
        );
    }
}

#[test]
fn rosenbrock2_strong_wolfe() {
    replay("rosenbrock2-wolfe");
}
#[test]
fn rosenbrock2_fixed_step() {
    replay("rosenbrock2-fixed");
}
#[test]
fn rosenbrock10_strong_wolfe() {
    replay("rosenbrock10-wolfe");
}
#[test]
fn rosenbrock10_fixed_step() {
    replay("rosenbrock10-fixed");
}
#[test]
fn lstsq_strong_wolfe() {
    replay("lstsq-wolfe");
}
#[test]
fn lstsq_fixed_step() {
    replay("lstsq-fixed");
}
