//! The crate map of ARCHITECTURE.md, held by the compiler and checked here
//! (issue 15): each crate depends only on the crates its row allows, no
//! logic crate links an AWS SDK crate, no function's logic depends on
//! another's, test support is never shipped, and every function starts the
//! same way.

use std::collections::{BTreeMap, BTreeSet};
use tollgate_tests::paths::{cargo_metadata, member_dependencies, normal_closures, workspace_root};

/// Each shared crate → the Tollgate crates it may depend on (normal
/// dependencies). The arrows point one way: core ← report ← (checks, logic,
/// adapters) ← runtime ← functions.
const ALLOWED: &[(&str, &[&str])] = &[
    ("tollgate-core", &[]),
    ("tollgate-report", &["tollgate-core"]),
    ("tollgate-checks", &["tollgate-core"]),
    (
        "tollgate-pipeline",
        &["tollgate-core", "tollgate-report", "tollgate-checks"],
    ),
    (
        "tollgate-deploy",
        &["tollgate-core", "tollgate-report", "tollgate-checks"],
    ),
    ("tollgate-notify", &["tollgate-core", "tollgate-report"]),
    ("tollgate-deadletter", &["tollgate-core", "tollgate-report"]),
    ("tollgate-approvals", &["tollgate-core", "tollgate-report"]),
    ("tollgate-aws", &["tollgate-core", "tollgate-report"]),
    (
        "tollgate-aws-codepipeline",
        &["tollgate-aws", "tollgate-report"],
    ),
    (
        "tollgate-aws-codedeploy",
        &["tollgate-aws", "tollgate-report"],
    ),
    ("tollgate-aws-ssm", &["tollgate-aws", "tollgate-core"]),
    (
        "tollgate-aws-secretsmanager",
        &["tollgate-aws", "tollgate-core"],
    ),
    (
        "tollgate-aws-cloudwatch",
        &["tollgate-aws", "tollgate-report", "tollgate-checks"],
    ),
    (
        "tollgate-runtime",
        &["tollgate-core", "tollgate-report", "tollgate-aws"],
    ),
    (
        "tollgate-test-support",
        &["tollgate-core", "tollgate-report"],
    ),
];

/// Each tool in `tools/` → the Tollgate crates it may depend on. Tools are
/// never shipped in a function; they may put logic and adapters together.
const TOOLS: &[(&str, &[&str])] = &[
    (
        "tollgate-cli",
        &[
            "tollgate-core",
            "tollgate-checks",
            "tollgate-aws",
            "tollgate-aws-cloudwatch",
        ],
    ),
    // The bench's floor: lambda_runtime alone, nothing of Tollgate's.
    ("bench-floor", &[]),
];

/// Crates that hold logic: none may link an AWS SDK crate or its runtime.
const LOGIC: &[&str] = &[
    "tollgate-core",
    "tollgate-report",
    "tollgate-checks",
    "tollgate-pipeline",
    "tollgate-deploy",
    "tollgate-notify",
    "tollgate-deadletter",
    "tollgate-approvals",
    "tollgate-test-support",
];

/// Each function's logic crate.
const FUNCTIONS: &[(&str, &str)] = &[
    ("pipeline-action", "tollgate-pipeline"),
    ("deploy-hook", "tollgate-deploy"),
    ("notifier", "tollgate-notify"),
    ("dead-letter", "tollgate-deadletter"),
    ("approvals", "tollgate-approvals"),
];

fn shared_crates() -> BTreeSet<String> {
    std::fs::read_dir(workspace_root().join("shared"))
        .expect("shared/ is readable")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_shared_crate_has_a_row_and_keeps_to_it() {
    let deps = member_dependencies(cargo_metadata());
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    for krate in shared_crates() {
        let row = allowed.get(krate.as_str()).unwrap_or_else(|| {
            panic!("shared/{krate}: add its row to ALLOWED here and to the crate map in ARCHITECTURE.md")
        });
        let has = deps
            .get(&krate)
            .unwrap_or_else(|| panic!("{krate} is not a workspace member"));
        let wrong: Vec<&String> = has.iter().filter(|d| !row.contains(&d.as_str())).collect();
        assert!(
            wrong.is_empty(),
            "{krate} depends on {wrong:?}, against its row in the crate map ({row:?})"
        );
    }
    assert_eq!(
        shared_crates().len(),
        ALLOWED.len(),
        "a row of ALLOWED names no crate in shared/"
    );
}

#[test]
fn every_tool_has_a_row_and_keeps_to_it_and_no_function_links_one() {
    let root = workspace_root().join("tools");
    let tools: BTreeSet<String> = std::fs::read_dir(&root)
        .expect("tools/ is readable")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = TOOLS.iter().copied().collect();
    let deps = member_dependencies(cargo_metadata());
    for tool in &tools {
        let row = allowed.get(tool.as_str()).unwrap_or_else(|| {
            panic!(
                "tools/{tool}: add its row to TOOLS here and to the crate map in ARCHITECTURE.md"
            )
        });
        let has = deps
            .get(tool)
            .unwrap_or_else(|| panic!("{tool} is not a workspace member"));
        let wrong: Vec<&String> = has.iter().filter(|d| !row.contains(&d.as_str())).collect();
        assert!(
            wrong.is_empty(),
            "{tool} depends on {wrong:?}, against its row in the crate map ({row:?})"
        );
    }
    assert_eq!(
        tools.len(),
        TOOLS.len(),
        "a row of TOOLS names no crate in tools/"
    );
    let closures = normal_closures(cargo_metadata());
    for (function, _) in FUNCTIONS {
        for tool in &tools {
            assert!(
                !closures[*function].contains(tool),
                "{function} links the tool {tool}"
            );
        }
    }
}

#[test]
fn no_logic_crate_links_the_sdk() {
    let closures = normal_closures(cargo_metadata());
    for krate in LOGIC {
        let aws: Vec<&String> = closures[*krate]
            .iter()
            .filter(|d| {
                d.starts_with("aws-sdk-")
                    || d.starts_with("aws-config")
                    || d.starts_with("aws-smithy")
            })
            .collect();
        assert!(
            aws.is_empty(),
            "{krate} links {aws:?}: logic talks to AWS through ports only"
        );
    }
}

#[test]
fn no_function_depends_on_another_functions_logic() {
    let closures = normal_closures(cargo_metadata());
    for (function, own) in FUNCTIONS {
        for (_, other) in FUNCTIONS.iter().filter(|(_, l)| l != own) {
            assert!(
                !closures[*function].contains(*other),
                "{function} links {other}, another function's logic"
            );
            assert!(!closures[*own].contains(*other), "{own} links {other}");
        }
    }
}

#[test]
fn test_support_is_never_shipped() {
    let closures = normal_closures(cargo_metadata());
    for (krate, deps) in &closures {
        if krate != "tollgate-tests" {
            assert!(
                !deps.contains("tollgate-test-support"),
                "{krate} depends on tollgate-test-support outside [dev-dependencies]"
            );
        }
    }
}

#[test]
fn every_function_starts_the_same_way() {
    for (function, _) in FUNCTIONS {
        let path = workspace_root().join(format!("functions/{function}/src/main.rs"));
        let main = std::fs::read_to_string(&path).expect("main.rs is readable");
        let lines = main.lines().count();
        assert!(
            lines < 60,
            "{function}/src/main.rs has {lines} lines; keep main thin (< 60)"
        );
        assert!(
            main.contains("tollgate_runtime::run(init)"),
            "{function}: main must be `tollgate_runtime::run(init)`"
        );
        assert!(
            main.contains("async fn init(init: Init)"),
            "{function}: init builds the function (a tollgate_runtime::Function) from tollgate_runtime::Init"
        );
        for own_runtime in ["#[tokio::main", "lambda_runtime::run(", "telemetry::init("] {
            assert!(
                !main.contains(own_runtime),
                "{function}: {own_runtime} is tollgate_runtime's job, stated once"
            );
        }
    }
}

#[test]
fn tools_never_build_with_the_functions_profile() {
    // Fat LTO and one codegen unit are for what ships; the bench driver,
    // the rehearsal, the probe and the CLI build with `--profile tools`.
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("[profile.tools]"),
        "Cargo.toml has no [profile.tools]"
    );
    let mut texts = vec![(
        "README.md".to_owned(),
        std::fs::read_to_string(root.join("README.md")).expect("README"),
    )];
    for entry in std::fs::read_dir(root.join("scripts"))
        .expect("scripts/")
        .flatten()
    {
        if entry.path().is_file() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            texts.push((entry.path().display().to_string(), text));
        }
    }
    for (file, text) in texts {
        for line in text.lines() {
            let builds_tool =
                line.contains("-p tollgate-tests") || line.contains("-p tollgate-cli");
            assert!(
                !(builds_tool && line.contains("--release")),
                "{file}: `{}` builds a tool with the release profile; use --profile tools",
                line.trim()
            );
        }
    }
}

/// Crates allowed to resolve with other features in some functions than in
/// others, and why that is cheaper than unifying them.
const FEATURE_SPLITS_ALLOWED: &[(&str, &str)] = &[
    (
        "regex-automata",
        "the notifier and dead-letter only filter logs (tracing-subscriber's \
         minimal set); the Unicode tables of full regex would grow their zips",
    ),
    ("regex-syntax", "as regex-automata"),
];

/// `sam build` builds each function alone (`cargo lambda build --bin <f>`
/// in its folder), so cargo resolves features per function, and a crate
/// resolved with other features in one function (or depending on such a
/// crate) is compiled again for it: the SDK and HTTP stack was compiled
/// twice in CI. `tollgate-aws` names the union; this keeps it complete.
/// Per function: each registry package of its normal dependency graph, as
/// `name vX.Y.Z`, and the features cargo resolves for it when the function
/// is built alone (as `sam build` builds it).
fn feature_sets_per_function() -> BTreeMap<&'static str, BTreeMap<String, String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = tollgate_tests::paths::host_triple();
    let mut all = BTreeMap::new();
    for (function, _) in FUNCTIONS {
        let out = std::process::Command::new(&cargo)
            .args(["tree", "--offline", "-p", function, "-e", "normal"])
            .args(["--prefix", "none", "-f", "{p}|{f}", "--target", &target])
            .current_dir(workspace_root())
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree -p {function} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut packages = BTreeMap::new();
        for line in text
            .lines()
            .map(|l| l.trim_end_matches(" (*)").trim_end_matches(" (proc-macro)"))
        {
            let Some((package, features)) = line.split_once('|') else {
                continue;
            };
            if package.contains(" (/") {
                continue; // a workspace crate: its hash follows its dependencies'
            }
            packages.insert(package.to_owned(), features.to_owned());
        }
        assert!(
            packages.len() > 50,
            "cargo tree -p {function} listed only {} packages; the parsing is wrong",
            packages.len()
        );
        all.insert(*function, packages);
    }
    all
}

#[test]
fn every_function_resolves_shared_crates_with_one_feature_set() {
    // package -> feature set -> functions resolving it so.
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    for (function, packages) in feature_sets_per_function() {
        for (package, features) in packages {
            seen.entry(package)
                .or_default()
                .entry(features)
                .or_default()
                .push(function);
        }
    }
    let split: Vec<String> = seen
        .iter()
        .filter(|(_, sets)| sets.len() > 1)
        .filter(|(package, _)| {
            let name = package.split(' ').next().unwrap_or_default();
            !FEATURE_SPLITS_ALLOWED.iter().any(|(n, _)| *n == name)
        })
        .map(|(package, sets)| format!("{package}: {sets:?}"))
        .collect();
    assert!(
        seen.len() > 100,
        "cargo tree listed only {} packages; the parsing is wrong",
        seen.len()
    );
    assert!(
        split.is_empty(),
        "these crates resolve with other features in some functions, so `sam build` \
         compiles them (and all that depends on them) once per feature set; add the \
         missing features to the unifying list in shared/tollgate-aws/Cargo.toml:\n{}",
        split.join("\n")
    );
}

/// `scripts/check-template` builds the functions in groups, one cargo run
/// per group, so that their fat-LTO links share the cores; `sam build`
/// then finds them built. That holds only if cargo resolves, in one run for
/// the group, every package exactly as it does for each function alone:
/// the functions of a group must resolve every shared package alike
/// (including the splits allowed above), and every function must be in
/// exactly one group.
#[test]
fn the_release_groups_of_check_template_are_functions_with_one_feature_set() {
    let script = std::fs::read_to_string(workspace_root().join("scripts/check-template"))
        .expect("scripts/check-template is readable");
    let line = script
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("release_groups=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("scripts/check-template sets release_groups=\"a,b c,d\"");
    let groups: Vec<Vec<&str>> = line.split(' ').map(|g| g.split(',').collect()).collect();
    let mut listed: Vec<&str> = groups.iter().flatten().copied().collect();
    listed.sort_unstable();
    let mut functions: Vec<&str> = FUNCTIONS.iter().map(|(f, _)| *f).collect();
    functions.sort_unstable();
    assert_eq!(
        listed, functions,
        "release_groups in scripts/check-template must name every function exactly once"
    );
    let sets = feature_sets_per_function();
    for group in &groups {
        let first = group[0];
        for other in &group[1..] {
            let differing: Vec<&String> = sets[first]
                .iter()
                .filter(|(package, features)| {
                    sets[other].get(*package).is_some_and(|f| f != *features)
                })
                .map(|(package, _)| package)
                .collect();
            assert!(
                differing.is_empty(),
                "{first} and {other} share a release group in scripts/check-template but \
                 resolve these packages with other features, so `sam build` would compile \
                 them again: move one to another group: {differing:?}"
            );
        }
    }
    // Each group shares nothing it must not: two groups that resolve alike
    // could be one (one cargo run, more links side by side).
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            let (a, b) = (a[0], b[0]);
            let same = sets[a]
                .iter()
                .all(|(package, features)| sets[b].get(package).is_none_or(|f| f == features));
            assert!(
                !same,
                "{a}'s and {b}'s groups resolve every shared package alike: merge them"
            );
        }
    }
}

/// A library that is also a `cdylib` or `staticlib` (crc-fast, through S3's
/// checksums) makes cargo build its dependencies as object code as well as
/// bitcode under fat LTO, which changes their hash and that of every crate
/// above them. If only some functions link it, `sam build` compiles the SDK
/// stack twice. Every function must link the same such libraries
/// (shared/tollgate-aws names them).
#[test]
fn every_function_links_the_same_object_code_libraries() {
    let meta = cargo_metadata();
    let object_code: BTreeSet<String> = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k == "lib")
                    && t["crate_types"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c == "cdylib" || c == "staticlib" || c == "dylib")
            })
        })
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let closures = normal_closures(meta);
    let per_function: BTreeMap<&str, BTreeSet<&String>> = FUNCTIONS
        .iter()
        .map(|(f, _)| {
            let closure = closures
                .get(*f)
                .expect("every function is a workspace member");
            (*f, closure.intersection(&object_code).collect())
        })
        .collect();
    let first = &per_function[FUNCTIONS[0].0];
    for (function, libs) in &per_function {
        assert_eq!(
            libs, first,
            "{function} links other cdylib/staticlib libraries than {}: name the missing \
             ones in shared/tollgate-aws/Cargo.toml so every function classifies them alike",
            FUNCTIONS[0].0
        );
    }
}
