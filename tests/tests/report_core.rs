//! The exactly-once report core, driven through a real Lambda process (the
//! `probe-function` test binary) with real SDK clients over HTTP against the
//! AWS stand-in. Every test asserts from the stand-in's record how many
//! reports were accepted.

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate_tests::{AwsStandIn, Fault, Invocation, LocalLambda, Moto, Report, paths};

const PROBE: &str = env!("CARGO_BIN_EXE_probe-function");
const DEADLINE: Duration = Duration::from_secs(10);

async fn probe(standin: &AwsStandIn, extra: &[(&str, &str)]) -> LocalLambda {
    let mut env = standin.lambda_env();
    env.push(("TOLLGATE_REPORT_RESERVE_MS".into(), "1000".into()));
    env.push(("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS".into(), "250".into()));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    LocalLambda::spawn(Path::new(PROBE), &env).await
}

/// The credentials sample job with a fresh id and the given UserParameters.
fn job(standin: &AwsStandIn, id: &str, params: Value) -> Value {
    let mut ev = paths::event("pipeline-action", "job-with-credentials");
    ev["CodePipeline.job"]["id"] = json!(id);
    ev["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(params.to_string());
    standin.register_job(id);
    ev
}

fn hook_event(standin: &AwsStandIn, deployment: &str, execution: &str) -> Value {
    standin.register_hook(deployment, execution);
    json!({"DeploymentId": deployment, "LifecycleEventHookExecutionId": execution})
}

fn only_failure(standin: &AwsStandIn, id: &str) -> (String, String) {
    let reports = standin.reports_for(id);
    assert_eq!(
        reports.len(),
        1,
        "exactly one accepted report expected, got {reports:#?}"
    );
    match &reports[0] {
        Report::JobFailure {
            failure_type,
            message,
            ..
        } => (failure_type.clone(), message.clone()),
        other => panic!("expected a failure report, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_in_the_work_becomes_one_failure_report() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(
                &standin,
                "job-panic",
                json!({"probe": "panic", "message": "bad state"}),
            ),
            DEADLINE,
        )
        .await;
    assert_eq!(out.response()["report"], "failure");
    let (kind, message) = only_failure(&standin, "job-panic");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.starts_with("internal error in tollgate while probing the panic path"),
        "{message}"
    );
    assert!(message.contains("probe panic: bad state"), "{message}");
    assert!(
        message.contains("probe-function.rs:"),
        "the location is named: {message}"
    );
}

#[tokio::test]
async fn the_deadline_ends_the_work_with_one_failure_naming_the_step() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    let deadline = Duration::from_secs(3);
    let started = Instant::now();
    let out = f
        .invoke(
            job(&standin, "job-slow", json!({"probe": "sleep", "ms": 30000})),
            deadline,
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(out.response()["report"], "failure", "{out:?}");
    assert_eq!(
        f.late_answers(),
        Vec::new(),
        "the invocation must end before its deadline (took {elapsed:?} by the test's clock)"
    );
    let (_, message) = only_failure(&standin, "job-slow");
    assert!(message.starts_with("timed out after"), "{message}");
    assert!(
        message.contains("while sleeping past the deadline on purpose"),
        "{message}"
    );
    let report_call = standin.calls_of("PutJobFailureResult");
    assert!(report_call[0].at.duration_since(started) < deadline);
}

#[tokio::test]
async fn throttling_is_retried_until_one_report_lands() {
    let standin = AwsStandIn::start(None).await;
    standin.inject("PutJobSuccessResult", Fault::Throttle, Some(2));
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(&standin, "job-throttled", json!({"probe": "succeed"})),
            DEADLINE,
        )
        .await;
    assert_eq!(out.response()["attempts"], 3);
    assert_eq!(out.response()["delivery"], "delivered");
    let calls = standin.calls_of("PutJobSuccessResult");
    let codes: Vec<_> = calls.iter().map(|c| c.error_code.clone()).collect();
    assert_eq!(
        codes,
        vec![
            Some("ThrottlingException".into()),
            Some("ThrottlingException".into()),
            None
        ]
    );
    assert_eq!(standin.reports_for("job-throttled").len(), 1);
}

#[tokio::test]
async fn server_errors_three_times_then_success() {
    let standin = AwsStandIn::start(None).await;
    standin.inject("PutJobFailureResult", Fault::ServerError, Some(3));
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(
                &standin,
                "job-5xx",
                json!({"probe": "fail", "message": "check failed"}),
            ),
            DEADLINE,
        )
        .await;
    assert_eq!(out.response()["attempts"], 4);
    let statuses: Vec<u16> = standin
        .calls_of("PutJobFailureResult")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, vec![500, 500, 500, 200]);
    let (_, message) = only_failure(&standin, "job-5xx");
    assert_eq!(message, "check failed");
}

#[tokio::test]
async fn a_duplicate_delivery_counts_the_second_report_as_done() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    let ev = job(&standin, "job-dup", json!({"probe": "succeed"}));
    let first = f.invoke(ev.clone(), DEADLINE).await;
    let second = f.invoke(ev, DEADLINE).await;
    assert_eq!(first.response()["delivery"], "delivered");
    assert_eq!(
        second.response()["delivery"],
        "already-reported",
        "{second:?}"
    );
    let calls = standin.calls_of("PutJobSuccessResult");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].error_code.as_deref(),
        Some("InvalidJobStateException")
    );
    assert_eq!(standin.reports_for("job-dup").len(), 1);
    assert!(
        f.logs().contains("already recorded by the service"),
        "a warning is logged"
    );
}

#[tokio::test]
async fn access_denied_is_a_lambda_error_naming_the_permission() {
    let standin = AwsStandIn::start(None).await;
    standin.inject("PutJobSuccessResult", Fault::AccessDenied, None);
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(&standin, "job-denied", json!({"probe": "succeed"})),
            DEADLINE,
        )
        .await;
    match out {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "ReportDenied");
            assert!(
                error_message.contains(
                    "add \"codepipeline:PutJobSuccessResult\" to the function's execution role"
                ),
                "{error_message}"
            );
        }
        other => panic!("expected a Lambda error, got {other:?}"),
    }
    assert_eq!(
        standin.calls_of("PutJobSuccessResult").len(),
        1,
        "a denial is not retried"
    );
    assert!(standin.reports().is_empty());
}

#[tokio::test]
async fn a_6000_char_message_is_sent_within_5000() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    let long = format!("checkout failed: {}", "x".repeat(6000));
    f.invoke(
        job(
            &standin,
            "job-long",
            json!({"probe": "fail", "message": long}),
        ),
        DEADLINE,
    )
    .await
    .response();
    let (_, message) = only_failure(&standin, "job-long");
    assert_eq!(message.chars().count(), 5000);
    assert!(message.starts_with("checkout failed: xxx"));
    assert!(message.ends_with("chars]"), "the cut is marked");
}

#[tokio::test]
async fn an_empty_message_is_sent_non_empty() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    f.invoke(
        job(
            &standin,
            "job-empty",
            json!({"probe": "fail", "message": ""}),
        ),
        DEADLINE,
    )
    .await
    .response();
    let (_, message) = only_failure(&standin, "job-empty");
    assert!(!message.trim().is_empty());
    assert!(message.contains("without giving a reason"), "{message}");
}

#[tokio::test]
async fn a_slow_answer_is_retried_and_the_duplicate_counts_as_done() {
    let standin = AwsStandIn::start(None).await;
    standin.inject(
        "PutJobSuccessResult",
        Fault::Slow(Duration::from_secs(3)),
        Some(1),
    );
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(&standin, "job-slowapi", json!({"probe": "succeed"})),
            DEADLINE,
        )
        .await;
    assert_eq!(out.response()["delivery"], "already-reported", "{out:?}");
    assert_eq!(standin.reports_for("job-slowapi").len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let standin = AwsStandIn::start(None).await;
    standin.inject("PutJobSuccessResult", Fault::Drop, Some(1));
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(&standin, "job-drop", json!({"probe": "succeed"})),
            DEADLINE,
        )
        .await;
    assert_eq!(out.response()["attempts"], 2, "{out:?}");
    assert_eq!(standin.reports_for("job-drop").len(), 1);
}

#[tokio::test]
async fn a_continuation_is_one_success_report_with_the_token() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    let out = f
        .invoke(
            job(&standin, "job-cont", json!({"probe": "continue"})),
            DEADLINE,
        )
        .await;
    assert_eq!(out.response()["report"], "in-progress");
    match &standin.reports_for("job-cont")[..] {
        [Report::JobSuccess { request, .. }] => {
            assert_eq!(request["continuationToken"], "probe-token-1");
            assert_eq!(request["executionDetails"]["percentComplete"], 40);
        }
        other => panic!("expected one success, got {other:?}"),
    }
}

#[tokio::test]
async fn a_payload_that_is_no_job_is_a_lambda_error() {
    let standin = AwsStandIn::start(None).await;
    let mut f = probe(&standin, &[]).await;
    match f.invoke(json!({"hello": "world"}), DEADLINE).await {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "UnrecognisedEvent");
            assert!(
                error_message.contains("CodePipeline.job"),
                "{error_message}"
            );
        }
        other => panic!("expected a Lambda error, got {other:?}"),
    }
    assert!(standin.calls().is_empty());
}

#[tokio::test]
async fn a_broken_job_with_an_id_still_gets_its_one_report() {
    let standin = AwsStandIn::start(None).await;
    standin.register_job("job-broken");
    let mut f = probe(&standin, &[]).await;
    f.invoke(json!({"CodePipeline.job": {"id": "job-broken", "data": {"inputArtifacts": "BuildOutput"}}}), DEADLINE)
        .await
        .response();
    let (kind, message) = only_failure(&standin, "job-broken");
    assert_eq!(kind, "ConfigurationError");
    assert!(message.contains("could not be read"), "{message}");
}

#[tokio::test]
async fn hooks_report_once_through_panic_duplicate_and_deadline() {
    let standin = AwsStandIn::start(None).await;
    let mut panicking = probe(&standin, &[("PROBE_HOOK", "panic")]).await;
    let ev = hook_event(&standin, "d-PANIC", "exec-1");
    assert_eq!(
        panicking.invoke(ev.clone(), DEADLINE).await.response()["report"],
        "failed"
    );
    assert_eq!(
        panicking.invoke(ev, DEADLINE).await.response()["delivery"],
        "already-reported"
    );
    assert_eq!(
        standin.reports_for("exec-1"),
        vec![Report::Hook {
            deployment_id: "d-PANIC".into(),
            execution_id: "exec-1".into(),
            status: "Failed".into()
        }]
    );
    assert!(panicking.logs().contains("probing the hook panic path"));

    let mut sleepy = probe(&standin, &[("PROBE_HOOK", "sleep:60000")]).await;
    let out = sleepy
        .invoke(
            hook_event(&standin, "d-SLOW", "exec-2"),
            Duration::from_secs(3),
        )
        .await;
    assert_eq!(out.response()["report"], "failed");
    assert_eq!(
        sleepy.late_answers(),
        Vec::new(),
        "answered before the deadline"
    );
    assert_eq!(standin.reports_for("exec-2").len(), 1);
}

#[tokio::test]
async fn hook_access_denied_names_the_permission() {
    let standin = AwsStandIn::start(None).await;
    standin.inject(
        "PutLifecycleEventHookExecutionStatus",
        Fault::AccessDenied,
        None,
    );
    let mut f = probe(&standin, &[]).await;
    match f
        .invoke(hook_event(&standin, "d-DENY", "exec-3"), DEADLINE)
        .await
    {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "ReportDenied");
            assert!(
                error_message.contains("codedeploy:PutLifecycleEventHookExecutionStatus"),
                "{error_message}"
            );
        }
        other => panic!("expected a Lambda error, got {other:?}"),
    }
}

#[tokio::test]
async fn artifact_credentials_never_reach_the_logs() {
    let standin = AwsStandIn::start(None).await;
    standin.inject("PutJobFailureResult", Fault::Throttle, Some(1));
    let mut f = probe(
        &standin,
        &[("RUST_LOG", "debug"), ("AWS_LAMBDA_LOG_FORMAT", "JSON")],
    )
    .await;
    let ev = job(
        &standin,
        "job-secret",
        json!({"probe": "panic", "message": "with creds"}),
    );
    let creds = ev["CodePipeline.job"]["data"]["artifactCredentials"].clone();
    f.invoke(ev, DEADLINE).await.response();
    let logs = f.logs();
    assert!(
        logs.contains("probe received job"),
        "the job was logged: {logs}"
    );
    assert!(logs.contains("<redacted>"));
    for field in ["secretAccessKey", "sessionToken", "accessKeyId"] {
        let secret = creds[field].as_str().expect("sample has the field");
        assert!(!logs.contains(secret), "{field} leaked into the logs");
    }
    let reports = format!("{:?}", standin.reports());
    for field in ["secretAccessKey", "sessionToken"] {
        assert!(!reports.contains(creds[field].as_str().unwrap_or("-")));
    }
}

#[tokio::test]
async fn an_invalid_setting_fails_init_naming_the_variable() {
    let standin = AwsStandIn::start(None).await;
    let f = probe(&standin, &[("TOLLGATE_REPORT_RESERVE_MS", "soon")]).await;
    assert!(
        f.wait_exit(Duration::from_secs(10)).await,
        "the process exits after a failed init"
    );
    let err = f.init_error().expect("an init error was posted");
    assert_eq!(err.error_type, "ConfigError");
    assert!(
        err.error_message
            .starts_with("TOLLGATE_REPORT_RESERVE_MS=\"soon\" is invalid"),
        "{}",
        err.error_message
    );
    assert!(f.init_duration().is_none(), "it never asked for an event");
}

#[tokio::test]
async fn init_time_is_measured_from_spawn_to_first_next() {
    let standin = AwsStandIn::start(None).await;
    let f = probe(&standin, &[]).await;
    let init = f
        .wait_init(Duration::from_secs(10))
        .await
        .expect("init completes");
    assert!(init > Duration::ZERO);
    assert_eq!(f.init_duration(), Some(init));
}

#[tokio::test]
async fn moto_behind_the_standin_round_trips_an_s3_object() {
    let moto = Moto::start();
    let standin = AwsStandIn::start(Some(&moto)).await;
    let sdk = standin.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("tollgate-roundtrip")
        .send()
        .await
        .expect("create bucket");
    s3.put_object()
        .bucket("tollgate-roundtrip")
        .key("artifacts/hello.txt")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"hello from tollgate",
        ))
        .send()
        .await
        .expect("put object");
    let got = s3
        .get_object()
        .bucket("tollgate-roundtrip")
        .key("artifacts/hello.txt")
        .send()
        .await
        .expect("get object");
    let body = got.body.collect().await.expect("read body").into_bytes();
    assert_eq!(&body[..], b"hello from tollgate");
    let calls = standin.calls();
    assert!(
        calls.iter().all(|c| c.forwarded),
        "S3 calls go to moto: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.operation == "s3:PUT").count(),
        2,
        "bucket + object"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "s3:GET" && c.status == 200)
    );
}
