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
                line.contains("-p tollgate-tests") || line.contains("-p tollgate-checks");
            assert!(
                !(builds_tool && line.contains("--release")),
                "{file}: `{}` builds a tool with the release profile; use --profile tools",
                line.trim()
            );
        }
    }
}
