//! Gradus optim (in progress: components land here as their issues are resolved).
