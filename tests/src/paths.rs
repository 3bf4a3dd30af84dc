//! Locations of the workspace, fixtures and function binaries.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
/// the tests would judge old code (issue 14 §11). Sources: the `src/` and
/// manifest of the function and of every workspace crate it links, the
/// workspace manifest and the lock file.
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
    // The function and every workspace crate it links (its normal
    // dependency closure): their `src/` and manifests. A crate it does not
    // link (another function's logic, test support) never makes it stale:
    // cargo would not relink it for that.
    for dir in linked_crate_dirs(name) {
        walk(&dir.join("src"), &mut consider);
        consider(dir.join("Cargo.toml"));
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
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

/// The directories of the workspace crates `name` links, itself included.
fn linked_crate_dirs(name: &str) -> Vec<PathBuf> {
    let meta = cargo_metadata();
    let mut wanted = normal_closures(meta).remove(name).unwrap_or_default();
    wanted.insert(name.to_owned());
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .filter(|p| p["name"].as_str().is_some_and(|n| wanted.contains(n)))
        .filter_map(|p| p["manifest_path"].as_str())
        .filter_map(|m| Path::new(m).parent().map(Path::to_path_buf))
        .collect()
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

/// The host's target triple, from `rustc -vV`.
pub fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .expect("rustc -vV prints a host line")
}

/// `cargo metadata` of the workspace, once per process.
///
/// `--filter-platform <host>`: without it cargo metadata needs every package
/// in Cargo.lock, including those only other platforms use, which no build
/// here downloaded; with `--offline` that fails on a fresh `CARGO_HOME`.
/// Filtered to the host, it needs exactly what building the tests
/// downloaded (issue 13).
pub fn cargo_metadata() -> &'static Value {
    static META: OnceLock<Value> = OnceLock::new();
    META.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline"])
            .args(["--filter-platform", &host_triple()])
            .current_dir(workspace_root())
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
    })
}

/// The names of every package in the normal dependency closure of the
/// package called `name` (any package of the graph, e.g. `aws-config`).
pub fn closure_of(meta: &Value, name: &str) -> BTreeSet<String> {
    let graph = Graph::new(meta);
    graph
        .names
        .iter()
        .filter(|(_, n)| **n == name)
        .flat_map(|(id, _)| graph.closure(id))
        .collect()
}

/// Packages by id and their normal (linked) dependencies.
struct Graph<'m> {
    names: BTreeMap<&'m str, &'m str>,
    edges: BTreeMap<&'m str, Vec<&'m str>>,
}

impl<'m> Graph<'m> {
    fn new(meta: &'m Value) -> Self {
        let names = meta["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
            .collect();
        let edges = meta["resolve"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| {
                let deps = n["deps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| {
                        d["dep_kinds"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|k| k["kind"].is_null())
                    })
                    .filter_map(|d| d["pkg"].as_str())
                    .collect();
                Some((n["id"].as_str()?, deps))
            })
            .collect();
        Self { names, edges }
    }

    fn closure(&self, id: &str) -> BTreeSet<String> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![id];
        while let Some(at) = stack.pop() {
            for dep in self.edges.get(at).into_iter().flatten() {
                if seen.insert(dep) {
                    stack.push(dep);
                }
            }
        }
        seen.iter()
            .filter_map(|d| self.names.get(d))
            .map(|n| (*n).to_owned())
            .collect()
    }
}

/// Each workspace member's name → the names of every package in its normal
/// dependency closure (dev- and build-dependencies left out: they are not
/// linked into what ships).
pub fn normal_closures(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let graph = Graph::new(meta);
    meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| {
            let name = graph.names.get(id).copied().unwrap_or(id).to_owned();
            (name, graph.closure(id))
        })
        .collect()
}

/// Each workspace member's name → the names of its direct normal
/// dependencies that are workspace members.
pub fn member_dependencies(meta: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null() && d["path"].is_string())
                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                .collect();
            (p["name"].as_str().unwrap_or_default().to_owned(), deps)
        })
        .collect()
}
