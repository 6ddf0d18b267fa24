//! The lecture's figures as experiments shipped inside the crate (`presets/*.json`).

use gradus_core::suggest::nearest;
use gradus_core::{Error, Result};

use crate::experiment::Experiment;

/// Every preset: `(name, JSON text)`, in the lecture's order.
pub const PRESETS: [(&str, &str); 7] = [
    (
        "ill-conditioning",
        include_str!("../presets/ill-conditioning.json"),
    ),
    ("saddle", include_str!("../presets/saddle.json")),
    ("plateau", include_str!("../presets/plateau.json")),
    ("cliff", include_str!("../presets/cliff.json")),
    ("adaptive", include_str!("../presets/adaptive.json")),
    ("batching", include_str!("../presets/batching.json")),
    ("modern", include_str!("../presets/modern.json")),
];

/// The names of the presets, in order.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(name, _)| *name).collect()
}

/// The JSON text of preset `name`.
///
/// # Errors
/// [`Error::UnknownName`] (at `--preset`) listing the presets and suggesting the nearest.
pub fn preset_text(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| Error::UnknownName {
            kind: "preset",
            name: name.to_string(),
            path: "--preset".into(),
            valid: preset_names().iter().map(|s| s.to_string()).collect(),
            suggestion: nearest(name, &preset_names()),
        })
}

/// The experiment of preset `name` (runs whose optimizer is not registered are left out where
/// the preset marks them `skip_unregistered`).
pub fn preset(name: &str) -> Result<Experiment> {
    Experiment::from_text(preset_text(name)?, &format!("preset {name}"))
}
