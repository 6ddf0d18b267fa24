//! Gradus schedules (in progress).
