//! The manual approval between staging and production (`Approval ›
//! Release`): the pipeline waits until a person decides in Slack.
//!
//! The rehearsal plays CodePipeline's side (the action waits with a token,
//! `GetPipelineState` shows it, `PutApprovalResult` is validated by the
//! stand-in) and Slack's (a click on the request's buttons, signed with the
//! app's signing secret as Slack signs it, posted to the function URL). The
//! real `approvals` binary decides: it checks the signature and the
//! approvers, reads the token, records the decision and updates the
//! request message through a local Slack Web API.
//!
//! - Healthy runs: a forged click (wrong signing secret) is refused with
//!   401 first, then the approver's signed click approves, and the release
//!   goes on to production.
//! - `--reject`: the approver clicks Reject, the reason dialog opens
//!   (`views.open`), and its submission rejects with the reason; the
//!   pipeline stops at `Approval › Release`, and the notifier's failure
//!   messages show the reason.
//!
//! The approval request itself (the message with the buttons) is posted
//! by the notifier's bot in bot mode; this run's Slack is a webhook, so the
//! click is made on a request built here with the same button value
//! (`tollgate_core::approval_request`: pipeline, stage, action, execution;
//! never the token).

use super::*;
use crate::slack_signed::{self, Clicker};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tollgate_core::approval_request::{APPROVE, ApprovalRef, BLOCK, REJECT};

/// The approval's stage and action.
pub(super) const STAGE: &str = "Approval";
/// The approval's action.
pub(super) const ACTION: &str = "Release";
const KIND: (&str, &str, &str) = ("AWS", "Manual", "Approval");
const APPROVER: &str = "U0REHEARSAL1";
const APPROVER_NAME: &str = "ana";
const CHANNEL: &str = "C0REHEARSAL1";
const REQUEST_TS: &str = "1700000000.000001";
const SLACK_APP_SECRET: &str = "tollgate/rehearsal/slack-app";
const SIGNING_SECRET: &str = "rehearsal-signing-secret-7d2f9a41c3e8b605";
const BOT_TOKEN: &str = "xoxb-rehearsal-0000000000-bot-token";
/// The reason given in the reject dialog (`--reject`).
pub(super) const REJECT_REASON: &str = "staging shows slow order history pages; needs a fix first";

/// A local Slack Web API for the approvals function: every request is
/// recorded and answered as Slack does (`{"ok": true}` from the Web API,
/// `ok` from a response URL).
struct SlackApi {
    base: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for SlackApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SlackApi {
    async fn start() -> Result<SlackApi, ServeError> {
        let err = |e: std::io::Error| ServeError {
            what: "Slack Web API".into(),
            detail: e.to_string(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let store = store.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                                Value::String(String::from_utf8_lossy(&body).into_owned())
                            });
                            let answer: &'static [u8] = if path.starts_with("/api/") {
                                br#"{"ok":true}"#
                            } else {
                                b"ok"
                            };
                            store
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((path, body));
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(answer),
                            )))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(SlackApi {
            base: format!("http://{addr}"),
            received,
            server,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn received(&self) -> Vec<(String, Value)> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The request message's blocks (the notifier's layout, with its buttons).
fn request_blocks(approval: &ApprovalRef) -> Vec<Value> {
    let value = approval.encode();
    vec![
        json!({"type": "section", "block_id": "tollgate.approval.request",
               "text": {"type": "mrkdwn", "text": format!(
                   ":raised_hand: Manual approval waiting: *{PIPELINE} › {STAGE} › {ACTION}*")}}),
        json!({"type": "actions", "block_id": BLOCK, "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}, "value": value},
            {"type": "button", "action_id": REJECT, "style": "danger",
             "text": {"type": "plain_text", "text": "Reject…"}, "value": value}]}),
    ]
}

/// `GetPipelineState` as CodePipeline shows the approval action.
fn pipeline_state(
    execution: &str,
    action_execution: &str,
    status: &str,
    token: Option<&str>,
    summary: Option<&str>,
) -> Value {
    let mut latest = json!({"actionExecutionId": action_execution, "status": status,
                            "lastStatusChange": events::now()});
    if let Some(t) = token {
        latest["token"] = json!(t);
    }
    if let Some(s) = summary {
        latest["summary"] = json!(s);
    }
    json!({"pipelineName": PIPELINE, "pipelineVersion": 3, "stageStates": [{
        "stageName": STAGE,
        "latestExecution": {"pipelineExecutionId": execution,
                            "status": if status == "InProgress" { "InProgress" } else { status }},
        "actionStates": [{"actionName": ACTION, "latestExecution": latest}]
    }]})
}

impl World {
    /// `Approval › Release`: waits for the signed click, decided by the real
    /// approvals function. `Some` when the release stopped here.
    pub(super) async fn approval(&mut self) -> Result<Option<Verdict>, RehearsalError> {
        let execution = self.run.execution_id.clone();
        self.run.record(pipeline::action_run(
            STAGE,
            ACTION,
            KIND,
            RunStatus::InProgress,
            None,
        ));
        // The action execution id the scripted ListActionExecutions gives
        // this action (codepipeline.rs: `<execution[..8]>-<index>`).
        let index = self
            .run
            .actions
            .iter()
            .position(|a| a.stage == STAGE && a.action == ACTION)
            .unwrap_or_default();
        let action_execution = format!("{}-{index:04}", short(&execution));
        let token = format!("rehearsal-approval-{}", events::uuid_like());
        self.standin.register_approval(&token);
        self.standin.script(
            "GetPipelineState",
            vec![pipeline_state(
                &execution,
                &action_execution,
                "InProgress",
                Some(&token),
                None,
            )],
        );
        let ev = events::action_state(
            PIPELINE,
            &execution,
            &events::ActionChange {
                stage: STAGE,
                action: ACTION,
                state: "STARTED",
                kind: KIND,
                summary: None,
                external_id: None,
                error_code: None,
            },
        );
        self.notify(&format!("action {STAGE} › {ACTION} STARTED"), ev)
            .await?;
        self.t.step(
            "codepipeline",
            &format!(
                "{STAGE} › {ACTION}: manual approval, waiting for a decision (the token stays in CodePipeline)"
            ),
        );
        self.t.detail("the notifier's bot posts the request with Approve / Reject buttons in bot mode; here Slack is a webhook, so the click is made on a request with the same buttons (their value: pipeline, stage, action, execution; never the token)");

        let (slack, mut approvals) = self.start_approvals().await?;
        let approval = ApprovalRef::new(PIPELINE, STAGE, ACTION, &execution);
        let hooks = slack.url("/hooks/actions/T0REHEARSE/1/rehearsal");
        let who = Clicker {
            user: APPROVER,
            name: APPROVER_NAME,
            channel: CHANNEL,
            ts: REQUEST_TS,
            response_url: &hooks,
        };
        let blocks = request_blocks(&approval);
        let reject = self.scenario == Scenario::Rejected;

        // A forged click first: signed with another secret.
        let forged = slack_signed::signed_event(
            &slack_signed::click(APPROVE, &approval, &who, &blocks),
            "not-the-apps-signing-secret-00000",
            slack_signed::now(),
        );
        let status = self
            .click(&mut approvals, "a forged Approve click", forged)
            .await?;
        self.t.step(
            "approvals",
            &format!("HTTP {status}: the signature does not match the app's signing secret; nothing was read or decided"),
        );
        let calls = self.new_calls();
        self.t
            .detail(&format!("AWS calls: {}", describe_calls(&calls)));

        let slack_seen = slack.received().len();
        let summary = if reject {
            let ev = slack_signed::signed_event(
                &slack_signed::click(REJECT, &approval, &who, &blocks),
                SIGNING_SECRET,
                slack_signed::now(),
            );
            let label = format!("{APPROVER_NAME} ({APPROVER}) clicks Reject…");
            let status = self.click(&mut approvals, &label, ev).await?;
            let opened = slack
                .received()
                .iter()
                .skip(slack_seen)
                .any(|(p, _)| p == "/api/views.open");
            self.t.step(
                "approvals",
                &format!(
                    "HTTP {status}: {}; nothing is decided before the reason",
                    if opened {
                        "views.open: the reason dialog opens"
                    } else {
                        "the reason dialog did NOT open"
                    }
                ),
            );
            let ev = slack_signed::signed_event(
                &slack_signed::reject_submission(&approval, &who, REJECT_REASON),
                SIGNING_SECRET,
                slack_signed::now(),
            );
            let label = format!("{APPROVER_NAME} submits the dialog: \"{REJECT_REASON}\"");
            self.decide(&mut approvals, &label, ev, &token).await?
        } else {
            let ev = slack_signed::signed_event(
                &slack_signed::click(APPROVE, &approval, &who, &blocks),
                SIGNING_SECRET,
                slack_signed::now(),
            );
            let label = format!("{APPROVER_NAME} ({APPROVER}) clicks Approve");
            self.decide(&mut approvals, &label, ev, &token).await?
        };
        for (path, body) in slack.received().into_iter().skip(slack_seen) {
            if path == "/api/chat.update" {
                self.t
                    .step("approvals", "→ Slack chat.update of the request message:");
                self.t.quote(&sink::slack_text(&body));
            }
        }
        if let Some(audit) = logs::records(&approvals.logs())
            .into_iter()
            .rev()
            .find(|r| r.text("audit").as_deref() == Some("approval"))
        {
            self.t.detail(&format!(
                "audit line: who={} what={} result={} execution={}",
                audit.text("who").unwrap_or_default(),
                audit.text("what").unwrap_or_default(),
                audit.text("result").unwrap_or_default(),
                short(&audit.text("execution").unwrap_or_default())
            ));
        }
        let log = self.out_dir.join("approvals.log");
        if let Err(e) = std::fs::write(&log, approvals.logs()) {
            eprintln!("cannot write {}: {e}", log.display());
        }

        // CodePipeline moves on (or stops) with the recorded result.
        let Some((approved, summary)) = summary else {
            return Err(RehearsalError::Invocation {
                function: "approvals",
                what: "the approval".into(),
                outcome: "no decision was recorded".into(),
                log: log.display().to_string(),
            });
        };
        let status = if approved { "Succeeded" } else { "Failed" };
        self.standin.script(
            "GetPipelineState",
            vec![pipeline_state(
                &execution,
                &action_execution,
                status,
                None,
                Some(&summary),
            )],
        );
        let mut run = pipeline::action_run(
            STAGE,
            ACTION,
            KIND,
            if approved {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            Some(summary.clone()),
        );
        if !approved {
            run.error = Some(("ApprovalRejected".into(), summary.clone()));
        }
        self.run.record(run);
        let state = if approved { "SUCCEEDED" } else { "FAILED" };
        self.t.step(
            "codepipeline",
            &format!(
                "{STAGE} › {ACTION} {}: {summary}",
                if approved { "approved" } else { "REJECTED" }
            ),
        );
        let ev = events::action_state(
            PIPELINE,
            &execution,
            &events::ActionChange {
                stage: STAGE,
                action: ACTION,
                state,
                kind: KIND,
                summary: Some(&summary),
                external_id: None,
                error_code: (!approved).then_some("ApprovalRejected"),
            },
        );
        self.notify(&format!("action {STAGE} › {ACTION} {state}"), ev)
            .await?;
        if approved {
            return Ok(None);
        }
        self.fail_pipeline().await?;
        Ok(Some(Verdict::Stopped {
            stage: STAGE.to_owned(),
            action: ACTION.to_owned(),
            reason: summary,
            rolled_back: false,
        }))
    }

    /// The approvals function (its secrets in moto's Secrets Manager) and
    /// the Slack Web API it talks to.
    async fn start_approvals(&mut self) -> Result<(SlackApi, LocalLambda), RehearsalError> {
        let slack = SlackApi::start().await?;
        aws_sdk_secretsmanager::Client::new(&self.seed_sdk)
            .create_secret()
            .name(SLACK_APP_SECRET)
            .secret_string(
                json!({"signing_secret": SIGNING_SECRET, "bot_token": BOT_TOKEN}).to_string(),
            )
            .send()
            .await
            .map_err(|e| SeedError {
                step: "storing the Slack app's signing secret and bot token in Secrets Manager"
                    .into(),
                detail: e.to_string(),
            })?;
        let mut env = self.standin.lambda_env();
        env.extend(
            [
                ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
                (
                    "TOLLGATE_SLACK_SIGNING_SECRET",
                    format!("secretsmanager:{SLACK_APP_SECRET}#signing_secret"),
                ),
                (
                    "TOLLGATE_SLACK_BOT_TOKEN",
                    format!("secretsmanager:{SLACK_APP_SECRET}#bot_token"),
                ),
                (
                    "TOLLGATE_APPROVERS",
                    json!({"pipelines": {PIPELINE: {"users": [APPROVER]}}}).to_string(),
                ),
                ("TOLLGATE_SLACK_API_URL", slack.url("/api")),
                ("TOLLGATE_SLACK_RESPONSE_URL_PREFIX", slack.url("/hooks/")),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let binary = paths::function_binary("approvals");
        let f = LocalLambda::spawn(&binary, &env).await;
        let Some(init) = f.wait_init(Duration::from_secs(20)).await else {
            let log = self.out_dir.join("approvals.log");
            let _ = std::fs::write(&log, f.logs());
            return Err(RehearsalError::Init {
                function: "approvals",
                detail: f
                    .init_error()
                    .map(|e| format!("{}: {}", e.error_type, e.error_message))
                    .unwrap_or_else(|| "it did not ask for an event".into()),
                log: log.display().to_string(),
            });
        };
        self.t.step(
            "setup",
            &format!(
                "approvals ready behind its function URL: init {:.1} ms; signing secret and bot token from Secrets Manager ({SLACK_APP_SECRET}); approvers of {PIPELINE}: {APPROVER}",
                init.as_secs_f64() * 1000.0
            ),
        );
        let _ = self.new_calls();
        Ok((slack, f))
    }

    /// Posts one Slack request to the function URL; its HTTP status.
    async fn click(
        &mut self,
        approvals: &mut LocalLambda,
        label: &str,
        event: Value,
    ) -> Result<i64, RehearsalError> {
        let ts = event["headers"]["x-slack-request-timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.t.step(
            "slack",
            &format!("{label}: POST to the approvals function URL, x-slack-request-timestamp {ts}"),
        );
        let outcome = approvals.invoke(event, INVOKE_DEADLINE).await;
        match &outcome {
            Invocation::Response(v) => Ok(v["statusCode"].as_i64().unwrap_or_default()),
            other => Err(RehearsalError::Invocation {
                function: "approvals",
                what: label.to_owned(),
                outcome: format!("{other:?}"),
                log: self.log_path("approvals"),
            }),
        }
    }

    /// A deciding request: exactly one `PutApprovalResult` for `token`.
    /// Returns (approved, summary).
    async fn decide(
        &mut self,
        approvals: &mut LocalLambda,
        label: &str,
        event: Value,
        token: &str,
    ) -> Result<Option<(bool, String)>, RehearsalError> {
        let status = self.click(approvals, label, event).await?;
        let reports: Vec<Report> = self
            .standin
            .reports_for(token)
            .into_iter()
            .filter(|r| matches!(r, Report::Approval { .. }))
            .collect();
        let decided = match reports.as_slice() {
            [
                Report::Approval {
                    status: s, summary, ..
                },
            ] => {
                self.t.step(
                    "approvals",
                    &format!("HTTP {status}: PutApprovalResult {s}: \"{summary}\""),
                );
                Some((s == "Approved", summary.clone()))
            }
            [] => {
                self.t
                    .step("approvals", &format!("HTTP {status}: nothing was recorded"));
                None
            }
            other => {
                return Err(RehearsalError::Reports {
                    what: label.to_owned(),
                    id: "the approval token".into(),
                    count: other.len(),
                    reports: format!("{} approval results", other.len()),
                });
            }
        };
        let calls = self.new_calls();
        self.t
            .detail(&format!("AWS calls: {}", describe_calls(&calls)));
        Ok(decided)
    }
}
