//! Memory budgets end to end (issue 14 §3): the release binary of
//! pipeline-action, told it has 128 MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
//! as Lambda sets it), given adversarial smoke specs, stays under 128 MiB of
//! peak resident memory (`VmHWM`) and reports what did not fit, naming the
//! limit and how to raise it.
//!
//! The target answers every request with 1 MiB of `[1,1,1,…]`: a body that
//! parses to at least sixteen times its size as a `serde_json::Value`.

use serde_json::{Value, json};
use std::time::Duration;
use tollgate_test_support::http::{Reply, Stub};
use tollgate_tests::{AwsStandIn, Invocation, LocalLambda, Report, paths};

const LAMBDA_MEMORY_MIB: u64 = 128;

/// Serves a JSON array of `unit` repeated to `len` bytes (`[1,1,…]`,
/// `[{"":0},…]`) to every request; the stub counts requests.
async fn json_flood(len: usize, unit: &'static [u8]) -> Stub {
    let mut body = Vec::with_capacity(len);
    body.push(b'[');
    while body.len() + 2 * unit.len() + 2 < len {
        body.extend_from_slice(unit);
        body.push(b',');
    }
    body.extend_from_slice(unit);
    body.push(b']');
    Stub::replying(
        Reply::status(200)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// A smoke job whose inline spec runs `checks` checks at once against
/// `target`, each with `max_body` and a JSON expectation.
fn job(standin: &AwsStandIn, id: &str, target: &str, checks: usize, max_body: &str) -> Value {
    let spec_checks: Vec<Value> = (0..checks)
        .map(|i| {
            json!({
                "name": format!("flood-{i}"),
                "url": format!("{target}/items/{i}"),
                "max_body": max_body,
                "timeout": "20s",
                "expect": {"status": 200, "json": [{"path": "$[0]", "equals": 1}]}
            })
        })
        .collect();
    let params = json!({
        "action": "smoke",
        "spec": {"concurrency": checks, "checks": spec_checks},
    });
    let mut ev = paths::event("pipeline-action", "smoke-inline");
    ev["CodePipeline.job"]["id"] = json!(id);
    ev["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(params.to_string());
    standin.register_job(id);
    ev
}

fn failure(standin: &AwsStandIn, id: &str) -> (String, String) {
    let reports = standin.reports_for(id);
    assert_eq!(reports.len(), 1, "one report for {id}: {reports:#?}");
    match reports.into_iter().next() {
        Some(Report::JobFailure {
            failure_type,
            message,
            ..
        }) => (failure_type, message),
        other => panic!("expected a failure for {id}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_flood_of_json_bodies_stays_within_128_mb_and_says_what_did_not_fit() {
    let standin = AwsStandIn::start(None).await;
    let flood = json_flood(1024 * 1024, b"1").await;
    let target = flood.url("");
    let mut env = standin.lambda_env();
    env.push(("TOLLGATE_REPORT_RESERVE_MS".into(), "2000".into()));
    let mut function = LocalLambda::spawn(&paths::function_binary("pipeline-action"), &env).await;

    // Sixteen 8 MiB bodies at once cannot fit: refused before any request.
    let ev = job(&standin, "job-memory-refused", &target, 16, "8MiB");
    let out = function.invoke(ev, Duration::from_secs(30)).await;
    assert!(
        matches!(out, Invocation::Response(_)),
        "{out:?}\n{}",
        function.logs()
    );
    let (kind, message) = failure(&standin, "job-memory-refused");
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains("16 checks at once with up to 8 MiB of body each do not fit in memory")
            && message.contains(
                "lower concurrency or max_body, or raise the function's memory (128 MB now, \
                 AWS_LAMBDA_FUNCTION_MEMORY_SIZE;"
            ),
        "{message}"
    );
    assert_eq!(flood.hits(), 0, "nothing was requested");

    // Sixteen 1 MiB bodies fit, but not parsed into JSON values: each check
    // stops at its share and fails saying so, and the process stays small.
    let ev = job(&standin, "job-memory-flood", &target, 16, "1MiB");
    let out = function.invoke(ev, Duration::from_secs(60)).await;
    assert!(
        matches!(out, Invocation::Response(_)),
        "{out:?}\n{}",
        function.logs()
    );
    let (kind, message) = failure(&standin, "job-memory-flood");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains("this check's share of the function's memory"),
        "{message}"
    );
    assert_eq!(flood.hits(), 16, "every check made its request");
    // One check, one 1 MiB body of tiny objects: each is a map node of
    // about 600 bytes as a value, so it too stops at the check's share.
    let object_flood = json_flood(1024 * 1024, br#"{"":0}"#).await;
    let objects = object_flood.url("");
    let ev = job(&standin, "job-memory-objects", &objects, 1, "1MiB");
    let out = function.invoke(ev, Duration::from_secs(60)).await;
    assert!(
        matches!(out, Invocation::Response(_)),
        "{out:?}\n{}",
        function.logs()
    );
    let (kind, message) = failure(&standin, "job-memory-objects");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains("this check's share of the function's memory"),
        "{message}"
    );
    assert_eq!(object_flood.hits(), 1);
    let peak_kib = function.peak_rss_kib().expect("VmHWM of the function");
    eprintln!(
        "16 checks × 1 MiB of [1,…] and 1 check × 1 MiB of [{{\"\":0}},…] at 128 MB: peak RSS {:.1} MiB",
        peak_kib as f64 / 1024.0
    );
    assert!(
        peak_kib < LAMBDA_MEMORY_MIB * 1024,
        "peaked at {peak_kib} KiB, over the function's {LAMBDA_MEMORY_MIB} MB"
    );
}
