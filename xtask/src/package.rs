//! `cargo xtask package`: every publishable crate packaged and verified the way crates.io would
//! build it, then `cargo publish --dry-run`; `cargo xtask msrv`: the workspace checked with the
//! toolchain of its `rust-version`; `cargo xtask man [DIR]`: the man pages of `gradus`.
//!
//! `cargo package --workspace` (cargo 1.90 and later) packages the crates in dependency order
//! and verifies each by building its `.crate` alone, against the already packaged workspace
//! crates served from a local registry overlay: so `gradus-optim` is verified against the
//! `gradus-core` package, not its folder, before either is on crates.io, and nothing is
//! uploaded. Each verification is its own build (dependencies are compiled again for each
//! crate's feature set), which is why CI runs only the quick `--no-verify` form.

use std::path::Path;

use xshell::{cmd, Shell};

/// Workspace members that are not published (`publish = false`: xtask, the benches, the plugin
/// example), as `--exclude NAME` arguments.
fn unpublished_excludes(root: &Path) -> Result<Vec<String>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let mut excludes = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        // `publish = false` reads as an empty list of allowed registries.
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            if let Some(name) = package["name"].as_str() {
                excludes.push("--exclude".to_string());
                excludes.push(name.to_string());
            }
        }
    }
    Ok(excludes)
}

/// `cargo package --workspace --locked` with verification, then `cargo publish --workspace
/// --dry-run`, for every publishable crate.
pub fn package(sh: &Shell, root: &Path) -> Result<(), String> {
    let excludes = unpublished_excludes(root)?;
    let args = &excludes;
    // Verification builds every dependency again per crate (its own feature set, no
    // workspace profile): in a target folder of its own, without debug info, removed after,
    // so that it neither evicts nor bloats the development build (several GB otherwise).
    let verify = root.join("target").join("package-verify");
    let _debug = sh.push_env("CARGO_PROFILE_DEV_DEBUG", "false");
    let packaged = cmd!(
        sh,
        "cargo package --workspace --locked --target-dir {verify} {args...}"
    )
    .run()
    .map_err(|e| e.to_string())
    .and_then(|()| {
        // The packages were just built and verified; the dry run adds the checks of
        // publishing itself (registry, manifest rules for upload) without building again.
        cmd!(
            sh,
            "cargo publish --workspace --dry-run --no-verify --locked --target-dir {verify} {args...}"
        )
        .run()
        .map_err(|e| e.to_string())
    });
    let _ = std::fs::remove_dir_all(verify.join("debug"));
    packaged?;
    println!(
        "package: every publishable crate packages, builds from its .crate alone and passes \
         the publish dry run; the .crate files are in {}",
        verify.join("package").display()
    );
    Ok(())
}

/// `cargo check --workspace --all-targets --locked` with the toolchain named by the
/// workspace's `rust-version` (installed with `rustup toolchain install VERSION --profile
/// minimal`), in `target/msrv`: the check a declared `rust-version` cannot give, since a
/// dependency may need a newer compiler than it declares.
pub fn msrv(sh: &Shell, root: &Path) -> Result<(), String> {
    let version = crate::tidy::workspace_rust_version(root);
    if version.is_empty() {
        return Err("Cargo.toml has no workspace.package.rust-version".to_string());
    }
    let target = root.join("target").join("msrv");
    cmd!(
        sh,
        "rustup run {version} cargo check --workspace --all-targets --locked --target-dir {target}"
    )
    .run()
    .map_err(|e| {
        format!("{e}\n(is the toolchain installed? rustup toolchain install {version} --profile minimal)")
    })?;
    println!("msrv: the workspace builds with Rust {version}");
    Ok(())
}

/// Writes the man pages of `gradus` (one per command, from its clap definition) into `dir`
/// (default `target/man`); read one with `man -l target/man/gradus.1`.
pub fn man(sh: &Shell, root: &Path, dir: Option<String>) -> Result<(), String> {
    let dir = dir.unwrap_or_else(|| root.join("target").join("man").display().to_string());
    cmd!(
        sh,
        "cargo run --quiet --locked -p gradus-runner --bin gradus -- man {dir}"
    )
    .run()
    .map_err(|e| e.to_string())
}
