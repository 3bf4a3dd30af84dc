//! Issue 14.5 across crates: every parser of a user document (check spec,
//! notifier rules, appspec, UserParameters, imagedefinitions.json,
//! imageDetail.json, taskdef.json), given syntax errors around a secret,
//! says nothing of the secret. The documents are
//! `tollgate_test_support::documents`.

/// Issue 14.5, the class: every parser of a user document, given syntax
/// errors around a secret (unclosed quote, duplicate key, tab, bad
/// indentation, a broken JSON document), says nothing of the secret.
#[test]
fn every_document_parser_keeps_the_document_out_of_its_errors() {
    use tollgate_pipeline::{deploy_files as verify, params};
    use tollgate_test_support::documents::{TOKEN, json_cases, yaml_cases};
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut yaml_and_json: Vec<(String, String)> = yaml_cases()
        .into_iter()
        .map(|(c, d)| (c.to_owned(), d))
        .collect();
    yaml_and_json.extend(json_cases().into_iter().map(|d| ("json".to_owned(), d)));
    for (case, doc) in &yaml_and_json {
        let spec = tollgate_checks::Spec::from_yaml_or_json(doc).expect_err("spec");
        texts.push((format!("check spec, {case}"), spec.to_string()));
        let rules = tollgate_notify::rules::parse_document(doc).expect_err("rules");
        texts.push((format!("notifier rules, {case}"), rules.to_string()));
        for file in ["appspec.yaml", "appspec.json"] {
            let e = verify::parse_appspec(file, doc).expect_err("appspec");
            texts.push((format!("{file}, {case}"), e.join("; ")));
        }
    }
    for doc in json_cases() {
        let e = params::parse(Some(&doc)).expect_err("params");
        texts.push(("UserParameters".to_owned(), e.to_string()));
        let e = verify::parse_image_definitions(&doc).expect_err("imagedefinitions");
        texts.push(("imagedefinitions.json".to_owned(), e.join("; ")));
        let e = verify::parse_image_detail(&doc).expect_err("imageDetail");
        texts.push(("imageDetail.json".to_owned(), e.join("; ")));
        let e = verify::parse_taskdef(&doc, None).expect_err("taskdef");
        texts.push(("taskdef.json".to_owned(), e.join("; ")));
    }
    for (what, text) in &texts {
        for secret in [TOKEN, "sk_live", "Bearer"] {
            assert!(!text.contains(secret), "{what} quoted the document: {text}");
        }
    }
    assert!(texts.len() >= 40, "{}", texts.len());
}
