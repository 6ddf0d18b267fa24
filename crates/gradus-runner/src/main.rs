//! `gradus`: list components, replay optimizer trajectories (and, as they land, run pipelines).

// mimalloc keeps freed blocks for reuse instead of returning Candle's per-op buffers to the OS
// (glibc's malloc maps and unmaps the large ones, paying their page faults again every step):
// measured 2-4 % faster on the MLP training step (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gradus_runner::cli::main()
}
