//! The `approvals` column of the fault matrix: a signed Slack click on an
//! approval request's button, posted to the function URL, against the AWS
//! stand-in (the approval waits with the cell's id as its token; the
//! signing secret and the bot token are a scripted `GetSecretValue`) and
//! the cell's stub as Slack's Web API and response URLs.

use serde_json::{Value, json};
use tollgate_core::approval_request::{APPROVE, ApprovalRef};
use tollgate_test_support::http::Stub;
use tollgate_tests::slack_signed::{self, Clicker};
use tollgate_tests::{AwsStandIn, Invocation, Report};

const PIPELINE: &str = "fm-pipeline";
const EXECUTION: &str = "fm-execution-1";
const APPROVER: &str = "U0FAULTMATRIX";
const SIGNING_SECRET: &str = "fault-matrix-signing-secret-0123456789";
const BOT_TOKEN: &str = "xoxb-fault-matrix-bot-token";
const SECRET_ID: &str = "fm/slack";
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
            json!({"pipelines": {"*": {"users": [APPROVER]}}}).to_string(),
        ),
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

/// The cell's request.
pub fn event(kind: &str, server: &str) -> Value {
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
