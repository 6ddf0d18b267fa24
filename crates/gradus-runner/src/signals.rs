//! Stopping a run on SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop signal): the training loop
//! stops after the current batch, and the process exits with 128 + the signal's number (130,
//! 143). A second signal while stopping ends the process at once, with the same code.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// SIGINT's number.
pub const SIGINT: usize = 2;
/// SIGTERM's number.
pub const SIGTERM: usize = 15;

/// What a run checks between batches: whether to stop, and for which signal.
#[derive(Clone, Default)]
pub struct Interrupt {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// An interrupt no signal sets (for runs started from code).
    pub fn never() -> Self {
        Interrupt::default()
    }

    /// An interrupt set by this process's SIGINT and SIGTERM.
    pub fn from_signals() -> Self {
        let interrupt = Interrupt::default();
        interrupt.install();
        interrupt
    }

    /// Whether a stop was asked.
    pub fn requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The number of the signal that asked to stop (0: none, or asked from code).
    pub fn signal(&self) -> usize {
        self.signal.load(Ordering::SeqCst)
    }

    /// Asks to stop as `signal` would (for tests and embedding code).
    pub fn request(&self, signal: usize) {
        self.signal.store(signal, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The exit code of a run stopped by this interrupt: 128 + the signal's number (SIGINT
    /// when it was asked from code).
    pub fn exit_code(&self) -> u8 {
        let signal = match self.signal() {
            0 => SIGINT,
            s => s,
        };
        (128 + signal).min(255) as u8
    }

    #[cfg(unix)]
    fn install(&self) {
        use signal_hook::consts::signal::{SIGINT as INT, SIGTERM as TERM};
        use signal_hook::flag;
        for sig in [INT, TERM] {
            // Registered first, so it sees the flag as it was before this signal: a second
            // signal while stopping exits at once.
            let _ = flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&self.stop));
            let _ = flag::register_usize(sig, Arc::clone(&self.signal), sig as usize);
            let _ = flag::register(sig, Arc::clone(&self.stop));
        }
    }

    #[cfg(not(unix))]
    fn install(&self) {
        let stop = Arc::clone(&self.stop);
        let signal = Arc::clone(&self.signal);
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            signal.store(SIGINT, Ordering::SeqCst);
        });
    }
}
