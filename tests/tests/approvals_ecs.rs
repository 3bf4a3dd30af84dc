//! The `approvals` binary's ECS pause hooks end to end: a signed click on
//! Continue or Roll back (`events/approvals/ecs-continue-click.json`, signed
//! here as Slack signs it) under the local Runtime API; the signing secret
//! and bot token in moto's Secrets Manager; `DescribeServiceDeployments` /
//! `ContinueServiceDeployment` on the AWS stand-in (moto has neither; the
//! stand-in speaks ECS's JSON 1.1 and acts once, while the hook waits, as
//! ECS does); Slack on the local Web API stand-in.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tollgate_approvals::signature::sign;
use tollgate_core::Secret;
use tollgate_test_support::http::Stub;
use tollgate_test_support::slack::{BOT_TOKEN, GROUP, GROUP_MEMBER, slack_api};
use tollgate_tests::aws_standin::{Fault, Report};
use tollgate_tests::{AwsStandIn, LocalLambda, Moto, paths};

const DEADLINE: Duration = Duration::from_secs(10);
const SIGNING_SECRET: &str = "local-signing-secret-0123456789abcdef";
const APPROVER: &str = "U0LOCALAPPROVER";
const DEPLOYMENT: &str = "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/checkout-web/r9i43YFjvgF_xlg7m2eJ1r";
const HOOK: &str = "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw";
const ROLLBACK: &str = "tollgate.ecs_pause.rollback";
static SEQ: AtomicU32 = AtomicU32::new(0);

struct World {
    standin: AwsStandIn,
    slack: Stub,
    env: Vec<(String, String)>,
}

fn form_decode(body: &str) -> Value {
    let raw = body.strip_prefix("payload=").expect("a payload form");
    let b = raw.as_bytes();
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
            bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            bytes.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    serde_json::from_slice(&bytes).expect("payload JSON")
}

fn form_encode(payload: &Value) -> String {
    let mut out = String::from("payload=");
    for b in payload.to_string().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl World {
    async fn new(services: &str) -> World {
        let moto = Moto::shared();
        let standin = AwsStandIn::start(Some(moto)).await;
        let sdk = standin.sdk_config().await;
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("tollgate/{}-ecs-{n}/slack", std::process::id());
        aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(&name)
            .secret_string(
                json!({"signing_secret": SIGNING_SECRET, "bot_token": BOT_TOKEN}).to_string(),
            )
            .send()
            .await
            .expect("seed the Slack secrets");
        let slack = slack_api().await;
        let approvers = json!({"services": {"prod/checkout-web": {"users": [APPROVER], "groups": [GROUP]},
                                 "prod/api": {"users": [APPROVER]}}});
        let mut env = standin.lambda_env();
        env.extend(
            [
                (
                    "TOLLGATE_SLACK_SIGNING_SECRET",
                    format!("secretsmanager:{name}#signing_secret"),
                ),
                (
                    "TOLLGATE_SLACK_BOT_TOKEN",
                    format!("secretsmanager:{name}#bot_token"),
                ),
                ("TOLLGATE_APPROVERS", approvers.to_string()),
                ("TOLLGATE_APPROVAL_ECS_SERVICES", services.to_owned()),
                ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
                ("TOLLGATE_SLACK_RESPONSE_URL_PREFIX", slack.url("/hooks/")),
                ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        World {
            standin,
            slack,
            env,
        }
    }

    async fn function(&self) -> LocalLambda {
        LocalLambda::spawn(&paths::function_binary("approvals"), &self.env).await
    }

    /// The fixture, `edit`ed, signed now with `secret`.
    fn click(&self, secret: &str, edit: impl FnOnce(&mut Value)) -> Value {
        let mut ev = paths::event("approvals", "ecs-continue-click");
        let mut payload = form_decode(ev["body"].as_str().expect("body"));
        payload["response_url"] = json!(self.slack.url("/hooks/actions/T0LOCAL/1/abc"));
        edit(&mut payload);
        let body = form_encode(&payload);
        let ts = now().to_string();
        ev["headers"]["x-slack-request-timestamp"] = json!(ts);
        ev["headers"]["x-slack-signature"] =
            json!(sign(&Secret::new(secret), &ts, body.as_bytes()));
        ev["body"] = json!(body);
        ev
    }

    fn decisions(&self) -> Vec<(String, String, String)> {
        self.standin
            .reports()
            .into_iter()
            .filter_map(|r| match r {
                Report::EcsContinue {
                    deployment,
                    hook,
                    action,
                } => Some((deployment, hook, action)),
                _ => None,
            })
            .collect()
    }

    fn updates(&self) -> Vec<Value> {
        self.slack
            .requests_to("/api/chat.update")
            .iter()
            .map(|r| r.json())
            .collect()
    }

    fn ephemeral(&self) -> Vec<String> {
        self.slack
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/hooks/"))
            .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn rollback(p: &mut Value) {
    p["actions"][0]["action_id"] = json!(ROLLBACK);
}

fn status(answer: &Value) -> i64 {
    answer["statusCode"]
        .as_i64()
        .expect("a function URL answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_click_continues_the_paused_deployment_and_the_message_shows_who() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    let mut f = w.function().await;
    let answer = f.invoke(w.click(SIGNING_SECRET, |_| {}), DEADLINE).await;
    let answer = answer.response().clone();
    assert_eq!(status(&answer), 200, "{answer}\n{}", f.logs());
    assert_eq!(
        w.decisions(),
        [(
            DEPLOYMENT.to_owned(),
            HOOK.to_owned(),
            "CONTINUE".to_owned()
        )]
    );
    // It checked the hook still waits before acting.
    let calls: Vec<String> = w
        .standin
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|o| o.contains("ServiceDeployment"))
        .collect();
    assert_eq!(
        calls,
        ["DescribeServiceDeployments", "ContinueServiceDeployment"]
    );
    let updates = w.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    let text = updates[0].to_string();
    assert!(text.contains("*Continued* by <@U0LOCALAPPROVER>"), "{text}");
    assert!(
        text.contains("ECS deployment paused"),
        "request kept: {text}"
    );
    assert!(
        !text.contains("tollgate.ecs_pause.continue"),
        "buttons gone: {text}"
    );
    assert_eq!(updates[0]["ts"], "1700000000.000002");
    let logs = f.logs();
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v.pointer("/fields/audit").or_else(|| v.get("audit")) == Some(&json!("ecs-pause"))
        })
        .collect();
    assert_eq!(audit.len(), 1, "{logs}");
    let line = audit[0].to_string();
    for want in [
        APPROVER,
        "\"continue\"",
        "checkout-web",
        HOOK,
        "\"continued\"",
        "1700000001.000200",
    ] {
        assert!(line.contains(want), "audit line lacks {want}: {line}");
    }
    for secret in [SIGNING_SECRET, BOT_TOKEN] {
        assert!(!logs.contains(secret), "the logs show a secret:\n{logs}");
    }
    assert!(
        !logs.contains("payload="),
        "the body is never logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_member_rolls_back_and_a_stale_click_shows_the_recorded_state() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.click(SIGNING_SECRET, |p| {
                rollback(p);
                p["user"]["id"] = json!(GROUP_MEMBER);
            }),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert_eq!(
        w.decisions(),
        [(
            DEPLOYMENT.to_owned(),
            HOOK.to_owned(),
            "ROLLBACK".to_owned()
        )]
    );
    let text = w.updates()[0].to_string();
    assert!(
        text.contains(&format!("*Rolled back* by <@{GROUP_MEMBER}>")),
        "{text}"
    );
    // The same message clicked again (Continue, by the approver): ECS is
    // asked nothing new, the message shows what ECS recorded.
    let answer = f.invoke(w.click(SIGNING_SECRET, |_| {}), DEADLINE).await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert_eq!(w.decisions().len(), 1, "one decision");
    let continues = w.standin.calls_of("ContinueServiceDeployment").len();
    assert_eq!(continues, 1, "a stale click calls nothing");
    let updates = w.updates();
    assert_eq!(updates.len(), 2);
    assert!(
        updates[1].to_string().contains("Already *rolled back*"),
        "{}",
        updates[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_hook_shows_it_and_nothing_is_called() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    w.standin
        .set_ecs_pause(DEPLOYMENT, "ROLLBACK_IN_PROGRESS", "TIMED_OUT");
    let mut f = w.function().await;
    let answer = f.invoke(w.click(SIGNING_SECRET, |_| {}), DEADLINE).await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert!(w.standin.calls_of("ContinueServiceDeployment").is_empty());
    let text = w.updates()[0].to_string();
    assert!(text.contains("*Timed out*"), "{text}");
    assert!(text.contains("ROLLBACK"), "the timeout action: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn someone_not_allowlisted_or_an_unconfigured_service_changes_nothing() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.click(SIGNING_SECRET, |p| p["user"]["id"] = json!("U0STRANGER01")),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert!(w.decisions().is_empty());
    assert!(w.standin.calls_of("DescribeServiceDeployments").is_empty());
    assert!(w.updates().is_empty());
    let told = w.ephemeral();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("not an approver of prod/checkout-web"),
        "{told:?}"
    );
    drop(f);

    // The approver, but the function is configured for another service.
    let other = World::new("prod/api").await;
    other.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    let mut f = other.function().await;
    let answer = f
        .invoke(other.click(SIGNING_SECRET, |_| {}), DEADLINE)
        .await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert!(other.decisions().is_empty());
    assert!(
        other.ephemeral()[0].contains("ApprovalEcsServices"),
        "{:?}",
        other.ephemeral()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_and_malformed_clicks_are_refused() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    let mut f = w.function().await;
    let answer = f
        .invoke(w.click("not-the-signing-secret", |_| {}), DEADLINE)
        .await;
    assert_eq!(status(answer.response()), 401, "{}", f.logs());
    let answer = f
        .invoke(
            w.click(SIGNING_SECRET, |p| {
                p["actions"][0]["value"] = json!("{\"v\":1,\"d\":\"arn:aws:ecs:us-east-1:111122223333:service/prod/checkout-web\",\"h\":\"x\"}");
            }),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 400, "{}", f.logs());
    assert!(w.decisions().is_empty());
    assert!(w.standin.calls_of("DescribeServiceDeployments").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_continue_whose_answer_is_lost_is_sent_once_and_says_it_may_have_been_done() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    // The connection drops before ECS answers (nothing applied here).
    w.standin
        .inject("ContinueServiceDeployment", Fault::Drop, None);
    let mut f = w.function().await;
    let answer = f.invoke(w.click(SIGNING_SECRET, |_| {}), DEADLINE).await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    let sent = w.standin.calls_of("ContinueServiceDeployment").len();
    assert_eq!(sent, 1, "sent once, never retried");
    assert!(w.updates().is_empty(), "the buttons stay");
    let told = w.ephemeral();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("may have been done"), "{}", told[0]);
    assert!(told[0].contains("Deployments tab"), "{}", told[0]);
    assert!(!told[0].contains("Not done"), "{}", told[0]);
    assert!(f.logs().contains("\"unsure\""), "{}", f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_continue_that_went_through_without_an_answer_shows_who_decided() {
    let w = World::new("prod/checkout-web").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    // ECS applies the decision but answers after the function stopped
    // waiting; the state read again shows it.
    w.standin.inject(
        "ContinueServiceDeployment",
        Fault::Slow(Duration::from_secs(5)),
        None,
    );
    let mut f = w.function().await;
    let answer = f.invoke(w.click(SIGNING_SECRET, rollback), DEADLINE).await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert_eq!(w.decisions().len(), 1);
    assert_eq!(w.standin.calls_of("ContinueServiceDeployment").len(), 1);
    let updates = w.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    let text = updates[0].to_string();
    assert!(
        text.contains(&format!("*Rolled back* by <@{APPROVER}>")),
        "{text}"
    );
    assert!(!text.contains("Already"), "{text}");
    assert!(f.logs().contains("\"rolled-back\""), "{}", f.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_service_without_approvers_fails_init_naming_it() {
    let w = World::new("prod/checkout-web,prod/orders").await;
    w.standin.register_ecs_pause(DEPLOYMENT, HOOK);
    let mut f = w.function().await;
    let answer = f.invoke(w.click(SIGNING_SECRET, |_| {}), DEADLINE).await;
    // Every request is answered at once, the reason is in the logs.
    assert_eq!(status(answer.response()), 503, "{}", f.logs());
    assert!(w.decisions().is_empty());
    assert!(w.standin.calls_of("DescribeServiceDeployments").is_empty());
    let logs = f.logs();
    assert!(logs.contains("prod/orders has no approvers"), "{logs}");
    assert!(logs.contains("InvalidConfiguration"), "{logs}");
    for secret in [SIGNING_SECRET, BOT_TOKEN] {
        assert!(!logs.contains(secret), "the logs show a secret:\n{logs}");
    }
}
