//! The `gradus` binary's global allocator (mimalloc) on the MLP training step, and the
//! allocations of one fused step (counting allocator over mimalloc). Writes
//! `target/gradus-bench/alloc.json`, which the `optim` bench folds into its summary (run this
//! one first: `cargo xtask bench` does).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use gradus_benches::counting::{measure, Counting};
use gradus_benches::mlp::{fused_adam_step_ms, Mlp};
use gradus_benches::{out_dir, AllocReport, MemRow, MlpRow, Mode};
use gradus_core::NamedVar;
use gradus_optim::clip::{clip_grad_norm, NormType};
use gradus_optim::{build_optimizer, UpdatePath};

#[global_allocator]
static GLOBAL: Counting<mimalloc::MiMalloc> = Counting(mimalloc::MiMalloc);

fn params(count: usize, len: usize) -> (Vec<Var>, GradStore) {
    let mut grads = GradStore::default();
    let vars = (0..count)
        .map(|_| {
            let v = Var::ones(len, DType::F32, &Device::Cpu).unwrap();
            let g = (Tensor::ones(len, DType::F32, &Device::Cpu).unwrap() * 1e-2).unwrap();
            grads.insert(v.as_tensor(), g);
            v
        })
        .collect();
    (vars, grads)
}

fn memory(mode: Mode) -> Vec<MemRow> {
    let layouts: &[(&str, usize, usize)] = if mode == Mode::Test {
        &[("1x1000", 1, 1000), ("10x100", 10, 100)]
    } else {
        &[("1x10000000", 1, 10_000_000), ("1000x10000", 1000, 10_000)]
    };
    let mut rows = Vec::new();
    for &(name, count, len) in layouts {
        for (opt, buffers) in [("sgd", 0usize), ("adam", 2)] {
            let (vars, grads) = params(count, len);
            let named: Vec<NamedVar> = vars
                .iter()
                .enumerate()
                .map(|(i, v)| NamedVar::new(format!("p{i}"), v.clone()))
                .collect();
            let mut o =
                build_optimizer(&serde_json::json!({ "type": opt }), "optimizer", &named).unwrap();
            o.set_update_path(UpdatePath::Fused).unwrap();
            o.step(&grads).unwrap(); // creates the state
            let stats = measure(|| o.step(&grads).unwrap());
            rows.push(MemRow {
                what: format!("{opt} fused step"),
                layout: name.into(),
                resident_bytes: count * len * 4 * (2 + buffers),
                peak_above_start: stats.peak_above_start,
                allocated: stats.allocated,
                allocations: stats.allocations,
            });
        }
        let (vars, mut grads) = params(count, len);
        let stats = measure(|| {
            clip_grad_norm(
                &vars,
                &mut grads,
                1e-3,
                NormType::P(2.0),
                false,
                UpdatePath::Fused,
            )
            .unwrap();
        });
        rows.push(MemRow {
            what: "clip_grad_norm fused (scaling)".into(),
            layout: name.into(),
            resident_bytes: count * len * 4 * 2,
            peak_above_start: stats.peak_above_start,
            allocated: stats.allocated,
            allocations: stats.allocations,
        });
    }
    let mlp = Mlp::new(if mode == Mode::Test { 4 } else { 128 });
    let mut opt = gradus_optim::Adam::new(mlp.varmap.all_vars(), Default::default()).unwrap();
    opt.set_update_path(UpdatePath::Fused);
    opt.apply(&mlp.grads()).unwrap();
    let params: usize = mlp.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    let grads = mlp.grads();
    let step = measure(|| opt.apply(&grads).unwrap());
    let whole = measure(|| {
        let g = mlp.grads();
        opt.apply(&g).unwrap();
    });
    for (what, s) in [
        ("mlp adam fused step (optimizer only)", step),
        ("mlp forward+backward+step", whole),
    ] {
        rows.push(MemRow {
            what: what.into(),
            layout: "mlp".into(),
            resident_bytes: params * 4 * 4,
            peak_above_start: s.peak_above_start,
            allocated: s.allocated,
            allocations: s.allocations,
        });
    }
    rows
}

fn main() {
    let mode = Mode::detect();
    let (batch, steps) = match mode {
        Mode::Test => (4, 2),
        Mode::Quick => (128, 40),
        Mode::Full => (128, 200),
    };
    let (step_ms, opt_ms) = fused_adam_step_ms(batch, steps);
    let report = AllocReport {
        mlp: vec![MlpRow {
            optimizer: "mlp_step_mimalloc".into(),
            allocator: "mimalloc".into(),
            step_ms,
            optimizer_ms: opt_ms,
            optimizer_share: opt_ms / step_ms,
        }],
        memory: memory(mode),
    };
    if mode == Mode::Test {
        assert!(report.mlp[0].step_ms > 0.0 && !report.memory.is_empty());
        return;
    }
    let dir = out_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::to_string_pretty(&report).unwrap();
    std::fs::write(dir.join("alloc.json"), text + "\n").unwrap();
    for m in &report.memory {
        println!("{m:?}");
    }
    println!("{:?}", report.mlp[0]);
}
