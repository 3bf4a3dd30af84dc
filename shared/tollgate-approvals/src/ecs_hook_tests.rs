//! Continue / Roll back clicks against the fakes of ECS's service
//! deployments and Slack ([`crate::test_fakes`]), through the whole
//! endpoint (signature first).

use crate::app::{Approvals, Ready};
use crate::ecs_hook::{EcsHooks, PauseState};
use crate::interaction::tests::form;
use crate::policy::Policy;
use crate::signature::sign;
use crate::test_fakes::{ECS_ARN as ARN, ECS_HOOK as HOOK, FakeChat, FakeEcs, FakePipeline};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_core::ecs_pause_request::{BLOCK, CONTINUE, PauseRef, ROLLBACK};
use tollgate_core::secret::Secret;
use tollgate_report::lambda::{Function, Invocation};

const SECRET: &str = "test-signing-secret";
const POLICY: &str =
    r#"{"services": {"prod/checkout-web": {"users": ["U0APPROVER"], "groups": ["S0APPROVERS"]}}}"#;

/// CodePipeline is never asked in these tests.
type App = Approvals<FakePipeline, FakeChat>;

fn app(ecs: Option<Arc<FakeEcs>>, services: &[&str], policy: &str) -> App {
    Approvals::new(Ok(Ready {
        signing_secret: Secret::new(SECRET),
        policy: Policy::parse(policy).expect("policy"),
        pipelines: FakePipeline::untouched(),
        chat: FakeChat::default().forbidding_approval_calls(),
        response_url_prefix: "https://hooks.slack.com/".into(),
        max_body: 1 << 20,
        ecs: ecs.map(|e| EcsHooks {
            deployments: e,
            services: services.iter().map(|s| (*s).to_owned()).collect(),
        }),
        overrides: None,
    }))
}

fn value(hook: &str) -> String {
    PauseRef::new(ARN, hook, Some("POST_TEST_TRAFFIC_SHIFT")).encode()
}

fn click(user: &str, action_id: &str, value: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "team_id": "T0LOCAL"},
        "channel": {"id": "C0LOCAL0001"},
        "container": {"type": "message", "message_ts": "1700000000.000009", "channel_id": "C0LOCAL0001"},
        "message": {"ts": "1700000000.000009", "blocks": [
            {"type": "section", "block_id": "tollgate.ecs_pause.request", "text": {"type": "mrkdwn", "text": "prod/checkout-web paused"}},
            {"type": "actions", "block_id": BLOCK, "elements": []}
        ]},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"action_id": action_id, "block_id": BLOCK, "value": value, "type": "button", "action_ts": "1700000001.2"}]
    })
}

fn request(body: &[u8], secret: &str) -> LambdaFunctionUrlRequest {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = sign(&Secret::new(secret), &ts, body);
    serde_json::from_value(json!({
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": "application/x-www-form-urlencoded",
                    "x-slack-request-timestamp": ts, "x-slack-signature": sig},
        "requestContext": {"requestId": "req-1", "timeEpoch": 0, "http": {"method": "POST", "path": "/"}},
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    }))
    .expect("function URL request")
}

async fn send(a: &App, user: &str, action_id: &str, value: &str) -> (i64, Value) {
    send_payload(a, &click(user, action_id, value)).await
}

async fn send_payload(a: &App, payload: &Value) -> (i64, Value) {
    let body = form(payload);
    let r = a
        .handle(
            request(&body, SECRET),
            Invocation {
                context: lambda_runtime::Context::default(),
            },
        )
        .await
        .expect("answer");
    let body = r
        .body
        .as_deref()
        .map(|b| serde_json::from_str(b).expect("json"))
        .unwrap_or(Value::Null);
    (r.status_code, body)
}

fn chat(a: &App) -> &FakeChat {
    &a.ready().expect("ready").chat
}

#[tokio::test]
async fn an_approver_continues_and_the_message_shows_who() {
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    let (status, _) = send(&a, "U0APPROVER", CONTINUE, &value(HOOK)).await;
    assert_eq!(status, 200);
    assert_eq!(ecs.resumes(), [false]);
    let updates = chat(&a).calls("chat.update");
    assert_eq!(updates.len(), 1);
    let text = updates[0].to_string();
    assert!(text.contains("*Continued* by <@U0APPROVER>"), "{text}");
    assert!(!text.contains(CONTINUE), "buttons gone: {text}");
    assert!(
        text.contains("prod/checkout-web paused"),
        "request kept: {text}"
    );
    assert_eq!(updates[0]["ts"], "1700000000.000009");
}

#[tokio::test]
async fn a_group_member_rolls_back() {
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    let (status, _) = send(&a, "U0GROUPMEMBER", ROLLBACK, &value(HOOK)).await;
    assert_eq!(status, 200);
    assert_eq!(ecs.resumes(), [true]);
    let text = chat(&a).calls("chat.update")[0].to_string();
    assert!(text.contains("*Rolled back* by <@U0GROUPMEMBER>"), "{text}");
}

#[tokio::test]
async fn double_and_concurrent_clicks_decide_once_and_show_the_recorded_state() {
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    let v = value(HOOK);
    let (r1, r2, r3) = tokio::join!(
        send(&a, "U0APPROVER", CONTINUE, &v),
        send(&a, "U0APPROVER", CONTINUE, &v),
        send(&a, "U0GROUPMEMBER", ROLLBACK, &v),
    );
    assert_eq!((r1.0, r2.0, r3.0), (200, 200, 200));
    let resumes = ecs.resumes();
    assert_eq!(resumes.len(), 1, "one decision: {resumes:?}");
    let updates = chat(&a).calls("chat.update");
    assert_eq!(updates.len(), 3, "each click shows the outcome");
    let already = updates
        .iter()
        .filter(|u| u.to_string().contains("Already *"))
        .count();
    assert_eq!(already, 2, "{updates:?}");
    // A later click on the same (stale) message calls nothing.
    send(&a, "U0APPROVER", ROLLBACK, &v).await;
    assert_eq!(ecs.resumes().len(), 1);
}

#[tokio::test]
async fn a_stale_click_shows_what_ecs_recorded_and_changes_nothing() {
    for (deployment, hook, shows) in [
        ("SUCCESSFUL", "SUCCEEDED", "Already *continued*"),
        ("ROLLBACK_SUCCESSFUL", "FAILED", "Already *rolled back*"),
        (
            "ROLLBACK_IN_PROGRESS",
            "TIMED_OUT",
            "*Timed out* at 2023-11-14 23:13 UTC",
        ),
    ] {
        let ecs = FakeEcs::with(deployment, hook);
        let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
        send(&a, "U0APPROVER", CONTINUE, &value(HOOK)).await;
        assert!(ecs.resumes().is_empty(), "{hook}");
        let text = chat(&a).calls("chat.update")[0].to_string();
        assert!(text.contains(shows), "{hook}: {text}");
    }
    // Another hook of the deployment, or a deployment ECS does not know:
    // nothing waits, the message says so and loses its buttons.
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    send(&a, "U0APPROVER", CONTINUE, &value("ecs-pause-other")).await;
    assert!(ecs.resumes().is_empty());
    let updates = chat(&a).calls("chat.update");
    assert_eq!(updates.len(), 1);
    let text = updates[0].to_string();
    assert!(text.contains("Nothing to decide"), "{text}");
    assert!(text.contains("lists no such pause hook"), "{text}");
    assert!(!text.contains(CONTINUE), "buttons gone: {text}");
}

#[tokio::test]
async fn a_later_click_keeps_the_outcome_that_names_who_decided() {
    for (deployment, hook, says) in [
        ("SUCCESSFUL", "SUCCEEDED", "Already *continued*"),
        ("ROLLBACK_IN_PROGRESS", "TIMED_OUT", "*Timed out*"),
        ("SUCCESSFUL", "IN_PROGRESS", "Nothing to decide"),
    ] {
        let ecs = FakeEcs::with(deployment, hook);
        let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
        // The message as the first decision left it (a click in a client
        // that had not refreshed still carries the buttons).
        let mut payload = click("U0GROUPMEMBER", ROLLBACK, &value(HOOK));
        payload["message"]["blocks"]
            .as_array_mut()
            .expect("blocks")
            .push(json!({"type": "section", "block_id": crate::ecs_hook::OUTCOME_BLOCK,
                "text": {"type": "mrkdwn", "text": ":arrow_forward: *Continued* by <@U0APPROVER>"}}));
        let (status, _) = send_payload(&a, &payload).await;
        assert_eq!(status, 200);
        assert!(ecs.resumes().is_empty());
        assert!(
            chat(&a).calls("chat.update").is_empty(),
            "{hook}: the outcome naming who decided stays"
        );
        let told = chat(&a).calls("respond");
        assert_eq!(told.len(), 1, "{hook}");
        assert_eq!(told[0]["response_type"], "ephemeral");
        let text = told[0].to_string();
        assert!(text.contains(says), "{hook}: {text}");
        assert!(text.contains("Nothing was changed"), "{text}");
    }
}

#[tokio::test]
async fn someone_not_allowlisted_is_refused_alone_and_nothing_changes() {
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    let (status, _) = send(&a, "U0STRANGER", CONTINUE, &value(HOOK)).await;
    assert_eq!(status, 200);
    assert!(ecs.resumes().is_empty());
    assert!(chat(&a).calls("chat.update").is_empty());
    let told = chat(&a).calls("respond");
    assert_eq!(told[0]["response_type"], "ephemeral");
    assert!(
        told[0]
            .to_string()
            .contains("not an approver of prod/checkout-web"),
        "{told:?}"
    );
    // A pipelines-only document grants no service.
    let a = app(
        Some(FakeEcs::paused()),
        &["prod/checkout-web"],
        r#"{"pipelines": {"*": {"users": ["U0APPROVER"]}}}"#,
    );
    send(&a, "U0APPROVER", CONTINUE, &value(HOOK)).await;
    assert!(
        chat(&a).calls("respond")[0]
            .to_string()
            .contains("no entry under services"),
    );
}

#[tokio::test]
async fn a_service_that_is_not_configured_is_refused() {
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/api"], POLICY);
    send(&a, "U0APPROVER", CONTINUE, &value(HOOK)).await;
    assert!(ecs.resumes().is_empty());
    let told = chat(&a).calls("respond")[0].to_string();
    assert!(told.contains("ApprovalEcsServices"), "{told}");
    let a = app(None, &[], POLICY);
    send(&a, "U0APPROVER", CONTINUE, &value(HOOK)).await;
    let told = chat(&a).calls("respond")[0].to_string();
    assert!(told.contains("not enabled"), "{told}");
}

#[tokio::test]
async fn bad_values_are_400_and_unsigned_clicks_401() {
    let ecs = FakeEcs::paused();
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    let (status, body) = send(&a, "U0APPROVER", CONTINUE, "xoxb-not-a-reference").await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("xoxb"), "{body}");
    let forged = form(&click("U0APPROVER", CONTINUE, &value(HOOK)));
    let r = a
        .handle(
            request(&forged, "another-secret"),
            Invocation {
                context: lambda_runtime::Context::default(),
            },
        )
        .await
        .expect("answer");
    assert_eq!(r.status_code, 401);
    assert!(ecs.resumes().is_empty());
}

#[tokio::test]
async fn an_unsure_continue_that_went_through_is_shown_as_decided_by_the_clicker() {
    for (action, rollback, shows) in [
        (CONTINUE, false, "*Continued* by <@U0APPROVER>"),
        (ROLLBACK, true, "*Rolled back* by <@U0APPROVER>"),
    ] {
        let ecs = FakeEcs::losing_answer(true);
        let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
        let (status, _) = send(&a, "U0APPROVER", action, &value(HOOK)).await;
        assert_eq!(status, 200);
        assert_eq!(ecs.resumes(), [rollback]);
        let updates = chat(&a).calls("chat.update");
        assert_eq!(updates.len(), 1, "{updates:?}");
        let text = updates[0].to_string();
        assert!(text.contains(shows), "{text}");
        assert!(!text.contains("Already"), "{text}");
        assert!(chat(&a).calls("respond").is_empty());
    }
}

#[tokio::test]
async fn an_unsure_continue_not_seen_says_may_have_been_done_never_not_done() {
    let ecs = FakeEcs::losing_answer(false);
    let a = app(Some(ecs.clone()), &["prod/checkout-web"], POLICY);
    let (status, _) = send(&a, "U0APPROVER", CONTINUE, &value(HOOK)).await;
    assert_eq!(status, 200);
    assert!(chat(&a).calls("chat.update").is_empty(), "the buttons stay");
    let said = chat(&a).calls("respond");
    assert_eq!(said.len(), 1);
    let text = said[0].to_string();
    assert!(text.contains("may have been done"), "{text}");
    assert!(text.contains("Deployments tab"), "{text}");
    assert!(!text.contains("Not done"), "{text}");
    assert!(!text.contains("Try again"), "{text}");
}

#[test]
fn after_unsure_names_the_clicker_only_for_this_clicks_decision() {
    use crate::ecs_hook::{PauseOutcome, after_unsure};
    let st = |h: &str| PauseState {
        deployment_status: Some("IN_PROGRESS".into()),
        hook_status: Some(h.into()),
        ..PauseState::default()
    };
    assert_eq!(
        after_unsure(&st("SUCCEEDED"), false, "x"),
        PauseOutcome::Decided { rollback: false }
    );
    assert_eq!(
        after_unsure(&st("FAILED"), true, "x"),
        PauseOutcome::Decided { rollback: true }
    );
    for (h, rollback) in [
        ("FAILED", false),
        ("SUCCEEDED", true),
        ("AWAITING_ACTION", false),
        ("TIMED_OUT", true),
    ] {
        assert_eq!(
            after_unsure(&st(h), rollback, "x"),
            PauseOutcome::Unsure("x".into()),
            "{h}"
        );
    }
}

#[test]
fn a_configured_service_without_approvers_fails_init_naming_it() {
    use crate::ecs_hook::check_approvers;
    let services = vec!["prod/checkout-web".to_owned(), "prod/api".to_owned()];
    let own = Policy::parse(POLICY).expect("policy");
    let e = check_approvers(&services, &own).expect_err("prod/api has none");
    let text = e.to_string();
    assert!(text.contains("prod/api has no approvers"), "{text}");
    assert!(text.contains("TOLLGATE_APPROVERS"), "{text}");
    assert!(text.contains("TOLLGATE_APPROVAL_ECS_SERVICES"), "{text}");
    let star = Policy::parse(r#"{"services": {"*": {"users": ["U0APPROVER"]}}}"#).expect("policy");
    assert!(check_approvers(&services, &star).is_ok());
    assert!(check_approvers(&services[..1], &own).is_ok());
    assert!(check_approvers(&[], &own).is_ok());
}
