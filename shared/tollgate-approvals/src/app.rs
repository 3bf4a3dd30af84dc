//! The endpoint: one function-URL request in, one answer out, within
//! Slack's 3 seconds.
//!
//! 1. Method and size: only `POST`, at most [`max_body`] bytes.
//! 2. Signature ([`crate::signature`]): anything unsigned, badly signed,
//!    stale or replayed is answered 401 and nothing else happens.
//! 3. Payload ([`crate::interaction`]): malformed or unknown → 400.
//! 4. Authorisation ([`crate::policy`]): not an approver → an ephemeral
//!    answer to the clicker; nothing changes.
//! 5. Reject opens the reason modal; Approve, and the modal's submission,
//!    decide: `GetPipelineState` (is this approval, of this execution,
//!    still waiting? its token), then `PutApprovalResult`. A decision that
//!    was already taken, lost a race, or expired ends in the message showing
//!    the recorded state, never in an error or a second result.
//! 6. One audit line per decision attempt (`audit: "approval"`: who, what,
//!    pipeline, stage, action, execution, result, Slack's id for the
//!    interaction and the function URL's request id).
//!
//! The whole request is bounded by [`ACK_BUDGET`] so Slack gets its answer
//! in time: every call runs under what is left of it. The decision calls
//! come first; the message update is the last thing done.

use crate::interaction::{self, Interaction, MessageRef, ModalMetadata, PayloadError, User};
use crate::policy::Policy;
use crate::ports::{ApprovalState, Chat, Pipelines, PortError, PutOutcome};
use crate::render::{self, escape, when};
use crate::signature::{self, SIGNATURE_ERROR_HINT, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::secret::Secret;
use tollgate_report::lambda::{CONFIGURATION_ERROR_ALERT, Function, InitFailure, Invocation};

/// Time from receiving a request to answering it (Slack waits 3 s).
pub const ACK_BUDGET: Duration = Duration::from_millis(2700);
/// Below this much time before the put deadline, `PutApprovalResult` is
/// not sent (the clicker is told to try again).
pub const MIN_PUT_TIME: Duration = Duration::from_millis(300);
/// Where an interaction's `response_url` must point (Slack's hooks host).
pub const DEFAULT_RESPONSE_URL_PREFIX: &str = "https://hooks.slack.com/";

/// The largest body read: 1 MiB, or less when the function's memory is
/// small (a request is held a few times over while it is decoded).
pub fn max_body(budget: &tollgate_core::memory::MemoryBudget) -> usize {
    let by_memory = budget.work_bytes() / 8;
    usize::try_from(by_memory.min(1 << 20)).unwrap_or(1 << 20)
}

/// The endpoint's configuration, resolved at init.
#[derive(Debug)]
pub struct Ready<P, C> {
    /// Slack's signing secret.
    pub signing_secret: Secret,
    /// Who may decide.
    pub policy: Policy,
    /// CodePipeline.
    pub pipelines: P,
    /// Slack.
    pub chat: C,
    /// `response_url`s must start with this.
    pub response_url_prefix: String,
    /// Body limit ([`max_body`]).
    pub max_body: usize,
    /// ECS pause hooks (Continue / Roll back), when services are configured.
    pub ecs: Option<crate::ecs_hook::EcsHooks>,
    /// Stage condition overrides, when pipelines are enabled for them.
    pub overrides: Option<crate::stage_condition::StageOverrides>,
}

/// The function: ready, or failed at init (every request is then answered
/// 503 and logged as a configuration error, so the failure is seen).
#[derive(Debug)]
pub struct Approvals<P, C> {
    state: Result<Ready<P, C>, InitFailure>,
}

impl<P, C> Approvals<P, C> {
    /// The function after init.
    pub fn new(state: Result<Ready<P, C>, InitFailure>) -> Self {
        Self { state }
    }

    /// The ready state, if init succeeded.
    pub fn ready(&self) -> Option<&Ready<P, C>> {
        self.state.as_ref().ok()
    }
}

/// Builds an answer.
pub fn answer(status: i64, body: Option<Value>) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    if let Some(b) = body {
        r.headers.insert(
            "content-type",
            aws_lambda_events::http::HeaderValue::from_static("application/json"),
        );
        r.body = Some(b.to_string());
    }
    r
}

fn text_answer(status: i64, text: &str) -> LambdaFunctionUrlResponse {
    answer(status, Some(json!({"error": text})))
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn header<'a>(req: &'a LambdaFunctionUrlRequest, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// What became of one decision attempt, for the audit line and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The decision was recorded.
    Recorded {
        /// Approved or rejected.
        approved: bool,
    },
    /// It had been decided already (double click, another approver).
    AlreadyDecided {
        /// Approved or rejected.
        approved: bool,
    },
    /// It expired (or failed) before the click.
    Expired,
    /// The approval waiting now belongs to another execution.
    OtherExecution,
    /// Not waiting for a decision (never started, or abandoned).
    NotWaiting,
    /// Refused before anything was called.
    Refused(String),
    /// CodePipeline could not be asked or told.
    Failed(String),
    /// `PutApprovalResult` gave no answer either way and the state read
    /// again does not show the decision: it may have been recorded
    /// ([`crate::confirm`]).
    Unconfirmed {
        /// What happened to the call.
        detail: String,
        /// Read again: `Some(true)` still waiting, `Some(false)` read but
        /// no longer waiting for this execution; `None` not readable.
        still_waiting: Option<bool>,
        /// Where to check (the execution in the console).
        console: Option<String>,
    },
}

impl Outcome {
    fn audit_result(&self) -> &'static str {
        match self {
            Outcome::Recorded { approved: true } => "approved",
            Outcome::Recorded { approved: false } => "rejected",
            Outcome::AlreadyDecided { approved: true } => "already-approved",
            Outcome::AlreadyDecided { approved: false } => "already-rejected",
            Outcome::Expired => "expired",
            Outcome::OtherExecution => "other-execution",
            Outcome::NotWaiting => "not-waiting",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::Unconfirmed { .. } => "unconfirmed",
        }
    }
}

fn audit(
    request_id: &str,
    what: &str,
    user: &User,
    approval: &ApprovalRef,
    outcome: &Outcome,
    slack_id: &str,
) {
    let detail = match outcome {
        Outcome::Refused(d) | Outcome::Failed(d) => d.as_str(),
        Outcome::Unconfirmed { detail, .. } => detail.as_str(),
        _ => "",
    };
    tracing::info!(
        audit = "approval",
        who = %user.id,
        who_name = user.name.as_deref().unwrap_or(""),
        team = user.team.as_deref().unwrap_or(""),
        what,
        pipeline = %approval.pipeline,
        stage = %approval.stage,
        action = %approval.action,
        execution = %approval.execution,
        result = outcome.audit_result(),
        detail,
        slack_request = slack_id,
        request_id,
        "approval decision"
    );
}

/// What every button's handling shares (approval, ECS pause, stage
/// condition): who may decide, and answering the clicker alone.
impl<P, C: Chat> Ready<P, C> {
    /// Whether `user` is one of `approvers`: named, or a member of one of
    /// their user groups (`usergroups.users.list`). Every button's
    /// authorisation asks this; a group that cannot be read refuses.
    pub(crate) async fn is_approver(
        &self,
        approvers: &crate::policy::Approvers,
        user: &str,
        deadline: Instant,
    ) -> Result<bool, String> {
        if approvers.users.iter().any(|u| u == user) {
            return Ok(true);
        }
        for group in &approvers.groups {
            match within(
                deadline,
                "usergroups.users.list",
                self.chat.group_members(group),
            )
            .await
            {
                Ok(members) if members.iter().any(|m| m == user) => return Ok(true),
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "Your membership of the approver group could not be checked ({})",
                        escape(&tollgate_core::text::ellipsize(&e.to_string(), 200))
                    ));
                }
            }
        }
        Ok(false)
    }

    /// Posts an ephemeral answer to a Slack response URL, if it is Slack's.
    pub(crate) async fn tell(
        &self,
        response_url: Option<&str>,
        text: &str,
        request_id: &str,
        deadline: Instant,
    ) {
        let Some(url) = response_url else { return };
        if !url.starts_with(&self.response_url_prefix) {
            tracing::warn!(request_id, "the response_url is not Slack's; not answered");
            return;
        }
        if let Err(e) = within(
            deadline,
            "response_url",
            self.chat.respond(url, render::ephemeral(text)),
        )
        .await
        {
            tracing::warn!(request_id, error = %e, "the clicker could not be answered");
        }
    }
}

/// Runs `f` within what is left before `deadline`.
pub(crate) async fn within<T>(
    deadline: Instant,
    what: &str,
    f: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, f).await {
        Ok(r) => r,
        Err(_) => Err(PortError::Failed(format!(
            "{what} did not answer within Slack's 3 seconds"
        ))),
    }
}

impl<P: Pipelines + 'static, C: Chat + 'static> Function for Approvals<P, C> {
    type Event = LambdaFunctionUrlRequest;
    type Output = LambdaFunctionUrlResponse;

    async fn handle(
        &self,
        req: LambdaFunctionUrlRequest,
        invocation: Invocation,
    ) -> Result<LambdaFunctionUrlResponse, lambda_runtime::Diagnostic> {
        let deadline = Instant::now() + ACK_BUDGET;
        let request_id = invocation.context.request_id.clone();
        let ready = match &self.state {
            Ok(r) => r,
            Err(failure) => {
                failure.log_refused(&request_id);
                return Ok(text_answer(
                    503,
                    "the approvals endpoint is misconfigured: see its logs",
                ));
            }
        };
        Ok(ready.serve(req, &request_id, deadline).await)
    }
}

impl<P: Pipelines, C: Chat> Ready<P, C> {
    /// One request.
    pub async fn serve(
        &self,
        req: LambdaFunctionUrlRequest,
        request_id: &str,
        deadline: Instant,
    ) -> LambdaFunctionUrlResponse {
        let method = req.request_context.http.method.as_deref().unwrap_or("");
        if !method.eq_ignore_ascii_case("POST") {
            tracing::warn!(request_id, "refused: not a POST");
            return text_answer(405, "only POST");
        }
        let raw = req.body.as_deref().unwrap_or("");
        if raw.len() > self.max_body.saturating_mul(2) {
            tracing::warn!(request_id, bytes = raw.len(), "refused: body too large");
            return text_answer(413, "the body is too large");
        }
        let body: Vec<u8> = if req.is_base64_encoded {
            match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(b) => b,
                Err(_) => {
                    // Not what Slack sends: nothing is trusted before the
                    // signature, so this is an unsigned request.
                    tracing::warn!(request_id, "refused: the body is not valid base64");
                    return text_answer(401, "the request is not signed");
                }
            }
        } else {
            raw.as_bytes().to_vec()
        };
        if body.len() > self.max_body {
            tracing::warn!(request_id, bytes = body.len(), "refused: body too large");
            return text_answer(413, "the body is too large");
        }
        if let Err(e) = signature::verify(
            &self.signing_secret,
            header(&req, TIMESTAMP_HEADER),
            header(&req, SIGNATURE_HEADER),
            &body,
            now_secs(),
        ) {
            tracing::warn!(request_id, error = %e, hint = SIGNATURE_ERROR_HINT, "refused: signature");
            return text_answer(401, "the request is not signed by Slack");
        }
        if let Some(click) = crate::ecs_hook::parse(&body) {
            return self.serve_pause(click, request_id, deadline).await;
        }
        if let Some(click) = crate::stage_condition::parse(&body) {
            return self.serve_override(click, request_id, deadline).await;
        }
        let interaction = match interaction::parse(&body) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(request_id, error = %e, "refused: payload");
                return text_answer(400, &bad_request_text(&e));
            }
        };
        self.act(interaction, request_id, deadline).await
    }

    async fn act(
        &self,
        i: Interaction,
        request_id: &str,
        deadline: Instant,
    ) -> LambdaFunctionUrlResponse {
        let what = match &i {
            Interaction::Approve { .. } => "approve",
            Interaction::RejectClicked { .. } => "open-reject",
            Interaction::Reject { .. } => "reject",
        };
        let approve = matches!(i, Interaction::Approve { .. });
        if let Err(refusal) = self
            .authorise(i.user(), i.approval(), approve, deadline)
            .await
        {
            let outcome = Outcome::Refused(refusal.clone());
            audit(
                request_id,
                what,
                i.user(),
                i.approval(),
                &outcome,
                i.slack_id(),
            );
            let text = format!(":no_entry: {refusal}. Nothing was changed.");
            return match &i {
                Interaction::Reject { .. } => answer(
                    200,
                    Some(json!({"response_action": "errors",
                                "errors": {tollgate_core::approval_request::REASON_INPUT: tollgate_core::text::ellipsize(&text, 150)}})),
                ),
                Interaction::Approve { response_url, .. }
                | Interaction::RejectClicked { response_url, .. } => {
                    self.tell(response_url.as_deref(), &text, request_id, deadline)
                        .await;
                    answer(200, None)
                }
            };
        }
        match i {
            Interaction::RejectClicked {
                user,
                approval,
                message,
                trigger_id,
                response_url,
                slack_id,
            } => {
                let meta = ModalMetadata {
                    r: approval.encode(),
                    c: message.channel.clone(),
                    t: message.ts.clone(),
                };
                let view = render::reject_modal(&approval, &meta);
                let opened = within(
                    deadline,
                    "views.open",
                    self.chat.open_view(&trigger_id, view),
                )
                .await;
                let outcome = match opened {
                    Ok(()) => Outcome::NotWaiting,
                    Err(e) => {
                        self.tell(
                            response_url.as_deref(),
                            &format!(":warning: The reject dialog could not be opened ({e}). Click Reject again."),
                            request_id,
                            deadline,
                        )
                        .await;
                        Outcome::Failed(e.to_string())
                    }
                };
                if let Outcome::Failed(_) = outcome {
                    audit(
                        request_id,
                        "open-reject",
                        &user,
                        &approval,
                        &outcome,
                        &slack_id,
                    );
                }
                answer(200, None)
            }
            Interaction::Approve {
                user,
                approval,
                message,
                blocks,
                response_url,
                slack_id,
            } => {
                let summary = format!("Approved in Slack by {} ({})", display(&user), user.id);
                let outcome = self.decide(&approval, true, &summary, deadline).await;
                audit(request_id, "approve", &user, &approval, &outcome, &slack_id);
                self.show(
                    &outcome,
                    &user,
                    &approval,
                    &message,
                    &blocks,
                    response_url.as_deref(),
                    None,
                    request_id,
                    deadline,
                )
                .await;
                answer(200, None)
            }
            Interaction::Reject {
                user,
                approval,
                message,
                reason,
                slack_id,
            } => {
                let summary = if reason.is_empty() {
                    format!("Rejected in Slack by {} ({})", display(&user), user.id)
                } else {
                    format!(
                        "Rejected in Slack by {} ({}): {reason}",
                        display(&user),
                        user.id
                    )
                };
                let outcome = self.decide(&approval, false, &summary, deadline).await;
                audit(request_id, "reject", &user, &approval, &outcome, &slack_id);
                // A view submission has no response URL: whatever did not
                // record a decision is said in the dialog, which stays open,
                // never by closing it as if the reject worked (review finding).
                let refused = match &outcome {
                    Outcome::Recorded { .. }
                    | Outcome::AlreadyDecided { .. }
                    | Outcome::Expired => None,
                    Outcome::OtherExecution => Some(
                        "Not rejected: this request is for another run; use that run's request."
                            .to_owned(),
                    ),
                    Outcome::NotWaiting => Some(
                        "Not rejected: this approval is not waiting for a decision.".to_owned(),
                    ),
                    Outcome::Refused(e) => Some(format!("Not rejected: {e}.")),
                    Outcome::Failed(e) => Some(format!("Not recorded: {e}. Try again.")),
                    // Short and complete: the dialog shows 150 characters
                    // and no link (the detail is in the audit line).
                    Outcome::Unconfirmed { .. } => {
                        Some(crate::confirm::DIALOG_UNCONFIRMED.to_owned())
                    }
                };
                if let Some(text) = refused {
                    return answer(
                        200,
                        Some(json!({"response_action": "errors",
                                    "errors": {tollgate_core::approval_request::REASON_INPUT:
                                        tollgate_core::text::ellipsize(&text, 150)}})),
                    );
                }
                self.show(
                    &outcome,
                    &user,
                    &approval,
                    &message,
                    &[],
                    None,
                    Some(&reason),
                    request_id,
                    deadline,
                )
                .await;
                // Closes the modal.
                answer(200, None)
            }
        }
    }

    /// Whether `user` may decide `approval`; the refusal says why.
    async fn authorise(
        &self,
        user: &User,
        approval: &ApprovalRef,
        approve: bool,
        deadline: Instant,
    ) -> Result<(), String> {
        let Some(approvers) = self.policy.for_pipeline(&approval.pipeline) else {
            return Err(format!(
                "Approvals for {} are not enabled in Slack (no entry in {})",
                escape(&approval.pipeline),
                crate::policy::VAR
            ));
        };
        if !self.is_approver(approvers, &user.id, deadline).await? {
            return Err(format!(
                "You are not an approver of {}",
                escape(&approval.pipeline)
            ));
        }
        if approve && approvers.author_may_not_approve {
            crate::author::check(
                &self.pipelines,
                &self.chat,
                approval,
                approvers.author_source().as_ref(),
                &user.id,
                deadline,
            )
            .await?;
        }
        Ok(())
    }

    /// Records the decision unless it is no longer wanted.
    pub async fn decide(
        &self,
        approval: &ApprovalRef,
        approved: bool,
        summary: &str,
        deadline: Instant,
    ) -> Outcome {
        let state = match within(
            deadline,
            "GetPipelineState",
            self.pipelines.approval_state(approval),
        )
        .await
        {
            Ok(s) => s,
            Err(PortError::NotFound(e)) => return Outcome::Refused(e),
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        if let Some(settled) = settled(&state, approval) {
            return settled;
        }
        let Some(token) = state.token.as_ref() else {
            return Outcome::NotWaiting;
        };
        let summary = tollgate_core::text::ellipsize(summary, 512);
        // Time is kept back for reading the state again if the answer is
        // unsure (crate::confirm).
        let put_deadline = deadline
            .checked_sub(crate::confirm::REREAD_RESERVE)
            .unwrap_or(deadline);
        let left = put_deadline.saturating_duration_since(Instant::now());
        if left < MIN_PUT_TIME {
            // Sent this late, it would likely land after we stop waiting
            // and leave the clicker unsure: not sent at all.
            return Outcome::Failed(
                "PutApprovalResult was not sent (too little of Slack's 3 seconds was left)"
                    .to_owned(),
            );
        }
        let put = match tokio::time::timeout(
            left,
            self.pipelines
                .put_result(approval, token, approved, &summary),
        )
        .await
        {
            Ok(answer) => answer,
            // The request may have been sent: unsure, never "not recorded".
            Err(_) => Ok(PutOutcome::Unsure(
                "PutApprovalResult did not answer in time".to_owned(),
            )),
        };
        match put {
            Ok(PutOutcome::Recorded) => Outcome::Recorded { approved },
            Ok(PutOutcome::Unsure(detail)) => {
                let now = within(
                    deadline,
                    "GetPipelineState",
                    self.pipelines.approval_state(approval),
                )
                .await
                .ok();
                crate::confirm::after_unsure(
                    now.as_ref(),
                    approval,
                    approved,
                    &summary,
                    &detail,
                    self.pipelines.console_url(approval),
                )
            }
            Ok(PutOutcome::AlreadyCompleted | PutOutcome::InvalidToken) => {
                // Someone decided first, or it expired meanwhile: show what
                // CodePipeline recorded.
                match within(
                    deadline,
                    "GetPipelineState",
                    self.pipelines.approval_state(approval),
                )
                .await
                {
                    Ok(now) => settled(&now, approval).unwrap_or(Outcome::NotWaiting),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Shows the outcome: the message shows a recorded or settled decision;
    /// the clicker alone hears about anything else.
    #[allow(clippy::too_many_arguments)]
    async fn show(
        &self,
        outcome: &Outcome,
        user: &User,
        approval: &ApprovalRef,
        message: &MessageRef,
        blocks: &[Value],
        response_url: Option<&str>,
        reason: Option<&str>,
        request_id: &str,
        deadline: Instant,
    ) {
        let at = when(now_secs());
        let text = match outcome {
            Outcome::Recorded { approved: true } => {
                format!(
                    ":white_check_mark: *Approved* by <@{}> at {at}",
                    escape(&user.id)
                )
            }
            Outcome::Recorded { approved: false } => match reason.filter(|r| !r.is_empty()) {
                Some(r) => format!(
                    ":x: *Rejected* by <@{}> at {at}: {}",
                    escape(&user.id),
                    escape(r)
                ),
                None => format!(":x: *Rejected* by <@{}> at {at}", escape(&user.id)),
            },
            Outcome::AlreadyDecided { .. } | Outcome::Expired => {
                // Filled in below from the recorded state.
                String::new()
            }
            Outcome::OtherExecution => {
                self.tell(
                    response_url,
                    ":information_source: This request is for another run: the approval waiting now belongs to another execution. Use that run's request. Nothing was changed.",
                    request_id,
                    deadline,
                )
                .await;
                return;
            }
            Outcome::NotWaiting => {
                self.tell(
                    response_url,
                    ":information_source: This approval is not waiting for a decision. Nothing was changed.",
                    request_id,
                    deadline,
                )
                .await;
                return;
            }
            Outcome::Unconfirmed {
                detail,
                still_waiting,
                console,
            } => {
                self.tell(
                    response_url,
                    &crate::confirm::unconfirmed_text(
                        detail,
                        *still_waiting,
                        console.as_deref(),
                        true,
                    ),
                    request_id,
                    deadline,
                )
                .await;
                return;
            }
            Outcome::Refused(e) | Outcome::Failed(e) => {
                self.tell(
                    response_url,
                    &format!(":warning: Not recorded: {}. Try again, or decide in the CodePipeline console.", escape(e)),
                    request_id,
                    deadline,
                )
                .await;
                return;
            }
        };
        let text = if text.is_empty() {
            match within(
                deadline,
                "GetPipelineState",
                self.pipelines.approval_state(approval),
            )
            .await
            {
                Ok(state) => recorded_text(&state),
                Err(_) => return,
            }
        } else {
            text
        };
        let (Some(channel), Some(ts)) = (message.channel.as_deref(), message.ts.as_deref()) else {
            self.tell(response_url, &text, request_id, deadline).await;
            return;
        };
        let body = render::decided(blocks, approval, &text);
        if let Err(e) = within(deadline, "chat.update", self.chat.update(channel, ts, body)).await {
            tracing::warn!(request_id, error = %e, "the request message could not be updated; the decision stands");
        }
    }
}

/// The state as the message shows it after someone else's decision.
pub fn recorded_text(state: &ApprovalState) -> String {
    let at = state
        .changed_at
        .map(when)
        .unwrap_or_else(|| "an unknown time".into());
    let summary = state
        .summary
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| format!(": {}", escape(&tollgate_core::text::ellipsize(s, 600))))
        .unwrap_or_default();
    match state.status.as_deref() {
        Some("Succeeded") => format!(":white_check_mark: Already *approved* at {at}{summary}"),
        Some("Failed") if state.error.is_some() => {
            let why = state
                .error
                .as_deref()
                .map(|e| escape(&tollgate_core::text::ellipsize(e, 300)))
                .unwrap_or_default();
            format!(":hourglass: *Expired* at {at} ({why}): nothing can be decided here any more")
        }
        Some("Failed") => format!(":x: Already *rejected* at {at}{summary}"),
        Some(other) => format!(
            ":information_source: The approval is {} since {at}",
            escape(other)
        ),
        None => ":information_source: The approval has not run".to_owned(),
    }
}

/// A state that needs no `PutApprovalResult`: another execution, decided,
/// or expired.
pub(crate) fn settled(state: &ApprovalState, approval: &ApprovalRef) -> Option<Outcome> {
    if state.execution.as_deref() != Some(approval.execution.as_str()) {
        return Some(Outcome::OtherExecution);
    }
    match state.status.as_deref() {
        Some("InProgress") => None,
        Some("Succeeded") => Some(Outcome::AlreadyDecided { approved: true }),
        Some("Failed") if state.error.is_some() => Some(Outcome::Expired),
        Some("Failed") => Some(Outcome::AlreadyDecided { approved: false }),
        _ => Some(Outcome::NotWaiting),
    }
}

fn display(user: &User) -> String {
    user.name
        .as_deref()
        .map(|n| tollgate_core::text::ellipsize(n, 60))
        .unwrap_or_else(|| user.id.clone())
}

fn bad_request_text(e: &PayloadError) -> String {
    e.to_string()
}

/// Logged with the configuration-error alert when init failed.
pub fn init_failure(error_type: &str, message: impl Into<String>) -> InitFailure {
    let f = InitFailure::new("approvals", error_type, message);
    tracing::debug!(alert = CONFIGURATION_ERROR_ALERT, "approvals init failed");
    f
}
