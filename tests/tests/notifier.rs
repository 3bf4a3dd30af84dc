//! notifier end to end: the real binary under the local Runtime API, real SDK
//! clients against the AWS stand-in fronting moto (SNS, Secrets Manager, SSM,
//! CodeDeploy `GetDeployment`), CodePipeline reads that moto lacks
//! (`GetPipelineExecution`, `ListActionExecutions`, `ListPipelineExecutions`)
//! scripted in the stand-in, and a local webhook sink that answers 200 / 429
//! / 500 / 404 or hangs. The SNS topic has an HTTP subscription to the sink,
//! so moto's delivery of the published message is checked too.
//!
//! Webhook URLs and the token are resolved from Secrets Manager and SSM
//! SecureString at init; every test checks that none of them appears in the
//! function's captured logs (run at DEBUG level).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tollgate_test_support::http::{Reply, Request, Stub};
use tollgate_tests::{AwsStandIn, Fault, Invocation, LocalLambda, Moto, paths};

const DEADLINE: Duration = Duration::from_secs(15);
const TOKEN: &str = "tok-3f9a-NEVER-LOG-ME";

// ------------------------------------------------------------ webhook sink

// The shared loopback stub: 200 `ok` unless a path is scripted.

/// One request the sink received, its body read as JSON.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Value,
}

impl From<Request> for Received {
    fn from(r: Request) -> Self {
        Received {
            headers: r.header_map(),
            body: r.json(),
        }
    }
}

// ------------------------------------------------------------------ setup

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world: the stand-in, the sink, the seeded secrets and topic.
struct World {
    standin: AwsStandIn,
    sink: Stub,
    /// Secret strings that must never show up in logs.
    secrets: Vec<String>,
    env: Vec<(String, String)>,
    topic_arn: String,
}

async fn world() -> World {
    let moto = Moto::shared();
    let standin = AwsStandIn::start(Some(moto)).await;
    let sink = Stub::ok().await;
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let tag = format!("{}-{n}", std::process::id());
    let sdk = standin.sdk_config().await;

    // The secret parts of the URLs are the paths, as with real webhooks.
    let slack_url = sink.url(&format!("/slack/T0LOCAL/B0LOCAL/slackSECRETpath{tag}"));
    let hook_url = sink.url(&format!("/hook/hookSECRETpath{tag}"));
    let teams_url = sink.url(&format!("/teams/teamsSECRETpath{tag}"));

    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let slack_param = format!("/tollgate/{tag}/slack-webhook");
    ssm.put_parameter()
        .name(&slack_param)
        .value(&slack_url)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("seed SSM SecureString");

    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret_name = format!("tollgate/{tag}/webhook");
    sm.create_secret()
        .name(&secret_name)
        .secret_string(json!({"url": hook_url, "token": TOKEN}).to_string())
        .send()
        .await
        .expect("seed secret");
    let teams_secret = format!("tollgate/{tag}/teams");
    let teams_arn = sm
        .create_secret()
        .name(&teams_secret)
        .secret_string(&teams_url)
        .send()
        .await
        .expect("seed teams secret")
        .arn
        .expect("secret arn");

    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic_arn = sns
        .create_topic()
        .name(format!("tollgate-notify-{tag}"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("http")
        .endpoint(sink.url("/sns-subscriber"))
        .send()
        .await
        .expect("subscribe the sink");

    let mut env = standin.lambda_env();
    env.extend(
        [
            ("TOLLGATE_SLACK_WEBHOOK", format!("ssm:{slack_param}")),
            ("TOLLGATE_TEAMS_WEBHOOK", teams_arn),
            (
                "TOLLGATE_WEBHOOK_URL",
                format!("secretsmanager:{secret_name}#url"),
            ),
            (
                "TOLLGATE_WEBHOOK_TOKEN",
                format!("secretsmanager:{secret_name}#token"),
            ),
            ("TOLLGATE_SNS_TOPIC_ARN", topic_arn.clone()),
            ("TOLLGATE_NOTIFY_REQUEST_TIMEOUT_MS", "800".to_owned()),
            ("TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS", "1500".to_owned()),
            // The most verbose level users are likely to set: secrets must
            // stay out of it too.
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    World {
        standin,
        sink,
        secrets: vec![
            format!("slackSECRETpath{tag}"),
            format!("hookSECRETpath{tag}"),
            format!("teamsSECRETpath{tag}"),
            TOKEN.to_owned(),
        ],
        env,
        topic_arn,
    }
}

impl World {
    fn slack(&self) -> Vec<Received> {
        self.by_prefix("/slack/")
    }
    fn teams(&self) -> Vec<Received> {
        self.by_prefix("/teams/")
    }
    fn hook(&self) -> Vec<Received> {
        self.by_prefix("/hook/")
    }
    fn sns(&self) -> Vec<Value> {
        self.sink
            .requests_to("/sns-subscriber")
            .into_iter()
            .map(|r| r.json())
            .filter(|b| b["Type"] == "Notification")
            .collect()
    }
    fn by_prefix(&self, prefix: &str) -> Vec<Received> {
        self.sink
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .map(Received::from)
            .collect()
    }
    fn path_of(&self, prefix: &str) -> String {
        let tag_path = self
            .secrets
            .iter()
            .find(|s| s.starts_with(prefix.trim_matches('/')))
            .cloned()
            .unwrap_or_default();
        match prefix {
            "/slack/" => format!("/slack/T0LOCAL/B0LOCAL/{tag_path}"),
            other => format!("{other}{tag_path}"),
        }
    }

    async fn spawn(&self, extra: &[(&str, &str)]) -> LocalLambda {
        let mut env = self.env.clone();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let f = LocalLambda::spawn(&paths::function_binary("notifier"), &env).await;
        assert!(
            f.wait_init(Duration::from_secs(20)).await.is_some(),
            "init failed: {:?}\n{}",
            f.init_error(),
            f.logs()
        );
        f
    }

    fn assert_no_secrets(&self, logs: &str) {
        for s in &self.secrets {
            assert!(
                !logs.contains(s.as_str()),
                "secret {s} leaked into logs:\n{logs}"
            );
        }
    }

    /// Scripts the CodePipeline reads for the `pipeline-failed` fixture, in
    /// the wire shape CodePipeline answers with.
    fn script_pipeline_reads(&self) {
        let commit = "9f1c0e2b7d3a4c5e8f9a0b1c2d3e4f5a6b7c8d9e";
        let exec = "6a7c1e52-0d4b-4f8e-9a3c-2b1d0e9f8a71";
        self.standin.script(
            "GetPipelineExecution",
            vec![json!({"pipelineExecution": {
                "pipelineName": "payments-api",
                "pipelineVersion": 14,
                "pipelineExecutionId": exec,
                "status": "Failed",
                "artifactRevisions": [{
                    "name": "SourceArtifact",
                    "revisionId": commit,
                    "revisionSummary": "{\"ProviderType\":\"GitHub\",\"CommitMessage\":\"Round invoice totals half-even\"}",
                    "revisionUrl": format!("https://eu-west-1.console.aws.amazon.com/codesuite/settings/connections/redirect?connectionArn=arn%3Aaws%3Acodeconnections%3Aeu-west-1%3A111122223333%3Aconnection%2Fabc&referenceType=COMMIT&FullRepositoryId=acme%2Fpayments-api&Commit={commit}"),
                    "created": 1715679302.431
                }],
                "trigger": {"triggerType": "Webhook", "triggerDetail": "arn:aws:codeconnections:eu-west-1:111122223333:connection/abc"},
                "executionMode": "SUPERSEDED",
                "executionType": "STANDARD"
            }})],
        );
        self.standin.script(
            "ListActionExecutions",
            vec![json!({"actionExecutionDetails": [
                {
                    "pipelineExecutionId": exec,
                    "actionExecutionId": "a1b2c3d4-0000-4000-8000-000000000002",
                    "pipelineVersion": 14,
                    "stageName": "Build",
                    "actionName": "UnitTests",
                    "startTime": 1715679401.0,
                    "lastUpdateTime": 1715679735.0,
                    "status": "Failed",
                    "input": {
                        "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                        "configuration": {"ProjectName": "payments-api-unit-tests"},
                        "region": "eu-west-1",
                        "inputArtifacts": [{"name": "SourceArtifact"}]
                    },
                    "output": {
                        "outputArtifacts": [],
                        "executionResult": {
                            "externalExecutionId": "payments-api-unit-tests:4f2b8d1e",
                            "externalExecutionSummary": "Build terminated with state: FAILED",
                            "externalExecutionUrl": "https://console.aws.amazon.com/codebuild/home?region=eu-west-1#/builds/payments-api-unit-tests:4f2b8d1e/view/new",
                            "errorDetails": {"code": "JobFailed", "message": "Phase BUILD: COMMAND_EXECUTION_ERROR: cargo test --locked. Reason: exit status 101"}
                        }
                    }
                },
                {
                    "pipelineExecutionId": exec,
                    "actionExecutionId": "a1b2c3d4-0000-4000-8000-000000000001",
                    "pipelineVersion": 14,
                    "stageName": "Source",
                    "actionName": "Source",
                    "startTime": 1715679303.0,
                    "lastUpdateTime": 1715679400.0,
                    "status": "Succeeded",
                    "input": {
                        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeStarSourceConnection", "version": "1"},
                        "configuration": {"BranchName": "main", "FullRepositoryId": "acme/payments-api", "ConnectionArn": "arn:aws:codeconnections:eu-west-1:111122223333:connection/abc"}
                    },
                    "output": {
                        "outputArtifacts": [{"name": "SourceArtifact"}],
                        "executionResult": {"externalExecutionId": commit, "externalExecutionSummary": "{\"ProviderType\":\"GitHub\",\"CommitMessage\":\"Round invoice totals half-even\"}"},
                        "outputVariables": {"BranchName": "main", "CommitId": commit, "CommitMessage": "Round invoice totals half-even", "FullRepositoryName": "acme/payments-api"}
                    }
                }
            ]})],
        );
        self.standin.script(
            "ListPipelineExecutions",
            vec![json!({"pipelineExecutionSummaries": [
                {"pipelineExecutionId": exec, "status": "Failed", "startTime": 1715679302.431, "lastUpdateTime": 1715679737.0},
                {"pipelineExecutionId": "11111111-2222-4333-8444-555555555555", "status": "Succeeded", "startTime": 1715616000.0, "lastUpdateTime": 1715616552.0}
            ]})],
        );
    }
}

fn response(inv: &Invocation) -> &Value {
    inv.response()
}

fn results(v: &Value) -> HashMap<String, (String, u64)> {
    v["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap_or_default().to_owned(),
                (
                    d["result"].as_str().unwrap_or_default().to_owned(),
                    d["attempts"].as_u64().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipeline_reaches_every_destination_with_reason_and_commit() {
    let w = world().await;
    w.script_pipeline_reads();
    let mut f = w.spawn(&[]).await;
    let inv = f
        .invoke(paths::event("notifier", "pipeline-failed"), DEADLINE)
        .await;
    let out = response(&inv).clone();
    assert_eq!(out["decision"], "sent", "{out}");
    assert_eq!(out["enrichment"], "complete", "{out}");
    let r = results(&out);
    for d in ["slack", "teams", "webhook", "sns"] {
        assert_eq!(r[d].0, "delivered", "{d}: {out}");
    }

    // Slack: Block Kit with the failing action's reason and the commit.
    let slack = w.slack();
    assert_eq!(slack.len(), 1);
    let text = slack[0].body.to_string();
    assert!(text.contains("payments-api: pipeline failed"), "{text}");
    assert!(text.contains("Build › UnitTests failed"), "{text}");
    assert!(text.contains("exit status 101"), "{text}");
    assert!(text.contains("Round invoice totals half-even"), "{text}");
    assert!(text.contains("acme/payments-api@main"), "{text}");
    assert!(
        slack[0].body["blocks"]
            .as_array()
            .is_some_and(|b| b.len() <= 50)
    );

    // Teams: an Adaptive Card 1.4 in attachments[0].
    let teams = w.teams();
    assert_eq!(teams.len(), 1);
    assert_eq!(
        teams[0].body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(teams[0].body["attachments"][0]["content"]["version"], "1.4");

    // Webhook: versioned schema, bearer token from the JSON secret, dedupe key.
    let hook = w.hook();
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].body["schema"], "tollgate.notification/v1");
    assert_eq!(hook[0].body["status"], "failed");
    assert_eq!(hook[0].body["commit"]["branch"], "main");
    assert_eq!(hook[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        hook[0].headers["idempotency-key"],
        "3c9d7a4e-5b1f-4e0a-9c2d-8f6a1b2c3d4e"
    );

    // SNS: published through moto, delivered to the HTTP subscription.
    let sns = w.sns();
    assert_eq!(sns.len(), 1, "{sns:?}");
    assert_eq!(sns[0]["TopicArn"], w.topic_arn.as_str());
    assert_eq!(sns[0]["Subject"], "[FAILED] payments-api: pipeline failed");
    assert!(
        sns[0]["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("Build › UnitTests failed")
    );

    // The lookups went through the stand-in with the real SDK.
    for op in [
        "GetPipelineExecution",
        "ListActionExecutions",
        "ListPipelineExecutions",
    ] {
        assert_eq!(w.standin.calls_of(op).len(), 1, "{op}");
    }
    let req = &w.standin.calls_of("ListActionExecutions")[0].request;
    assert_eq!(
        req["filter"]["pipelineExecutionId"],
        "6a7c1e52-0d4b-4f8e-9a3c-2b1d0e9f8a71"
    );
    w.assert_no_secrets(&f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_then_delivered() {
    let w = world().await;
    w.sink
        .script(&w.path_of("/slack/"), [Reply::busy(429, Some("1"))]);
    w.sink.script(
        &w.path_of("/hook/"),
        [Reply::busy(500, None), Reply::busy(502, None)],
    );
    w.sink.script(&w.path_of("/teams/"), [Reply::hang()]);
    let mut f = w.spawn(&[]).await;
    let started = Instant::now();
    let inv = f
        .invoke(paths::event("notifier", "codebuild-phase-failed"), DEADLINE)
        .await;
    let out = response(&inv).clone();
    let r = results(&out);
    assert_eq!(r["slack"], ("delivered".to_owned(), 2), "{out}");
    assert_eq!(r["webhook"], ("delivered".to_owned(), 3), "{out}");
    assert_eq!(r["teams"], ("delivered".to_owned(), 2), "{out}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(w.slack().len(), 2);
    let logs = f.logs();
    assert!(logs.contains("delivery attempt failed; retrying"), "{logs}");
    w.assert_no_secrets(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_an_invocation_error_and_the_retry_skips_delivered_destinations() {
    let w = world().await;
    w.sink.script(&w.path_of("/slack/"), [Reply::gone()]);
    let mut f = w.spawn(&[]).await;
    let event = paths::event("notifier", "ecs-deployment-circuit-breaker");
    let inv = f.invoke(event.clone(), DEADLINE).await;
    let Invocation::Error {
        error_type,
        error_message,
    } = inv
    else {
        panic!("expected an invocation error, got {inv:?}");
    };
    assert_eq!(error_type, "NotificationUndelivered");
    assert!(error_message.contains("slack (HTTP 404"), "{error_message}");
    assert!(
        error_message.contains("permanent error, not retried"),
        "{error_message}"
    );
    assert!(
        error_message.contains("delivered: teams, webhook, sns"),
        "{error_message}"
    );
    assert_eq!(w.slack().len(), 1, "a 404 is not retried");
    assert_eq!(w.sns().len(), 1);

    // Lambda's async retry of the same event: only Slack is sent again.
    let inv = f.invoke(event, DEADLINE).await;
    let out = response(&inv).clone();
    let r = results(&out);
    assert_eq!(r["slack"].0, "delivered", "{out}");
    for d in ["teams", "webhook", "sns"] {
        assert_eq!(r[d].0, "already-delivered", "{d}: {out}");
    }
    assert_eq!(w.teams().len(), 1);
    assert_eq!(w.hook().len(), 1);
    assert_eq!(w.sns().len(), 1);
    let logs = f.logs();
    assert!(
        logs.contains("status=404") || logs.contains("\"status\":404"),
        "{logs}"
    );
    w.assert_no_secrets(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_lookups_do_not_stop_the_message() {
    let w = world().await;
    w.standin
        .inject("GetPipelineExecution", Fault::AccessDenied, None);
    w.standin
        .inject("ListActionExecutions", Fault::ServerError, None);
    w.standin.inject(
        "ListPipelineExecutions",
        Fault::Slow(Duration::from_secs(30)),
        None,
    );
    let mut f = w.spawn(&[]).await;
    let inv = f
        .invoke(paths::event("notifier", "pipeline-failed"), DEADLINE)
        .await;
    let out = response(&inv).clone();
    assert_eq!(out["decision"], "sent", "{out}");
    assert_eq!(out["enrichment"], "failed", "{out}");
    // Bounded by the enrichment limit (1.5 s): the 30 s read would have
    // outlasted the 20 s deadline. Judged where the answer lands, not by a
    // wall clock of the test's own (it would flake on a busy host).
    assert_eq!(f.late_answers(), Vec::new(), "answered after the deadline");
    let hook = w.hook();
    assert_eq!(hook.len(), 1);
    let problems = hook[0].body["enrichment"]["problems"].to_string();
    assert!(
        problems.contains("grant codepipeline:GetPipelineExecution"),
        "{problems}"
    );
    assert!(hook[0].body["commit"].is_null());
    // Still a useful message from the event alone.
    let slack = w.slack()[0].body.to_string();
    assert!(slack.contains("payments-api: pipeline failed"), "{slack}");
    assert!(slack.contains("could not be looked up"), "{slack}");
    assert_eq!(w.sns().len(), 1);
    w.assert_no_secrets(&f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codedeploy_reasons_come_from_get_deployment_in_moto() {
    let w = world().await;
    let sdk = w.standin.sdk_config().await;
    let cd = aws_sdk_codedeploy::Client::new(&sdk);
    let app = format!("billing-{}", SEQ.fetch_add(1, Ordering::SeqCst));
    cd.create_application()
        .application_name(&app)
        .compute_platform(aws_sdk_codedeploy::types::ComputePlatform::Server)
        .send()
        .await
        .expect("create application");
    cd.create_deployment_group()
        .application_name(&app)
        .deployment_group_name("prod")
        .service_role_arn("arn:aws:iam::123456789012:role/CodeDeployServiceRole")
        .send()
        .await
        .expect("create deployment group");
    let id = cd
        .create_deployment()
        .application_name(&app)
        .deployment_group_name("prod")
        .revision(
            aws_sdk_codedeploy::types::RevisionLocation::builder()
                .revision_type(aws_sdk_codedeploy::types::RevisionLocationType::GitHub)
                .git_hub_location(
                    aws_sdk_codedeploy::types::GitHubLocation::builder()
                        .repository("acme/legacy-billing")
                        .commit_id("a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create deployment")
        .deployment_id
        .expect("deployment id");
    let mut event = paths::event("notifier", "codedeploy-deployment-failed-rollback");
    event["detail"]["deploymentId"] = json!(id);
    event["detail"]["application"] = json!(app);
    event["region"] = json!("us-east-1");
    let mut f = w.spawn(&[]).await;
    let inv = f.invoke(event, DEADLINE).await;
    let out = response(&inv).clone();
    assert_eq!(out["enrichment"], "complete", "{out}");
    let calls = w.standin.calls_of("GetDeployment");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].forwarded,
        "GetDeployment should be answered by moto"
    );
    let hook = &w.hook()[0].body;
    assert_eq!(
        hook["commit"]["repository"], "acme/legacy-billing",
        "{hook}"
    );
    let facts = hook["facts"].to_string();
    assert!(facts.contains("\"Started by\""), "{facts}");
    assert!(facts.contains(&id), "{facts}");
    w.assert_no_secrets(&f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_hook_failure_record_puts_the_failed_checks_in_the_message() {
    let w = world().await;
    let sdk = w.standin.sdk_config().await;
    let cd = aws_sdk_codedeploy::Client::new(&sdk);
    let app = format!("checkout-{}", SEQ.fetch_add(1, Ordering::SeqCst));
    cd.create_application()
        .application_name(&app)
        .compute_platform(aws_sdk_codedeploy::types::ComputePlatform::Server)
        .send()
        .await
        .expect("create application");
    cd.create_deployment_group()
        .application_name(&app)
        .deployment_group_name("prod")
        .service_role_arn("arn:aws:iam::123456789012:role/CodeDeployServiceRole")
        .send()
        .await
        .expect("create deployment group");
    let id = cd
        .create_deployment()
        .application_name(&app)
        .deployment_group_name("prod")
        .send()
        .await
        .expect("create deployment")
        .deployment_id
        .expect("deployment id");
    // What deploy-hook leaves for a failed AfterAllowTestTraffic hook.
    let prefix = "/tollgate/notifier-test/hook-failures";
    let name = format!("{prefix}/{app}/prod");
    let record = |deployment: &str| {
        json!({
            "schema": "tollgate.hook-failure/v1",
            "deploymentId": deployment,
            "hook": "AfterAllowTestTraffic",
            "time": "2024-05-14T12:18:40Z",
            "summary": format!("AfterAllowTestTraffic failed for {deployment}: smoke checks against http://10.0.0.1:8080 did not pass: 0/1 passed"),
            "failures": [
                "FAIL health (GET http://10.0.0.1:8080/health): 3 attempts, last response 4 ms",
                "  - status: expected 200, got 503"
            ]
        })
        .to_string()
    };
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let put = |value: String| {
        ssm.put_parameter()
            .name(&name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
    };
    put(record(&id)).await.expect("seed the record");

    let mut f = w
        .spawn(&[("TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX", prefix)])
        .await;
    let mut event = paths::event("notifier", "codedeploy-deployment-failed-rollback");
    event["detail"]["deploymentId"] = json!(id);
    event["detail"]["application"] = json!(app);
    event["region"] = json!("us-east-1");
    let inv = f.invoke(event.clone(), DEADLINE).await;
    let out = response(&inv).clone();
    assert_eq!(out["decision"], "sent", "{out}");
    assert_eq!(out["enrichment"], "complete", "{out}");
    let reads = w.standin.calls_of("GetParameter");
    assert!(
        reads.iter().any(|c| c.request["Name"] == name.as_str()),
        "{reads:?}"
    );

    let slack = w.slack()[0].body.to_string();
    assert!(
        slack.contains("Failed checks (AfterAllowTestTraffic)"),
        "{slack}"
    );
    assert!(slack.contains("status: expected 200, got 503"), "{slack}");
    assert_eq!(
        w.slack()[0].body["text"],
        format!(
            "❌ {app}/prod: deployment failed: AfterAllowTestTraffic: status: expected 200, got 503"
        ),
    );
    let hook = &w.hook()[0].body;
    assert_eq!(hook["failedChecks"]["deploymentId"], id.as_str(), "{hook}");
    assert_eq!(
        hook["failedChecks"]["lines"][1], "  - status: expected 200, got 503",
        "{hook}"
    );
    let teams = w.teams()[0].body.to_string();
    assert!(teams.contains("status: expected 200, got 503"), "{teams}");

    // A record left by an earlier deployment of the group is not shown.
    put(record("d-EARLIER01")).await.expect("overwrite");
    event["id"] = json!("5f0e9d8c-7b6a-4c5d-9e8f-0a1b2c3d4e5f");
    let inv = f.invoke(event, DEADLINE).await;
    let out = response(&inv).clone();
    assert_eq!(out["decision"], "sent", "{out}");
    let slack = w.slack();
    assert_eq!(slack.len(), 2);
    let second = slack[1].body.to_string();
    assert!(!second.contains("Failed checks"), "{second}");
    assert!(w.hook()[1].body.get("failedChecks").is_none());
    w.assert_no_secrets(&f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amazon_q_gets_custom_notifications_threaded_by_execution() {
    let w = world().await;
    w.script_pipeline_reads();
    let sdk = w.standin.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let q_topic = sns
        .create_topic()
        .name(format!("tollgate-q-{}", SEQ.fetch_add(1, Ordering::SeqCst)))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    sns.subscribe()
        .topic_arn(&q_topic)
        .protocol("http")
        .endpoint(w.sink.url("/q-subscriber"))
        .send()
        .await
        .expect("subscribe the sink");
    let mut f = w.spawn(&[("TOLLGATE_AMAZONQ_TOPIC_ARN", &q_topic)]).await;
    // Two events of one execution: the failed action, then the pipeline.
    for fixture in ["action-failed", "pipeline-failed"] {
        let inv = f.invoke(paths::event("notifier", fixture), DEADLINE).await;
        let out = response(&inv).clone();
        assert_eq!(results(&out)["amazonq"].0, "delivered", "{fixture}: {out}");
    }
    let q: Vec<Value> = w
        .sink
        .requests_to("/q-subscriber")
        .into_iter()
        .map(|r| r.json())
        .filter(|b| b["Type"] == "Notification")
        .map(|b| {
            assert_eq!(b["TopicArn"], q_topic.as_str());
            serde_json::from_str(b["Message"].as_str().unwrap_or_default())
                .expect("the message is Q's custom notification JSON")
        })
        .collect();
    assert_eq!(q.len(), 2, "{q:?}");
    for m in &q {
        assert_eq!(m["version"], "1.0");
        assert_eq!(m["source"], "custom");
        assert_eq!(m["content"]["textType"], "client-markdown");
        assert_eq!(
            m["metadata"]["threadId"],
            "codepipeline/payments-api/6a7c1e52-0d4b-4f8e-9a3c-2b1d0e9f8a71"
        );
    }
    let pipeline = q
        .iter()
        .find(|m| m["metadata"]["summary"] == "payments-api: pipeline failed")
        .expect("the pipeline's message");
    let text = pipeline["content"]["description"].to_string();
    assert!(text.contains("Round invoice totals half-even"), "{text}");
    // The plain SNS topic still gets its text message.
    assert_eq!(w.sns().len(), 2);
    w.assert_no_secrets(&f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_from_ssm_route_and_silence() {
    let w = world().await;
    let sdk = w.standin.sdk_config().await;
    let name = format!("/tollgate/rules-{}", SEQ.fetch_add(1, Ordering::SeqCst));
    let rules = "version: 1\nnotify:\n  ecs-service: []\nroutes:\n  - match: { cluster: prod }\n    to: [teams]\n";
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&name)
        .value(rules)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("seed rules");
    let mut f = w.spawn(&[("TOLLGATE_NOTIFY_RULES_SSM", &name)]).await;
    let inv = f
        .invoke(
            paths::event("notifier", "ecs-deployment-circuit-breaker"),
            DEADLINE,
        )
        .await;
    let out = response(&inv).clone();
    assert_eq!(
        results(&out).keys().collect::<Vec<_>>(),
        vec!["teams"],
        "{out}"
    );
    assert_eq!(w.teams().len(), 1);
    assert!(w.slack().is_empty() && w.hook().is_empty() && w.sns().is_empty());

    let inv = f
        .invoke(
            paths::event("notifier", "ecs-service-task-start-impaired"),
            DEADLINE,
        )
        .await;
    assert_eq!(response(&inv)["decision"], "quiet");

    // Unknown detail-types get a generic message by default; garbage does
    // not crash the function.
    let inv = f
        .invoke(paths::event("notifier", "unknown-detail-type"), DEADLINE)
        .await;
    assert_eq!(response(&inv)["decision"], "sent");
    let inv = f.invoke(json!(["not", "an", "event"]), DEADLINE).await;
    assert!(matches!(inv, Invocation::Response(_)), "{inv:?}");
    w.assert_no_secrets(&f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_name_the_variable_but_never_the_value() {
    let w = world().await;
    // A secret that does not exist.
    let f = LocalLambda::spawn(
        &paths::function_binary("notifier"),
        &with(
            &w.env,
            &[("TOLLGATE_TEAMS_WEBHOOK", "secretsmanager:tollgate/missing")],
        ),
    )
    .await;
    assert!(f.wait_exit(Duration::from_secs(20)).await, "should exit");
    let err = f.init_error().expect("init error posted");
    assert_eq!(err.error_type, "SecretUnavailable");
    assert!(
        err.error_message.contains("TOLLGATE_TEAMS_WEBHOOK"),
        "{err:?}"
    );
    assert!(err.error_message.contains("does not exist"), "{err:?}");

    // A plain value that is not a URL: the message must not echo it.
    let f = LocalLambda::spawn(
        &paths::function_binary("notifier"),
        &with(
            &w.env,
            &[("TOLLGATE_SLACK_WEBHOOK", "xoxb-PLAIN-SECRET-TOKEN")],
        ),
    )
    .await;
    assert!(f.wait_exit(Duration::from_secs(20)).await, "should exit");
    let err = f.init_error().expect("init error posted");
    assert_eq!(err.error_type, "InvalidConfiguration");
    assert!(
        err.error_message
            .starts_with("TOLLGATE_SLACK_WEBHOOK=<redacted>"),
        "{err:?}"
    );
    assert!(!err.error_message.contains("PLAIN-SECRET"), "{err:?}");
    assert!(!f.logs().contains("PLAIN-SECRET"), "{}", f.logs());
    w.assert_no_secrets(&f.logs());
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_notifies_only_as_a_recovery() {
    let w = world().await;
    let exec = "0b5e9d21-7c3a-4e6f-8b2d-1a9c8e7f6d53";
    let history = |previous: &str| {
        json!({"pipelineExecutionSummaries": [
            {"pipelineExecutionId": exec, "status": "Succeeded", "startTime": 1715684101.0, "lastUpdateTime": 1715684635.0},
            {"pipelineExecutionId": "2f4a6c8e-0b1d-4e3f-a5b7-c9d1e3f5a7b9", "status": "Superseded", "startTime": 1715683800.0, "lastUpdateTime": 1715683890.0},
            {"pipelineExecutionId": "6a7c1e52-0d4b-4f8e-9a3c-2b1d0e9f8a71", "status": previous, "startTime": 1715679302.0, "lastUpdateTime": 1715679737.0}
        ]})
    };
    w.standin
        .script("ListPipelineExecutions", vec![history("Succeeded")]);
    w.standin.script(
        "GetPipelineExecution",
        vec![json!({"pipelineExecution": {
            "pipelineName": "payments-api", "pipelineExecutionId": exec, "status": "Succeeded",
            "artifactRevisions": [{"name": "SourceArtifact", "revisionId": "d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2",
                "revisionSummary": "{\"ProviderType\":\"GitHub\",\"CommitMessage\":\"Add invoice PDF footer\"}"}],
            "trigger": {"triggerType": "Webhook"}
        }})],
    );
    w.standin.script(
        "ListActionExecutions",
        vec![json!({"actionExecutionDetails": []})],
    );
    let mut f = w.spawn(&[]).await;
    let event = paths::event("notifier", "pipeline-succeeded");

    // The previous run succeeded: quiet, after one lookup.
    let inv = f.invoke(event.clone(), DEADLINE).await;
    assert_eq!(response(&inv)["decision"], "quiet", "{inv:?}");
    assert_eq!(w.standin.calls_of("ListPipelineExecutions").len(), 1);
    assert!(w.standin.calls_of("GetPipelineExecution").is_empty());
    assert!(w.slack().is_empty() && w.sns().is_empty());

    // The previous completed run failed (a superseded one in between): recovered.
    w.standin
        .script("ListPipelineExecutions", vec![history("Failed")]);
    let inv = f.invoke(event, DEADLINE).await;
    let out = response(&inv).clone();
    assert_eq!(out["decision"], "sent", "{out}");
    assert_eq!(out["title"], "payments-api: pipeline recovered");
    assert_eq!(w.standin.calls_of("GetPipelineExecution").len(), 1);
    let slack = w.slack()[0].body.to_string();
    assert!(slack.contains("Add invoice PDF footer"), "{slack}");
    assert_eq!(
        w.sns()[0]["Subject"],
        "[RECOVERED] payments-api: pipeline recovered"
    );
    w.assert_no_secrets(&f.logs());
}

/// Issue 14 §10: two execution environments (two processes) receive the
/// same event; with the template's delivery table (moto DynamoDB) every
/// destination gets it once, and the second environment answers
/// "already-delivered" or, while the first still holds its claim, fails
/// those destinations so Lambda retries; the retry then skips them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_environments_never_send_one_event_twice() {
    let w = world().await;
    let table = format!("tollgate-deliveries-{}", SEQ.fetch_add(1, Ordering::SeqCst));
    let sdk = w.standin.sdk_config().await;
    tollgate_tests::seed::delivery_table(&sdk, &table)
        .await
        .expect("table in moto");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let extra = [("TOLLGATE_NOTIFY_DEDUPE_TABLE", table.as_str())];
    let mut a = w.spawn(&extra).await;
    let mut b = w.spawn(&extra).await;
    let event = paths::event("notifier", "ecs-deployment-circuit-breaker");
    let (ia, ib) = tokio::join!(
        a.invoke(event.clone(), DEADLINE),
        b.invoke(event.clone(), DEADLINE)
    );
    // Whatever the interleaving: one copy per destination.
    for (name, got) in [
        ("slack", w.slack().len()),
        ("teams", w.teams().len()),
        ("webhook", w.hook().len()),
    ] {
        assert_eq!(got, 1, "{name} got {got} copies: A {ia:?}\nB {ib:?}");
    }
    assert_eq!(w.sns().len(), 1, "SNS: A {ia:?}\nB {ib:?}");
    // Lambda retries an environment that failed a destination (claim held
    // by the other): the retry skips what was delivered.
    for (f, inv) in [(&mut a, ia), (&mut b, ib)] {
        if let Invocation::Error { error_message, .. } = &inv {
            assert!(
                error_message.contains("another execution environment"),
                "{error_message}"
            );
            let retry = f.invoke(event.clone(), DEADLINE).await;
            let out = response(&retry).clone();
            for (d, (result, _)) in results(&out) {
                assert_eq!(result, "already-delivered", "{d}: {out}");
            }
        }
    }
    // A third environment, later: everything was delivered already.
    let mut c = w.spawn(&extra).await;
    let out = response(&c.invoke(event, DEADLINE).await).clone();
    for (d, (result, _)) in results(&out) {
        assert_eq!(result, "already-delivered", "{d}: {out}");
    }
    assert_eq!(w.hook().len(), 1);
    assert_eq!(w.sns().len(), 1);
    let claims = ddb
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert_eq!(claims.len(), 4, "one record per destination");
    for item in &claims {
        assert_eq!(
            item.get("state")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("sent"),
            "{item:?}"
        );
        assert!(item.contains_key("expires_at"), "TTL attribute set");
    }
    w.assert_no_secrets(&a.logs());
}
