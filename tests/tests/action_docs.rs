//! The action reference pages (`docs/actions/<action>.md`, issue 20) stay
//! true to the parser: every `UserParameters` example on a page is accepted
//! and is that page's action, and the page's field table lists exactly the
//! fields the parser knows (asked of the parser itself, through the "known
//! fields" of the error an unknown field gets). The index lists every page.

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn page(action: &str) -> Option<String> {
    std::fs::read_to_string(root().join(format!("docs/actions/{action}.md"))).ok()
}

/// The fields the parser accepts in the object where `raw` puts the unknown
/// field `zz_unknown`, read from the error it gets (`None` when the parser
/// stopped at another field first).
fn known_fields(raw: &str) -> Option<BTreeSet<String>> {
    let err = tollgate_pipeline::params::parse(Some(raw)).expect_err("an unknown field is refused");
    if !err.field.ends_with("zz_unknown") {
        return None;
    }
    let text = err.to_string();
    let list = text
        .split("known fields: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{raw}: the error lists no known fields: {text}"));
    let list = list.split(". Example").next().unwrap_or(list);
    Some(
        Regex::new(r#""([a-z_]+)""#)
            .expect("regex")
            .captures_iter(list)
            .map(|c| c[1].to_owned())
            .collect(),
    )
}

/// Field names in the page's tables (`| \`field\` |` rows).
fn documented_fields(text: &str) -> BTreeSet<String> {
    Regex::new(r"(?m)^\| `([a-z_]+)` \|")
        .expect("regex")
        .captures_iter(text)
        .map(|c| c[1].to_owned())
        .collect()
}

/// The pages this change wrote; pages for further actions are checked
/// the same way when they exist.
const PAGES: [&str; 6] = [
    "smoke",
    "verify-artifact",
    "ecs-deploy",
    "ecs-wait",
    "gate",
    "run-task",
];

#[test]
fn every_action_page_documents_exactly_the_parser_fields() {
    for action in PAGES {
        assert!(
            page(action).is_some(),
            "docs/actions/{action}.md is missing"
        );
    }
    for action in tollgate_pipeline::params::ACTIONS {
        let Some(text) = page(action) else { continue };
        let mut known = known_fields(&format!(r#"{{"action":"{action}","zz_unknown":1}}"#))
            .expect("the unknown top-level field is the one refused");
        known.insert("action".to_owned());
        let documented = documented_fields(&text);
        let missing: Vec<&String> = known.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "docs/actions/{action}.md: fields the parser accepts but the page does not list: {missing:?}"
        );
        // Nested objects: image_policy's fields, listed on the page or linked.
        if known.contains("image_policy") {
            let nested = known_fields(&format!(
                r#"{{"action":"{action}","image_policy":{{"zz_unknown":1}}}}"#
            ))
            .or_else(|| {
                known_fields(&format!(
                    r#"{{"action":"{action}","cluster":"c","service":"s","image_policy":{{"zz_unknown":1}}}}"#
                ))
            })
            .expect("image_policy's unknown field is refused");
            let missing: Vec<&String> = nested.difference(&documented).collect();
            assert!(
                missing.is_empty() || text.contains("verify-artifact.md#userparameters"),
                "docs/actions/{action}.md: image_policy fields missing: {missing:?}"
            );
        }
    }
}

#[test]
fn every_user_parameters_example_on_a_page_is_accepted() {
    let example = Regex::new(r"UserParameters: '(\{.*\})'").expect("regex");
    for action in tollgate_pipeline::params::ACTIONS {
        let Some(text) = page(action) else { continue };
        let mut seen = 0;
        for c in example.captures_iter(&text) {
            let raw = &c[1];
            if let Err(e) = tollgate_pipeline::params::parse(Some(raw)) {
                panic!("docs/actions/{action}.md: UserParameters {raw} is rejected: {e}");
            }
            let v: Value = serde_json::from_str(raw).expect("valid JSON");
            assert_eq!(
                v["action"].as_str(),
                Some(action),
                "docs/actions/{action}.md shows another action's parameters: {raw}"
            );
            seen += 1;
        }
        assert!(
            seen >= 2,
            "docs/actions/{action}.md: show at least two UserParameters examples"
        );
    }
}

#[test]
fn the_index_links_every_page() {
    let index = std::fs::read_to_string(root().join("docs/actions/README.md")).expect("index");
    for entry in std::fs::read_dir(root().join("docs/actions")).expect("docs/actions") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        if name == "README.md" || !name.ends_with(".md") {
            continue;
        }
        assert!(
            index.contains(&format!("]({name})")),
            "docs/actions/README.md does not link {name}"
        );
    }
}
