//! The endpoint against in-crate fakes of its ports ([`crate::test_fakes`]):
//! CodePipeline's approval state machine and Slack's Web API.

use crate::app::{Approvals, Ready};
use crate::interaction::tests::{click, form};
use crate::policy::Policy;
use crate::ports::{Chat, Pipelines, PortError};
use crate::signature::sign;
pub(crate) use crate::test_fakes::{FakeChat, FakePipeline};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use serde_json::{Value, json};
use tollgate_core::approval_request::{APPROVE, ApprovalRef, REASON_INPUT, REJECT, REJECT_VIEW};
use tollgate_core::secret::Secret;
use tollgate_report::lambda::{Function, Invocation};

pub(crate) const SECRET: &str = "test-signing-secret";

pub(crate) fn app(
    pipeline: FakePipeline,
    chat: FakeChat,
    policy: &str,
) -> Approvals<FakePipeline, FakeChat> {
    Approvals::new(Ok(Ready {
        signing_secret: Secret::new(SECRET),
        policy: Policy::parse(policy).expect("policy"),
        pipelines: pipeline,
        chat,
        response_url_prefix: "https://hooks.slack.com/".into(),
        max_body: 1 << 20,
        ecs: None,
        overrides: None,
    }))
}

pub(crate) const POLICY: &str =
    r#"{"pipelines": {"pay": {"users": ["U0APPROVER"], "groups": ["S0APPROVERS"]}}}"#;

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn request(body: &[u8], ts: i64, secret: &str) -> LambdaFunctionUrlRequest {
    let ts = ts.to_string();
    let sig = sign(&Secret::new(secret), &ts, body);
    let v = json!({
        "version": "2.0",
        "rawPath": "/",
        "headers": {"content-type": "application/x-www-form-urlencoded",
                    "x-slack-request-timestamp": ts, "x-slack-signature": sig},
        "requestContext": {"requestId": "req-1", "timeEpoch": 0, "http": {"method": "POST", "path": "/"}},
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    });
    serde_json::from_value(v).expect("function URL request")
}

fn invocation() -> Invocation {
    Invocation {
        context: lambda_runtime::Context::default(),
    }
}

pub(crate) fn value() -> String {
    ApprovalRef::new("pay", "Prod", "Approve", "e-1").encode()
}

pub(crate) async fn send<P: Pipelines + 'static, C: Chat + 'static>(
    a: &Approvals<P, C>,
    req: LambdaFunctionUrlRequest,
) -> (i64, Value) {
    let r = a.handle(req, invocation()).await.expect("answer");
    let body = r
        .body
        .as_deref()
        .map(|b| serde_json::from_str(b).expect("json"))
        .unwrap_or(Value::Null);
    (r.status_code, body)
}

pub(crate) fn state(a: &Approvals<FakePipeline, FakeChat>) -> &Ready<FakePipeline, FakeChat> {
    a.ready().expect("ready")
}

#[tokio::test]
async fn an_approver_approves_and_the_message_shows_who() {
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    let (status, _) = send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    assert_eq!(status, 200);
    let r = state(&a);
    let puts = r.pipelines.puts.lock().expect("lock").clone();
    assert_eq!(puts.len(), 1);
    assert!(puts[0].0);
    assert!(
        puts[0].1.contains("Approved in Slack by ana (U0APPROVER)"),
        "{puts:?}"
    );
    let updates = r.chat.calls("chat.update");
    assert_eq!(updates.len(), 1);
    let text = updates[0].to_string();
    assert!(text.contains("*Approved* by <@U0APPROVER>"), "{text}");
    assert!(
        !text.contains("tollgate.approval.approve"),
        "buttons gone: {text}"
    );
    assert_eq!(updates[0]["ts"], "1700000000.000001");
}

#[tokio::test]
async fn a_double_click_and_concurrent_clicks_record_one_result() {
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    let body = form(&click(APPROVE, &value()));
    let all = futures_join(&a, &body, 4).await;
    assert!(all.iter().all(|s| *s == 200), "{all:?}");
    let r = state(&a);
    assert_eq!(
        r.pipelines.puts.lock().expect("lock").len(),
        1,
        "one result"
    );
    // Every click ends with the message showing the decision; none errs.
    let updates = r.chat.calls("chat.update");
    assert_eq!(updates.len(), 4);
    let texts: Vec<String> = updates.iter().map(Value::to_string).collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("*Approved* by")).count(),
        1,
        "{texts:#?}"
    );
    assert!(texts.iter().all(|t| t.contains("pproved")), "{texts:#?}");
    assert!(r.chat.calls("respond").is_empty(), "no error for anyone");
}

async fn futures_join(a: &Approvals<FakePipeline, FakeChat>, body: &[u8], n: usize) -> Vec<i64> {
    // Interleaved: each yields at every port call.
    let all =
        futures::future::join_all((0..n).map(|_| send(a, request(body, now(), SECRET)))).await;
    all.into_iter().map(|(s, _)| s).collect()
}

#[tokio::test]
async fn an_expired_or_decided_approval_shows_the_recorded_state() {
    let p = FakePipeline::waiting("e-1");
    p.set("Failed", Some("The approval action timed out"));
    let a = app(p, FakeChat::default(), POLICY);
    send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    let r = state(&a);
    assert!(r.pipelines.puts.lock().expect("lock").is_empty());
    let text = r.chat.calls("chat.update")[0].to_string();
    assert!(text.contains("*Expired*"), "{text}");

    let p = FakePipeline::waiting("e-1");
    p.set("Failed", None);
    let a = app(p, FakeChat::default(), POLICY);
    send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    let text = state(&a).chat.calls("chat.update")[0].to_string();
    assert!(text.contains("Already *rejected*"), "{text}");
}

#[tokio::test]
async fn a_newer_execution_is_never_decided_from_an_older_message() {
    let a = app(FakePipeline::waiting("e-2"), FakeChat::default(), POLICY);
    send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    let r = state(&a);
    assert!(r.pipelines.puts.lock().expect("lock").is_empty());
    assert!(r.chat.calls("chat.update").is_empty());
    let said = r.chat.calls("respond");
    assert_eq!(said.len(), 1);
    assert_eq!(said[0]["response_type"], "ephemeral");
    assert!(
        said[0]["text"]
            .as_str()
            .expect("t")
            .contains("another execution")
    );
}

#[tokio::test]
async fn only_approvers_may_decide_and_refusals_are_ephemeral() {
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    let mut c = click(APPROVE, &value());
    c["user"]["id"] = json!("U0STRANGER1");
    let (status, _) = send(&a, request(&form(&c), now(), SECRET)).await;
    assert_eq!(status, 200);
    let r = state(&a);
    assert!(r.pipelines.puts.lock().expect("lock").is_empty());
    let said = r.chat.calls("respond");
    assert!(
        said[0]["text"]
            .as_str()
            .expect("t")
            .contains("not an approver"),
        "{said:?}"
    );
    assert!(r.chat.calls("chat.update").is_empty());

    // A member of the approver group may.
    let mut c = click(APPROVE, &value());
    c["user"]["id"] = json!("U0GROUPMEMBER");
    send(&a, request(&form(&c), now(), SECRET)).await;
    assert_eq!(r.pipelines.puts.lock().expect("lock").len(), 1);

    // A pipeline without an entry cannot be decided in Slack.
    let other = ApprovalRef::new("other", "Prod", "Approve", "e-1").encode();
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    send(&a, request(&form(&click(APPROVE, &other)), now(), SECRET)).await;
    assert!(
        state(&a).chat.calls("respond")[0]["text"]
            .as_str()
            .expect("t")
            .contains("not enabled")
    );
}

/// A pipeline whose build exported the author's e-mail.
fn built_by(author: &str) -> FakePipeline {
    let p = FakePipeline::waiting("e-1");
    *p.outputs.lock().expect("lock") = Ok(vec![crate::author::ActionOutput {
        action: "Build".into(),
        namespace: Some("BuildVariables".into()),
        status: Some("Succeeded".into()),
        started_ms: Some(1),
        variables: [("COMMIT_AUTHOR_EMAIL".to_owned(), author.to_owned())].into(),
    }]);
    p
}

fn clicker_email(email: Option<&str>) -> FakeChat {
    FakeChat::default().with_email(email)
}

fn said(a: &Approvals<FakePipeline, FakeChat>) -> Vec<String> {
    state(a)
        .chat
        .calls("respond")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const AUTHOR_POLICY: &str = r#"{"pipelines": {"pay": {"users": ["U0APPROVER"], "author_may_not_approve": true, "author_variable": "BuildVariables.COMMIT_AUTHOR_EMAIL"}}}"#;

#[tokio::test]
async fn the_author_may_not_approve_but_may_reject() {
    // The author (same address, other case) approves: refused, nothing
    // decided, the address in no message.
    let a = app(
        built_by("ana@example.com"),
        clicker_email(Some("Ana@Example.COM")),
        AUTHOR_POLICY,
    );
    send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    let s = state(&a);
    assert!(s.pipelines.puts.lock().expect("lock").is_empty());
    assert_eq!(
        *s.pipelines.listed.lock().expect("lock"),
        ["BuildVariables"]
    );
    let told = said(&a);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("You are the author"), "{told:?}");
    assert!(!told[0].to_lowercase().contains("ana@"), "{told:?}");
    assert!(s.chat.calls("chat.update").is_empty());
    // Reject opens the modal for the author, without asking who wrote it.
    send(&a, request(&form(&click(REJECT, &value())), now(), SECRET)).await;
    assert_eq!(s.chat.calls("views.open").len(), 1);
    assert_eq!(s.pipelines.listed.lock().expect("lock").len(), 1);

    // Another approver approves the same change.
    let a = app(
        built_by("ana@example.com"),
        clicker_email(Some("bob@example.com")),
        AUTHOR_POLICY,
    );
    send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    assert_eq!(state(&a).pipelines.puts.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn the_author_rule_fails_closed_and_says_what_to_set() {
    for (pipeline, email, policy, says) in [
        // The build exported nothing.
        (
            FakePipeline::waiting("e-1"),
            Some("bob@example.com"),
            AUTHOR_POLICY,
            "no action named",
        ),
        // The clicker's e-mail is hidden (no users:read.email).
        (
            built_by("ana@example.com"),
            None,
            AUTHOR_POLICY,
            "users:read.email",
        ),
        // The rule without a source.
        (
            built_by("ana@example.com"),
            Some("bob@example.com"),
            r#"{"pipelines": {"pay": {"users": ["U0APPROVER"], "author_may_not_approve": true}}}"#,
            "set author_variable",
        ),
        // The variable holds a name, not an address.
        (
            built_by("Ana Dev"),
            Some("bob@example.com"),
            AUTHOR_POLICY,
            "does not hold an e-mail address",
        ),
    ] {
        let a = app(pipeline, clicker_email(email), policy);
        send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
        assert!(
            state(&a).pipelines.puts.lock().expect("lock").is_empty(),
            "{says}"
        );
        let told = said(&a);
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].to_lowercase().contains(says), "{says}: {told:?}");
        assert!(told[0].contains("Nothing was changed"), "{told:?}");
    }
    // ListActionExecutions failing.
    let p = FakePipeline::waiting("e-1");
    *p.outputs.lock().expect("lock") = Err(PortError::Denied(
        "ListActionExecutions: AccessDenied: grant codepipeline:ListActionExecutions".into(),
    ));
    let a = app(p, clicker_email(Some("bob@example.com")), AUTHOR_POLICY);
    send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
    assert!(state(&a).pipelines.puts.lock().expect("lock").is_empty());
    let told = said(&a);
    assert!(
        told[0].contains("author could not be read") && told[0].contains("AccessDenied"),
        "{told:?}"
    );
}

#[tokio::test]
async fn reject_asks_for_a_reason_and_records_it() {
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    send(&a, request(&form(&click(REJECT, &value())), now(), SECRET)).await;
    let s = state(&a);
    let opened = s.chat.calls("views.open");
    assert_eq!(opened.len(), 1);
    assert!(
        s.pipelines.puts.lock().expect("lock").is_empty(),
        "nothing before the reason"
    );
    let view = &opened[0]["view"];
    assert_eq!(view["callback_id"], REJECT_VIEW);
    let submission = json!({
        "type": "view_submission",
        "user": {"id": "U0APPROVER", "username": "ana"},
        "view": {"id": "V1", "callback_id": REJECT_VIEW, "private_metadata": view["private_metadata"],
                 "state": {"values": {REASON_INPUT: {REASON_INPUT: {"type": "plain_text_input", "value": "smoke <!channel> failed"}}}}}
    });
    let (status, body) = send(&a, request(&form(&submission), now(), SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(body, Value::Null, "the modal closes");
    let puts = s.pipelines.puts.lock().expect("lock").clone();
    assert_eq!(puts.len(), 1);
    assert!(!puts[0].0);
    assert!(puts[0].1.ends_with(": smoke <!channel> failed"), "{puts:?}");
    let text = s.chat.calls("chat.update")[0].to_string();
    assert!(text.contains("*Rejected* by <@U0APPROVER>"), "{text}");
    assert!(
        text.contains("smoke &lt;!channel&gt; failed"),
        "escaped: {text}"
    );
}

#[tokio::test]
async fn unsigned_stale_tampered_and_malformed_requests_change_nothing() {
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    let body = form(&click(APPROVE, &value()));
    // Wrong secret, stale, replayed a day later, tampered.
    assert_eq!(send(&a, request(&body, now(), "wrong")).await.0, 401);
    assert_eq!(send(&a, request(&body, now() - 301, SECRET)).await.0, 401);
    assert_eq!(
        send(&a, request(&body, now() - 86_400, SECRET)).await.0,
        401
    );
    let mut tampered = request(&body, now(), SECRET);
    tampered.body = Some(
        String::from_utf8_lossy(&form(&{
            let mut c = click(APPROVE, &value());
            c["user"]["id"] = json!("U0STRANGER1");
            c
        }))
        .into_owned(),
    );
    assert_eq!(send(&a, tampered).await.0, 401);
    let mut unsigned = request(&body, now(), SECRET);
    unsigned.headers.remove("x-slack-signature");
    assert_eq!(send(&a, unsigned).await.0, 401);
    // Signed but malformed or unknown: 400.
    assert_eq!(
        send(&a, request(b"payload=%7B", now(), SECRET)).await.0,
        400
    );
    assert_eq!(
        send(
            &a,
            request(&form(&click("other.action", &value())), now(), SECRET)
        )
        .await
        .0,
        400
    );
    let s = state(&a);
    assert!(s.pipelines.puts.lock().expect("lock").is_empty());
    assert!(s.chat.all_calls().is_empty());
}

#[tokio::test]
async fn a_response_url_that_is_not_slacks_is_never_called() {
    let a = app(FakePipeline::waiting("e-2"), FakeChat::default(), POLICY);
    let mut c = click(APPROVE, &value());
    c["response_url"] = json!("http://169.254.169.254/latest/meta-data");
    send(&a, request(&form(&c), now(), SECRET)).await;
    assert!(state(&a).chat.calls("respond").is_empty());
}

#[tokio::test]
async fn with_too_little_time_left_the_decision_is_not_sent() {
    use crate::app::{MIN_PUT_TIME, Outcome};
    use crate::confirm::REREAD_RESERVE;
    let a = app(FakePipeline::waiting("e-1"), FakeChat::default(), POLICY);
    let s = state(&a);
    let r = ApprovalRef::new("pay", "Prod", "Approve", "e-1");
    // The put deadline (deadline - REREAD_RESERVE) is less than
    // MIN_PUT_TIME away.
    let deadline = tokio::time::Instant::now() + REREAD_RESERVE + MIN_PUT_TIME / 2;
    match s
        .decide(&r, true, "Approved in Slack by ana", deadline)
        .await
    {
        Outcome::Failed(e) => assert!(e.contains("not sent"), "{e}"),
        other => panic!("expected not sent, got {other:?}"),
    }
    assert!(s.pipelines.puts.lock().expect("lock").is_empty());
    // With time enough, it is sent.
    let deadline = tokio::time::Instant::now() + REREAD_RESERVE + MIN_PUT_TIME * 3;
    s.decide(&r, true, "Approved in Slack by ana", deadline)
        .await;
    assert_eq!(s.pipelines.puts.lock().expect("lock").len(), 1);
}
