//! Gradient accumulation over micro-batches (in progress).
