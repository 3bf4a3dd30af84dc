//! Every check spec shown in the docs runs where the docs say it runs.
//!
//! A spec example is a fenced block whose info string names its entry
//! point: ```` ```yaml spec-example=<entry> [vars=A,B] [secrets=C] ````,
//! with `<entry>` one of `cli`, `pipeline-smoke`, `deploy-hook-codedeploy`,
//! `deploy-hook-ecs`. Each is parsed and validated with exactly the
//! variables that entry point supplies (deploy-hook's own lists, the
//! `vars` / `secrets` the example's command line or `UserParameters` give),
//! so an example using `${COMMIT}` in a hook, or a `variables:` map in a
//! pipeline spec, fails here. A fenced YAML or JSON block with a top-level
//! `checks` list must carry the tag.

use serde_json::Value;
use std::collections::BTreeMap;
use tollgate_checks::{Spec, Vars};
use tollgate_deploy::smoke::{CODEDEPLOY_VARIABLES, ECS_VARIABLES, parse_checked};
use tollgate_tests::paths;

const DOCS: &[&str] = &["docs/checks.md", "docs/deploy.md"];
const ENTRY_POINTS: &[&str] = &[
    "cli",
    "pipeline-smoke",
    "deploy-hook-codedeploy",
    "deploy-hook-ecs",
];

struct Block {
    doc: &'static str,
    line: usize,
    info: String,
    text: String,
}

fn fenced_blocks(doc: &'static str) -> Vec<Block> {
    let text = std::fs::read_to_string(paths::workspace_root().join(doc)).expect("doc");
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match open.take() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some((i + 1, info.trim().to_owned(), String::new()));
                }
            }
            Some((start, info, mut body)) => {
                if line.trim_start().starts_with("```") {
                    blocks.push(Block {
                        doc,
                        line: start,
                        info,
                        text: body,
                    });
                } else {
                    body.push_str(line);
                    body.push('\n');
                    open = Some((start, info, body));
                }
            }
        }
    }
    blocks
}

/// `key=value` words of an info string.
fn attributes(info: &str) -> BTreeMap<&str, &str> {
    info.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn list<'a>(attrs: &BTreeMap<&str, &'a str>, key: &str) -> Vec<&'a str> {
    attrs
        .get(key)
        .map(|v| v.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

fn value_for(name: &str) -> String {
    if name == "TARGET" {
        "https://green.example.com".to_owned()
    } else {
        format!("example-{}", name.to_ascii_lowercase())
    }
}

/// Validates one example as its entry point would; `Err` says why not.
fn validate(block: &Block, entry: &str) -> Result<(), String> {
    let attrs = attributes(&block.info);
    let spec = Spec::from_yaml_or_json(&block.text).map_err(|e| e.to_string())?;
    let mut vars = Vars::new();
    match entry {
        "cli" | "pipeline-smoke" => {
            for name in list(&attrs, "vars") {
                vars.insert(name, value_for(name));
            }
            for name in list(&attrs, "secrets") {
                vars.insert_secret(name, value_for(name));
            }
            if entry == "pipeline-smoke" && !spec.secret_variables().is_empty() {
                return Err("pipeline-action does not read variables: references".to_owned());
            }
            // The CLI takes each of them as --secret NAME.
            for name in spec.secret_variables().names() {
                if !list(&attrs, "secrets").contains(&name) {
                    return Err(format!(
                        "variables.{name} needs --secret {name} on the command line"
                    ));
                }
            }
        }
        "deploy-hook-codedeploy" | "deploy-hook-ecs" => {
            let supplied = if entry == "deploy-hook-ecs" {
                ECS_VARIABLES
            } else {
                CODEDEPLOY_VARIABLES
            };
            parse_checked(&block.text, "the example", supplied).map_err(|e| e.to_string())?;
            for name in supplied {
                vars.insert(*name, value_for(name));
            }
            for name in spec.secret_variables().names() {
                vars.insert_secret(name, value_for(name));
            }
        }
        other => return Err(format!("unknown entry point {other:?}")),
    }
    spec.check_vars(&vars).map_err(|e| e.to_string())
}

#[test]
fn every_spec_example_validates_for_its_entry_point() {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for doc in DOCS {
        for block in fenced_blocks(doc) {
            let attrs = attributes(&block.info);
            let Some(entry) = attrs.get("spec-example").copied() else {
                // An untagged spec would escape the check.
                let lang = block.info.split_whitespace().next().unwrap_or_default();
                if matches!(lang, "yaml" | "json") {
                    let parsed: Option<Value> = if lang == "json" {
                        serde_json::from_str(&block.text).ok()
                    } else {
                        serde_saphyr::from_str(&block.text).ok()
                    };
                    if parsed.is_some_and(|v| v.get("checks").is_some_and(Value::is_array)) {
                        problems.push(format!(
                            "{}:{}: a spec without a spec-example=<entry point> tag",
                            block.doc, block.line
                        ));
                    }
                }
                continue;
            };
            *seen.entry(entry.to_owned()).or_default() += 1;
            if let Err(why) = validate(&block, entry) {
                problems.push(format!("{}:{} ({entry}): {why}", block.doc, block.line));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for entry in ENTRY_POINTS {
        assert!(
            seen.contains_key(*entry),
            "no example for {entry} in the docs: {seen:?}"
        );
    }
}

/// The check itself catches what the issue found: the first example's
/// `${COMMIT}` and `${TOKEN}` in a hook, a secret map in a pipeline spec.
#[test]
fn the_validator_refuses_an_example_in_the_wrong_place() {
    let cli = fenced_blocks("docs/checks.md")
        .into_iter()
        .find(|b| b.info.contains("spec-example=cli"))
        .expect("the first example");
    let err = validate(&cli, "deploy-hook-codedeploy").expect_err("COMMIT in a hook");
    assert!(err.contains("${COMMIT}"), "{err}");
    let hook = fenced_blocks("docs/checks.md")
        .into_iter()
        .find(|b| b.info.contains("spec-example=deploy-hook-codedeploy"))
        .expect("a hook example");
    let err = validate(
        &Block {
            info: "yaml spec-example=pipeline-smoke vars=TARGET".to_owned(),
            ..hook
        },
        "pipeline-smoke",
    )
    .expect_err("variables: in a pipeline");
    assert!(err.contains("does not read variables"), "{err}");
}
