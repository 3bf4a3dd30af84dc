//! Malformed specs: each error names the field path and says what to fix.

use tollgate_checks::{Spec, SpecError};

/// Parses `text`, expects an error at `path`, returns its message.
fn error_at(text: &str, path: &str) -> String {
    let err = Spec::from_yaml_or_json(text).expect_err("malformed spec is rejected");
    assert_eq!(err.path(), Some(path), "wrong path in: {err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{path}: ")),
        "message starts with the path: {shown}"
    );
    shown
}

#[test]
fn status_shorthand_is_rejected_with_the_accepted_forms() {
    let msg = error_at(
        r#"
checks:
  - {name: a, url: "${TARGET}/a"}
  - {name: b, url: "${TARGET}/b"}
  - name: c
    url: "${TARGET}/c"
    expect: {status: 2xx}
"#,
        "checks[2].expect.status",
    );
    assert_eq!(
        msg,
        r#"checks[2].expect.status: expected a code, a list or a range like "200-299", got "2xx""#
    );
}

#[test]
fn status_list_item_is_pointed_at() {
    let msg = error_at(
        r#"{"checks": [{"url": "${TARGET}/", "expect": {"status": [200, "20x"]}}]}"#,
        "checks[0].expect.status[1]",
    );
    assert!(msg.ends_with(r#"got "20x""#), "{msg}");
    error_at(
        r#"{"checks": [{"url": "${TARGET}/", "expect": {"status": 999}}]}"#,
        "checks[0].expect.status",
    );
    error_at(
        r#"{"checks": [{"url": "${TARGET}/", "expect": {"status": "299-200"}}]}"#,
        "checks[0].expect.status",
    );
}

#[test]
fn unknown_fields_are_rejected_everywhere() {
    let msg = error_at(
        "concurrancy: 4\nchecks: [{url: \"${TARGET}/\"}]\n",
        "concurrancy",
    );
    assert!(msg.contains(r#"did you mean "concurrency"?"#), "{msg}");
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {stauts: 200}\n",
        "checks[0].expect.stauts",
    );
    assert!(msg.contains(r#"did you mean "status"?"#), "{msg}");
    let msg = error_at(
        "defaults: {retries: 3}\nchecks: [{url: \"${TARGET}/\"}]\n",
        "defaults.retries",
    );
    assert!(msg.contains(r#"did you mean "retry"?"#), "{msg}");
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    retry: {attempts: 3, jitter: true}\n",
        "checks[0].retry.jitter",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {headers: {etag: {present: true}}}\n",
        "checks[0].expect.headers.etag.present",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {json: [{path: $.a, equal: 1}]}\n",
        "checks[0].expect.json[0].equal",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {body: {contain: ok}}\n",
        "checks[0].expect.body.contain",
    );
}

#[test]
fn numbers_and_ranges() {
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/a\"\n  - url: \"${TARGET}/b\"\n    retry: {attempts: 0}\n",
        "checks[1].retry.attempts",
    );
    assert_eq!(
        msg,
        "checks[1].retry.attempts: expected a whole number from 1 to 100, got 0"
    );
    error_at(
        "concurrency: 0\nchecks: [{url: \"${TARGET}/\"}]\n",
        "concurrency",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    retry: {backoff: 0.5}\n",
        "checks[0].retry.backoff",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    samples: 0\n",
        "checks[0].samples",
    );
}

#[test]
fn durations_need_units() {
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    timeout: 5\n",
        "checks[0].timeout",
    );
    assert_eq!(
        msg,
        r#"checks[0].timeout: expected a duration with a unit like "500ms", "2s" or "1m30s", got 5"#
    );
    error_at(
        "defaults:\n  retry: {interval: 2 seconds}\nchecks: [{url: \"${TARGET}/\"}]\n",
        "defaults.retry.interval",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {max_latency: 0ms}\n",
        "checks[0].expect.max_latency",
    );
    error_at(
        "deadline: soon\nchecks: [{url: \"${TARGET}/\"}]\n",
        "deadline",
    );
}

#[test]
fn pass_rate_forms() {
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    samples: 20\n    min_pass_rate: 150%\n",
        "checks[0].min_pass_rate",
    );
    assert!(
        msg.contains(r#"a percentage like "95%" or a fraction like 0.95"#),
        "{msg}"
    );
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    min_pass_rate: 95%\n",
        "checks[0].min_pass_rate",
    );
    assert!(msg.contains("add samples: N"), "{msg}");
}

#[test]
fn regexes_and_jsonpaths_are_compiled_at_parse_time() {
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {body: {matches: \"(unclosed\"}}\n",
        "checks[0].expect.body.matches",
    );
    assert!(
        msg.contains("invalid regular expression \"(unclosed\""),
        "{msg}"
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {body: {matches: [ok, \"[z-a]\"]}}\n",
        "checks[0].expect.body.matches[1]",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {headers: {etag: {matches: \"*\"}}}\n",
        "checks[0].expect.headers.etag.matches",
    );
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {json: [{path: status, equals: ok}]}\n",
        "checks[0].expect.json[0].path",
    );
    assert!(msg.contains("invalid JSONPath \"status\""), "{msg}");
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {json: [{path: $.a, exists: true}, {path: $.b}]}\n",
        "checks[0].expect.json[1]",
    );
    assert!(msg.contains("no test given"), "{msg}");
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {json: [{equals: 1}]}\n",
        "checks[0].expect.json[0].path",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {json: [{path: $.n, lt: \"ten\"}]}\n",
        "checks[0].expect.json[0].lt",
    );
}

#[test]
fn header_tests() {
    let msg = error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {headers: {etag: {exists: yes}}}\n",
        "checks[0].expect.headers.etag.exists",
    );
    assert!(
        msg.ends_with(r#"expected true or false, got "yes""#),
        "{msg}"
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    headers: {\"bad header\": x}\n",
        "checks[0].headers.bad header",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    expect: {headers: {ETag: {exists: true}, etag: x}}\n",
        "checks[0].expect.headers.etag",
    );
}

#[test]
fn urls_and_templates() {
    let msg = error_at("checks:\n  - name: a\n", "checks[0].url");
    assert!(msg.contains("missing"), "{msg}");
    let msg = error_at("checks:\n  - url: /health\n", "checks[0].url");
    assert!(
        msg.contains(r#"start it with a variable like "${TARGET}/health""#),
        "{msg}"
    );
    let msg = error_at("checks:\n  - url: \"${TARGET/health\"\n", "checks[0].url");
    assert!(msg.contains("unclosed"), "{msg}");
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    headers: {Authorization: \"Bearer ${9TOKEN}\"}\n",
        "checks[0].headers.Authorization",
    );
}

#[test]
fn check_level_rules() {
    let msg = error_at(
        "checks:\n  - {name: health, url: \"${TARGET}/a\"}\n  - {name: health, url: \"${TARGET}/b\"}\n",
        "checks[1].name",
    );
    assert!(
        msg.contains("duplicate name \"health\" (also checks[0])"),
        "{msg}"
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    method: FETCH\n",
        "checks[0].method",
    );
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    method: POST\n    body: a\n    json: {a: 1}\n",
        "checks[0].json",
    );
    error_at("checks: []\n", "checks");
    error_at("checks: {url: x}\n", "checks");
    error_at("defaults: {}\n", "checks");
    error_at("version: 2\nchecks: [{url: \"${TARGET}/\"}]\n", "version");
    error_at(
        "checks:\n  - url: \"${TARGET}/\"\n    max_body: 1GiB\n",
        "checks[0].max_body",
    );
}

#[test]
fn not_a_mapping_or_not_yaml() {
    error_at("- just\n- a list\n", "spec");
    let err = Spec::from_yaml_or_json("checks: [\n").expect_err("bad yaml");
    assert!(
        matches!(err, SpecError::Syntax { format: "YAML", .. }),
        "{err}"
    );
    assert_eq!(err.path(), None);
    let err = Spec::from_yaml_or_json("{\"checks\": [}").expect_err("bad json");
    assert!(
        err.to_string().starts_with("spec is not valid JSON: "),
        "{err}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");
    let err = Spec::from_yaml_or_json("checks: []\nchecks: []\n").expect_err("duplicate key");
    assert!(matches!(err, SpecError::Syntax { .. }), "{err}");
}

#[test]
fn a_good_spec_in_yaml_and_json_is_the_same() {
    let yaml = r#"
version: 1
concurrency: 4
deadline: 2m
fail_fast: true
secret_headers: [X-Internal-Key]
defaults:
  timeout: 5s
  retry: {attempts: 3, interval: 1s, backoff: 2, max_interval: 10s}
  expect: {status: "200-299", max_latency: 2s}
checks:
  - name: health
    url: "${TARGET}/health"
    initial_delay: 5s
    samples: 20
    sample_interval: 100ms
    min_pass_rate: 95%
  - name: version
    url: "${TARGET}/version"
    tls_verify: false
    follow_redirects: true
    max_body: 64KiB
    headers: {Host: api.example.com, X-Internal-Key: "${KEY}"}
    expect:
      headers: {content-type: {contains: json}}
      json: [{path: $.version, equals: "${VERSION}"}]
      body: {not_contains: error}
"#;
    let json =
        serde_json::to_string(&serde_saphyr::from_str::<serde_json::Value>(yaml).expect("yaml"))
            .expect("json");
    for text in [yaml, json.as_str()] {
        let spec = Spec::from_yaml_or_json(text).expect("valid");
        assert_eq!(spec.len(), 2);
        assert_eq!(spec.concurrency(), 4);
        assert!(spec.fail_fast());
        assert_eq!(
            spec.variables().into_iter().collect::<Vec<_>>(),
            ["KEY", "TARGET", "VERSION"]
        );
        assert!(
            !format!("{spec:?}").contains("${KEY}"),
            "secret header template hidden"
        );
    }
}
