//! Tidy checks: dependency direction between crates and a `//!` header on every source file.
//!
//! Architecture Invariant: algorithm crates depend on `gradus-core` and Candle only, never on
//! each other; `gradus-core` depends on no Gradus crate; nothing depends on the runner.

use std::path::{Path, PathBuf};

/// Crates that hold algorithms: they may use `gradus-core` and no other Gradus crate.
const ALGORITHM_CRATES: &[&str] = &[
    "gradus-optim",
    "gradus-schedule",
    "gradus-loss",
    "gradus-regularize",
    "gradus-layers",
    "gradus-init",
    "gradus-norm",
    "gradus-augment",
    "gradus-data",
];

fn gradus_dependencies(manifest: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let value: toml::Value = text
        .parse()
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    let mut deps = Vec::new();
    for table in ["dependencies", "build-dependencies"] {
        if let Some(t) = value.get(table).and_then(|t| t.as_table()) {
            deps.extend(t.keys().filter(|k| k.starts_with("gradus")).cloned());
        }
    }
    Ok(deps)
}

fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn check_dependencies(root: &Path, problems: &mut Vec<String>) {
    let mut manifests: Vec<PathBuf> = crate_dirs(root)
        .into_iter()
        .map(|d| d.join("Cargo.toml"))
        .collect();
    manifests.push(root.join("xtask/Cargo.toml"));
    for manifest in manifests {
        let name = manifest
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let deps = match gradus_dependencies(&manifest) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for dep in deps {
            let allowed = if name == "gradus-core" {
                false
            } else if ALGORITHM_CRATES.contains(&name.as_str()) {
                dep == "gradus-core"
            } else {
                dep != "gradus-runner"
            };
            if !allowed {
                problems.push(format!(
                    "{name} must not depend on {dep} (see docs/architecture.md)"
                ));
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn check_headers(root: &Path, problems: &mut Vec<String>) {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    for file in files {
        let first = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .unwrap_or_default();
        if !first.starts_with("//!") {
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            problems.push(format!(
                "{shown}: first line must be a `//!` module comment"
            ));
        }
    }
}

/// Every tidy problem found under `root`.
pub fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    check_dependencies(root, &mut problems);
    check_headers(root, &mut problems);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let problems = check(root);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_forbidden_dependency_and_a_missing_header_are_reported() {
        let dir = std::env::temp_dir().join(format!("gradus-tidy-{}", std::process::id()));
        let krate = dir.join("crates/gradus-init");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("Cargo.toml"),
            "[package]\nname = \"gradus-init\"\n[dependencies]\ngradus-optim = \"0\"\n",
        )
        .unwrap();
        std::fs::write(krate.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
        std::fs::create_dir_all(dir.join("xtask")).unwrap();
        std::fs::write(
            dir.join("xtask/Cargo.toml"),
            "[package]\nname = \"xtask\"\n",
        )
        .unwrap();
        let problems = check(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("gradus-init must not depend on gradus-optim"));
        assert!(problems[1].contains("src/lib.rs: first line"));
    }
}
