//! notifier's Slack bot mode end to end: three notifier processes (three
//! execution environments) under the local Runtime API, the release records
//! in moto's DynamoDB, the bot token in moto's SSM, and the local Slack Web
//! API stand-in (`tollgate_test_support::slack`). One pipeline execution's
//! events are delivered out of order and in parallel, each possibly twice:
//! the channel ends with exactly one message, updated in place, and one
//! thread without duplicate replies.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tollgate_test_support::http::Reply;
use tollgate_test_support::slack::{BOT_TOKEN, CHANNEL, slack_api};
use tollgate_tests::{AwsStandIn, Invocation, LocalLambda, Moto, paths};

const DEADLINE: Duration = Duration::from_secs(20);
static SEQ: AtomicU32 = AtomicU32::new(0);

fn event(id: &str, kind: &str, state: &str, stage: Option<&str>, time: &str) -> Value {
    let (dt, mut detail) = match kind {
        "pipeline" => (
            "CodePipeline Pipeline Execution State Change",
            json!({"pipeline": "payments", "execution-id": "exec-1", "state": state}),
        ),
        "stage" => (
            "CodePipeline Stage Execution State Change",
            json!({"pipeline": "payments", "execution-id": "exec-1", "state": state}),
        ),
        _ => (
            "CodePipeline Action Execution State Change",
            json!({"pipeline": "payments", "execution-id": "exec-1", "state": state,
                   "action": "Compile", "execution-result": {"external-execution-summary": "tests failed: 3 <!channel>"}}),
        ),
    };
    if let Some(s) = stage {
        detail["stage"] = json!(s);
    }
    json!({
        "version": "0", "id": id, "detail-type": dt, "source": "aws.codepipeline",
        "account": "111122223333", "time": time, "region": "eu-west-1",
        "resources": ["arn:aws:codepipeline:eu-west-1:111122223333:payments"],
        "detail": detail
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_execution_is_one_message_and_one_thread_across_environments() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let sdk = standin.sdk_config().await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}-{n}", std::process::id());
    let table = format!("tollgate-releases-{tag}");
    tollgate_tests::seed::delivery_table(&sdk, &table)
        .await
        .expect("table in moto");
    let param = format!("/tollgate/{tag}/slack-bot");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value(BOT_TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("seed the token");
    let slack = slack_api().await;
    // Slack rate-limits the first update: honoured, then delivered.
    slack.script(
        "/api/chat.update",
        [
            Reply::json(429, &json!({"ok": false, "error": "ratelimited"}))
                .header("retry-after", "1"),
        ],
    );
    let mut env = standin.lambda_env();
    env.extend(
        [
            ("TOLLGATE_SLACK_BOT_TOKEN", format!("ssm:{param}")),
            ("TOLLGATE_SLACK_CHANNEL_ID", CHANNEL.to_owned()),
            ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
            ("TOLLGATE_NOTIFY_DEDUPE_TABLE", table.clone()),
            ("TOLLGATE_NOTIFY_ENRICH", "false".to_owned()),
            (
                "TOLLGATE_NOTIFY_RULES",
                json!({"notify": {"pipeline": ["all"], "stage": ["all"], "action": ["all"]}})
                    .to_string(),
            ),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut fs: Vec<LocalLambda> = Vec::new();
    for _ in 0..3 {
        let f = LocalLambda::spawn(&paths::function_binary("notifier"), &env).await;
        assert!(
            f.wait_init(Duration::from_secs(20)).await.is_some(),
            "init failed: {:?}\n{}",
            f.init_error(),
            f.logs()
        );
        fs.push(f);
    }
    let events = [
        event("e8", "pipeline", "FAILED", None, "2026-11-26T06:01:01Z"),
        event(
            "e5",
            "action",
            "STARTED",
            Some("Build"),
            "2026-11-26T06:00:06Z",
        ),
        event("e1", "pipeline", "STARTED", None, "2026-11-26T06:00:00Z"),
        event(
            "e6",
            "action",
            "FAILED",
            Some("Build"),
            "2026-11-26T06:01:00Z",
        ),
        event(
            "e3",
            "stage",
            "SUCCEEDED",
            Some("Source"),
            "2026-11-26T06:00:05Z",
        ),
        event(
            "e2",
            "stage",
            "STARTED",
            Some("Source"),
            "2026-11-26T06:00:01Z",
        ),
        event(
            "e7",
            "stage",
            "FAILED",
            Some("Build"),
            "2026-11-26T06:01:00Z",
        ),
        event(
            "e4",
            "stage",
            "STARTED",
            Some("Build"),
            "2026-11-26T06:00:06Z",
        ),
    ];
    // Rounds of three parallel invocations, one per environment; a failed
    // invocation is retried (as Lambda does), in the next round.
    let mut queue: Vec<Value> = events.to_vec();
    queue.extend(events.iter().take(3).cloned()); // duplicates
    let mut rounds = 0;
    while !queue.is_empty() {
        rounds += 1;
        assert!(rounds < 30, "never settled");
        let batch: Vec<Value> = queue.drain(..queue.len().min(3)).collect();
        let mut futs = Vec::new();
        for (f, e) in fs.iter_mut().zip(batch.iter()) {
            futs.push(f.invoke(e.clone(), DEADLINE));
        }
        let outs = futures::future::join_all(futs).await;
        for (out, e) in outs.into_iter().zip(batch) {
            if let Invocation::Error { .. } = out {
                queue.push(e);
            }
        }
    }
    let posts = slack.requests_to("/api/chat.postMessage");
    let bodies: Vec<Value> = posts.iter().map(|r| r.json()).collect();
    let parents: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("thread_ts").is_none())
        .collect();
    assert_eq!(parents.len(), 1, "one message: {bodies:#?}");
    let replies: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("thread_ts").is_some())
        .collect();
    assert!(!replies.is_empty(), "the failure is told in the thread");
    let thread = replies[0]["thread_ts"].clone();
    assert!(replies.iter().all(|r| r["thread_ts"] == thread));
    assert!(
        replies.iter().all(|r| r["reply_broadcast"] == true),
        "failures are broadcast"
    );
    let mut texts: Vec<String> = replies.iter().map(|r| r["text"].to_string()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(
        texts.len(),
        replies.len(),
        "no duplicate replies: {replies:#?}"
    );
    let all = serde_json::to_string(&bodies).expect("json");
    assert!(!all.contains("<!channel>"), "user text is escaped");
    // The last successful update shows the whole release.
    let updates = slack.requests_to("/api/chat.update");
    let last = updates.last().expect("updated").json();
    assert_eq!(last["ts"], thread, "the thread hangs on the one message");
    let text = last.to_string();
    assert!(text.contains("Source ✓ · Build ✗"), "{text}");
    assert!(text.contains("failed at Build"), "{text}");
    for f in &fs {
        assert!(
            !f.logs().contains(BOT_TOKEN),
            "the token never appears in logs"
        );
    }
}

/// `auth.test` at init: a token Slack refuses, or one without `chat:write`,
/// fails init with the reason (so every event fails with it and is kept
/// by Lambda's retries and the failed-events queue), never with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_or_a_missing_scope_fails_init_with_the_reason() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let sdk = standin.sdk_config().await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}-{n}", std::process::id());
    let revoked = "xoxb-9999-REVOKED-NEVER-LOG";
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    for (name, value) in [("revoked", revoked), ("good", BOT_TOKEN)] {
        ssm.put_parameter()
            .name(format!("/tollgate/{tag}/{name}"))
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("seed the token");
    }
    let slack = slack_api().await;
    let env_for = |param: &str| {
        let mut env = standin.lambda_env();
        env.extend(
            [
                (
                    "TOLLGATE_SLACK_BOT_TOKEN",
                    format!("ssm:/tollgate/{tag}/{param}"),
                ),
                ("TOLLGATE_SLACK_CHANNEL_ID", CHANNEL.to_owned()),
                ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
                ("TOLLGATE_NOTIFY_ENRICH", "false".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        env
    };
    let bin = paths::function_binary("notifier");
    // Revoked.
    let f = LocalLambda::spawn(&bin, &env_for("revoked")).await;
    assert!(f.wait_exit(Duration::from_secs(20)).await, "init must stop");
    let err = f.init_error().expect("init error posted");
    assert_eq!(err.error_type, "SlackTokenRejected", "{err:?}");
    assert!(err.error_message.contains("invalid_auth"), "{err:?}");
    assert!(err.error_message.contains("reinstall"), "{err:?}");
    assert!(!err.error_message.contains(revoked), "{err:?}");
    assert!(!f.logs().contains(revoked), "{}", f.logs());
    // A token without chat:write.
    slack.script(
        "/api/auth.test",
        [Reply::json(
            200,
            &json!({"ok": true, "team_id": "T0LOCAL", "user_id": "U0LOCAL"}),
        )
        .header("x-oauth-scopes", "channels:read")],
    );
    let f = LocalLambda::spawn(&bin, &env_for("good")).await;
    assert!(f.wait_exit(Duration::from_secs(20)).await, "init must stop");
    let err = f.init_error().expect("init error posted");
    assert_eq!(err.error_type, "SlackTokenRejected", "{err:?}");
    assert!(err.error_message.contains("missing_scope"), "{err:?}");
    assert!(err.error_message.contains("chat:write"), "{err:?}");
    assert!(!f.logs().contains(BOT_TOKEN), "{}", f.logs());
    // The good token: init completes, after one auth.test.
    let f = LocalLambda::spawn(&bin, &env_for("good")).await;
    assert!(
        f.wait_init(Duration::from_secs(20)).await.is_some(),
        "init failed: {:?}\n{}",
        f.init_error(),
        f.logs()
    );
    assert_eq!(slack.requests_to("/api/auth.test").len(), 3);
    assert!(slack.requests_to("/api/chat.postMessage").is_empty());
}

fn cp(id: &str, kind: &str, state: &str, stage: Option<&str>, time: &str) -> Value {
    let mut e = event(id, kind, state, stage, time);
    e["detail"]["version"] = json!(3);
    if kind == "action" {
        e["detail"]["action"] = json!("Blue");
        e["detail"]["type"] = json!({"owner": "AWS", "category": "Deploy", "provider": "CodeDeployToECS", "version": "1"});
        if state == "STARTED" {
            e["detail"]
                .as_object_mut()
                .expect("detail")
                .remove("execution-result");
        } else {
            e["detail"]["execution-result"] = json!({"external-execution-id": "d-ABC12345",
                "external-execution-summary": "Deployment d-ABC12345 failed"});
        }
    }
    e
}

/// With enrichment on: the strip lists every stage of the pipeline version
/// (GetPipeline), those not reached yet without a mark; the CodeDeploy
/// deployment the execution started is told in its thread (broadcast, no
/// message of its own), and its rollback is the run's final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_stage_shows_and_the_executions_deployment_lands_in_its_thread() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let sdk = standin.sdk_config().await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}-{n}", std::process::id());
    let table = format!("tollgate-releases-{tag}");
    tollgate_tests::seed::delivery_table(&sdk, &table)
        .await
        .expect("table in moto");
    let param = format!("/tollgate/{tag}/slack-bot");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value(BOT_TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("seed the token");
    let action = |name: &str, category: &str, provider: &str| json!({"name": name, "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"}, "runOrder": 1});
    standin.script(
        "GetPipeline",
        vec![json!({"pipeline": {
            "name": "payments", "roleArn": "arn:aws:iam::111122223333:role/pipeline", "version": 3,
            "stages": [
                {"name": "Source", "actions": [action("Source", "Source", "CodeStarSourceConnection")]},
                {"name": "Build", "actions": [action("Compile", "Build", "CodeBuild")]},
                {"name": "Deploy", "actions": [action("Blue", "Deploy", "CodeDeployToECS")]},
                {"name": "Production", "actions": [action("Prod", "Deploy", "CodeDeployToECS")]}
            ]
        }})],
    );
    standin.script(
        "GetPipelineExecution",
        vec![
            json!({"pipelineExecution": {"pipelineName": "payments", "pipelineVersion": 3,
            "pipelineExecutionId": "exec-1", "status": "InProgress"}}),
        ],
    );
    standin.script(
        "ListActionExecutions",
        vec![json!({"actionExecutionDetails": [{
            "pipelineExecutionId": "exec-1", "actionExecutionId": "ae-1", "pipelineVersion": 3,
            "stageName": "Deploy", "actionName": "Blue", "status": "InProgress",
            "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeployToECS", "version": "1"}},
            "output": {"executionResult": {"externalExecutionId": "d-ABC12345"}}
        }]})],
    );
    standin.script(
        "ListPipelineExecutions",
        vec![json!({"pipelineExecutionSummaries": [
            {"pipelineExecutionId": "exec-1", "status": "Failed", "startTime": 1764136800.0, "lastUpdateTime": 1764136900.0}
        ]})],
    );
    standin.script(
        "GetDeployment",
        vec![json!({"deploymentInfo": {
            "deploymentId": "d-ABC12345", "applicationName": "payments", "deploymentGroupName": "prod",
            "status": "Failed", "creator": "user",
            "errorInformation": {"code": "HEALTH_CONSTRAINTS", "message": "the green tasks failed their health checks <!here>"},
            "rollbackInfo": {"rollbackDeploymentId": "d-RB000001", "rollbackMessage": "Deployment d-ABC12345 was rolled back"}
        }})],
    );
    let slack = slack_api().await;
    let mut env = standin.lambda_env();
    env.extend(
        [
            ("TOLLGATE_SLACK_BOT_TOKEN", format!("ssm:{param}")),
            ("TOLLGATE_SLACK_CHANNEL_ID", CHANNEL.to_owned()),
            ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
            ("TOLLGATE_NOTIFY_DEDUPE_TABLE", table.clone()),
            ("TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS", "4000".to_owned()),
            (
                "TOLLGATE_NOTIFY_RULES",
                json!({"notify": {"pipeline": ["all"], "stage": ["all"], "action": ["all"], "deployment": ["all"]}})
                    .to_string(),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut fs: Vec<LocalLambda> = Vec::new();
    for _ in 0..3 {
        let f = LocalLambda::spawn(&paths::function_binary("notifier"), &env).await;
        assert!(
            f.wait_init(Duration::from_secs(20)).await.is_some(),
            "init failed: {:?}\n{}",
            f.init_error(),
            f.logs()
        );
        fs.push(f);
    }
    let deploy_failed = json!({
        "version": "0", "id": "cd-1", "detail-type": "CodeDeploy Deployment State-change Notification",
        "source": "aws.codedeploy", "account": "111122223333", "time": "2026-11-26T06:02:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:codedeploy:eu-west-1:111122223333:deploymentgroup:payments/prod"],
        "detail": {"application": "payments", "deploymentGroup": "prod", "deploymentId": "d-ABC12345",
                   "state": "FAILURE", "region": "eu-west-1"}
    });
    // The execution's events first (in parallel, out of order), then the
    // deployment's failure, then the end.
    let phases = [
        vec![
            cp(
                "e3",
                "stage",
                "SUCCEEDED",
                Some("Source"),
                "2026-11-26T06:00:05Z",
            ),
            cp("e1", "pipeline", "STARTED", None, "2026-11-26T06:00:00Z"),
            cp(
                "e4",
                "stage",
                "SUCCEEDED",
                Some("Build"),
                "2026-11-26T06:01:00Z",
            ),
            cp(
                "e5",
                "action",
                "STARTED",
                Some("Deploy"),
                "2026-11-26T06:01:05Z",
            ),
            cp(
                "e2",
                "stage",
                "STARTED",
                Some("Source"),
                "2026-11-26T06:00:01Z",
            ),
        ],
        vec![deploy_failed.clone()],
        vec![
            cp(
                "e7",
                "stage",
                "FAILED",
                Some("Deploy"),
                "2026-11-26T06:02:10Z",
            ),
            cp(
                "e6",
                "action",
                "FAILED",
                Some("Deploy"),
                "2026-11-26T06:02:09Z",
            ),
            cp("e8", "pipeline", "FAILED", None, "2026-11-26T06:02:11Z"),
            deploy_failed,
        ],
    ];
    for phase in phases {
        let mut queue = phase;
        let mut rounds = 0;
        while !queue.is_empty() {
            rounds += 1;
            assert!(rounds < 30, "never settled");
            let batch: Vec<Value> = queue.drain(..queue.len().min(3)).collect();
            let futs = fs
                .iter_mut()
                .zip(batch.iter())
                .map(|(f, e)| f.invoke(e.clone(), DEADLINE));
            let outs = futures::future::join_all(futs).await;
            for (out, e) in outs.into_iter().zip(batch) {
                if let Invocation::Error { .. } = out {
                    queue.push(e);
                }
            }
        }
    }
    let bodies: Vec<Value> = slack
        .requests_to("/api/chat.postMessage")
        .iter()
        .map(|r| r.json())
        .collect();
    let parents: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("thread_ts").is_none())
        .collect();
    assert_eq!(
        parents.len(),
        1,
        "one message, none for the deployment: {bodies:#?}"
    );
    let replies: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("thread_ts").is_some())
        .collect();
    let thread = replies.first().expect("replies")["thread_ts"].clone();
    assert!(replies.iter().all(|r| r["thread_ts"] == thread));
    let deployment_replies: Vec<&&Value> = replies
        .iter()
        .filter(|r| r.to_string().contains("health checks"))
        .collect();
    assert_eq!(
        deployment_replies.len(),
        1,
        "told once in the thread: {replies:#?}"
    );
    assert_eq!(
        deployment_replies[0]["reply_broadcast"], true,
        "failures are broadcast"
    );
    assert!(!bodies.iter().any(|b| b.to_string().contains("<!here>")));
    let last = slack
        .requests_to("/api/chat.update")
        .last()
        .expect("updated")
        .json();
    assert_eq!(last["ts"], thread);
    let text = last.to_string();
    assert!(
        text.contains("Source ✓ · Build ✓ · Deploy ✗ · Production\""),
        "every stage, Production not reached: {text}"
    );
    assert!(text.contains("rolled back (failed at Deploy)"), "{text}");
    assert!(text.contains("payments/prod (CodeDeploy)"), "{text}");
    // GetPipeline: once per environment at most (cached per version).
    let reads = standin.calls_of("GetPipeline").len();
    assert!((1..=3).contains(&reads), "{reads} GetPipeline reads");
    for f in &fs {
        assert!(!f.logs().contains(BOT_TOKEN));
    }
}

/// The ECS pause fixture, for `cluster/service`.
fn pause_event(id: &str, cluster: &str, service: &str) -> Value {
    let mut e = paths::event("notifier", "ecs-hook-awaiting-action");
    let deployment = format!(
        "arn:aws:ecs:us-west-2:123456789012:service-deployment/{cluster}/{service}/0EYSiB0qap8xf0N76FsbE"
    );
    e["id"] = json!(id);
    e["resources"] = json!([deployment]);
    e["detail"]["clusterArn"] = json!(format!(
        "arn:aws:ecs:us-west-2:123456789012:cluster/{cluster}"
    ));
    e["detail"]["serviceArn"] = json!(format!(
        "arn:aws:ecs:us-west-2:123456789012:service/{cluster}/{service}"
    ));
    e["detail"]["serviceDeploymentArn"] = json!(deployment);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ecs_pauses_get_buttons_only_for_the_services_approvals_may_decide() {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let sdk = standin.sdk_config().await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}-{n}", std::process::id());
    let table = format!("tollgate-releases-{tag}");
    tollgate_tests::seed::delivery_table(&sdk, &table)
        .await
        .expect("table in moto");
    let param = format!("/tollgate/{tag}/slack-bot");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value(BOT_TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("seed the token");
    let slack = slack_api().await;
    let mut env = standin.lambda_env();
    env.extend(
        [
            ("TOLLGATE_SLACK_BOT_TOKEN", format!("ssm:{param}")),
            ("TOLLGATE_SLACK_CHANNEL_ID", CHANNEL.to_owned()),
            ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
            ("TOLLGATE_NOTIFY_DEDUPE_TABLE", table),
            ("TOLLGATE_NOTIFY_ENRICH", "false".to_owned()),
            // As the template passes ApprovalEcsServices.
            (
                "TOLLGATE_APPROVAL_ECS_SERVICES",
                "prod/checkout-web,my-cluster/my-service".to_owned(),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut f = LocalLambda::spawn(&paths::function_binary("notifier"), &env).await;
    assert!(
        f.wait_init(Duration::from_secs(20)).await.is_some(),
        "init failed: {:?}\n{}",
        f.init_error(),
        f.logs()
    );
    for e in [
        pause_event("pause-approvable", "my-cluster", "my-service"),
        pause_event("pause-other", "my-cluster", "batch-worker"),
    ] {
        let out = f.invoke(e, DEADLINE).await;
        assert!(
            matches!(out, Invocation::Response(_)),
            "{out:?}\n{}",
            f.logs()
        );
    }
    let pauses: Vec<Value> = slack
        .requests_to("/api/chat.postMessage")
        .iter()
        .map(|r| r.json())
        .filter(|m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("ECS deployment paused"))
        })
        .collect();
    assert_eq!(pauses.len(), 2, "{pauses:#?}");
    let buttons = |m: &Value| {
        m["blocks"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
    };
    let (mine, other): (Vec<&Value>, Vec<&Value>) = pauses.iter().partition(|m| {
        m["text"]
            .as_str()
            .unwrap_or_default()
            .contains("my-service")
    });
    assert_eq!((mine.len(), other.len()), (1, 1), "{pauses:#?}");
    assert!(buttons(mine[0]), "approvable: buttons {}", mine[0]);
    assert!(
        mine[0].to_string().contains("tollgate.ecs_pause.continue"),
        "{}",
        mine[0]
    );
    assert!(
        !buttons(other[0]),
        "not approvable: no buttons {}",
        other[0]
    );
    assert!(
        other[0]
            .to_string()
            .contains("waits in the Amazon ECS console"),
        "{}",
        other[0]
    );
    assert_eq!(other[0]["reply_broadcast"], true, "shown in the channel");
}

/// A pipeline with stage condition overrides (TOLLGATE_NOTIFY_OVERRIDE_PIPELINES):
/// after its execution starts and a stage succeeds (events the default
/// rules keep quiet), the notifier reads GetPipelineState (the AWS
/// stand-in), finds Production's entry condition in progress for this
/// execution and the bot posts one Override request in the execution's
/// thread, however many events find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_entry_condition_in_progress_gets_one_override_request_in_the_thread() {
    const EXEC: &str = "3137f7cb-7cf7-4a54-8e5b-1f2a3b4c5d6e";
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let sdk = standin.sdk_config().await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}-{n}", std::process::id());
    let table = format!("tollgate-releases-{tag}");
    tollgate_tests::seed::delivery_table(&sdk, &table)
        .await
        .expect("table in moto");
    let param = format!("/tollgate/{tag}/slack-bot");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value(BOT_TOKEN)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("seed the token");
    standin.register_stage_condition(
        "payments",
        "Production",
        "BEFORE_ENTRY",
        EXEC,
        "InProgress",
        &[(
            "NoOpenAlarms",
            "InProgress",
            "alarm pay-5xx is in ALARM <!channel>",
        )],
    );
    let slack = slack_api().await;
    let mut env = standin.lambda_env();
    env.extend(
        [
            ("TOLLGATE_SLACK_BOT_TOKEN", format!("ssm:{param}")),
            ("TOLLGATE_SLACK_CHANNEL_ID", CHANNEL.to_owned()),
            ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
            ("TOLLGATE_NOTIFY_DEDUPE_TABLE", table.clone()),
            ("TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS", "4000".to_owned()),
            (
                "TOLLGATE_NOTIFY_OVERRIDE_PIPELINES",
                "arn:aws:codepipeline:eu-west-1:111122223333:payments".to_owned(),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut f = LocalLambda::spawn(&paths::function_binary("notifier"), &env).await;
    let with_exec = |mut e: Value| {
        e["detail"]["execution-id"] = json!(EXEC);
        e
    };
    for e in [
        with_exec(event(
            "o1",
            "pipeline",
            "STARTED",
            None,
            "2026-11-26T06:00:00Z",
        )),
        with_exec(event(
            "o2",
            "stage",
            "SUCCEEDED",
            Some("Staging"),
            "2026-11-26T06:03:00Z",
        )),
    ] {
        let answer = f.invoke(e, DEADLINE).await;
        assert!(
            matches!(answer, Invocation::Response(_)),
            "{answer:?}\n{}",
            f.logs()
        );
    }
    let requests: Vec<Value> = slack
        .requests_to("/api/chat.postMessage")
        .iter()
        .map(|r| r.json())
        .filter(|m| m.to_string().contains("tollgate.stage_condition.override"))
        .collect();
    assert_eq!(requests.len(), 1, "one request: {requests:?}\n{}", f.logs());
    let m = &requests[0];
    assert!(m["thread_ts"].is_string(), "in the execution's thread: {m}");
    let text = m.to_string();
    assert!(
        text.contains("*Production* is waiting for its entry condition"),
        "{text}"
    );
    assert!(text.contains("NoOpenAlarms"), "{text}");
    assert!(!text.contains("<!channel>"), "escaped: {text}");
    let reads = standin
        .calls()
        .iter()
        .filter(|c| c.operation == "GetPipelineState")
        .count();
    assert_eq!(reads, 2, "one read per triggering event");
}
