//! The notifier end to end inside the library: real HTTP (reqwest) against a
//! local webhook sink that answers 200 / 429 / 500 / 404 / hangs, an
//! in-memory SNS publisher, and read APIs that fail.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tollgate_core::Secret;
use tollgate_notify::config::NotifierConfig;
use tollgate_notify::deliver::{DeliveryError, ReqwestTransport, RetryPolicy};
use tollgate_notify::destinations::sns::{SnsMessage, TopicPublisher};
use tollgate_notify::destinations::{Destination, Target, slack, sns, teams, webhook};
use tollgate_notify::enrich::{
    ActionExecutionInfo, DeploymentInfo, ExecutionSummaryInfo, PipelineExecutionInfo, SourceError,
    SourceReader,
};
use tollgate_notify::ledger::{Claim, DeliveryLedger};
use tollgate_notify::rules::Rules;
use tollgate_notify::{Notifier, Undelivered};
use tollgate_test_support::http::{Reply, Stub};

// ---------------------------------------------------------------------------
// Webhook sink: the shared loopback stub (answers 200 `ok` unless scripted).

// ---------------------------------------------------------------------------
// Ports.

#[derive(Debug, Default, Clone)]
struct FakeSns {
    published: Arc<Mutex<Vec<(String, SnsMessage, String)>>>,
}

impl TopicPublisher for FakeSns {
    async fn publish(
        &self,
        topic_arn: &str,
        message: &SnsMessage,
        dedupe_id: &str,
    ) -> Result<(), DeliveryError> {
        self.published.lock().expect("sns lock").push((
            topic_arn.to_owned(),
            message.clone(),
            dedupe_id.to_owned(),
        ));
        Ok(())
    }
}

/// Every read fails, as with a role missing the read permissions.
#[derive(Debug)]
struct NoReads;

fn denied(action: &'static str) -> SourceError {
    SourceError::Denied {
        action,
        detail: "AccessDeniedException: not authorized".into(),
    }
}

impl SourceReader for NoReads {
    async fn pipeline_execution(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<PipelineExecutionInfo, SourceError> {
        Err(denied("codepipeline:GetPipelineExecution"))
    }
    async fn action_executions(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        Err(denied("codepipeline:ListActionExecutions"))
    }
    async fn pipeline_executions(
        &self,
        _: &str,
        _: &str,
        _: i32,
    ) -> Result<Vec<ExecutionSummaryInfo>, SourceError> {
        Err(denied("codepipeline:ListPipelineExecutions"))
    }
    async fn deployment(&self, _: &str, _: &str) -> Result<DeploymentInfo, SourceError> {
        Err(denied("codedeploy:GetDeployment"))
    }
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:deployments";

fn notifier(sink: &Stub, sns: FakeSns) -> Notifier<NoReads, ReqwestTransport, FakeSns> {
    let cfg = NotifierConfig {
        rules: Rules::default(),
        destinations: vec![
            Destination {
                name: "slack".into(),
                target: Target::Slack(slack::Target {
                    url: Secret::new(sink.url("/slack/T000/B000/SECRETPATH")),
                }),
            },
            Destination {
                name: "teams".into(),
                target: Target::Teams(teams::Target {
                    url: Secret::new(sink.url("/teams")),
                }),
            },
            Destination {
                name: "webhook".into(),
                target: Target::Webhook(webhook::Target {
                    url: Secret::new(sink.url("/hook")),
                    token: Some(Secret::new("tok-SECRET-123")),
                }),
            },
            Destination {
                name: "sns".into(),
                target: Target::Sns(sns::Target {
                    topic_arn: TOPIC.into(),
                }),
            },
        ],
        request_timeout: Duration::from_millis(400),
        enrich_timeout: Duration::from_millis(500),
        enrich: true,
        hook_failure_prefix: None,
        override_pipelines: Vec::new(),
        reserve: Duration::from_millis(200),
        ecs_pause_services: Vec::new(),
    };
    let http = ReqwestTransport::new(Duration::from_secs(1)).expect("http client");
    Notifier::new(cfg, NoReads, http, sns).with_policy(RetryPolicy {
        request_timeout: Duration::from_millis(400),
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_attempts: 6,
    })
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../events/notifier/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn delivers_to_every_destination_even_when_lookups_fail() {
    let sink = Stub::ok().await;
    let sns = FakeSns::default();
    let n = notifier(&sink, sns.clone());
    let out = n
        .handle(fixture("pipeline-failed"), deadline(10))
        .await
        .expect("delivered");
    assert_eq!(out.decision, "sent");
    assert_eq!(out.deliveries.len(), 4);
    assert!(
        out.deliveries.iter().all(|d| d.result == "delivered"),
        "{out:?}"
    );

    let slack = sink.requests_to("/slack/T000/B000/SECRETPATH");
    assert_eq!(slack.len(), 1);
    assert!(slack[0].json()["blocks"].is_array());
    assert_eq!(slack[0].header_map()["content-type"], "application/json");
    let teams = sink.requests_to("/teams");
    assert_eq!(
        teams[0].json()["attachments"][0]["content"]["version"],
        "1.4"
    );
    let hook = sink.requests_to("/hook");
    assert_eq!(
        hook[0].header_map()["authorization"],
        "Bearer tok-SECRET-123"
    );
    assert_eq!(
        hook[0].header_map()["idempotency-key"],
        "3c9d7a4e-5b1f-4e0a-9c2d-8f6a1b2c3d4e"
    );
    assert_eq!(hook[0].json()["schema"], "tollgate.notification/v1");
    // Lookups were denied: the message still went out, saying so.
    assert_eq!(hook[0].json()["enrichment"]["state"], "failed");
    let problems = hook[0].json()["enrichment"]["problems"].to_string();
    assert!(
        problems.contains("grant codepipeline:GetPipelineExecution"),
        "{problems}"
    );

    let published = sns.published.lock().expect("lock").clone();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, TOPIC);
    assert_eq!(
        published[0].1.subject,
        "[FAILED] payments-api: pipeline failed"
    );
}

#[tokio::test]
async fn quiet_events_send_nothing() {
    let sink = Stub::ok().await;
    let sns = FakeSns::default();
    let n = notifier(&sink, sns.clone());
    let out = n
        .handle(fixture("pipeline-started"), deadline(10))
        .await
        .expect("ok");
    assert_eq!(out.decision, "quiet");
    assert!(sink.requests_to("/teams").is_empty());
    assert!(sns.published.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let sink = Stub::ok().await;
    sink.script("/slack/T000/B000/SECRETPATH", [Reply::busy(429, Some("1"))]);
    sink.script("/teams", [Reply::busy(500, None), Reply::busy(503, None)]);
    sink.script("/hook", [Reply::hang()]);
    let n = notifier(&sink, FakeSns::default());
    let started = std::time::Instant::now();
    let out = n
        .handle(fixture("codebuild-phase-failed"), deadline(10))
        .await
        .expect("delivered after retries");
    let by: HashMap<&str, u32> = out
        .deliveries
        .iter()
        .map(|d| (d.destination.as_str(), d.attempts))
        .collect();
    assert_eq!(by["slack"], 2, "{out:?}");
    assert_eq!(by["teams"], 3, "{out:?}");
    assert_eq!(by["webhook"], 2, "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
}

#[tokio::test]
async fn permanent_failure_fails_the_invocation_and_a_retry_skips_what_was_delivered() {
    let sink = Stub::ok().await;
    sink.script("/teams", [Reply::gone()]);
    let sns = FakeSns::default();
    let n = notifier(&sink, sns.clone());
    let err: Undelivered = n
        .handle(fixture("ecs-deployment-circuit-breaker"), deadline(10))
        .await
        .expect_err("teams is gone");
    assert_eq!(err.failed.len(), 1);
    assert_eq!(err.failed[0].destination, "teams");
    assert_eq!(err.failed[0].attempts, 1, "404 is not retried");
    let text = err.to_string();
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(text.contains("delivered: slack, webhook, sns"), "{text}");
    assert!(!text.contains("127.0.0.1"), "URL leaked: {text}");
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "NotificationUndelivered");

    // Lambda retries the same event: only teams is tried again.
    let out = n
        .handle(fixture("ecs-deployment-circuit-breaker"), deadline(10))
        .await
        .expect("teams answers 200 now");
    let results: HashMap<&str, &str> = out
        .deliveries
        .iter()
        .map(|d| (d.destination.as_str(), d.result))
        .collect();
    assert_eq!(results["teams"], "delivered");
    assert_eq!(results["slack"], "already-delivered");
    assert_eq!(results["sns"], "already-delivered");
    assert_eq!(sink.requests_to("/slack/T000/B000/SECRETPATH").len(), 1);
    assert_eq!(sink.requests_to("/teams").len(), 2);
    assert_eq!(sns.published.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_webhook_that_keeps_hanging_fails_inside_the_deadline() {
    let sink = Stub::ok().await;
    sink.script("/hook", std::iter::repeat_n(Reply::hang(), 20));
    let n = notifier(&sink, FakeSns::default());
    // Liveness, not a timing assertion: the hook hangs 20 times over, so
    // without the deadline the call would not end for minutes; the bound is
    // ten times the 3 s deadline, so a loaded machine cannot make it flaky.
    // That the attempts stopped for the deadline is in the error itself.
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        n.handle(fixture("pipeline-failed"), deadline(3)),
    )
    .await
    .expect("the delivery gives up at the deadline instead of hanging")
    .expect_err("hook never answers");
    assert_eq!(err.failed[0].destination, "webhook");
    assert!(err.failed[0].attempts >= 2);
    assert!(err.to_string().contains("no answer within"), "{err}");
}

#[tokio::test]
async fn secrets_do_not_leak_through_debug() {
    let sink = Stub::ok().await;
    let n = notifier(&sink, FakeSns::default());
    let shown = format!("{n:?}");
    assert!(!shown.contains("SECRETPATH"), "{shown}");
    assert!(!shown.contains("tok-SECRET"), "{shown}");
}

// ---------------------------------------------------------------------------
// Issue 14 §10: deduplication across execution environments.

/// A shared ledger with DynamoDB's semantics: a claim is won when the key is
/// free or its `sending` lease has expired, and only its owner marks it
/// sent or releases it; `fail` makes every call fail.
#[derive(Debug, Clone, Default)]
struct SharedLedger {
    items: Arc<Mutex<HashMap<String, Item>>>,
    fail: Arc<std::sync::atomic::AtomicBool>,
    serial: Arc<std::sync::atomic::AtomicU32>,
}

#[derive(Debug, Clone)]
struct Item {
    state: &'static str,
    until: Instant,
    owner: String,
}

impl DeliveryLedger for SharedLedger {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, String> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("ThrottlingException".into());
        }
        let mut items = self.items.lock().expect("ledger");
        match items.get(key) {
            Some(i) if i.state == "sent" => Ok(Claim::AlreadyDelivered),
            Some(i) if i.until > Instant::now() => Ok(Claim::Elsewhere),
            _ => {
                let n = self
                    .serial
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let owner = format!("token-{n}");
                items.insert(
                    key.to_owned(),
                    Item {
                        state: "sending",
                        until: Instant::now() + lease,
                        owner: owner.clone(),
                    },
                );
                Ok(Claim::Won(owner))
            }
        }
    }

    async fn delivered(&self, key: &str, token: Option<&str>) -> Result<(), String> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("ThrottlingException".into());
        }
        let mut items = self.items.lock().expect("ledger");
        let mine = match (items.get(key), token) {
            (Some(i), Some(t)) => i.owner == t,
            (_, None) | (None, _) => true,
        };
        if mine {
            items.insert(
                key.to_owned(),
                Item {
                    state: "sent",
                    until: Instant::now(),
                    owner: token.unwrap_or_default().to_owned(),
                },
            );
        }
        Ok(())
    }

    async fn release(&self, key: &str, token: &str) {
        let mut items = self.items.lock().expect("ledger");
        if items
            .get(key)
            .is_some_and(|i| i.state == "sending" && i.owner == token)
        {
            items.remove(key);
        }
    }
}

#[tokio::test]
async fn a_second_environment_never_sends_what_the_first_delivered() {
    let sink = Stub::ok().await;
    sink.script("/teams", [Reply::gone()]);
    let sns = FakeSns::default();
    let ledger = SharedLedger::default();
    // Two execution environments: separate memories, one ledger.
    let a = notifier(&sink, sns.clone()).with_ledger(ledger.clone());
    let b = notifier(&sink, sns.clone()).with_ledger(ledger.clone());
    let event = fixture("ecs-deployment-circuit-breaker");
    let err = a
        .handle(event.clone(), deadline(10))
        .await
        .expect_err("teams fails in A");
    assert_eq!(err.failed[0].destination, "teams");
    // The retry lands in B: only teams is sent (A released its claim).
    let out = b
        .handle(event.clone(), deadline(10))
        .await
        .expect("B delivers teams");
    let results: HashMap<&str, &str> = out
        .deliveries
        .iter()
        .map(|d| (d.destination.as_str(), d.result))
        .collect();
    assert_eq!(results["teams"], "delivered");
    for d in ["slack", "webhook", "sns"] {
        assert_eq!(results[d], "already-delivered", "{d}");
    }
    assert_eq!(sink.requests_to("/slack/T000/B000/SECRETPATH").len(), 1);
    assert_eq!(sink.requests_to("/hook").len(), 1);
    assert_eq!(sink.requests_to("/teams").len(), 2);
    assert_eq!(sns.published.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_claim_held_elsewhere_fails_that_destination_and_a_broken_ledger_still_sends() {
    let sink = Stub::ok().await;
    let sns = FakeSns::default();
    let ledger = SharedLedger::default();
    let event = fixture("ecs-deployment-circuit-breaker");
    let id = event["id"].as_str().expect("event id").to_owned();
    // Another environment is sending to the webhook right now.
    ledger.items.lock().expect("ledger").insert(
        tollgate_notify::ledger::key(&id, "webhook"),
        Item {
            state: "sending",
            until: Instant::now() + Duration::from_secs(60),
            owner: "another-environment".into(),
        },
    );
    let n = notifier(&sink, sns.clone()).with_ledger(ledger.clone());
    let err = n
        .handle(event.clone(), deadline(10))
        .await
        .expect_err("the webhook is someone else's");
    assert_eq!(err.failed.len(), 1, "{err}");
    assert_eq!(err.failed[0].destination, "webhook");
    assert!(
        err.to_string().contains("another execution environment"),
        "{err}"
    );
    assert_eq!(sink.requests_to("/hook").len(), 0);

    // A ledger that cannot answer does not stop a notification.
    let sink = Stub::ok().await;
    let broken = SharedLedger::default();
    broken.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let n = notifier(&sink, FakeSns::default()).with_ledger(broken);
    n.handle(event, deadline(10)).await.expect("sent anyway");
    assert_eq!(sink.requests_to("/hook").len(), 1);
}
