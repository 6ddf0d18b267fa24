//! Gradus data (in progress: components land here as their issues are resolved).
