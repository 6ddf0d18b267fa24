//! Candle's CPU worker threads, made to yield the cores they do not use.
//!
//! Candle 0.11 splits elementwise operations of 64K elements and more over its own barrier pool;
//! between operations each worker spins 25,000 times (`CANDLE_BARRIER_POOL_SPIN_LIMIT`) before
//! it parks. A training step is a chain of such operations with gemm calls (on rayon's threads)
//! between them, so on a machine with few cores the spinning workers take the cores the gemm
//! threads and the main thread need: `perf` put 42 % of a digits-CNN run's cycles in candle's
//! `BarrierGuard::drop` and the workers' spin loops (issue #22).
//!
//! Measured on this project's 2-core machine, the digits CNN pipeline for 3 epochs, alternating
//! (`gradus run examples/pipelines/digits-cnn.json --set train.epochs=3`, while other builds
//! loaded the machine): 243-326 samples/s with the default limit, 712-978 with 200, 556-1007
//! with 0. The digits MLP pipeline, whose tensors stay below candle's 64K threshold, is
//! unchanged (39,600-46,600 samples/s either way, within the machine's noise).

/// The spin limit the `gradus` binary gives candle's workers unless the user set one.
pub const SPIN_LIMIT: &str = "200";

const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Sets `CANDLE_BARRIER_POOL_SPIN_LIMIT` to [`SPIN_LIMIT`] when it is not set, so candle's pool
/// (created at the first large operation, when it reads the variable) parks its workers soon.
/// Candle offers no API for it: the environment is its only setting. Call it first thing in
/// `main`, before any thread starts (what [`crate::cli::main`] does); a value the user exported
/// is kept.
pub fn quiet_candle_workers() {
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        std::env::set_var(SPIN_LIMIT_VAR, SPIN_LIMIT);
    }
}
