//! The `approvals` binary end to end: function-URL events (the fixtures in
//! `events/approvals/`, signed here as Slack signs them) under the local
//! Runtime API, the signing secret and bot token in moto's Secrets Manager,
//! CodePipeline's `GetPipelineState` / `PutApprovalResult` on the AWS
//! stand-in (which validates the token, the action and its state as AWS
//! does), and Slack on the local Web API stand-in.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tollgate_approvals::signature::sign;
use tollgate_core::Secret;
use tollgate_test_support::http::Stub;
use tollgate_test_support::slack::{BOT_TOKEN, GROUP, GROUP_MEMBER, HIDDEN_EMAIL_USER, slack_api};
use tollgate_tests::aws_standin::Report;
use tollgate_tests::{AwsStandIn, LocalLambda, Moto, paths};

const DEADLINE: Duration = Duration::from_secs(10);
const SIGNING_SECRET: &str = "local-signing-secret-0123456789abcdef";
const APPROVER: &str = "U0LOCALAPPROVER";
static SEQ: AtomicU32 = AtomicU32::new(0);

struct World {
    standin: AwsStandIn,
    slack: Stub,
    env: Vec<(String, String)>,
    tag: String,
}

fn form_decode(body: &str) -> Value {
    let raw = body.strip_prefix("payload=").expect("a payload form");
    let mut bytes = Vec::new();
    let b = raw.as_bytes();
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
    let text = payload.to_string();
    let mut out = String::from("payload=");
    for b in text.bytes() {
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
    async fn new(approvers: Value) -> World {
        let moto = Moto::shared();
        let standin = AwsStandIn::start(Some(moto)).await;
        let sdk = standin.sdk_config().await;
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{n}", std::process::id());
        let name = format!("tollgate/{tag}/slack");
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
                ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
                ("TOLLGATE_SLACK_RESPONSE_URL_PREFIX", slack.url("/hooks/")),
                // As the template configures it: one JSON object per line.
                ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        World {
            standin,
            slack,
            env,
            tag,
        }
    }

    fn pipeline(&self) -> String {
        format!("payments-{}", self.tag)
    }

    async fn function(&self) -> LocalLambda {
        LocalLambda::spawn(&paths::function_binary("approvals"), &self.env).await
    }

    /// A fixture for this world's pipeline, `edit`ed, signed at `ts` with `secret`.
    fn event(&self, case: &str, ts: i64, secret: &str, edit: impl FnOnce(&mut Value)) -> Value {
        let mut ev = paths::event("approvals", case);
        let mut payload = form_decode(ev["body"].as_str().expect("body"));
        let pipeline = self.pipeline();
        let retarget = |v: &str| v.replace("\"p\":\"payments\"", &format!("\"p\":\"{pipeline}\""));
        if let Some(v) = payload.pointer_mut("/actions/0/value") {
            *v = json!(retarget(v.as_str().unwrap_or_default()));
        }
        if let Some(v) = payload.pointer_mut("/view/private_metadata") {
            let mut meta: Value =
                serde_json::from_str(v.as_str().unwrap_or_default()).expect("metadata");
            meta["r"] = json!(retarget(meta["r"].as_str().unwrap_or_default()));
            *v = json!(meta.to_string());
        }
        if let Some(url) = payload.get_mut("response_url") {
            *url = json!(self.slack.url("/hooks/actions/T0LOCAL/1/abc"));
        }
        edit(&mut payload);
        let body = form_encode(&payload);
        let ts = ts.to_string();
        ev["headers"]["x-slack-request-timestamp"] = json!(ts);
        ev["headers"]["x-slack-signature"] =
            json!(sign(&Secret::new(secret), &ts, body.as_bytes()));
        ev["body"] = json!(body);
        ev
    }

    fn waiting(&self, execution: &str, token: &str) {
        self.standin.register_approval_action(
            &self.pipeline(),
            "Prod",
            "Approve",
            execution,
            token,
        );
    }

    fn approvals(&self) -> Vec<Report> {
        self.standin
            .reports()
            .into_iter()
            .filter(|r| matches!(r, Report::Approval { .. }))
            .collect()
    }

    fn slack_calls(&self, path: &str) -> Vec<Value> {
        self.slack
            .requests_to(path)
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

fn status(answer: &Value) -> i64 {
    answer["statusCode"]
        .as_i64()
        .expect("a function URL answer")
}

fn approvers() -> Value {
    json!({"pipelines": {"*": {"users": [APPROVER], "groups": [GROUP]}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_click_approves_and_the_message_shows_who() {
    let w = World::new(approvers()).await;
    w.waiting("exec-1", "token-approve-1");
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    let answer = answer.response().clone();
    assert_eq!(status(&answer), 200, "{answer}\n{}", f.logs());
    let reports = w.approvals();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let Report::Approval {
        token,
        status: decided,
        summary,
    } = &reports[0]
    else {
        unreachable!()
    };
    assert_eq!(token, "token-approve-1");
    assert_eq!(decided, "Approved");
    assert!(
        summary.contains("Approved in Slack by ana (U0LOCALAPPROVER)"),
        "{summary}"
    );
    let updates = w.slack_calls("/api/chat.update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    let text = updates[0].to_string();
    assert!(text.contains("*Approved* by <@U0LOCALAPPROVER>"), "{text}");
    assert!(
        text.contains("waits for approval"),
        "the request is kept: {text}"
    );
    assert!(
        !text.contains("tollgate.approval.approve"),
        "the buttons are gone: {text}"
    );
    assert_eq!(updates[0]["channel"], "C0LOCAL0001");
    assert_eq!(updates[0]["ts"], "1700000000.000001");
    // The audit line: one JSON line with who, what, where and the result.
    let logs = f.logs();
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v.pointer("/fields/audit").or_else(|| v.get("audit")) == Some(&json!("approval"))
        })
        .collect();
    assert_eq!(audit.len(), 1, "{logs}");
    let line = audit[0].to_string();
    for want in [
        APPROVER,
        "\"approve\"",
        &w.pipeline(),
        "exec-1",
        "\"approved\"",
        "1700000001.000100",
    ] {
        assert!(line.contains(want), "audit line lacks {want}: {line}");
    }
    for secret in [SIGNING_SECRET, BOT_TOKEN, "token-approve-1"] {
        assert!(!logs.contains(secret), "the logs show a secret:\n{logs}");
    }
    assert!(
        !logs.contains("payload="),
        "the body is never logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_signatures_stale_and_replayed_requests_are_refused_and_change_nothing() {
    let w = World::new(approvers()).await;
    w.waiting("exec-1", "token-refuse-1");
    let mut f = w.function().await;
    let cases = [
        (
            "wrong secret",
            w.event("approve-click", now(), "not-the-signing-secret", |_| {}),
            401,
        ),
        (
            "stale (6 minutes)",
            w.event("approve-click", now() - 360, SIGNING_SECRET, |_| {}),
            401,
        ),
        (
            "from the future",
            w.event("approve-click", now() + 360, SIGNING_SECRET, |_| {}),
            401,
        ),
        (
            "replayed a day later",
            w.event("approve-click", now() - 86_400, SIGNING_SECRET, |_| {}),
            401,
        ),
        (
            "tampered",
            {
                let mut ev = w.event("approve-click", now(), SIGNING_SECRET, |_| {});
                let body = ev["body"]
                    .as_str()
                    .expect("body")
                    .replace("U0LOCALAPPROVER", "U0LOCALINTRUDR");
                ev["body"] = json!(body);
                ev
            },
            401,
        ),
        (
            "unsigned",
            {
                let mut ev = w.event("approve-click", now(), SIGNING_SECRET, |_| {});
                ev["headers"]
                    .as_object_mut()
                    .expect("headers")
                    .remove("x-slack-signature");
                ev
            },
            401,
        ),
        (
            "unknown action",
            w.event("approve-click", now(), SIGNING_SECRET, |p| {
                p["actions"][0]["action_id"] = json!("someone.else");
            }),
            400,
        ),
        (
            "malformed",
            {
                let ts = now().to_string();
                let body = "payload=%7Bnot-json";
                let mut ev = paths::event("approvals", "approve-click");
                ev["headers"]["x-slack-request-timestamp"] = json!(ts);
                ev["headers"]["x-slack-signature"] =
                    json!(sign(&Secret::new(SIGNING_SECRET), &ts, body.as_bytes()));
                ev["body"] = json!(body);
                ev
            },
            400,
        ),
    ];
    for (what, ev, want) in cases {
        let answer = f.invoke(ev, DEADLINE).await.response().clone();
        assert_eq!(status(&answer), want, "{what}: {answer}");
    }
    assert!(w.approvals().is_empty(), "nothing was decided");
    assert!(
        w.standin.calls_of("GetPipelineState").is_empty(),
        "nothing was even read"
    );
    assert!(w.slack.requests().is_empty(), "Slack was not called");
    let logs = f.logs();
    assert!(!logs.contains("payload="), "no body in the logs:\n{logs}");
    assert!(!logs.contains(SIGNING_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_click_and_two_approvers_at_once_record_one_result() {
    let w = World::new(approvers()).await;
    w.waiting("exec-1", "token-race-1");
    let mut a = w.function().await;
    let mut b = w.function().await;
    let member = |p: &mut Value| p["user"] = json!({"id": GROUP_MEMBER, "username": "bo"});
    let (x, y) = tokio::join!(
        a.invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE
        ),
        b.invoke(
            w.event("approve-click", now(), SIGNING_SECRET, member),
            DEADLINE
        ),
    );
    assert_eq!(status(x.response()), 200);
    assert_eq!(status(y.response()), 200);
    // The same approver clicks again (a double click).
    let again = a
        .invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(again.response()), 200);
    assert_eq!(w.approvals().len(), 1, "one result: {:?}", w.approvals());
    let updates = w.slack_calls("/api/chat.update");
    assert_eq!(
        updates.len(),
        3,
        "every click ends in the message showing the decision"
    );
    let texts: Vec<String> = updates.iter().map(Value::to_string).collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("*Approved* by")).count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("Already *approved*"))
            .count(),
        2,
        "{texts:#?}"
    );
    assert!(
        w.ephemeral().is_empty(),
        "nobody got an error: {:?}",
        w.ephemeral()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_approval_and_a_newer_execution_are_never_decided() {
    let w = World::new(approvers()).await;
    w.waiting("exec-1", "token-expired-1");
    w.standin.expire_approval("token-expired-1");
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200);
    assert!(w.approvals().is_empty());
    let text = w.slack_calls("/api/chat.update")[0].to_string();
    assert!(text.contains("*Expired*"), "{text}");

    // A newer execution waits now: the old message cannot approve it.
    w.waiting("exec-2", "token-newer-2");
    let answer = f
        .invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200);
    assert!(w.approvals().is_empty(), "{:?}", w.approvals());
    let said = w.ephemeral();
    assert!(
        said.iter().any(|t| t.contains("another execution")),
        "{said:?}"
    );
}

/// `GetPipelineState` as CodePipeline can show a PARALLEL-mode pipeline:
/// the stage's latest execution is `stage_execution`, while the approval
/// action's latest execution (and its token) is `token`'s.
fn parallel_state(pipeline: &str, stage_execution: &str, token: &str) -> Value {
    json!({"pipelineName": pipeline, "pipelineVersion": 1, "stageStates": [{
        "stageName": "Prod",
        "latestExecution": {"pipelineExecutionId": stage_execution, "status": "InProgress"},
        "actionStates": [{"actionName": "Approve", "latestExecution": {
            "actionExecutionId": format!("standin-action-execution-{token}"),
            "status": "InProgress", "token": token, "lastStatusChange": now() as f64}}]
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_mode_a_token_of_another_execution_is_never_used() {
    let w = World::new(approvers()).await;
    // Two executions wait at the approval (PARALLEL mode).
    w.waiting("exec-1", "token-parallel-1");
    w.waiting("exec-2", "token-parallel-2");
    // The stage names exec-1 (the button's), but the waiting token is
    // exec-2's: ListActionExecutions of exec-1 does not show that action
    // execution, so the token is not used.
    w.standin.script(
        "GetPipelineState",
        vec![parallel_state(&w.pipeline(), "exec-1", "token-parallel-2")],
    );
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    assert!(w.approvals().is_empty(), "{:?}", w.approvals());
    assert!(
        w.standin.calls_of("PutApprovalResult").is_empty(),
        "the other execution's token was never sent"
    );
    let listed = w.standin.calls_of("ListActionExecutions");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].request["filter"]["pipelineExecutionId"], "exec-1");
    let said = w.ephemeral();
    assert!(
        said.iter().any(|t| t.contains("another execution")),
        "{said:?}"
    );
    assert!(w.slack_calls("/api/chat.update").is_empty());

    // Control: when the action's token is exec-1's own, the same click
    // approves with it (the check above is not refusing everything).
    w.standin.script(
        "GetPipelineState",
        vec![parallel_state(&w.pipeline(), "exec-1", "token-parallel-1")],
    );
    let answer = f
        .invoke(
            w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200);
    let reports = w.approvals();
    let [Report::Approval { token, .. }] = reports.as_slice() else {
        panic!("{reports:?}")
    };
    assert_eq!(token, "token-parallel-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_approvers_decide_and_the_author_may_not_approve() {
    // The author's e-mail comes from the build's exported variable
    // (namespace BuildVariables) of the same execution; the clickers'
    // from the Slack stand-in's users.info (<id, lower-cased>@example.com).
    let approvers = json!({"pipelines": {"*": {
        "users": [APPROVER, "U0LOCALAUTHOR", HIDDEN_EMAIL_USER],
        "author_may_not_approve": true,
        "author_variable": "BuildVariables.COMMIT_AUTHOR_EMAIL"}}});
    let w = World::new(approvers).await;
    w.waiting("exec-1", "token-authz-1");
    w.standin.register_action_output(
        &w.pipeline(),
        "exec-1",
        "Build",
        "Build",
        Some("BuildVariables"),
        &[("COMMIT_AUTHOR_EMAIL", "U0LocalAuthor@Example.com")],
    );
    let mut f = w.function().await;
    let click = |user: &str| {
        let user = user.to_owned();
        w.event("approve-click", now(), SIGNING_SECRET, move |p| {
            p["user"] = json!({"id": user, "username": "someone"});
        })
    };
    // Someone not on the list.
    let answer = f.invoke(click("U0LOCALSTRANGER"), DEADLINE).await;
    assert_eq!(status(answer.response()), 200);
    // The author (same address, other case): refused before CodePipeline
    // is asked for the approval.
    f.invoke(click("U0LOCALAUTHOR"), DEADLINE).await;
    assert!(w.approvals().is_empty(), "{:?}", w.approvals());
    assert!(w.standin.calls_of("GetPipelineState").is_empty());
    assert!(w.standin.calls_of("PutApprovalResult").is_empty());
    let listed = w.standin.calls_of("ListActionExecutions");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].request["filter"]["pipelineExecutionId"], "exec-1");
    assert_eq!(w.slack_calls("/api/users.info").len(), 1);
    // The clicker's e-mail is hidden from the app: refused, saying what to
    // add.
    f.invoke(click(HIDDEN_EMAIL_USER), DEADLINE).await;
    assert!(w.approvals().is_empty(), "{:?}", w.approvals());
    let said = w.ephemeral();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[0].contains("not an approver"), "{said:?}");
    assert!(said[1].contains("You are the author"), "{said:?}");
    assert!(said[2].contains("users:read.email"), "{said:?}");
    assert!(w.slack_calls("/api/chat.update").is_empty());
    // No e-mail address in any log line or answer.
    let logs = f.logs().to_lowercase();
    assert!(!logs.contains("@example.com"), "{logs}");
    assert!(
        said.iter()
            .all(|t| !t.to_lowercase().contains("@example.com"))
    );
    // Another approver approves the same change.
    f.invoke(click(APPROVER), DEADLINE).await;
    let reports = w.approvals();
    let [Report::Approval { status, .. }] = reports.as_slice() else {
        panic!("{reports:?}")
    };
    assert_eq!(status, "Approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_author_in_the_execution_nobody_approves_in_slack() {
    let approvers = json!({"pipelines": {"*": {
        "users": [APPROVER],
        "author_may_not_approve": true,
        "author_variable": "Build.COMMIT_AUTHOR_EMAIL"}}});
    let w = World::new(approvers).await;
    w.waiting("exec-1", "token-noauthor-1");
    // The build ran but exported no author.
    w.standin.register_action_output(
        &w.pipeline(),
        "exec-1",
        "Build",
        "Build",
        None,
        &[("IMAGE_TAG", "abc123")],
    );
    let mut f = w.function().await;
    f.invoke(
        w.event("approve-click", now(), SIGNING_SECRET, |_| {}),
        DEADLINE,
    )
    .await;
    assert!(w.approvals().is_empty(), "{:?}", w.approvals());
    assert!(w.standin.calls_of("PutApprovalResult").is_empty());
    let said = w.ephemeral();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("exported no variable \"COMMIT_AUTHOR_EMAIL\"")
            && said[0].contains("git log -1 --no-merges --format=%ae"),
        "{said:?}"
    );
    // Rejecting stays open to everyone on the list.
    f.invoke(
        w.event("reject-click", now(), SIGNING_SECRET, |_| {}),
        DEADLINE,
    )
    .await;
    assert_eq!(w.slack_calls("/api/views.open").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reject_opens_the_reason_dialog_and_records_the_reason() {
    let w = World::new(approvers()).await;
    w.waiting("exec-1", "token-reject-1");
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.event("reject-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200);
    let opened = w.slack_calls("/api/views.open");
    assert_eq!(opened.len(), 1, "{:?}", w.slack.requests());
    assert!(w.approvals().is_empty(), "nothing before the reason");
    let answer = f
        .invoke(
            w.event("reject-reason", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    let answer = answer.response().clone();
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        answer.get("body").is_none_or(Value::is_null),
        "the modal closes: {answer}"
    );
    let reports = w.approvals();
    let [
        Report::Approval {
            status, summary, ..
        },
    ] = reports.as_slice()
    else {
        panic!("{reports:?}")
    };
    assert_eq!(status, "Rejected");
    assert!(
        summary.ends_with(": smoke checks failed on staging <!channel>"),
        "{summary}"
    );
    let text = w.slack_calls("/api/chat.update")[0].to_string();
    assert!(text.contains("*Rejected* by <@U0LOCALAPPROVER>"), "{text}");
    assert!(
        text.contains("&lt;!channel&gt;"),
        "the reason is escaped: {text}"
    );
}

// ---- Override of a stage condition in progress (OverrideStageCondition) ----

const OVERRIDE_EXEC: &str = "3137f7cb-7cf7-4a54-8e5b-1f2a3b4c5d6e";

impl World {
    /// This world with overrides enabled for its pipeline (as the template
    /// passes ApprovalPipelineArns when ApprovalStageOverrides is true).
    fn with_overrides(mut self) -> World {
        let arn = format!(
            "arn:aws:codepipeline:eu-west-1:123456789012:{}",
            self.pipeline()
        );
        self.env
            .push(("TOLLGATE_APPROVAL_OVERRIDE_PIPELINES".into(), arn));
        self
    }

    fn entry_condition(&self, status: &str) {
        self.standin.register_stage_condition(
            &self.pipeline(),
            "Production",
            "BEFORE_ENTRY",
            OVERRIDE_EXEC,
            status,
            &[(
                "NoOpenAlarms",
                status,
                "alarm pay-5xx is in ALARM <!channel>",
            )],
        );
    }

    fn overrides(&self) -> Vec<Report> {
        self.standin
            .reports()
            .into_iter()
            .filter(|r| matches!(r, Report::ConditionOverride { .. }))
            .collect()
    }

    fn override_calls(&self) -> usize {
        self.standin
            .calls()
            .iter()
            .filter(|c| c.operation == "OverrideStageCondition")
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_override_in_progress_is_overridden_once_and_a_stale_click_shows_it() {
    let w = World::new(approvers()).await.with_overrides();
    w.entry_condition("InProgress");
    let mut f = w.function().await;
    let answer = f
        .invoke(
            w.event("override-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200, "{}", f.logs());
    let reports = w.overrides();
    assert_eq!(reports.len(), 1, "{reports:?}\n{}", f.logs());
    let Report::ConditionOverride { key } = &reports[0] else {
        unreachable!()
    };
    assert_eq!(
        key,
        &format!("{}/Production/{OVERRIDE_EXEC}/BEFORE_ENTRY", w.pipeline())
    );
    assert_eq!(
        w.standin
            .stage_condition_status(&w.pipeline(), "Production", "BEFORE_ENTRY")
            .as_deref(),
        Some("Overridden")
    );
    let updates = w.slack_calls("/api/chat.update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    let text = updates[0].to_string();
    assert!(
        text.contains("*overridden* by <@U0LOCALAPPROVER>"),
        "{text}"
    );
    assert!(
        !text.contains("tollgate.stage_condition.override"),
        "the button is gone: {text}"
    );
    assert!(
        text.contains("waiting for its entry condition"),
        "kept: {text}"
    );
    let logs = f.logs();
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v.pointer("/fields/audit").or_else(|| v.get("audit")) == Some(&json!("stage-condition"))
        })
        .collect();
    assert_eq!(audit.len(), 1, "{logs}");
    let line = audit[0].to_string();
    for want in [
        APPROVER,
        "BEFORE_ENTRY",
        OVERRIDE_EXEC,
        "\"overridden\"",
        "1700000001.000300",
    ] {
        assert!(line.contains(want), "audit line lacks {want}: {line}");
    }
    // A second click on the updated message: the message keeps who
    // overrode; the clicker alone hears the recorded state; nothing called.
    let updated_blocks = updates[0]["blocks"].clone();
    f.invoke(
        w.event("override-click", now(), SIGNING_SECRET, |p| {
            p["message"]["blocks"] = updated_blocks;
        }),
        DEADLINE,
    )
    .await;
    assert_eq!(w.override_calls(), 1, "one OverrideStageCondition in all");
    assert_eq!(w.slack_calls("/api/chat.update").len(), 1);
    let said = w.ephemeral();
    assert!(
        said.iter().any(|s| s.contains("already *overridden*")),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn override_refusals_passed_conditions_and_forgeries_change_nothing() {
    let w = World::new(json!({"pipelines": {"*": {"users": [APPROVER]}}}))
        .await
        .with_overrides();
    w.entry_condition("Succeeded");
    let mut f = w.function().await;
    // A condition that already passed: shown, nothing called.
    let answer = f
        .invoke(
            w.event("override-click", now(), SIGNING_SECRET, |_| {}),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 200);
    let updates = w.slack_calls("/api/chat.update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(
        updates[0].to_string().contains("already *passed*"),
        "{updates:?}"
    );
    // Someone not on the allowlist, while the condition waits.
    w.entry_condition("InProgress");
    f.invoke(
        w.event("override-click", now(), SIGNING_SECRET, |p| {
            p["user"] = json!({"id": "U0LOCALSTRANGER", "username": "eve"});
        }),
        DEADLINE,
    )
    .await;
    let said = w.ephemeral();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("not an approver"), "{said:?}");
    // A forged click (another secret): 401.
    let answer = f
        .invoke(
            w.event(
                "override-click",
                now(),
                "not-the-signing-secret-0000",
                |_| {},
            ),
            DEADLINE,
        )
        .await;
    assert_eq!(status(answer.response()), 401);
    // A pipeline overrides are not enabled for.
    f.invoke(
        w.event("override-click", now(), SIGNING_SECRET, |p| {
            let v = p["actions"][0]["value"].as_str().expect("value").to_owned();
            p["actions"][0]["value"] = json!(v.replace(&w.pipeline(), "another-pipeline"));
        }),
        DEADLINE,
    )
    .await;
    let said = w.ephemeral();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[1].contains("may not be overridden from Slack"),
        "{said:?}"
    );
    assert_eq!(w.override_calls(), 0);
    assert!(w.overrides().is_empty());
    assert_eq!(w.slack_calls("/api/chat.update").len(), 1);
}
