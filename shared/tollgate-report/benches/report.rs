//! Report-core benchmark: the limit handling every report goes through
//! (issue 8), and the whole in-process path of one job report.
//!
//! - `truncate/*`: fitting text to the API's character limits: text under the
//!   limit (the common case: one count, one copy), ASCII and multi-byte text
//!   just over it, and a 1 MiB failure text (a check that captured a huge
//!   body) cut to 5000 chars.
//! - `fitted/*`: `JobOutcome::fitted`, which applies every limit to an
//!   outcome: a typical smoke success (summary + output variables), an
//!   oversized success (every field over its limit, invalid variable keys),
//!   a 1 MiB failure, and an in-progress answer with a token over its limit
//!   (turned into a failure).
//! - `run_job/*`: parse a CodePipeline event, run trivial work under the
//!   guard (spawned task, deadline), fit and hand the outcome to an
//!   in-memory reporter: the report core's own per-invocation cost, without
//!   any network.
//!
//! Run: `cargo bench -p tollgate-report --bench report`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_report::limits::{self, FAILURE_MESSAGE_MAX, SUMMARY_MAX};
use tollgate_report::pipeline::run_job;
use tollgate_report::{Budget, FailureKind, JobOutcome, JobSuccess, ReportConfig};
use tollgate_test_support::reporters::FakeJobReporter;

fn typical_success() -> JobOutcome {
    let mut vars = BTreeMap::new();
    for (k, v) in [
        ("passed", "12"),
        ("failed", "0"),
        ("p95_ms", "48"),
        ("spec", "checks/staging.yaml"),
    ] {
        vars.insert(k.to_owned(), v.to_owned());
    }
    JobOutcome::Success(JobSuccess {
        summary: Some(
            "12/12 passed in 231 ms (p95 48 ms) against https://staging.example.com".into(),
        ),
        percent_complete: None,
        external_execution_id: Some("smoke-2f9c1e".into()),
        output_variables: vars,
        continuation_token: None,
    })
}

fn oversized_success() -> JobOutcome {
    let mut vars = BTreeMap::new();
    for i in 0..20 {
        vars.insert(format!("image uri/{i}"), "x".repeat(100));
    }
    JobOutcome::Success(JobSuccess {
        summary: Some("s".repeat(3 * SUMMARY_MAX)),
        percent_complete: Some(250),
        external_execution_id: Some("e".repeat(4000)),
        output_variables: vars,
        continuation_token: None,
    })
}

fn huge_failure() -> JobOutcome {
    let line = "FAIL checkout: status 503 (expected 200); body: {\"error\":\"upstream timeout\"}\n";
    JobOutcome::failed(FailureKind::JobFailed, line.repeat((1 << 20) / line.len()))
}

fn oversized_token() -> JobOutcome {
    JobOutcome::in_progress("t".repeat(3000), "waiting for the rollout", 40)
}

fn job_event() -> serde_json::Value {
    let params = r#"{"action":"smoke","spec":{"checks":[{"name":"health","url":"${TARGET}/health","expect":{"status":200}}]},"vars":{"TARGET":"https://staging.example.com"}}"#;
    serde_json::json!({"CodePipeline.job": {
        "id": "11111111-abcd-1111-abcd-111111abcdef",
        "accountId": "111111111111",
        "data": {
            "actionConfiguration": {"configuration": {"FunctionName": "tollgate-pipeline-action", "UserParameters": params}},
            "inputArtifacts": [],
            "outputArtifacts": [],
            "artifactCredentials": {"accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "secret", "sessionToken": "token", "expirationTime": 1763759400000u64}
        }
    }})
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("truncate");
    let short = "3/3 passed in 120 ms".to_owned();
    let ascii_over = "x".repeat(FAILURE_MESSAGE_MAX + 1000);
    let wide_over = "日".repeat(SUMMARY_MAX + 100);
    let huge = "y".repeat(1 << 20);
    g.bench_function("under the limit (20 chars, 5000 max)", |b| {
        b.iter(|| limits::truncate(black_box(&short), FAILURE_MESSAGE_MAX))
    });
    g.bench_function("ascii 6000 chars to 5000", |b| {
        b.iter(|| limits::truncate(black_box(&ascii_over), FAILURE_MESSAGE_MAX))
    });
    g.bench_function("multi-byte 2148 chars to 2048", |b| {
        b.iter(|| limits::truncate(black_box(&wide_over), SUMMARY_MAX))
    });
    g.bench_function("1 MiB to 5000", |b| {
        b.iter(|| limits::truncate(black_box(&huge), FAILURE_MESSAGE_MAX))
    });
    g.bench_function("failure message: empty becomes explanatory", |b| {
        b.iter(|| limits::failure_message(black_box("  \n ")))
    });
    g.finish();

    let mut g = c.benchmark_group("fitted");
    for (name, make) in [
        (
            "typical smoke success",
            typical_success as fn() -> JobOutcome,
        ),
        ("every field over its limit", oversized_success),
        ("1 MiB failure message", huge_failure),
        ("continuation token over its limit", oversized_token),
    ] {
        let outcome = make();
        g.bench_function(name, |b| {
            b.iter_batched(
                || outcome.clone(),
                |o| black_box(o.fitted()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = ReportConfig::default();
    // Accepts and keeps nothing: the bench measures the core, not a sink.
    let reporter = FakeJobReporter::discarding();
    let event = job_event();
    let mut g = c.benchmark_group("run_job");
    for (name, make) in [
        ("typical success", typical_success as fn() -> JobOutcome),
        ("1 MiB failure", huge_failure),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                || event.clone(),
                |raw| {
                    let cfg = &cfg;
                    let reporter = &reporter;
                    async move {
                        let budget = Budget::within(Instant::now() + Duration::from_secs(60), cfg);
                        let done =
                            run_job(reporter, raw, budget, cfg, move |_job, _step| async move {
                                make()
                            })
                            .await
                            .expect("reported");
                        black_box(done)
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
