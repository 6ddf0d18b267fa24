//! Tidy checks: dependency direction between crates, a `//!` header on every source file, and
//! what publishing needs (complete crate metadata, no `include_str!` outside a crate, no locked
//! dependency that needs a newer Rust than the workspace's `rust-version`).
//!
//! Architecture Invariant: algorithm crates depend on `gradus-core` and Candle only, never on
//! each other; `gradus-core` depends on no Gradus crate; nothing depends on the runner.
//!
//! The MSRV check sees declared `rust-version`s only: a dependency that declares none but
//! needs a newer compiler (candle-core 0.11.1 needs 1.94) is found by `cargo xtask msrv`,
//! which compiles the workspace with the workspace's toolchain.
//!
//! Architecture Invariant: every crate under `crates/` can be published on its own: its
//! manifest has the metadata crates.io shows, its package holds both license files and its
//! README, and nothing it compiles is read from outside its folder.

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

/// Files whose whole content is test support: they may use any device.
fn is_test_support(file: &Path) -> bool {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name == "testing.rs"
        || name == "tests.rs"
        || name == "proptests.rs"
        || name.ends_with("_tests.rs")
}

/// The lines of `text` where `Device::Cpu` is used without a reason: outside comments, before the
/// file's `#[cfg(test)]` module, not a device test (`matches!(…, Device::Cpu)`, a match arm), and
/// with no `host-side:` comment on the line or the three lines above it.
fn unexplained_cpu_devices(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or(lines.len());
    let mut found = Vec::new();
    for (i, line) in lines[..end].iter().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") || !code.contains("Device::Cpu") {
            continue;
        }
        let is_test = code.contains("matches!(") || code.contains("Device::Cpu =>");
        let explained = lines[i.saturating_sub(3)..=i]
            .iter()
            .any(|l| l.contains("host-side:"));
        if !is_test && !explained {
            found.push(i + 1);
        }
    }
    found
}

/// Library code creates its tensors on the parameters' (or the caller's) device: a hidden
/// `Device::Cpu` would break a GPU run. Where the CPU is meant (host-side data, state-dict
/// scalars, CPU-only fused kernels, the CLI's default) a `host-side:` comment says why.
fn check_cpu_devices(root: &Path, problems: &mut Vec<String>) {
    let mut files = Vec::new();
    for dir in crate_dirs(root) {
        rust_files(&dir.join("src"), &mut files);
    }
    for file in files.into_iter().filter(|f| !is_test_support(f)) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for line in unexplained_cpu_devices(&text) {
            problems.push(format!(
                "{shown}:{line}: `Device::Cpu` in library code: create tensors on the \
                 parameters' device, or say why the CPU is meant in a `host-side:` comment"
            ));
        }
    }
}

/// Every tidy problem found under `root` (the checks that read files only).
pub fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    check_dependencies(root, &mut problems);
    check_headers(root, &mut problems);
    check_metadata(root, &mut problems);
    check_includes(root, &mut problems);
    check_cpu_devices(root, &mut problems);
    problems
}

/// Every tidy problem, including the MSRV check, which asks `cargo metadata` for the locked
/// dependencies.
pub fn check_all(root: &Path) -> Vec<String> {
    let mut problems = check(root);
    match locked_metadata(root) {
        Ok(metadata) => problems.extend(msrv_problems(&workspace_rust_version(root), &metadata)),
        Err(e) => problems.push(e),
    }
    problems
}

/// The keys crates.io shows for a crate; `license` and `repository` come from the workspace.
const METADATA_KEYS: &[&str] = &[
    "description",
    "license",
    "repository",
    "documentation",
    "readme",
    "keywords",
    "categories",
    "rust-version",
];

fn check_metadata(root: &Path, problems: &mut Vec<String>) {
    for dir in crate_dirs(root) {
        let manifest = dir.join("Cargo.toml");
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let value: toml::Value = match std::fs::read_to_string(&manifest)
            .map_err(|e| e.to_string())
            .and_then(|t| t.parse().map_err(|e: toml::de::Error| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {e}", manifest.display()));
                continue;
            }
        };
        let package = value
            .get("package")
            .cloned()
            .unwrap_or(toml::Value::Boolean(false));
        if package.get("publish").and_then(toml::Value::as_bool) == Some(false) {
            continue;
        }
        for key in METADATA_KEYS {
            if package.get(key).is_none() {
                problems.push(format!("{name}: Cargo.toml has no `package.{key}`"));
            }
        }
        if let Some(n) = package
            .get("keywords")
            .and_then(toml::Value::as_array)
            .map(Vec::len)
        {
            if !(1..=5).contains(&n) {
                problems.push(format!("{name}: crates.io takes 1 to 5 keywords, not {n}"));
            }
        }
        let mut files = vec!["LICENSE-MIT", "LICENSE-APACHE"];
        if let Some(readme) = package.get("readme").and_then(toml::Value::as_str) {
            files.push(readme);
        }
        for file in files {
            if !dir.join(file).is_file() {
                problems.push(format!(
                    "{name}: {file} is missing (its package must hold it)"
                ));
            }
        }
    }
}

/// The literal paths of `include_str!("...")` and `include_bytes!("...")` in `text`.
fn included_paths(text: &str) -> Vec<&str> {
    let mut paths = Vec::new();
    for mac in ["include_str!(\"", "include_bytes!(\""] {
        let mut rest = text;
        while let Some(at) = rest.find(mac) {
            rest = &rest[at + mac.len()..];
            if let Some(end) = rest.find('"') {
                paths.push(&rest[..end]);
            }
        }
    }
    paths
}

/// `path` without `.` and `..` components (lexically: these files need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn check_includes(root: &Path, problems: &mut Vec<String>) {
    for dir in crate_dirs(root) {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let from = file.parent().unwrap_or(&dir);
            for included in included_paths(&text) {
                if !normalize(&from.join(included)).starts_with(normalize(&dir)) {
                    let shown = file
                        .strip_prefix(root)
                        .unwrap_or(&file)
                        .display()
                        .to_string();
                    problems.push(format!(
                        "{shown}: includes {included:?}, outside its crate: `cargo package` \
                         cannot ship it; move the file into the crate"
                    ));
                }
            }
        }
    }
}

/// `rust-version` of `[workspace.package]` in the root manifest ("" when missing).
pub fn workspace_rust_version(root: &Path) -> String {
    std::fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Value>().ok())
        .and_then(|v| {
            v.get("workspace")?
                .get("package")?
                .get("rust-version")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// `cargo metadata` of the workspace as locked, every feature on (so optional dependencies
/// count too).
fn locked_metadata(root: &Path) -> Result<serde_json::Value, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--all-features",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))
}

/// `"1.87"` or `"1.87.0"` as `(1, 87, 0)`.
fn rust_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    parts.next().is_none().then_some((major, minor, patch))
}

/// Packages of `metadata` whose `rust_version` is above `workspace` (the workspace's
/// `rust-version`), and workspace members that declare none or another.
fn msrv_problems(workspace: &str, metadata: &serde_json::Value) -> Vec<String> {
    let Some(msrv) = rust_version(workspace) else {
        return vec![format!(
            "Cargo.toml: `workspace.package.rust-version` is {workspace:?}, not a version"
        )];
    };
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .map(|m| m.iter().filter_map(|id| id.as_str()).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or("?");
        let version = package["version"].as_str().unwrap_or("?");
        let declared = package["rust_version"].as_str();
        let member = package["id"]
            .as_str()
            .is_some_and(|id| members.contains(&id));
        match declared.map(|d| (d, rust_version(d))) {
            Some((d, Some(v))) if v > msrv => problems.push(format!(
                "{name} {version} needs Rust {d}, above the workspace's rust-version {workspace}: \
                 raise `workspace.package.rust-version` (the true minimum) or pin an older {name}"
            )),
            Some((d, None)) => problems.push(format!(
                "{name} {version}: rust-version {d:?} is not a version"
            )),
            None if member => problems.push(format!(
                "{name}: no rust-version; add `rust-version.workspace = true`"
            )),
            Some((d, Some(v))) if member && v != msrv => problems.push(format!(
                "{name}: rust-version {d} differs from the workspace's {workspace}"
            )),
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let problems = check_all(root);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_dependency_needing_a_newer_rust_is_reported() {
        let metadata = serde_json::json!({
            "workspace_members": ["path+file:///w/crates/a#0.1.0", "path+file:///w/crates/b#0.1.0"],
            "packages": [
                {"name": "a", "version": "0.1.0", "id": "path+file:///w/crates/a#0.1.0", "rust_version": "1.89"},
                {"name": "b", "version": "0.1.0", "id": "path+file:///w/crates/b#0.1.0", "rust_version": null},
                {"name": "old", "version": "1.0.0", "id": "registry+x#old@1.0.0", "rust_version": "1.60"},
                {"name": "none", "version": "1.0.0", "id": "registry+x#none@1.0.0", "rust_version": null},
                {"name": "same", "version": "2.0.0", "id": "registry+x#same@2.0.0", "rust_version": "1.89.0"},
                {"name": "newer", "version": "0.3.1", "id": "registry+x#newer@0.3.1", "rust_version": "1.90"}
            ]
        });
        let problems = msrv_problems("1.89", &metadata);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("b: no rust-version"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with(
                "newer 0.3.1 needs Rust 1.90, above the workspace's rust-version 1.89"
            ),
            "{problems:?}"
        );
        assert_eq!(msrv_problems("1.88", &metadata).len(), 4);
        assert_eq!(rust_version("1.87.1"), Some((1, 87, 1)));
        assert_eq!(rust_version("1.x"), None);
    }

    #[test]
    fn a_hidden_cpu_device_is_reported_unless_explained() {
        let text = "//! m\n\
            /// `Device::Cpu` in a doc comment\n\
            fn a() { let d = Device::Cpu; }\n\
            // host-side: state-dict scalars live on the host\n\
            fn b() { let d = Device::Cpu; }\n\
            fn c(x: &Tensor) -> bool { matches!(x.device(), Device::Cpu) }\n\
            fn e() { let d = Device::Cpu; } // host-side: the CLI's default\n\
            #[cfg(test)]\n\
            mod tests { fn t() { let d = Device::Cpu; } }\n";
        assert_eq!(unexplained_cpu_devices(text), [3]);
        assert!(is_test_support(Path::new("crates/x/src/testing.rs")));
        assert!(is_test_support(Path::new("crates/x/src/conv2d_tests.rs")));
        assert!(!is_test_support(Path::new("crates/x/src/linear.rs")));
    }

    #[test]
    fn an_include_outside_its_crate_is_reported() {
        let text = r#"const A: &str = include_str!("../../../examples/x.json");
            static B: &[u8] = include_bytes!("../assets/font.ttf");"#;
        assert_eq!(
            included_paths(text),
            ["../../../examples/x.json", "../assets/font.ttf"]
        );
        let dir = std::env::temp_dir().join(format!("gradus-tidy-inc-{}", std::process::id()));
        let krate = dir.join("crates/gradus-x");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"gradus-x\"\n").unwrap();
        std::fs::write(krate.join("src/lib.rs"), text).unwrap();
        let mut problems = Vec::new();
        check_includes(&dir, &mut problems);
        let mut missing = Vec::new();
        check_metadata(&dir, &mut missing);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"../../../examples/x.json\", outside its crate"));
        assert!(missing
            .iter()
            .any(|p| p == "gradus-x: Cargo.toml has no `package.readme`"));
        assert!(missing
            .iter()
            .any(|p| p.starts_with("gradus-x: LICENSE-MIT is missing")));
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
        let mut problems = Vec::new();
        check_dependencies(&dir, &mut problems);
        check_headers(&dir, &mut problems);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("gradus-init must not depend on gradus-optim"));
        assert!(problems[1].contains("src/lib.rs: first line"));
    }
}
