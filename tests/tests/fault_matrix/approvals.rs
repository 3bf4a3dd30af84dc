//! The `approvals` column of the fault matrix: a signed Slack click on an
//! approval request's button, posted to the function URL, against the AWS
//! stand-in (the approval waits with the cell's id as its token; the
//! signing secret and the bot token are a scripted `GetSecretValue`) and
//! the cell's stub as Slack's Web API and response URLs.
//!
//! The `ecs-pause-*` rows click Continue on an ECS service deployment
//! paused at a `PAUSE` lifecycle hook instead (registered on the stand-in,
//! which speaks ECS's JSON 1.1), with faults in `DescribeServiceDeployments`
//! and `ContinueServiceDeployment`.

use serde_json::{Value, json};
use tollgate_core::approval_request::{APPROVE, ApprovalRef};
use tollgate_core::ecs_pause_request::{self, PauseRef};
use tollgate_test_support::http::Stub;
use tollgate_tests::slack_signed::{self, Clicker};
use tollgate_tests::{AwsStandIn, Fault, Invocation, Report};

const PIPELINE: &str = "fm-pipeline";
const EXECUTION: &str = "fm-execution-1";
const APPROVER: &str = "U0FAULTMATRIX";
const SIGNING_SECRET: &str = "fault-matrix-signing-secret-0123456789";
const BOT_TOKEN: &str = "xoxb-fault-matrix-bot-token";
const SECRET_ID: &str = "fm/slack";
/// The paused service deployment of the `ecs-pause-*` rows and its hook.
const SERVICE: &str = "fm-cluster/fm-web";
const DEPLOYMENT: &str =
    "arn:aws:ecs:us-east-1:111111111111:service-deployment/fm-cluster/fm-web/fmDeployment01";
const HOOK: &str = "ecs-pause-faultmatrix0000000000000000000000000000000000";

/// Whether `kind` is an ECS pause row.
pub fn is_pause(kind: &str) -> bool {
    kind.starts_with("ecs-pause-")
}

/// The reason of the `chat-injection` cell: mentions and a disguised link.
const INJECTION: &str = "<!channel> <@U024BE7LH> <https://evil.example|click here> <!here>";

/// The function's environment (besides the stand-in's).
pub fn env(server: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "TOLLGATE_SLACK_SIGNING_SECRET",
            format!("secretsmanager:{SECRET_ID}#signing_secret"),
        ),
        (
            "TOLLGATE_SLACK_BOT_TOKEN",
            format!("secretsmanager:{SECRET_ID}#bot_token"),
        ),
        (
            "TOLLGATE_APPROVERS",
            json!({"pipelines": {"*": {"users": [APPROVER]}},
                   "services": {SERVICE: {"users": [APPROVER]}}})
            .to_string(),
        ),
        (ecs_pause_request::SERVICES_VAR, SERVICE.to_owned()),
        ("TOLLGATE_SLACK_API_URL", format!("{server}/api")),
        (
            "TOLLGATE_SLACK_RESPONSE_URL_PREFIX",
            format!("{server}/hooks/"),
        ),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
    ]
}

/// The secrets (scripted) and the waiting approval, whose token is `id`.
pub fn seed(standin: &AwsStandIn, id: &str) {
    standin.script(
        "GetSecretValue",
        vec![json!({
            "ARN": format!("arn:aws:secretsmanager:us-east-1:111111111111:secret:{SECRET_ID}-AbCdEf"),
            "Name": SECRET_ID,
            "VersionId": "00000000-0000-4000-8000-000000000001",
            "SecretString": json!({"signing_secret": SIGNING_SECRET, "bot_token": BOT_TOKEN}).to_string(),
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1_700_000_000.0
        })],
    );
    standin.register_approval_action(PIPELINE, "Prod", "Approve", EXECUTION, id);
    standin.register_ecs_pause(DEPLOYMENT, HOOK);
}

/// The ECS faults of the `ecs-pause-*` rows.
pub fn inject(standin: &AwsStandIn, kind: &str) {
    match kind {
        "ecs-pause-describe-throttled" => {
            standin.inject("DescribeServiceDeployments", Fault::Throttle, None)
        }
        "ecs-pause-describe-denied" => {
            standin.inject("DescribeServiceDeployments", Fault::AccessDenied, None)
        }
        "ecs-pause-continue-failing" => {
            standin.inject("ContinueServiceDeployment", Fault::ServerError, None)
        }
        "ecs-pause-continue-no-answer" => standin.inject(
            "ContinueServiceDeployment",
            Fault::Slow(std::time::Duration::from_secs(5)),
            None,
        ),
        "ecs-pause-client-exception" => standin.script_with_status(
            "ContinueServiceDeployment",
            vec![(
                400,
                json!({"__type": "ClientException", "message": "The lifecycle hook is not awaiting action"}),
            )],
        ),
        _ => {}
    }
}

/// Someone approved in the console before the click.
pub async fn decided_in_the_console(standin: &AwsStandIn, token: &str) {
    let sdk = standin.sdk_config().await;
    aws_sdk_codepipeline::Client::new(&sdk)
        .put_approval_result()
        .pipeline_name(PIPELINE)
        .stage_name("Prod")
        .action_name("Approve")
        .token(token)
        .result(
            aws_sdk_codepipeline::types::ApprovalResult::builder()
                .status(aws_sdk_codepipeline::types::ApprovalStatus::Approved)
                .summary("Approved in the console by bo")
                .build()
                .expect("approval result"),
        )
        .send()
        .await
        .expect("the earlier decision is accepted");
}

/// A Continue click on the pause request's button.
fn pause_click(response_url: &str) -> Value {
    let value = PauseRef::new(DEPLOYMENT, HOOK, Some("POST_TEST_TRAFFIC_SHIFT")).encode();
    json!({
        "type": "block_actions",
        "user": {"id": APPROVER, "username": "ana", "name": "ana", "team_id": "T0FM"},
        "api_app_id": "A0FM",
        "container": {"type": "message", "message_ts": "1700000000.000002", "channel_id": "C0FAULTMATRIX", "is_ephemeral": false},
        "trigger_id": "1700000001.0000.0000000000000000000000000000000",
        "team": {"id": "T0FM", "domain": "fm"},
        "channel": {"id": "C0FAULTMATRIX"},
        "message": {"type": "message", "ts": "1700000000.000002", "blocks": [
            {"type": "section", "block_id": "tollgate.ecs_pause.request",
             "text": {"type": "mrkdwn", "text": "ECS deployment paused: *fm-web* at `POST_TEST_TRAFFIC_SHIFT`"}}]},
        "response_url": response_url,
        "actions": [{"action_id": ecs_pause_request::CONTINUE, "block_id": ecs_pause_request::BLOCK,
                     "type": "button", "value": value, "action_ts": "1700000001.000200"}]
    })
}

/// The cell's request.
pub fn event(kind: &str, server: &str) -> Value {
    if is_pause(kind) {
        let response_url = format!("{server}/hooks/actions/T0FM/1/fault-matrix");
        return slack_signed::signed_event(
            &pause_click(&response_url),
            SIGNING_SECRET,
            slack_signed::now(),
        );
    }
    let approval = ApprovalRef::new(PIPELINE, "Prod", "Approve", EXECUTION);
    let response_url = format!("{server}/hooks/actions/T0FM/1/fault-matrix");
    let name = if kind == "unicode" {
        crate::UNICODE
    } else {
        "ana"
    };
    let who = Clicker {
        user: APPROVER,
        name,
        channel: "C0FAULTMATRIX",
        ts: "1700000000.000001",
        response_url: &response_url,
    };
    let mut payload = slack_signed::click(APPROVE, &approval, &who, &[]);
    if kind == "chat-injection" {
        payload = slack_signed::reject_submission(&approval, &who, INJECTION);
    }
    let mut text = payload.to_string();
    if kind == "deep-field" {
        // 100 000 levels inside the signed payload's JSON.
        text = text.replacen(
            "\"actions\":[",
            &format!("\"nested\":{},\"actions\":[", crate::nested(100_000)),
            1,
        );
    }
    let mut ev = slack_signed::signed_event_text(&text, SIGNING_SECRET, slack_signed::now());
    match kind {
        "wrong-shape" => return tollgate_tests::paths::event("pipeline-action", "smoke-inline"),
        "missing-fields" => {
            if let Some(h) = ev["headers"].as_object_mut() {
                h.remove("x-slack-signature");
                h.remove("x-slack-request-timestamp");
            }
        }
        "wrong-types" => {
            ev["body"] = json!(42);
            ev["isBase64Encoded"] = json!("no");
        }
        "empty-strings" => {
            ev["headers"]["x-slack-signature"] = json!("");
            ev["headers"]["x-slack-request-timestamp"] = json!("");
            ev["body"] = json!("");
        }
        "six-mb" => {
            let mut body = ev["body"].as_str().unwrap_or_default().to_owned();
            body.push_str("&padding=");
            body.push_str(&"x".repeat(crate::SIX_MB));
            ev["body"] = json!(body);
        }
        _ => {}
    }
    ev
}

/// One round's outcome class and detail, and the contract's problems.
pub fn classify(
    standin: &AwsStandIn,
    stub: &Stub,
    token: &str,
    (hits_before, calls_before): (usize, usize),
    inv: &Invocation,
    logs: &str,
    problems: &mut Vec<String>,
) -> (String, String) {
    let decisions: Vec<Report> = standin
        .reports_for(token)
        .into_iter()
        .filter(|r| matches!(r, Report::Approval { .. }))
        .collect();
    if decisions.len() > 1 {
        problems.push(format!("two decisions for one approval: {decisions:?}"));
    }
    let calls: Vec<String> = standin
        .calls()
        .into_iter()
        .skip(calls_before)
        .map(|c| c.operation)
        .collect();
    let slack: Vec<(String, Value)> = stub
        .requests()
        .into_iter()
        .skip(hits_before)
        .map(|r| (r.path.clone(), r.json()))
        .collect();
    for secret in [SIGNING_SECRET, BOT_TOKEN, token] {
        if logs.contains(secret) {
            problems.push("a secret or the approval token shows in the logs".to_owned());
        }
    }
    if logs.contains("payload=") || logs.contains("payload%3D") {
        problems.push("the request body shows in the logs".to_owned());
    }
    let response = match inv {
        Invocation::Response(v) => v,
        Invocation::Error {
            error_type,
            error_message,
        } => return (format!("error:{error_type}"), error_message.clone()),
        other => {
            problems.push(format!("no defined outcome: {other:?}"));
            return (format!("{other:?}"), String::new());
        }
    };
    let status = response["statusCode"].as_i64().unwrap_or_default();
    let body = response["body"].as_str().unwrap_or_default().to_owned();
    if status != 200 {
        if calls
            .iter()
            .any(|c| c == "PutApprovalResult" || c == "GetPipelineState")
        {
            problems.push(format!("a refused request called CodePipeline: {calls:?}"));
        }
        if !slack.is_empty() {
            problems.push("a refused request called Slack".to_owned());
        }
        if status == 503 && !logs.contains("ConfigurationError") {
            problems.push("a 503 must log the ConfigurationError alert".to_owned());
        }
        return (format!("answer:{status}"), body);
    }
    let recorded = standin
        .calls_of("PutApprovalResult")
        .iter()
        .any(|c| c.status == 200 && c.request["token"] == token)
        && calls.iter().any(|c| c == "PutApprovalResult");
    let updates: Vec<String> = slack
        .iter()
        .filter(|(p, _)| p == "/api/chat.update")
        .map(|(_, v)| v.to_string())
        .collect();
    let told: Vec<String> = slack
        .iter()
        .filter(|(p, _)| p.starts_with("/hooks/"))
        .map(|(_, v)| v["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    let said = updates
        .iter()
        .chain(&told)
        .cloned()
        .collect::<Vec<_>>()
        .join(" / ");
    let new_decision = match decisions.last() {
        Some(Report::Approval { status, .. })
            if recorded || calls.iter().any(|c| c == "PutApprovalResult") =>
        {
            // This round's own decision: landed now (or, past its deadline,
            // confirmed by reading the state again).
            Some(status.clone())
        }
        _ => None,
    };
    let landed_this_round = new_decision.is_some()
        && (said.contains("*Approved* by") || said.contains("*Rejected* by"));
    let class = if landed_this_round {
        match new_decision.as_deref() {
            Some("Approved") => "approved",
            _ => "rejected",
        }
    } else if said.contains("Already *") {
        "already-decided"
    } else if said.contains("*Expired*") {
        "expired"
    } else if said.contains("may have been recorded") {
        "unconfirmed"
    } else if said.contains("Not recorded") {
        "not-recorded"
    } else {
        "answer:200"
    };
    if class == "not-recorded" && new_decision.is_some() {
        problems.push("said \"not recorded\" although a decision was recorded".to_owned());
    }
    (class.to_owned(), said)
}

/// One ECS pause round's outcome class and detail, and the contract's
/// problems: at most one `ContinueServiceDeployment` accepted, an answer
/// (HTTP 200) before Slack gives up, no secret in the logs, and never "not
/// done" when ECS acted.
pub fn classify_pause(
    standin: &AwsStandIn,
    stub: &Stub,
    (hits_before, _calls_before): (usize, usize),
    inv: &Invocation,
    logs: &str,
    problems: &mut Vec<String>,
) -> (String, String) {
    let acted: Vec<Report> = standin
        .reports()
        .into_iter()
        .filter(|r| matches!(r, Report::EcsContinue { .. }))
        .collect();
    if acted.len() > 1 {
        problems.push(format!("two decisions for one paused hook: {acted:?}"));
    }
    for secret in [SIGNING_SECRET, BOT_TOKEN] {
        if logs.contains(secret) {
            problems.push("a secret shows in the logs".to_owned());
        }
    }
    if logs.contains("payload=") || logs.contains("payload%3D") {
        problems.push("the request body shows in the logs".to_owned());
    }
    let response = match inv {
        Invocation::Response(v) => v,
        Invocation::Error {
            error_type,
            error_message,
        } => return (format!("error:{error_type}"), error_message.clone()),
        other => {
            problems.push(format!("no defined outcome: {other:?}"));
            return (format!("{other:?}"), String::new());
        }
    };
    let status = response["statusCode"].as_i64().unwrap_or_default();
    if status != 200 {
        return (
            format!("answer:{status}"),
            response["body"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let said = stub
        .requests()
        .into_iter()
        .skip(hits_before)
        .filter(|r| r.path == "/api/chat.update" || r.path.starts_with("/hooks/"))
        .map(|r| {
            let v = r.json();
            match v.pointer("/blocks") {
                Some(b) if r.path == "/api/chat.update" => b.to_string(),
                _ => v["text"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" / ");
    let class = if said.contains("*Continued* by") {
        "continued"
    } else if said.contains("Already *") {
        "already-decided"
    } else if said.contains("Not confirmed") {
        "unconfirmed"
    } else if said.contains("Nothing to decide") {
        "nothing-to-decide"
    } else if said.contains("Not done") {
        "not-done"
    } else {
        "answer:200"
    };
    if class == "not-done" && !acted.is_empty() {
        problems.push("said \"not done\" although ECS acted".to_owned());
    }
    if class == "continued" && acted.is_empty() {
        problems.push("said \"continued\" although ECS did not act".to_owned());
    }
    (class.to_owned(), said)
}
