//! Locations of the workspace, fixtures and function binaries.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A sample event from `events/<function>/<case>.json`.
pub fn event(function: &str, case: &str) -> serde_json::Value {
    let path = workspace_root()
        .join("events")
        .join(function)
        .join(format!("{case}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read sample event {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("sample event {} is not JSON: {e}", path.display()))
}

/// The release binary of a function (`target/release/<name>`), or the one in
/// `$TOLLGATE_BIN_DIR` when that is set (e.g. `target/debug` while
/// iterating, or `target/lambda`, where `cargo lambda build` / `sam build`
/// put them, as CI does). Panics with the command to run when it is missing.
pub fn function_binary(name: &str) -> PathBuf {
    // A relative TOLLGATE_BIN_DIR is taken from the workspace root (tests run
    // with the package directory as their working directory).
    let dir = std::env::var_os("TOLLGATE_BIN_DIR")
        .map(|d| workspace_root().join(d))
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"))
                .join("release")
        });
    let path = binary_in(&dir, name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p {name}` first (or set TOLLGATE_BIN_DIR)",
        path.display()
    );
    path
}

/// A function's binary in `dir`: `dir/<name>` (cargo's layout) or, when
/// that does not exist, `dir/<name>/bootstrap` (cargo-lambda's layout, which
/// `sam build` uses). Not checked for existence.
pub fn binary_in(dir: &Path, name: &str) -> PathBuf {
    let flat = dir.join(name);
    if flat.is_file() {
        return flat;
    }
    let lambda = flat.join("bootstrap");
    if lambda.is_file() { lambda } else { flat }
}

/// The project virtualenv's Python (with `moto[server]`):
/// `$TOLLGATE_PYTHON`, else `.venv/bin/python` (`scripts/setup-venv` creates it).
pub fn venv_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TOLLGATE_PYTHON") {
        return PathBuf::from(p);
    }
    let path = workspace_root().join(".venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup-venv` first",
        path.display()
    );
    path
}
