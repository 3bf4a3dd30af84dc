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
    refuse_stale(&path, name);
    path
}

/// Fails when a source the binary is built from is newer than the binary:
/// the tests would judge old code (issue 14 §11). Sources: the function's
/// own `src/`, the shared library's `src/`, and the manifests and lock file.
fn refuse_stale(binary: &Path, name: &str) {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return;
    };
    let root = workspace_root();
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut consider = |p: PathBuf| {
        if let Ok(t) = std::fs::metadata(&p).and_then(|m| m.modified())
            && newest.as_ref().is_none_or(|(n, _)| t > *n)
        {
            newest = Some((t, p));
        }
    };
    for dir in [
        root.join("shared/src"),
        root.join("functions").join(name).join("src"),
    ] {
        walk(&dir, &mut consider);
    }
    for file in ["Cargo.toml", "Cargo.lock", "shared/Cargo.toml"] {
        consider(root.join(file));
    }
    consider(root.join("functions").join(name).join("Cargo.toml"));
    if let Some((t, source)) = newest {
        assert!(
            t <= built,
            "{} is older than {}: rebuild it (`cargo build --release -p {name}`, or `sam build`) \
             so the tests judge the code as it is",
            binary.display(),
            source.display()
        );
    }
}

fn walk(dir: &Path, f: &mut impl FnMut(PathBuf)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, f);
        } else {
            f(path);
        }
    }
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
