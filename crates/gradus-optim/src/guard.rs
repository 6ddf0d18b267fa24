//! The non-finite guard (in progress).
