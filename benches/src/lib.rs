//! Shared helpers of the Gradus benchmarks (in progress).
