//! Override clicks against the fakes of CodePipeline's stage conditions and
//! Slack ([`crate::test_fakes`]), through the whole endpoint (signature
//! first).

use crate::app::{Approvals, Ready};
use crate::interaction::tests::form;
use crate::policy::Policy;
use crate::signature::sign;
use crate::stage_condition::{RuleView, StageOverrides, pipelines_from_env, rules_text};
use crate::test_fakes::{FakeChat, FakeConditions, FakePipeline};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_core::secret::Secret;
use tollgate_core::stage_condition_request::{BLOCK, ConditionKind, ConditionRef, OVERRIDE};
use tollgate_report::lambda::{Function, Invocation};

const SECRET: &str = "test-signing-secret";
const EXEC: &str = "3137f7cb-7cf7-4a54-8e5b-1f2a3b4c5d6e";
const POLICY: &str =
    r#"{"pipelines": {"pay": {"users": ["U0APPROVER"], "groups": ["S0APPROVERS"]}}}"#;

type App = Approvals<FakePipeline, FakeChat>;

fn app(port: Option<Arc<FakeConditions>>, pipelines: &[&str]) -> App {
    Approvals::new(Ok(Ready {
        signing_secret: Secret::new(SECRET),
        policy: Policy::parse(POLICY).expect("policy"),
        pipelines: FakePipeline::untouched(),
        chat: FakeChat::default().forbidding_approval_calls(),
        response_url_prefix: "https://hooks.slack.com/".into(),
        max_body: 1 << 20,
        ecs: None,
        overrides: port.map(|p| StageOverrides {
            conditions: p,
            pipelines: pipelines.iter().map(|s| (*s).to_owned()).collect(),
        }),
    }))
}

fn value(pipeline: &str, execution: &str) -> String {
    ConditionRef::new(
        pipeline,
        "Production",
        execution,
        ConditionKind::BeforeEntry,
    )
    .encode()
}

fn click(user: &str, value: &str, with_outcome: bool) -> Value {
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "Production waits for its entry condition"}}),
        json!({"type": "actions", "block_id": BLOCK, "elements": []}),
    ];
    if with_outcome {
        blocks.push(
            json!({"type": "section", "block_id": crate::stage_condition::OUTCOME_BLOCK,
                           "text": {"type": "mrkdwn", "text": "overridden by <@U0APPROVER>"}}),
        );
    }
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "team_id": "T0LOCAL"},
        "channel": {"id": "C0LOCAL0001"},
        "container": {"type": "message", "message_ts": "1700000000.000009", "channel_id": "C0LOCAL0001"},
        "message": {"ts": "1700000000.000009", "blocks": blocks},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"action_id": OVERRIDE, "block_id": BLOCK, "value": value, "type": "button", "action_ts": "1700000001.3"}]
    })
}

async fn send(a: &App, payload: &Value) -> i64 {
    let body = form(payload);
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = sign(&Secret::new(SECRET), &ts, &body);
    let req: LambdaFunctionUrlRequest = serde_json::from_value(json!({
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": "application/x-www-form-urlencoded",
                    "x-slack-request-timestamp": ts, "x-slack-signature": sig},
        "requestContext": {"requestId": "req-1", "timeEpoch": 0, "http": {"method": "POST", "path": "/"}},
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false
    }))
    .expect("request");
    a.handle(
        req,
        Invocation {
            context: lambda_runtime::Context::default(),
        },
    )
    .await
    .expect("answer")
    .status_code
}

fn chat(a: &App) -> &FakeChat {
    &a.ready().expect("ready").chat
}

#[tokio::test]
async fn an_approver_overrides_a_waiting_entry_condition_once() {
    let port = FakeConditions::with(EXEC, "InProgress");
    let a = app(Some(port.clone()), &["pay"]);
    let v = value("pay", EXEC);
    let (c1, c2) = (
        click("U0APPROVER", &v, false),
        click("U0GROUPMEMBER", &v, false),
    );
    let (s1, s2) = tokio::join!(send(&a, &c1), send(&a, &c2));
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(port.overrides(), 1, "overridden once");
    let updates = chat(&a).calls("chat.update");
    let texts: Vec<String> = updates.iter().map(Value::to_string).collect();
    assert!(
        texts.iter().any(|t| t.contains("*overridden* by <@U0")),
        "{texts:?}"
    );
    assert_eq!(
        texts.len(),
        1,
        "only the click that overrode updates the message, so nothing overwrites who did: {texts:?}"
    );
    let told: Vec<String> = chat(&a)
        .calls("respond")
        .iter()
        .map(Value::to_string)
        .collect();
    assert!(
        told.iter().any(|t| t.contains("already *overridden*")),
        "the second clicker is told the recorded state: {told:?}"
    );
    assert!(texts.iter().all(|t| !t.contains(OVERRIDE)), "button gone");
}

#[tokio::test]
async fn a_passed_failed_or_other_execution_condition_is_shown_and_nothing_called() {
    for (exec, status, says) in [
        (EXEC, "Succeeded", "already *passed*"),
        (EXEC, "Failed", "cannot be overridden"),
        (
            "99999999-7cf7-4a54-8e5b-1f2a3b4c5d6e",
            "InProgress",
            "another execution",
        ),
        (EXEC, "Cancelled", "Nothing to override"),
    ] {
        let port = FakeConditions::with(exec, status);
        let a = app(Some(port.clone()), &["pay"]);
        assert_eq!(
            send(&a, &click("U0APPROVER", &value("pay", EXEC), false)).await,
            200
        );
        assert_eq!(port.overrides(), 0, "{status}");
        let text = chat(&a).calls("chat.update")[0].to_string();
        assert!(text.contains(says), "{status}: {text}");
        if status == "Failed" {
            assert!(
                text.contains("NoAlarms&lt;!here&gt;"),
                "escaped rule: {text}"
            );
        }
    }
}

#[tokio::test]
async fn a_stale_click_on_a_decided_message_keeps_it_and_answers_the_clicker() {
    let port = FakeConditions::with(EXEC, "Overridden");
    let a = app(Some(port.clone()), &["pay"]);
    assert_eq!(
        send(&a, &click("U0APPROVER", &value("pay", EXEC), true)).await,
        200
    );
    assert!(
        chat(&a).calls("chat.update").is_empty(),
        "who overrode is kept"
    );
    let told = chat(&a).calls("respond")[0].to_string();
    assert!(told.contains("already *overridden*"), "{told}");
    assert_eq!(port.overrides(), 0);
}

#[tokio::test]
async fn refusals_change_nothing() {
    let port = FakeConditions::with(EXEC, "InProgress");
    // Not an approver; a pipeline not enabled; overrides not enabled at all.
    let a = app(Some(port.clone()), &["pay"]);
    send(&a, &click("U0SOMEONE", &value("pay", EXEC), false)).await;
    let told = chat(&a).calls("respond")[0].to_string();
    assert!(told.contains("not an approver of pay"), "{told}");
    send(&a, &click("U0APPROVER", &value("other", EXEC), false)).await;
    let told = chat(&a).calls("respond")[1].to_string();
    assert!(told.contains("may not be overridden from Slack"), "{told}");
    let off = app(None, &[]);
    send(&off, &click("U0APPROVER", &value("pay", EXEC), false)).await;
    let told = chat(&off).calls("respond")[0].to_string();
    assert!(told.contains("not enabled"), "{told}");
    assert_eq!(port.overrides(), 0);
    assert!(chat(&a).calls("chat.update").is_empty());
    // A malformed value is a 400.
    assert_eq!(
        send(&a, &click("U0APPROVER", "{\"v\":1}", false)).await,
        400
    );
}

#[tokio::test]
async fn an_answerless_override_is_read_again() {
    for (applied, says) in [
        (true, "*overridden* by <@U0APPROVER>"),
        (false, "Not confirmed"),
    ] {
        let port = FakeConditions::with(EXEC, "InProgress");
        *port.lose_answer.lock().expect("lock") = Some(applied);
        let a = app(Some(port.clone()), &["pay"]);
        send(&a, &click("U0APPROVER", &value("pay", EXEC), false)).await;
        let all = chat(&a).all_calls();
        let text = format!("{all:?}");
        assert!(text.contains(says), "{applied}: {text}");
        assert!(!text.contains("Not overridden"), "never 'not done': {text}");
    }
}

#[test]
fn the_configured_pipelines_are_read_from_arns_or_names() {
    let env = [(
        crate::stage_condition::PIPELINES_VAR,
        "arn:aws:codepipeline:eu-west-1:111122223333:pay-prod, api",
    )];
    assert_eq!(
        pipelines_from_env(&env).expect("valid"),
        ["pay-prod", "api"]
    );
    let env = [(
        crate::stage_condition::PIPELINES_VAR,
        "arn:aws:ecs:eu-west-1:1:x",
    )];
    assert!(pipelines_from_env(&env).is_err());
    let none: [(&str, &str); 0] = [];
    assert!(pipelines_from_env(&none).expect("unset").is_empty());
}

#[test]
fn rules_are_escaped_and_bounded() {
    let rules: Vec<RuleView> = (0..7)
        .map(|i| RuleView {
            name: format!("r{i}<@U1>"),
            status: Some("Failed".into()),
            summary: Some("x".repeat(400)),
        })
        .collect();
    let t = rules_text(&rules);
    assert_eq!(t.lines().count(), 5);
    assert!(!t.contains("<@U1>"), "{t}");
    assert!(t.chars().count() <= 1500);
}
