//! Smoke-check engine against a local test app: every expectation kind
//! passing and failing, retries, samples, redirects, huge bodies, transport
//! failures, fail_fast, the concurrency limit, the deadline and redaction.

mod checks_support;

use checks_support::{TestApp, refused_port};
use std::time::Duration;
use tokio::time::Instant;
use tollgate_checks::{
    CheckResult, CheckStatus, Engine, EngineConfig, ExpectationResult, Outcome, RunOptions,
    RunReport, Spec, SpecError, Vars,
};

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("engine builds")
}

fn spec(text: &str) -> Spec {
    Spec::from_yaml_or_json(text).unwrap_or_else(|e| panic!("test spec is valid: {e}"))
}

fn vars(app: &TestApp) -> Vars {
    Vars::new().with("TARGET", app.url())
}

async fn run(app: &TestApp, text: &str) -> RunReport {
    run_vars(text, vars(app), Duration::from_secs(30)).await
}

async fn run_vars(text: &str, vars: Vars, within: Duration) -> RunReport {
    engine()
        .run(&spec(text), &vars, Instant::now() + within)
        .await
        .expect("variables apply")
}

fn check<'a>(report: &'a RunReport, name: &str) -> &'a CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#?}"))
}

fn find<'a>(c: &'a CheckResult, what: &str, expected: &str) -> &'a ExpectationResult {
    c.expectations
        .iter()
        .find(|e| e.what == what && e.expected == expected)
        .unwrap_or_else(|| {
            panic!(
                "no expectation {what} / {expected} in {:#?}",
                c.expectations
            )
        })
}

const ALL_KINDS_PASS: &str = r#"
checks:
  - name: ok
    url: "${TARGET}/ok"
    expect:
      status: 200
      headers:
        content-type: {equals: application/json, contains: json, matches: "^application/(json|problem\\+json)$", exists: true}
        x-version: "1.2.3"
        x-missing: {exists: false}
      body:
        contains: ["\"status\"", "ok"]
        not_contains: error
        matches: '"version":\s*"\d+\.\d+\.\d+"'
      max_latency: 5s
  - name: nested json
    url: "${TARGET}/json"
    expect:
      status: [200, "300-302"]
      json:
        - {path: $.service.name, equals: checkout}
        - {path: $.service.healthy, equals: true}
        - {path: "$.service.deps[?@.name == 'db'].latency_ms", lt: 50, gt: 1, gte: 12.5, lte: 12.5}
        - {path: "$.service.deps[*].status", equals: up}
        - {path: $.items, contains: 2}
        - {path: $.version, contains: "2.4", matches: "^2\\.\\d+\\.\\d+$"}
        - {path: $.service, contains: deps}
        - {path: $.service.deps, exists: true}
        - {path: $.nothing, exists: false}
        - {path: $.empty, equals: null}
  - name: range
    url: "${TARGET}/status/204"
    expect:
      status: "200-299"
"#;

#[tokio::test]
async fn every_expectation_kind_passes() {
    let app = TestApp::start().await;
    let report = run(&app, ALL_KINDS_PASS).await;
    assert_eq!(
        report.outcome,
        Outcome::Passed,
        "{}",
        report.failure_details(5000)
    );
    assert_eq!((report.passed, report.failed, report.unfinished), (3, 0, 0));
    for c in &report.checks {
        assert!(!c.expectations.is_empty());
        for e in &c.expectations {
            assert!(e.passed, "{}: {e:?}", c.name);
        }
        assert_eq!(c.attempts, 1);
        assert_eq!(c.latencies_ms.len(), 1);
    }
    let ok = check(&report, "ok");
    // 1 status + 4 + 1 + 1 header tests + 2 contains + 1 not_contains + 1 matches + latency
    assert_eq!(ok.expectations.len(), 12, "{:#?}", ok.expectations);
    assert_eq!(check(&report, "nested json").expectations.len(), 15);
    assert!(
        report.summary_line(2048).starts_with("3/3 passed in "),
        "{}",
        report.summary_line(2048)
    );
    assert_eq!(report.requests, 3);
    assert!(report.p95_ms.is_some());
}

#[tokio::test]
async fn every_expectation_kind_fails_with_expected_and_actual() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
checks:
  - name: ok
    url: "${TARGET}/ok"
    expect:
      status: [201, 204]
      headers:
        content-type: {equals: text/html, contains: xml, matches: "^text/", exists: false}
        x-version: "9.9.9"
        x-missing: {exists: true}
      body:
        contains: degraded
        not_contains: version
        matches: "^<html>"
  - name: nested json
    url: "${TARGET}/json"
    expect:
      json:
        - {path: $.service.name, equals: payments}
        - {path: "$.service.deps[?@.name == 'db'].latency_ms", lt: 10, gt: 20, gte: 13, lte: 12}
        - {path: $.items, contains: 7}
        - {path: $.version, matches: "^3\\."}
        - {path: $.service.deps, exists: false}
        - {path: $.nothing, exists: true}
        - {path: $.nothing, equals: 1}
  - name: slow
    url: "${TARGET}/slow/300"
    expect:
      max_latency: 100ms
"#,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.failed, 3);
    for c in &report.checks {
        for e in &c.expectations {
            if e.what == "status" && c.name != "ok" {
                continue;
            }
            assert!(!e.passed, "{}: {e:?} should fail", c.name);
        }
    }
    let ok = check(&report, "ok");
    assert_eq!(find(ok, "status", "201, 204").actual, "200");
    assert_eq!(
        find(ok, "header content-type", "equals \"text/html\"").actual,
        "\"application/json\""
    );
    find(ok, "header content-type", "contains \"xml\"");
    find(ok, "header content-type", "matches /^text//");
    assert_eq!(
        find(ok, "header content-type", "absent").actual,
        "\"application/json\""
    );
    assert_eq!(
        find(ok, "header x-version", "equals \"9.9.9\"").actual,
        "\"1.2.3\""
    );
    assert_eq!(find(ok, "header x-missing", "present").actual, "absent");
    assert!(
        find(ok, "body", "contains \"degraded\"")
            .actual
            .starts_with(r#"`{"status":"ok""#),
        "body snippet shown"
    );
    assert!(
        find(ok, "body", "does not contain \"version\"")
            .actual
            .starts_with("found at byte"),
    );
    find(ok, "body", "matches /^<html>/");

    let j = check(&report, "nested json");
    assert_eq!(
        find(j, "json $.service.name", "equals \"payments\"").actual,
        "\"checkout\""
    );
    let lat = "json $.service.deps[?@.name == 'db'].latency_ms";
    for exp in ["< 10", "> 20", ">= 13", "<= 12"] {
        assert_eq!(find(j, lat, exp).actual, "12.5", "{exp}");
    }
    assert_eq!(find(j, "json $.items", "contains 7").actual, "[1,2,3]");
    assert_eq!(
        find(j, "json $.version", "matches /^3\\./").actual,
        "\"2.4.1\""
    );
    find(j, "json $.service.deps", "absent");
    assert_eq!(find(j, "json $.nothing", "exists").actual, "no match");
    assert_eq!(find(j, "json $.nothing", "equals 1").actual, "no match");

    let slow = check(&report, "slow");
    let l = find(slow, "latency", "<= 100 ms");
    assert!(l.actual.ends_with(" ms"), "{l:?}");

    let details = report.failure_details(5000);
    assert!(
        details.starts_with("0/3 passed; FAIL ok: status 200 (expected 201, 204)"),
        "{details}"
    );
    assert!(
        details.contains("  - header x-version: expected equals \"9.9.9\", got \"1.2.3\""),
        "{details}"
    );
    assert!(
        details.contains("  - latency: expected <= 100 ms, got "),
        "{details}"
    );
    assert!(details.chars().count() <= 5000);
}

#[tokio::test]
async fn server_error_is_reported_in_the_summary() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
checks:
  - {name: health, url: "${TARGET}/ok"}
  - {name: checkout, url: "${TARGET}/status/503"}
"#,
    )
    .await;
    assert_eq!(
        report.summary_line(2048),
        "1/2 passed; FAIL checkout: status 503 (expected 200-299)"
    );
    assert_eq!(check(&report, "checkout").http_status, Some(503));
}

#[tokio::test]
async fn flapping_endpoint_is_rescued_by_retries() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
checks:
  - name: flapping
    url: "${TARGET}/flap/a/2"
    retry: {attempts: 5, interval: 50ms, backoff: 2}
    expect:
      json: [{path: $.status, equals: ok}]
"#,
    )
    .await;
    let c = check(&report, "flapping");
    assert_eq!(
        c.status,
        CheckStatus::Passed,
        "{}",
        report.failure_details(5000)
    );
    assert_eq!(c.attempts, 3);
    assert_eq!(c.requests, 3);
    assert_eq!(app.calls("flap/a"), 3);

    // The same endpoint without retries fails, and says so.
    let report = run(
        &app,
        r#"
checks:
  - {name: no retry, url: "${TARGET}/flap/b/2"}
"#,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(
        report.summary_line(2048),
        "0/1 passed; FAIL no retry: status 503 (expected 200-299)"
    );

    // Retries that run out report the attempts.
    let report = run(
        &app,
        r#"
checks:
  - {name: short, url: "${TARGET}/flap/c/5", retry: {attempts: 2, interval: 10ms}}
"#,
    )
    .await;
    assert_eq!(
        report.summary_line(2048),
        "0/1 passed; FAIL short: status 503 (expected 200-299), after 2 attempts"
    );
}

#[tokio::test]
async fn samples_and_min_pass_rate() {
    let app = TestApp::start().await;
    // Every 10th call fails: 18 of 20 pass.
    let report = run(
        &app,
        r#"
checks:
  - {name: tolerant, url: "${TARGET}/every/a/10", samples: 20, min_pass_rate: 90%}
  - {name: strict, url: "${TARGET}/every/b/10", samples: 20, min_pass_rate: "95%"}
  - {name: down, url: "${TARGET}/status/500", samples: 20, min_pass_rate: 0.9}
"#,
    )
    .await;
    let tolerant = check(&report, "tolerant");
    assert_eq!(tolerant.status, CheckStatus::Passed, "{tolerant:#?}");
    assert_eq!(tolerant.requests, 20);
    let stats = tolerant.samples.as_ref().expect("sample stats");
    assert_eq!((stats.sent, stats.passed, stats.required), (20, 18, 18));

    let strict = check(&report, "strict");
    assert_eq!(strict.status, CheckStatus::Failed);
    let s = find(strict, "samples", ">= 19 of 20 passing (min_pass_rate 95%)");
    assert_eq!(s.actual, "18/20 passed");
    assert!(
        strict
            .expectations
            .iter()
            .any(|e| e.what == "status (first failing sample)" && e.actual == "500"),
        "{:#?}",
        strict.expectations
    );

    // 2 of 20 may fail: the third failure stops the attempt.
    let down = check(&report, "down");
    assert_eq!(down.status, CheckStatus::Failed);
    assert_eq!(down.requests, 3);
    assert_eq!(
        find(down, "samples", ">= 18 of 20 passing (min_pass_rate 90%)").actual,
        "3 of 3 failed; stopped early, the rate can no longer be met"
    );
    assert!(
        report
            .summary_line(2048)
            .contains("FAIL strict: samples 18/20 passed (expected >= 19 of 20 passing (min_pass_rate 95%)), +1 more"),
        "{}",
        report.summary_line(2048)
    );
}

#[tokio::test]
async fn redirects_are_not_followed_unless_asked() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
checks:
  - {name: default, url: "${TARGET}/redirect"}
  - {name: expected, url: "${TARGET}/redirect", expect: {status: 302, headers: {location: /ok}}}
  - name: followed
    url: "${TARGET}/redirect-abs"
    follow_redirects: true
    expect: {json: [{path: $.status, equals: ok}]}
  - {name: loop, url: "${TARGET}/redirect-loop", follow_redirects: true}
"#,
    )
    .await;
    let base = app.url();
    let d = check(&report, "default");
    assert_eq!(d.status, CheckStatus::Failed);
    assert_eq!(
        find(d, "status", "200-299").actual,
        format!(
            "302 redirect to {base}/ok (redirects are not followed; set follow_redirects: true or expect status 302)"
        )
    );
    assert_eq!(check(&report, "expected").status, CheckStatus::Passed);
    let f = check(&report, "followed");
    assert_eq!(f.status, CheckStatus::Passed, "{f:#?}");
    assert_eq!(f.http_status, Some(200));
    let l = check(&report, "loop");
    assert_eq!(l.status, CheckStatus::Failed);
    assert_eq!(
        find(l, "request", "a response").actual,
        format!("too many redirects (more than 10); last Location {base}/redirect-loop")
    );
}

#[tokio::test]
async fn huge_body_is_read_only_up_to_the_limit() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
checks:
  - name: default limit
    url: "${TARGET}/huge"
    expect:
      body: {contains: "xxxx"}
      json: [{path: $.a, exists: true}]
  - name: small limit
    url: "${TARGET}/huge"
    max_body: 16KiB
    expect:
      body: {contains: "y"}
"#,
    )
    .await;
    let d = check(&report, "default limit");
    assert_eq!(
        find(d, "body", "contains \"xxxx\"").actual,
        "1048576 bytes (body cut at the 1 MiB limit)"
    );
    assert!(find(d, "body", "contains \"xxxx\"").passed);
    assert_eq!(
        find(d, "json $.a", "exists").actual,
        "body is larger than the 1 MiB limit, so it cannot be read as JSON; raise max_body"
    );
    let s = check(&report, "small limit");
    let b = find(s, "body", "contains \"y\"");
    assert!(!b.passed);
    assert!(
        b.actual
            .ends_with("(16384 bytes (body cut at the 16 KiB limit))"),
        "{b:?}"
    );
}

#[tokio::test]
async fn transport_failures_have_their_own_texts() {
    let app = TestApp::start().await;
    let port = refused_port().await;
    let report = run_vars(
        r#"
checks:
  - {name: refused, url: "http://127.0.0.1:${PORT}/health"}
  - {name: dns, url: "http://no-such-host.invalid/health"}
  - {name: tls, url: "https://${HOSTPORT}/ok"}
  - {name: timeout, url: "${TARGET}/slow/3000", timeout: 200ms}
"#,
        vars(&app)
            .with("PORT", port.to_string())
            .with("HOSTPORT", app.addr().to_string()),
        Duration::from_secs(20),
    )
    .await;
    let text = |name: &str| {
        find(check(&report, name), "request", "a response")
            .actual
            .clone()
    };
    assert_eq!(
        text("refused"),
        format!("connection refused by 127.0.0.1:{port} (nothing is listening on that port)")
    );
    assert!(
        text("dns").starts_with("DNS lookup failed for no-such-host.invalid: "),
        "{}",
        text("dns")
    );
    assert!(
        text("tls").starts_with(&format!("TLS handshake with {} failed: ", app.addr())),
        "{}",
        text("tls")
    );
    assert!(
        text("timeout").starts_with("timed out after ")
            && text("timeout").contains("ms waiting for the response (timeout 200 ms;"),
        "{}",
        text("timeout")
    );
    assert_eq!(report.failed, 4);
    assert!(
        report.summary_line(2048).contains(&format!(
            "FAIL refused: connection refused by 127.0.0.1:{port}"
        )),
        "{}",
        report.summary_line(2048)
    );
}

#[tokio::test]
async fn fail_fast_stops_the_run() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
fail_fast: true
concurrency: 4
checks:
  - {name: slow-1, url: "${TARGET}/slow/5000"}
  - {name: bad, url: "${TARGET}/status/500"}
  - {name: slow-2, url: "${TARGET}/slow/5000"}
"#,
    )
    .await;
    // Promptness shows in the outcome, not a wall clock (which flakes on a
    // busy host): had the run waited, the 5 s checks would have passed.
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.stopped_by.as_deref(), Some("bad"));
    assert_eq!((report.failed, report.unfinished), (1, 2));
    for name in ["slow-1", "slow-2"] {
        let c = check(&report, name);
        assert_eq!(c.status, CheckStatus::NotFinished);
        assert_eq!(
            c.reason.as_deref(),
            Some("stopped by fail_fast after \"bad\" failed (during attempt 1)")
        );
    }
}

#[tokio::test]
async fn concurrency_limit_is_observed() {
    let app = TestApp::start().await;
    let checks: String = (0..12)
        .map(|i| format!("  - {{name: c{i}, url: \"${{TARGET}}/track/150\"}}\n"))
        .collect();
    let report = run(&app, &format!("concurrency: 3\nchecks:\n{checks}")).await;
    assert_eq!(report.passed, 12, "{}", report.failure_details(5000));
    let max = app.max_in_flight();
    assert!(max <= 3, "at most 3 requests in flight, saw {max}");
    assert!(max >= 2, "checks did run concurrently, saw {max}");
}

#[tokio::test]
async fn deadline_cuts_the_run_and_marks_unfinished_checks() {
    let app = TestApp::start().await;
    // Retries alone would take about 30 s; the deadline is 2 s. That the run
    // was cut shows in the statuses below, not by a wall clock.
    let report = run_vars(
        r#"
checks:
  - {name: ok, url: "${TARGET}/ok"}
  - {name: retrying, url: "${TARGET}/status/500", retry: {attempts: 30, interval: 1s}}
  - {name: hanging, url: "${TARGET}/slow/30000", timeout: 60s}
  - {name: delayed, url: "${TARGET}/ok", initial_delay: 10s}
"#,
        vars(&app),
        Duration::from_secs(2),
    )
    .await;
    assert!(report.deadline_reached);
    assert_eq!(report.outcome, Outcome::NotFinished);
    assert_eq!((report.passed, report.failed, report.unfinished), (1, 0, 3));
    let retrying = check(&report, "retrying");
    assert_eq!(retrying.status, CheckStatus::NotFinished);
    assert!(retrying.attempts >= 2, "{retrying:#?}");
    assert!(
        retrying
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("deadline")),
        "{retrying:#?}"
    );
    // The last attempt's failure is still reported.
    assert_eq!(find(retrying, "status", "200-299").actual, "500");
    assert_eq!(
        check(&report, "hanging").reason.as_deref(),
        Some("deadline reached during attempt 1")
    );
    assert_eq!(
        check(&report, "delayed").reason.as_deref(),
        Some("not started: initial_delay 10000 ms would end after the deadline")
    );
    let summary = report.summary_line(2048);
    assert!(
        summary.starts_with("1/4 passed, 3 not finished; NOT FINISHED retrying: deadline"),
        "{summary}"
    );
}

#[tokio::test]
async fn spec_deadline_applies_too() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
deadline: 500ms
checks:
  - {name: hanging, url: "${TARGET}/slow/10000", timeout: 30s}
"#,
    )
    .await;
    assert!(report.deadline_reached);
    assert_eq!(report.unfinished, 1);
    assert_eq!(
        report.checks[0].reason.as_deref(),
        Some("deadline reached during attempt 1")
    );
}

#[tokio::test]
async fn secrets_never_reach_results() {
    let app = TestApp::start().await;
    let token = "tok-9f8e7d6c5b4a";
    let report = run_vars(
        r#"
checks:
  - name: echo
    url: "${TARGET}/echo?token=${TOKEN}"
    headers:
      Authorization: "Bearer ${TOKEN}"
      X-Custom-Secret: literal-secret-value
    expect:
      body: {contains: "never there"}
      headers: {set-cookie: {exists: true}}
  - name: cookie
    url: "${TARGET}/ok"
    expect:
      headers: {set-cookie: {equals: "session=other"}}
"#,
        vars(&app).with_secret("TOKEN", token),
        Duration::from_secs(10),
    )
    .await;
    let echo = check(&report, "echo");
    // The request did carry the token (the app echoes it back)...
    let body = find(echo, "body", "contains \"never there\"");
    assert!(
        body.actual.contains(r#""authorization":"<redacted>""#),
        "{body:?}"
    );
    assert_eq!(echo.url, format!("{}/echo?token=<redacted>", app.url()));
    // ...but no text of the report shows it.
    let serialized = serde_json::to_string(&report).expect("serializes");
    let debug = format!("{report:?}");
    for shown in [
        &serialized,
        &debug,
        &report.failure_details(5000),
        &report.table(),
    ] {
        assert!(!shown.contains(token), "token leaked: {shown}");
        assert!(
            !shown.contains("literal-secret-value"),
            "header leaked: {shown}"
        );
        assert!(!shown.contains("abc123xyz"), "cookie leaked: {shown}");
    }
    let cookie = find(
        check(&report, "cookie"),
        "header set-cookie",
        "equals <redacted>",
    );
    assert_eq!(cookie.actual, "<redacted>");
}

#[tokio::test]
async fn requests_carry_method_headers_host_override_and_body() {
    let app = TestApp::start().await;
    let report = run_vars(
        r#"
defaults:
  headers: {X-Team: platform}
  expect:
    json: [{path: "$.headers['x-team']", equals: platform}]
checks:
  - name: post
    method: post
    url: "${TARGET}/echo"
    headers: {Host: api.example.com, Content-Type: text/plain}
    body: "deploy ${VERSION}"
    expect:
      json:
        - {path: $.method, equals: POST}
        - {path: $.headers.host, equals: api.example.com}
        - {path: $.body, equals: "deploy ${VERSION}"}
        - {path: "$.headers['user-agent']", matches: "^tollgate-check/"}
  - name: json body
    method: PUT
    url: "${TARGET}/echo"
    json: {version: "${VERSION}", replicas: 3}
    expect:
      json:
        - {path: $.body, contains: '"version":"7.1.0"'}
        - {path: "$.headers['content-type']", equals: application/json}
"#,
        vars(&app).with("VERSION", "7.1.0"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        report.outcome,
        Outcome::Passed,
        "{}",
        report.failure_details(5000)
    );
}

#[tokio::test]
async fn unknown_variable_is_a_spec_error_before_any_request() {
    let app = TestApp::start().await;
    let s = spec(
        r#"
checks:
  - {name: a, url: "${TARGET}/ok"}
  - {name: b, url: "${TARGET}/ok", headers: {Authorization: "Bearer ${TOKNE}"}}
"#,
    );
    let err = engine()
        .run(&s, &vars(&app), Instant::now() + Duration::from_secs(5))
        .await
        .expect_err("unknown variable");
    assert!(matches!(err, SpecError::UnknownVariable { ref name, .. } if name == "TOKNE"));
    assert_eq!(err.path(), Some("checks[1].headers.Authorization"));
    assert_eq!(
        err.to_string(),
        "checks[1].headers.Authorization: unknown variable ${TOKNE}; known variables: TARGET; pass it with --var TOKNE=VALUE or fix the name"
    );
    assert_eq!(app.requests(), 0, "nothing was sent");
    assert!(s.check_vars(&vars(&app)).is_err());
    assert!(s.check_vars(&vars(&app).with("TOKNE", "x")).is_ok());
}

#[tokio::test]
async fn run_options_override_rounds() {
    let app = TestApp::start().await;
    let s = spec(
        r#"
checks:
  - name: soak
    url: "${TARGET}/flap/soak/1"
    initial_delay: 20s
    retry: {attempts: 5, interval: 10ms}
"#,
    );
    let e = engine();
    let deadline = || Instant::now() + Duration::from_secs(10);
    // Round 1: one attempt, no initial delay: fails on the first (flapping) call.
    let one_shot = RunOptions {
        attempts: Some(1),
        samples: Some(1),
        skip_initial_delay: true,
    };
    let r1 = e
        .run_with(&s, &vars(&app), deadline(), &one_shot)
        .await
        .expect("runs");
    assert_eq!(r1.outcome, Outcome::Failed);
    assert_eq!(r1.checks[0].attempts, 1);
    // Round 2: five samples in one attempt, all pass now.
    let sampled = RunOptions {
        samples: Some(5),
        ..one_shot
    };
    let r2 = e
        .run_with(&s, &vars(&app), deadline(), &sampled)
        .await
        .expect("runs");
    assert_eq!(r2.outcome, Outcome::Passed, "{}", r2.failure_details(5000));
    assert_eq!(r2.checks[0].requests, 5);
    assert_eq!(app.calls("flap/soak"), 6);
}

#[tokio::test]
async fn report_serializes_for_logs() {
    let app = TestApp::start().await;
    let report = run(
        &app,
        r#"
checks:
  - {name: health, url: "${TARGET}/ok", expect: {status: 200}}
"#,
    )
    .await;
    let v = serde_json::to_value(&report).expect("serializes");
    assert_eq!(v["outcome"], "passed");
    assert_eq!(v["checks"][0]["name"], "health");
    assert_eq!(v["checks"][0]["status"], "passed");
    assert_eq!(v["checks"][0]["expectations"][0]["what"], "status");
    assert_eq!(v["checks"][0]["expectations"][0]["actual"], "200");
    assert_eq!(v["checks"][0]["method"], "GET");
    assert!(v["checks"][0]["latencies_ms"][0].is_f64());
}

#[test]
fn the_run_future_is_send_and_the_types_are_shareable() {
    fn send<T: Send>(_: &T) {}
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Spec>();
    shareable::<Engine>();
    shareable::<Vars>();
    shareable::<RunReport>();
    let spec = spec("checks: [{url: \"http://127.0.0.1:9/\"}]");
    let engine = engine();
    let vars = Vars::new();
    // Handlers run the checks inside a spawned ('static + Send) future.
    let fut = async move { engine.run(&spec, &vars, Instant::now()).await };
    send(&fut);
}

/// Issue 14.9: a spec may not reach the function's own Runtime API (here
/// the test app plays it) nor, on any redirect hop, a link-local metadata
/// endpoint. Nothing is requested from either.
#[tokio::test]
async fn the_runtime_api_and_link_local_targets_are_refused() {
    let app = TestApp::start().await;
    let config = EngineConfig {
        targets: tollgate_checks::targets::TargetPolicy {
            runtime_api: Some(app.addr().to_string()),
            allow_link_local: false,
        },
        ..EngineConfig::default()
    };
    let engine = Engine::new(config).expect("engine");
    let report = engine
        .run(
            &spec(
                r#"
checks:
  - {name: next event, url: "${TARGET}/2018-06-01/runtime/invocation/next"}
"#,
            ),
            &vars(&app),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .expect("vars");
    let c = check(&report, "next event");
    assert_eq!(c.status, CheckStatus::Failed);
    let actual = &find(c, "request", "a response").actual;
    assert!(actual.contains("Lambda Runtime API"), "{actual}");
    assert_eq!(app.requests(), 0, "nothing was requested");

    let report = run(
        &app,
        r#"
checks:
  - {name: hop, url: "${TARGET}/redirect-metadata", follow_redirects: true}
"#,
    )
    .await;
    let c = check(&report, "hop");
    assert_eq!(c.status, CheckStatus::Failed);
    let actual = &find(c, "request", "a response").actual;
    assert!(
        actual.contains("link-local address 169.254.169.254"),
        "{actual}"
    );
}

/// Issue 14 §3: running checks share the function's memory; a spec whose
/// bodies cannot fit is refused before anything is sent, and the refusal
/// grows with the memory.
#[tokio::test]
async fn specs_that_cannot_fit_in_the_function_memory_are_refused_before_sending() {
    let app = TestApp::start().await;
    let many: String = (0..64)
        .map(|i| format!("  - {{name: c{i}, url: \"${{TARGET}}/ok\", max_body: 4MiB}}\n"))
        .collect();
    let wide = spec(&format!("concurrency: 64\nchecks:\n{many}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let at = |mb: u64| {
        Engine::new(EngineConfig {
            memory: tollgate_core::memory::MemoryBudget::of_mb(mb),
            ..EngineConfig::default()
        })
        .expect("engine")
    };
    let e = at(128)
        .run(&wide, &vars(&app), deadline)
        .await
        .expect_err("64 × 4 MiB at once cannot fit in 128 MB");
    let text = e.to_string();
    assert!(
        text.starts_with("checks[0].max_body: 64 checks at once with up to 4 MiB of body each"),
        "{text}"
    );
    assert!(
        text.contains("(128 MB now, AWS_LAMBDA_FUNCTION_MEMORY_SIZE;"),
        "{text}"
    );
    assert_eq!(app.requests(), 0, "nothing was sent");
    let report = at(1024)
        .run(&wide, &vars(&app), deadline)
        .await
        .expect("fits in 1024 MB");
    assert_eq!(report.passed, 64, "{report:?}");
    // The defaults (8 at once, 1 MiB bodies) fit the smallest function.
    let defaults = spec(
        "checks:\n  - {name: a, url: \"${TARGET}/ok\"}\n  - {name: b, url: \"${TARGET}/ok\"}\n",
    );
    at(128)
        .run(&defaults, &vars(&app), deadline)
        .await
        .expect("defaults fit 128 MB");
}
