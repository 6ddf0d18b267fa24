//! A global allocator wrapper counting bytes: live, peak and allocated in total, to show that
//! a fused step allocates nothing proportional to the parameter count.
#![allow(unsafe_code)] // `GlobalAlloc` is an unsafe trait; this module only forwards calls.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Wraps allocator `A`, counting every allocation (relaxed atomics: a few ns each).
pub struct Counting<A>(pub A);

// SAFETY: every call is forwarded unchanged to `A`, which upholds `GlobalAlloc`'s contract;
// the counters only observe sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` was allocated by `A` with this layout.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Relaxed);
        note_alloc(new_size);
        // SAFETY: `ptr` was allocated by `A` with `layout`.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    TOTAL.fetch_add(size, Relaxed);
    COUNT.fetch_add(1, Relaxed);
}

/// Allocation figures of a closure's run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AllocStats {
    /// Peak live bytes during the run minus the live bytes before it.
    pub peak_above_start: usize,
    /// Bytes allocated during the run (freed or not).
    pub allocated: usize,
    /// Number of allocations during the run.
    pub allocations: usize,
}

/// Runs `f` and reports its allocations (meaningful only in a binary whose global allocator
/// is a [`Counting`]; other threads' allocations during `f` are counted too).
pub fn measure(f: impl FnOnce()) -> AllocStats {
    let start = LIVE.load(Relaxed);
    PEAK.store(start, Relaxed);
    let (t0, c0) = (TOTAL.load(Relaxed), COUNT.load(Relaxed));
    f();
    AllocStats {
        peak_above_start: PEAK.load(Relaxed).saturating_sub(start),
        allocated: TOTAL.load(Relaxed) - t0,
        allocations: COUNT.load(Relaxed) - c0,
    }
}
