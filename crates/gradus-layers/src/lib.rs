//! Gradus model layers (in progress).
