//! Gradus norm (in progress: components land here as their issues are resolved).
