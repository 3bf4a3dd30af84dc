//! The last line of defence, end to end (issue 14 §2): a function process
//! that dies mid-job (SIGKILL; a real out-of-memory kill in a memory-limited
//! cgroup; frozen past its deadline) leaves no report; Lambda's destination
//! record goes through a real SQS queue (moto), and the `dead-letter`
//! binary, under the local Runtime API, reports the job or hook Failed
//! through the stand-in. Nothing is reported twice: a duplicate delivery of
//! the record is answered "already reported", and the stand-in's record has
//! exactly one accepted report per job or hook.

use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tollgate_test_support::http::{Reply, Stub};
use tollgate_tests::async_invoke::FailureQueue;
use tollgate_tests::cgroup::MemoryCage;
use tollgate_tests::{AwsStandIn, Invocation, LocalLambda, Moto, Report, paths, seed};

const DEADLINE: Duration = Duration::from_secs(20);

/// The fixture job's artifact credentials: they must appear in no report.
const FIXTURE_SECRETS: [&str; 2] = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTOLLGATESECRET",
    "FwoGZXIvYXdzEXAMPLESESSIONTOKENtollgateSESSIONsecretVALUE",
];

async fn consumer(standin: &AwsStandIn) -> LocalLambda {
    let mut env = standin.lambda_env();
    env.push((
        "TOLLGATE_PIPELINE_ACTION_LOG_GROUP".into(),
        "/tollgate/local/pipeline-action".into(),
    ));
    LocalLambda::spawn(&paths::function_binary("dead-letter"), &env).await
}

/// One poll of the queue through the consumer: its answer, and how many
/// records the event source mapping deleted.
async fn drain_once(queue: &FailureQueue, dead_letter: &mut LocalLambda) -> (Value, usize, usize) {
    let batch = queue.poll(30).await;
    let received = batch.event["Records"].as_array().map_or(0, Vec::len);
    let answer = match dead_letter.invoke(batch.event.clone(), DEADLINE).await {
        Invocation::Response(v) => v,
        other => panic!(
            "the consumer must answer, got {other:?}\nlogs:\n{}",
            dead_letter.logs()
        ),
    };
    let deleted = queue.settle(&batch, &answer).await;
    (answer, received, deleted)
}

/// A server that reads each request and never answers; `hit` fires on the
/// first request.
async fn hanging_server() -> (Stub, Arc<tokio::sync::Notify>) {
    let hit = Arc::new(tokio::sync::Notify::new());
    let signal = hit.clone();
    let server = Stub::start(move |_| {
        signal.notify_one();
        async { Reply::hang() }
    })
    .await;
    (server, hit)
}

fn smoke_job(standin: &AwsStandIn, id: &str, target: &str) -> Value {
    let mut ev = paths::event("pipeline-action", "smoke-inline");
    let job = &mut ev["CodePipeline.job"];
    job["id"] = json!(id);
    let cfg = &mut job["data"]["actionConfiguration"]["configuration"];
    let mut params: Value =
        serde_json::from_str(cfg["UserParameters"].as_str().expect("params")).expect("JSON");
    params["vars"]["TARGET"] = json!(target);
    cfg["UserParameters"] = json!(params.to_string());
    standin.register_job(id);
    ev
}

fn only_failure(standin: &AwsStandIn, id: &str) -> (String, String) {
    let reports = standin.reports_for(id);
    assert_eq!(
        reports.len(),
        1,
        "exactly one report for {id}: {reports:#?}"
    );
    match reports.into_iter().next() {
        Some(Report::JobFailure {
            failure_type,
            message,
            ..
        }) => (failure_type, message),
        other => panic!("expected a failure report for {id}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_job_killed_mid_smoke_is_reported_failed_through_the_queue_once() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let queue = FailureQueue::create(moto, "pipeline-action-failed-kill").await;
    let (server, hit) = hanging_server().await;
    let target = server.url("");
    let id = "job-killed-mid-smoke";
    let event = smoke_job(&standin, id, &target);

    let mut function = LocalLambda::spawn(
        &paths::function_binary("pipeline-action"),
        &standin.lambda_env(),
    )
    .await;
    function.wait_init(Duration::from_secs(10)).await;
    let pid = function.pid().expect("running");
    let killer = tokio::spawn(async move {
        let in_flight = tokio::time::timeout(DEADLINE, hit.notified()).await.is_ok();
        // The check is in flight: kill -9, as the OOM killer or a host fault would.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        in_flight
    });
    let outcome = function.invoke(event.clone(), DEADLINE).await;
    assert!(
        killer.await.expect("killer"),
        "the smoke check never reached the target"
    );
    assert!(
        matches!(outcome, Invocation::Exited(_)),
        "the process must die mid-job, got {outcome:?}"
    );
    assert!(
        standin.reports_for(id).is_empty(),
        "a killed process reports nothing"
    );

    // Lambda's part: the destination record goes to the on-failure queue.
    queue
        .send_failed("tollgate-PipelineActionFunction-local", &event, &outcome, 1)
        .await;
    let mut dead_letter = consumer(&standin).await;
    let (answer, received, deleted) = drain_once(&queue, &mut dead_letter).await;
    assert_eq!((received, deleted), (1, 1), "{answer}");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let (kind, message) = only_failure(&standin, id);
    assert_eq!(kind, "JobFailed");
    assert!(
        message.starts_with(
            "pipeline-action failed once (RetriesExhausted): Runtime.ExitError (the process exited \
             or was killed: out of memory, a crash, or a signal); request "
        ),
        "{message}"
    );
    assert!(
        message.contains("logs: /tollgate/local/pipeline-action, search for job-killed-mid-smoke."),
        "{message}"
    );
    for secret in FIXTURE_SECRETS {
        assert!(!message.contains(secret), "the report leaks a credential");
        assert!(
            !dead_letter.logs().contains(secret),
            "the log leaks a credential"
        );
    }
    assert!(
        !message.contains("signal: killed"),
        "the error message is not quoted"
    );
    assert_eq!(queue.depth().await, 0);

    // SQS delivers at least once: the same record again changes nothing.
    let record = tollgate_tests::async_invoke::destination_record(
        "tollgate-PipelineActionFunction-local",
        &event,
        &outcome,
        1,
    );
    queue.send_raw(&record.to_string()).await;
    let (answer, received, deleted) = drain_once(&queue, &mut dead_letter).await;
    assert_eq!((received, deleted), (1, 1), "{answer}");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    only_failure(&standin, id);
    let calls = standin.calls_of("PutJobFailureResult");
    assert_eq!(
        calls.len(),
        2,
        "one report, one 'already reported': {calls:#?}"
    );
    assert_eq!(
        calls[1].error_code.as_deref(),
        Some("InvalidJobStateException")
    );
    assert!(standin.calls_of("PutJobSuccessResult").is_empty());
}

#[tokio::test]
async fn an_out_of_memory_kill_is_reported_failed_through_the_queue() {
    // A 40 MiB cgroup around a function told it has 128 MB, given a 48 MiB
    // artifact (under the default ArtifactMaxBytes): the kernel kills it.
    const LIMIT: u64 = 40 * 1024 * 1024;
    let cage = match MemoryCage::new("oom", LIMIT) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: this machine allows no memory-limited cgroup ({why})");
            return;
        }
    };
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let queue = FailureQueue::create(moto, "pipeline-action-failed-oom").await;
    let s3 = seed::s3_client(&seed::seeding_config(moto).await);
    let bucket = "tollgate-dl-oom";
    seed::bucket(&s3, bucket).await.expect("bucket");
    let mut event = paths::event("pipeline-action", "verify-artifact");
    let id = "job-out-of-memory";
    event["CodePipeline.job"]["id"] = json!(id);
    let input =
        &mut event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"];
    input["bucketName"] = json!(bucket);
    let key = input["objectKey"].as_str().expect("key").to_owned();
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(Bytes::from(vec![0x5a_u8; 48 * 1024 * 1024]).into())
        .send()
        .await
        .expect("artifact uploaded to moto");
    standin.register_job(id);

    let mut function = LocalLambda::spawn(
        &paths::function_binary("pipeline-action"),
        &standin.lambda_env(),
    )
    .await;
    function.wait_init(Duration::from_secs(10)).await;
    cage.enter(function.pid().expect("running"))
        .expect("the function enters the cgroup");
    let outcome = function.invoke(event.clone(), DEADLINE).await;
    assert!(
        matches!(outcome, Invocation::Exited(_)),
        "the function must be killed for memory, got {outcome:?}"
    );
    assert!(cage.oom_kills() >= 1, "the kernel's OOM killer ended it");
    assert!(
        standin.reports_for(id).is_empty(),
        "an OOM-killed process reports nothing"
    );

    queue
        .send_failed("tollgate-PipelineActionFunction-local", &event, &outcome, 3)
        .await;
    let mut dead_letter = consumer(&standin).await;
    let (answer, _, deleted) = drain_once(&queue, &mut dead_letter).await;
    assert_eq!(deleted, 1, "{answer}");
    let (kind, message) = only_failure(&standin, id);
    assert_eq!(kind, "JobFailed");
    assert!(
        message.starts_with("pipeline-action failed 3 times (RetriesExhausted): Runtime.ExitError"),
        "{message}"
    );
}

#[tokio::test]
async fn a_hook_frozen_past_its_deadline_is_reported_failed_and_poison_is_returned_alone() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let queue = FailureQueue::create(moto, "deploy-hook-failed-timeout").await;
    let mut event = paths::event("deploy-hook", "codedeploy-after-allow-test-traffic");
    let (deployment, execution) = ("d-FROZEN01", "exec-frozen-1");
    event["DeploymentId"] = json!(deployment);
    event["LifecycleEventHookExecutionId"] = json!(execution);
    standin.register_hook(deployment, execution);

    let (server, hit) = hanging_server().await;
    let target = server.url("");
    let mut env = standin.lambda_env();
    env.push(("TARGET_URL".into(), target));
    env.push(("TOLLGATE_VERIFY_GREEN".into(), "false".into()));
    env.push(("TOLLGATE_HOOK".into(), "AfterAllowTestTraffic".into()));
    standin.script(
        "GetDeployment",
        vec![json!({"deploymentInfo": {
            "deploymentId": deployment, "applicationName": "web", "deploymentGroupName": "web-dg",
            "status": "InProgress", "computePlatform": "ECS"
        }})],
    );
    env.push((
        "TOLLGATE_CHECK_SPEC".into(),
        "checks:\n  - name: health\n    url: ${TARGET}/health\n    timeout: 30s\n    expect: {status: 200}\n"
            .into(),
    ));
    let mut function = LocalLambda::spawn(&paths::function_binary("deploy-hook"), &env).await;
    function.wait_init(Duration::from_secs(10)).await;
    let pid = function.pid().expect("running");
    // Frozen (SIGSTOP) with its check in flight: it cannot answer, as a
    // hung process cannot; Lambda ends the invocation at its deadline.
    let freezer = tokio::spawn(async move {
        let in_flight = tokio::time::timeout(DEADLINE, hit.notified()).await.is_ok();
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status();
        in_flight
    });
    let outcome = function.invoke(event.clone(), Duration::from_secs(8)).await;
    assert!(
        freezer.await.expect("freezer"),
        "the check never reached the target\n{}",
        function.logs()
    );
    assert_eq!(outcome, Invocation::Timeout);
    function.signal("KILL");
    assert!(standin.reports_for(execution).is_empty());

    queue
        .send_failed("tollgate-DeployHookFunction-local", &event, &outcome, 3)
        .await;
    queue
        .send_raw("{\"not\": \"a destination record\", \"token\": \"SECRET-IN-POISON\"}")
        .await;
    let mut dead_letter = consumer(&standin).await;
    let (answer, received, deleted) = drain_once(&queue, &mut dead_letter).await;
    assert_eq!(received, 2, "{answer}");
    assert_eq!(deleted, 1, "only the poison record is returned: {answer}");
    assert_eq!(
        answer["batchItemFailures"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        queue.depth().await,
        1,
        "the poison record stays for its redrive"
    );
    let reports = standin.reports_for(execution);
    assert_eq!(
        reports,
        vec![Report::Hook {
            deployment_id: deployment.into(),
            execution_id: execution.into(),
            status: "Failed".into()
        }]
    );
    let logs = dead_letter.logs();
    assert!(
        logs.contains("deploy-hook failed 3 times (RetriesExhausted): Sandbox.Timedout"),
        "{logs}"
    );
    assert!(!logs.contains("SECRET-IN-POISON"), "poison is never quoted");
}

#[tokio::test]
async fn the_sample_events_are_reported_through_the_binary() {
    let standin = AwsStandIn::start(None).await;
    let mut dead_letter = consumer(&standin).await;
    for (case, id) in [
        (
            "pipeline-action-killed",
            "23232323-abcd-2323-abcd-232323abcdef",
        ),
        ("deploy-hook-timed-out", ""),
    ] {
        let sample = paths::event("dead-letter", case);
        let record: Value = serde_json::from_str(
            sample["Records"][0]["body"]
                .as_str()
                .expect("body is a string"),
        )
        .expect("the body is a destination record");
        let payload = &record["requestPayload"];
        let expected = if id.is_empty() {
            let (d, e) = (
                payload["DeploymentId"].as_str().expect("deployment"),
                payload["LifecycleEventHookExecutionId"]
                    .as_str()
                    .expect("execution"),
            );
            standin.register_hook(d, e);
            e.to_owned()
        } else {
            standin.register_job(id);
            id.to_owned()
        };
        let answer = dead_letter.invoke(sample, DEADLINE).await;
        assert_eq!(
            answer,
            Invocation::Response(json!({"batchItemFailures": []})),
            "{case}"
        );
        assert_eq!(standin.reports_for(&expected).len(), 1, "{case}");
    }
}
