//! Gradient clipping by global norm and by value (in progress).
