//! Shared helpers of the Gradus benchmarks: sizes, the memory-bandwidth probe, timing records
//! and the summary (`target/gradus-bench/summary.md` and `summary.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub mod counting;
pub mod floor;
pub mod mlp;

/// How the bench binary was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cargo test --benches` (criterion's test mode): tiny sizes, one run each, no summary.
    Test,
    /// `cargo xtask bench --quick`: full sizes, short measurements.
    Quick,
    /// `cargo xtask bench`: full sizes and measurements.
    Full,
}

impl Mode {
    /// From the command line (`--bench` is given by `cargo bench`) and `GRADUS_BENCH_QUICK`.
    pub fn detect() -> Mode {
        if !std::env::args().any(|a| a == "--bench") {
            Mode::Test
        } else if std::env::var_os("GRADUS_BENCH_QUICK").is_some() {
            Mode::Quick
        } else {
            Mode::Full
        }
    }

    /// Criterion's measurement time for a fast (fused, probe) benchmark.
    pub fn measurement(self) -> Duration {
        match self {
            Mode::Test => Duration::from_millis(1),
            Mode::Quick => Duration::from_millis(600),
            Mode::Full => Duration::from_secs(3),
        }
    }

    /// How many back-to-back pairs a paired ratio takes its median over.
    pub fn pairs(self) -> usize {
        match self {
            Mode::Test => 2,
            Mode::Quick => 40,
            Mode::Full => 150,
        }
    }
}

/// A set of tensors of equal length: `count` × `len` f32 elements.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// `"1x1000000"`.
    pub name: &'static str,
    /// Number of tensors.
    pub count: usize,
    /// Elements per tensor.
    pub len: usize,
}

impl Layout {
    /// Total elements.
    pub fn total(&self) -> usize {
        self.count * self.len
    }
}

/// The layouts of the issue (1 × 1e6, 1 × 1e7, 1000 × 1e4), tiny ones in test mode.
pub fn layouts(mode: Mode) -> Vec<Layout> {
    if mode == Mode::Test {
        return vec![
            Layout {
                name: "1x1000",
                count: 1,
                len: 1000,
            },
            Layout {
                name: "10x100",
                count: 10,
                len: 100,
            },
        ];
    }
    vec![
        Layout {
            name: "1x1000000",
            count: 1,
            len: 1_000_000,
        },
        Layout {
            name: "1x10000000",
            count: 1,
            len: 10_000_000,
        },
        Layout {
            name: "1000x10000",
            count: 1000,
            len: 10_000,
        },
    ]
}

/// Bytes one step moves per f32 parameter: θ read and written, g read, each state buffer
/// read and written.
pub fn bytes_per_param(state_buffers: usize) -> usize {
    4 * (3 + 2 * state_buffers)
}

/// The bandwidth probe: the same streams as an optimizer with `state_buffers` buffers (θ and
/// each buffer read and written, g read), one multiply-add per stream, chunked over rayon and
/// dispatched like the fused kernels.
pub struct Probe {
    p: Vec<f32>,
    g: Vec<f32>,
    s: Vec<Vec<f32>>,
}

const CHUNK: usize = 1 << 15;

impl Probe {
    /// Arrays of `n` elements.
    pub fn new(n: usize, state_buffers: usize) -> Probe {
        Probe {
            p: vec![1.0; n],
            g: vec![1e-3; n],
            s: (0..state_buffers.min(2)).map(|_| vec![0.5; n]).collect(),
        }
    }

    /// One read-modify-write pass.
    pub fn run(&mut self) {
        match self.s.as_mut_slice() {
            [] => self
                .p
                .par_chunks_mut(CHUNK)
                .zip(self.g.par_chunks(CHUNK))
                .for_each(|(p, g)| {
                    ProbeChunk {
                        p,
                        g,
                        a: None,
                        b: None,
                    }
                    .run()
                }),
            [a] => self
                .p
                .par_chunks_mut(CHUNK)
                .zip(self.g.par_chunks(CHUNK))
                .zip(a.par_chunks_mut(CHUNK))
                .for_each(|((p, g), a)| {
                    ProbeChunk {
                        p,
                        g,
                        a: Some(a),
                        b: None,
                    }
                    .run()
                }),
            [a, b, ..] => self
                .p
                .par_chunks_mut(CHUNK)
                .zip(self.g.par_chunks(CHUNK))
                .zip(a.par_chunks_mut(CHUNK))
                .zip(b.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), a), b)| {
                    ProbeChunk {
                        p,
                        g,
                        a: Some(a),
                        b: Some(b),
                    }
                    .run()
                }),
        }
    }
}

/// One chunk of the probe, handed to `pulp` as a `WithSimd` struct like the fused kernels (a
/// closure's `call_once` shim can stay out of pulp's `#[target_feature]` functions and compile
/// for baseline x86-64, which would flatter every ratio to the probe).
struct ProbeChunk<'a> {
    p: &'a mut [f32],
    g: &'a [f32],
    a: Option<&'a mut [f32]>,
    b: Option<&'a mut [f32]>,
}

impl ProbeChunk<'_> {
    fn run(self) {
        pulp::Arch::new().dispatch(self);
    }
}

impl pulp::WithSimd for ProbeChunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (c, d) = (0.999f32, 1e-3f32);
        match (self.a, self.b) {
            (None, _) => {
                for (p, g) in self.p.iter_mut().zip(self.g) {
                    *p = *p * c + g * d;
                }
            }
            (Some(a), None) => {
                for ((p, g), a) in self.p.iter_mut().zip(self.g).zip(a.iter_mut()) {
                    *a = *a * c + g * d;
                    *p = *p * c + *a * d;
                }
            }
            (Some(a), Some(b)) => {
                for (((p, g), a), b) in self
                    .p
                    .iter_mut()
                    .zip(self.g)
                    .zip(a.iter_mut())
                    .zip(b.iter_mut())
                {
                    *a = *a * c + g * d;
                    *b = *b * c + g * g;
                    *p = *p * c + *a * d;
                }
            }
        }
    }
}

/// Per-iteration times by benchmark id, filled by `iter_custom` closures.
#[derive(Default)]
pub struct Recorder {
    times: Mutex<BTreeMap<String, Vec<f64>>>,
    ratios: Mutex<BTreeMap<String, Vec<f64>>>,
}

impl Recorder {
    /// Records one sample of `iters` iterations taking `elapsed`.
    pub fn push(&self, id: &str, elapsed: Duration, iters: u64) {
        let per = elapsed.as_secs_f64() / iters.max(1) as f64;
        if let Ok(mut t) = self.times.lock() {
            t.entry(id.to_string()).or_default().push(per);
        }
    }

    /// Records one paired ratio (e.g. a many-tensor step over the one-tensor step timed just
    /// before or after it).
    pub fn push_ratio(&self, id: &str, ratio: f64) {
        if let Ok(mut r) = self.ratios.lock() {
            r.entry(id.to_string()).or_default().push(ratio);
        }
    }

    /// The median of the ratios recorded under `id`.
    pub fn median_ratio(&self, id: &str) -> Option<f64> {
        let r = self.ratios.lock().ok()?;
        median(r.get(id)?.clone())
    }

    /// The median per-iteration time of `id`, in milliseconds.
    pub fn median_ms(&self, id: &str) -> Option<f64> {
        let t = self.times.lock().ok()?;
        median(t.get(id)?.clone()).map(|m| m * 1e3)
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// One row of `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Registered optimizer name, or `probe`.
    pub optimizer: String,
    /// `"1x1000000"`, `"1x10000000"` or `"1000x10000"`.
    pub layout: String,
    /// `"f32"`, or for the low-precision Adam rows `"bf16"`, `"f16"` (f32 state) and
    /// `"bf16+master"` (f32 state and master weights).
    pub dtype: String,
    /// `fused`, `reference`, `candle_nn`, `probe`, or `inplace_loop` (the in-place floor,
    /// [`floor`]).
    pub path: String,
    /// Median time of one step.
    pub median_ms: f64,
    /// Bytes moved (parameter, gradient, each state buffer, read and written) per second.
    pub gb_per_s: f64,
    /// Time over the probe's time for the same bytes (medians of two separate measurements).
    pub probe_ratio: f64,
    /// Fused and `inplace_loop` rows: the median over interleaved pairs of (step time / probe
    /// time), each pair timed back to back, so that the machine's shifts in memory bandwidth
    /// between measurements cancel.
    pub probe_ratio_paired: Option<f64>,
    /// `candle_nn::AdamW` (adam, adamw) or `candle_nn::SGD` (sgd) time over this time.
    pub speedup_vs_candle_nn: Option<f64>,
    /// Reference-path time over this time.
    pub speedup_vs_reference: Option<f64>,
    /// For 1000x10000: this time over the same optimizer and path at 1x10000000 (medians of
    /// two separate measurements).
    pub vs_one_tensor: Option<f64>,
    /// For 1000x10000 on the fused path and the in-place floor: the median over interleaved
    /// pairs of (many-tensor step time / one-tensor step time), each pair timed back to back,
    /// so that the machine's shifts in memory bandwidth between measurements cancel.
    pub vs_one_tensor_paired: Option<f64>,
}

/// The MLP training-step measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MlpRow {
    /// `gradus_adam_fused`, `gradus_adam_reference` or `candle_nn_adamw` (criterion runs, system
    /// allocator), or `mlp_step_system_alloc` / `mlp_step_mimalloc` (the same plain loop of
    /// fused Adam steps in two bench binaries differing only in their global allocator).
    pub optimizer: String,
    /// `system` or `mimalloc`.
    pub allocator: String,
    /// Median forward + backward + step time.
    pub step_ms: f64,
    /// Median optimizer step time.
    pub optimizer_ms: f64,
    /// `optimizer_ms / step_ms`.
    pub optimizer_share: f64,
}

/// Allocations during one step (after the first, which creates the state), from the
/// counting allocator of the `alloc` bench.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemRow {
    /// What ran: `adam fused step`, `clip_grad_norm fused`, `mlp step`...
    pub what: String,
    /// `"1x10000000"`, `"1000x10000"` or `"mlp"`.
    pub layout: String,
    /// Parameters + gradients + state, bytes (the memory a step needs).
    pub resident_bytes: usize,
    /// Peak live bytes during the step minus live bytes before it.
    pub peak_above_start: usize,
    /// Bytes allocated during the step.
    pub allocated: usize,
    /// Number of allocations during the step.
    pub allocations: usize,
}

/// What the `alloc` bench writes to `alloc.json` for the `optim` bench's summary.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AllocReport {
    /// The mimalloc MLP row.
    pub mlp: Vec<MlpRow>,
    /// Allocation figures.
    pub memory: Vec<MemRow>,
}

/// `target/gradus-bench` (or under `CARGO_TARGET_DIR`).
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("gradus-bench")
}

/// A description of this machine and run.
pub fn machine(mode: Mode) -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let simd = match pulp::Arch::new() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V4(_) => "avx512",
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V3(_) => "avx2+fma",
        _ => "baseline",
    };
    serde_json::json!({
        "cpu": cpu,
        "threads": rayon::current_num_threads(),
        "simd": simd,
        "mode": format!("{mode:?}").to_lowercase(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

fn fmt_opt(v: Option<f64>, suffix: &str) -> String {
    v.map_or("—".to_string(), |x| format!("{x:.2}{suffix}"))
}

/// Writes `summary.json` and `summary.md` into [`out_dir`]; returns the folder.
pub fn write_summary(
    machine: serde_json::Value,
    rows: &[Row],
    mlp: &[MlpRow],
    memory: &[MemRow],
) -> std::io::Result<PathBuf> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let json =
        serde_json::json!({ "machine": machine, "rows": rows, "mlp": mlp, "memory": memory });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&json).map_err(std::io::Error::other)? + "\n",
    )?;
    let mut md = String::from("# Gradus optimizer benchmarks\n\n");
    md += &format!("Machine: `{machine}`\n\n");
    md += "| optimizer | layout | dtype | path | median ms | GB/s | probe ratio | probe ratio, paired | vs candle-nn | vs reference | vs 1 tensor | vs 1 tensor, paired |\n";
    md += "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in rows {
        md += &format!(
            "| {} | {} | {} | {} | {:.3} | {:.1} | {:.2} | {} | {} | {} | {} | {} |\n",
            r.optimizer,
            r.layout,
            r.dtype,
            r.path,
            r.median_ms,
            r.gb_per_s,
            r.probe_ratio,
            fmt_opt(r.probe_ratio_paired, ""),
            fmt_opt(r.speedup_vs_candle_nn, "x"),
            fmt_opt(r.speedup_vs_reference, "x"),
            fmt_opt(r.vs_one_tensor, "x"),
            fmt_opt(r.vs_one_tensor_paired, "x"),
        );
    }
    if !mlp.is_empty() {
        md += "\n## MLP 784-512-512-10, batch 128, forward + backward + step (f32)\n\n";
        md += "| optimizer | allocator | step ms | optimizer ms | optimizer share |\n|---|---|---:|---:|---:|\n";
        for m in mlp {
            md += &format!(
                "| {} | {} | {:.3} | {:.3} | {:.1} % |\n",
                m.optimizer,
                m.allocator,
                m.step_ms,
                m.optimizer_ms,
                m.optimizer_share * 100.0
            );
        }
    }
    if !memory.is_empty() {
        md += "\n## Allocations during one step (counting allocator)\n\n";
        md += "| what | layout | params+grads+state MB | peak above start KB | allocated KB | allocations |\n|---|---|---:|---:|---:|---:|\n";
        for m in memory {
            md += &format!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} |\n",
                m.what,
                m.layout,
                m.resident_bytes as f64 / 1e6,
                m.peak_above_start as f64 / 1e3,
                m.allocated as f64 / 1e3,
                m.allocations
            );
        }
    }
    std::fs::write(dir.join("summary.md"), md)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_median_and_probe_bytes() {
        let r = Recorder::default();
        for ms in [3u64, 1, 2] {
            r.push("x", Duration::from_millis(ms * 2), 2);
        }
        assert_eq!(r.median_ms("x"), Some(2.0));
        assert_eq!(r.median_ms("y"), None);
        assert_eq!(bytes_per_param(2), 28);
        let mut p = Probe::new(100_000, 2);
        p.run();
        assert!((p.p[0] - (0.999 + 0.5 * 0.999 * 1e-3 + 1e-6 * 1e-3)).abs() < 1e-5);
    }
}
