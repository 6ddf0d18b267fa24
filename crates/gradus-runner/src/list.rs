//! `gradus list [KIND]`: every registered component with its summary and defaults.

use gradus_core::registry::{catalog, CatalogEntry};
use gradus_core::Result;

/// Kinds that `gradus list` also accepts as group names.
const ALIASES: &[(&str, &[&str])] = &[
    ("data", &["data_source", "batching"]),
    ("augmentation", &["image_augmentation", "text_augmentation"]),
    ("layers", &["layer", "normalization"]),
];

/// The catalogue of one kind, of an alias group, or of everything.
pub fn entries(kind: Option<&str>) -> Result<Vec<CatalogEntry>> {
    if let Some((_, kinds)) = kind.and_then(|k| ALIASES.iter().find(|(alias, _)| *alias == k)) {
        let mut all = Vec::new();
        for k in *kinds {
            all.extend(catalog(Some(k))?);
        }
        return Ok(all);
    }
    catalog(kind)
}

/// The catalogue as pretty JSON (`--json`).
pub fn render_json(kind: Option<&str>) -> Result<String> {
    let entries = entries(kind)?;
    Ok(serde_json::to_string_pretty(&entries).unwrap_or_default())
}

/// The catalogue as a human table grouped by kind.
pub fn render_table(kind: Option<&str>) -> Result<String> {
    let entries = entries(kind)?;
    let mut out = String::new();
    let mut current = "";
    let name_width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for entry in &entries {
        if entry.kind != current {
            current = entry.kind;
            let count = entries.iter().filter(|e| e.kind == current).count();
            out.push_str(&format!("\n{current} ({count})\n"));
        }
        out.push_str(&line(entry, name_width));
    }
    if entries.is_empty() {
        out.push_str("no components registered for this kind yet\n");
    }
    Ok(out.trim_start().to_string())
}

fn line(entry: &CatalogEntry, width: usize) -> String {
    let defaults = serde_json::to_string(&entry.defaults).unwrap_or_default();
    format!(
        "  {:<width$}  {}\n  {:<width$}  defaults: {}\n",
        entry.name, entry.summary, "", defaults
    )
}
