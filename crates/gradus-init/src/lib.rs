//! Gradus init (in progress: components land here as their issues are resolved).
