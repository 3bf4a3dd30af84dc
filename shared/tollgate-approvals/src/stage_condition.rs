//! **Override** for a CodePipeline stage condition that is still being
//! evaluated (the notifier's bot posts the button, `tollgate_core::
//! stage_condition_request`, when a stage's entry or on-success condition
//! is in progress for an execution).
//!
//! A click is verified exactly like an approval's (the endpoint checked
//! Slack's signature before this module sees it), then:
//! 1. the button value names a pipeline, a stage, an execution and
//!    `BEFORE_ENTRY` or `ON_SUCCESS` ([`ConditionRef::decode`]); the
//!    on-failure condition cannot be overridden (CodePipeline's
//!    `ConditionType` has no such value);
//! 2. the pipeline is one overrides are enabled for ([`PIPELINES_VAR`], the
//!    template's `ApprovalPipelineArns` when `ApprovalStageOverrides` is
//!    `true`, which is also all the role may override);
//! 3. the clicker is an approver of that pipeline (the approvers document's
//!    `pipelines`, `crate::policy`); a refusal answers the clicker alone;
//! 4. `GetPipelineState`: that very condition of that stage is
//!    `InProgress` for the button's execution. Anything else ends with the
//!    message showing what CodePipeline recorded (passed, overridden,
//!    failed, another execution) and nothing is called. A condition that
//!    **failed** is not offered: its result (fail or skip the stage, roll
//!    back) has already been applied, and `OverrideStageCondition` answers
//!    `ConditionNotOverridableException`; retrying the stage is the
//!    console's job;
//! 5. `OverrideStageCondition`, sent once. A refusal
//!    (`ConditionNotOverridableException`,
//!    `NotLatestPipelineExecutionException`) is followed by a read and the
//!    recorded state is shown; an answer-less call (timeout, lost
//!    connection, 5xx) is read again too: `Overridden` → done by this
//!    clicker, else "may have been overridden", never "not done";
//! 6. one audit line (`audit: "stage-condition"`: who, pipeline, stage,
//!    condition, execution, result, Slack's id, the request id), and the
//!    message shows who overrode and when (CodePipeline records no Slack
//!    user).
//!
//! Assumed from the API reference, not verified against CodePipeline: the
//! entry condition's execution is the stage's inbound execution (else its
//! latest), the on-success condition's is the stage's latest execution
//! (`StageConditionState` carries no execution id).

use crate::app::{Ready, answer, within};
use crate::interaction::{ButtonClick, button_click, payload_field, str_at};
use crate::ports::{Chat, PortError};
use crate::render::{escape, when};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::stage_condition_request::{
    BLOCK, ConditionRef, ConditionValueError, OVERRIDE, pipeline_names,
};
use tollgate_core::text::ellipsize;

/// The pipelines whose stage conditions may be overridden: pipeline ARNs
/// (or names), comma-separated (the template passes `ApprovalPipelineArns`
/// when `ApprovalStageOverrides` is `true`). Empty or unset: none.
pub const PIPELINES_VAR: &str = "TOLLGATE_APPROVAL_OVERRIDE_PIPELINES";
/// `block_id` of the outcome section this module writes.
pub const OUTCOME_BLOCK: &str = "tollgate.stage_condition.outcome";

/// A boxed future (the port is used as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One rule of a condition as `GetPipelineState` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleView {
    /// The rule's name.
    pub name: String,
    /// Its latest status (`InProgress`, `Failed`, `Succeeded`, …).
    pub status: Option<String>,
    /// Its latest summary.
    pub summary: Option<String>,
}

/// A stage's condition as `GetPipelineState` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConditionView {
    /// The pipeline execution the condition is evaluated for (see the
    /// module's assumption); `None` when the stage shows none.
    pub execution: Option<String>,
    /// `InProgress`, `Failed`, `Errored`, `Succeeded`, `Cancelled`,
    /// `Abandoned`, `Overridden`; `None` when the stage shows no such
    /// condition state.
    pub status: Option<String>,
    /// The conditions' summary.
    pub summary: Option<String>,
    /// When a condition last changed (Unix seconds).
    pub changed_at: Option<i64>,
    /// The rules.
    pub rules: Vec<RuleView>,
}

/// What `OverrideStageCondition` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideAnswer {
    /// Accepted.
    Accepted,
    /// Refused because the condition can no longer be overridden
    /// (`ConditionNotOverridableException`,
    /// `NotLatestPipelineExecutionException`): the code.
    NotOverridable(String),
    /// No answer either way (timeout, lost connection, 5xx): CodePipeline
    /// may have acted. What happened, never a request value.
    Unsure(String),
}

/// CodePipeline's stage conditions.
pub trait StageConditions: Send + Sync + std::fmt::Debug {
    /// `GetPipelineState`: the condition `c` names, of its stage.
    fn condition<'a>(
        &'a self,
        c: &'a ConditionRef,
    ) -> BoxFuture<'a, Result<ConditionView, PortError>>;

    /// `OverrideStageCondition`.
    fn override_condition<'a>(
        &'a self,
        c: &'a ConditionRef,
    ) -> BoxFuture<'a, Result<OverrideAnswer, PortError>>;
}

/// The override side of the endpoint: the port and the enabled pipelines.
#[derive(Debug, Clone)]
pub struct StageOverrides {
    /// CodePipeline.
    pub conditions: Arc<dyn StageConditions>,
    /// Pipeline names ([`PIPELINES_VAR`]).
    pub pipelines: Vec<String>,
}

/// Reads [`PIPELINES_VAR`]: pipeline ARNs
/// (`arn:<partition>:codepipeline:<region>:<account>:<name>`) or names.
/// Unset or empty: none (Override clicks are refused).
pub fn pipelines_from_env(env: &impl Env) -> Result<Vec<String>, ConfigError> {
    let raw = env.get(PIPELINES_VAR).unwrap_or_default();
    pipeline_names(&raw).map_err(|bad| {
        ConfigError::invalid(
            PIPELINES_VAR,
            &bad,
            "not a pipeline ARN or name",
            "arn:aws:codepipeline:eu-west-1:111122223333:pay-prod (the template's ApprovalPipelineArns)",
        )
    })
}

/// Every pipeline overrides are enabled for needs approvers (its own
/// entry or `*`): checked at init, as for ECS services.
pub fn check_approvers(
    pipelines: &[String],
    policy: &crate::policy::Policy,
) -> Result<(), ConfigError> {
    match pipelines.iter().find(|p| policy.for_pipeline(p).is_none()) {
        None => Ok(()),
        Some(missing) => Err(ConfigError::invalid(
            PIPELINES_VAR,
            missing,
            format!(
                "{missing} has no approvers: {} has no entry for it under pipelines (and no \"*\")",
                crate::policy::VAR
            ),
            format!(
                "an entry {{\"pipelines\": {{\"{missing}\": {{\"users\": [...]}}}}}} in {}",
                crate::policy::VAR
            ),
        )),
    }
}

/// A click on Override.
#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    /// Who clicked, on which message ([`ButtonClick`]).
    pub button: ButtonClick,
    /// The condition.
    pub condition: ConditionRef,
}

/// A click that is ours but malformed (HTTP 400; never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClickError {
    /// A field Slack always sends is missing.
    #[error("the payload has no {0}")]
    Missing(&'static str),
    /// The button value is not a condition reference.
    #[error("{0}")]
    Value(#[from] ConditionValueError),
}

/// An Override click, if the (signed) body is one; `None` for anything
/// else (the other parsers answer it).
pub fn parse(body: &[u8]) -> Option<Result<Click, ClickError>> {
    let v = payload_field(body).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("block_actions") {
        return None;
    }
    let action = v.pointer("/actions/0")?;
    if str_at(action, "/action_id")? != OVERRIDE {
        return None;
    }
    Some(click(&v, action))
}

fn click(v: &Value, action: &Value) -> Result<Click, ClickError> {
    let button = button_click(v, action).map_err(|_| ClickError::Missing("user.id"))?;
    let value = str_at(action, "/value").ok_or(ClickError::Missing("the button value"))?;
    let condition = ConditionRef::decode(value)?;
    Ok(Click { button, condition })
}

/// What became of one click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideOutcome {
    /// CodePipeline accepted the override.
    Overridden,
    /// Overridden before this click (a double click, another approver).
    AlreadyOverridden,
    /// The condition passed on its own.
    AlreadyPassed,
    /// The condition failed (or errored): its result applied; not
    /// overridable.
    ConditionFailed,
    /// The stage's condition is now evaluated for another execution.
    OtherExecution,
    /// Nothing to override (cancelled, abandoned, never evaluated): why.
    NotWaiting(String),
    /// Refused before CodePipeline was asked to change anything.
    Refused(String),
    /// CodePipeline could not be asked or told.
    Failed(String),
    /// `OverrideStageCondition` may have gone through, and reading the
    /// state again did not show it: never "not done".
    Unsure(String),
}

impl OverrideOutcome {
    fn audit_result(&self) -> &'static str {
        match self {
            Self::Overridden => "overridden",
            Self::AlreadyOverridden => "already-overridden",
            Self::AlreadyPassed => "already-passed",
            Self::ConditionFailed => "condition-failed",
            Self::OtherExecution => "other-execution",
            Self::NotWaiting(_) => "not-waiting",
            Self::Refused(_) => "refused",
            Self::Failed(_) => "failed",
            Self::Unsure(_) => "unsure",
        }
    }
}

fn audit(request_id: &str, c: &Click, outcome: &OverrideOutcome) {
    let detail = match outcome {
        OverrideOutcome::Refused(d)
        | OverrideOutcome::Failed(d)
        | OverrideOutcome::NotWaiting(d)
        | OverrideOutcome::Unsure(d) => d.as_str(),
        _ => "",
    };
    tracing::info!(
        audit = "stage-condition",
        who = %c.button.user.id,
        who_name = c.button.user.name.as_deref().unwrap_or(""),
        team = c.button.user.team.as_deref().unwrap_or(""),
        what = "override",
        pipeline = %c.condition.pipeline,
        stage = %c.condition.stage,
        condition = c.condition.kind.api_name(),
        execution = %c.condition.execution,
        result = outcome.audit_result(),
        detail,
        slack_request = %c.button.slack_id,
        request_id,
        "stage condition override"
    );
}

/// A state that needs no `OverrideStageCondition`, or `None` when the
/// condition is in progress for the button's execution.
pub fn settled(view: &ConditionView, c: &ConditionRef) -> Option<OverrideOutcome> {
    if view.execution.as_deref() != Some(c.execution.as_str()) {
        return Some(match view.execution {
            Some(_) => OverrideOutcome::OtherExecution,
            None => OverrideOutcome::NotWaiting(format!(
                "the stage shows no execution at its {}",
                c.kind.words()
            )),
        });
    }
    match view.status.as_deref() {
        Some("InProgress") => None,
        Some("Overridden") => Some(OverrideOutcome::AlreadyOverridden),
        Some("Succeeded") => Some(OverrideOutcome::AlreadyPassed),
        Some("Failed" | "Errored") => Some(OverrideOutcome::ConditionFailed),
        Some(other) => Some(OverrideOutcome::NotWaiting(format!(
            "the {} is {}",
            c.kind.words(),
            ellipsize(other, 40)
        ))),
        None => Some(OverrideOutcome::NotWaiting(format!(
            "the stage shows no {} state",
            c.kind.words()
        ))),
    }
}

/// The rules in a line each ("• name: status: summary"), escaped, at most
/// five (CodePipeline's limit per condition) and 1,500 characters.
pub fn rules_text(rules: &[RuleView]) -> String {
    let lines: Vec<String> = rules
        .iter()
        .take(5)
        .map(|r| {
            let mut line = format!("• *{}*", escape(&ellipsize(&r.name, 100)));
            if let Some(s) = r.status.as_deref() {
                line.push_str(&format!(": {}", escape(&ellipsize(s, 20))));
            }
            if let Some(s) = r.summary.as_deref().filter(|s| !s.is_empty()) {
                line.push_str(&format!(": {}", escape(&ellipsize(s, 250))));
            }
            line
        })
        .collect();
    ellipsize(&lines.join("\n"), 1500)
}

/// The recorded state in words, for the message.
pub fn recorded_text(outcome: &OverrideOutcome, view: &ConditionView, c: &ConditionRef) -> String {
    let at = view
        .changed_at
        .map(when)
        .unwrap_or_else(|| "an unknown time".into());
    let what = c.kind.words();
    let stage = escape(&c.stage);
    match outcome {
        OverrideOutcome::AlreadyOverridden => {
            format!(
                ":fast_forward: The {what} of *{stage}* was already *overridden* (updated {at})"
            )
        }
        OverrideOutcome::AlreadyPassed => {
            format!(":white_check_mark: The {what} of *{stage}* already *passed* (updated {at})")
        }
        OverrideOutcome::ConditionFailed => {
            let rules = rules_text(&view.rules);
            format!(
                ":x: The {what} of *{stage}* *failed* at {at}; its result has been applied and it cannot be overridden (retry the stage in the CodePipeline console){}",
                if rules.is_empty() {
                    String::new()
                } else {
                    format!("\n{rules}")
                }
            )
        }
        OverrideOutcome::OtherExecution => format!(
            ":information_source: The {what} of *{stage}* is now evaluated for another execution; this run's is over. Nothing was changed"
        ),
        OverrideOutcome::NotWaiting(why) => format!(
            ":information_source: Nothing to override: {}",
            escape(&ellipsize(why, 300))
        ),
        _ => String::new(),
    }
}

/// What an unsure `OverrideStageCondition` came to, from the state read
/// again: `Overridden` for this execution → done by this clicker; anything
/// else → unsure.
pub fn after_unsure(now: &ConditionView, c: &ConditionRef, why: &str) -> OverrideOutcome {
    if now.execution.as_deref() == Some(c.execution.as_str())
        && now.status.as_deref() == Some("Overridden")
    {
        OverrideOutcome::Overridden
    } else {
        OverrideOutcome::Unsure(why.to_owned())
    }
}

/// Whether the message already carries an outcome this module wrote.
pub fn has_outcome(blocks: &[Value]) -> bool {
    crate::render::has_block(blocks, OUTCOME_BLOCK)
}

/// The request message with its button replaced by `outcome`.
pub fn decided(blocks: &[Value], c: &ConditionRef, outcome: &str) -> Value {
    let name = format!("{} › {}", escape(&c.pipeline), escape(&c.stage));
    crate::render::with_outcome(
        blocks,
        (BLOCK, OUTCOME_BLOCK),
        &format!("*{name}*: {} in progress", c.kind.words()),
        &name,
        outcome,
    )
}

impl<P, C: Chat> Ready<P, C> {
    /// One Override click (already signature-checked).
    pub async fn serve_override(
        &self,
        click: Result<Click, ClickError>,
        request_id: &str,
        deadline: Instant,
    ) -> aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse {
        let c = match click {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(request_id, error = %e, "refused: payload");
                return answer(400, Some(json!({"error": e.to_string()})));
            }
        };
        if let Err(refusal) = self.authorise_override(&c, deadline).await {
            let outcome = OverrideOutcome::Refused(refusal.clone());
            audit(request_id, &c, &outcome);
            self.tell_override(
                &c,
                &format!(":no_entry: {refusal}. Nothing was changed."),
                request_id,
                deadline,
            )
            .await;
            return answer(200, None);
        }
        let (outcome, view) = self.decide_override(&c, deadline).await;
        audit(request_id, &c, &outcome);
        let who = escape(&c.button.user.id);
        let now = when(time::OffsetDateTime::now_utc().unix_timestamp());
        let text = match &outcome {
            OverrideOutcome::Overridden => format!(
                ":fast_forward: The {} of *{}* was *overridden* by <@{who}> at {now}",
                c.condition.kind.words(),
                escape(&c.condition.stage)
            ),
            OverrideOutcome::AlreadyOverridden => {
                // Another click (or the console) overrode it: the message
                // shows, or is about to show, who did (CodePipeline does not
                // record it). Answer the clicker alone, never overwrite it.
                let text = recorded_text(&outcome, &view.unwrap_or_default(), &c.condition);
                self.tell_override(
                    &c,
                    &format!("{text}. Nothing was changed."),
                    request_id,
                    deadline,
                )
                .await;
                return answer(200, None);
            }
            OverrideOutcome::AlreadyPassed
            | OverrideOutcome::ConditionFailed
            | OverrideOutcome::OtherExecution
            | OverrideOutcome::NotWaiting(_) => {
                let text = recorded_text(&outcome, &view.unwrap_or_default(), &c.condition);
                if has_outcome(&c.button.blocks) {
                    // The message already says what happened (and who
                    // overrode, which CodePipeline does not record): keep
                    // it, answer the clicker alone.
                    self.tell_override(
                        &c,
                        &format!("{text}. Nothing was changed."),
                        request_id,
                        deadline,
                    )
                    .await;
                    return answer(200, None);
                }
                text
            }
            OverrideOutcome::Unsure(e) => {
                self.tell_override(
                    &c,
                    &format!(
                        ":grey_question: Not confirmed: {}. It may have been overridden; check the pipeline in the CodePipeline console before overriding again.",
                        escape(&ellipsize(e, 200))
                    ),
                    request_id,
                    deadline,
                )
                .await;
                return answer(200, None);
            }
            OverrideOutcome::Refused(e) | OverrideOutcome::Failed(e) => {
                self.tell_override(
                    &c,
                    &format!(
                        ":warning: Not overridden: {}. Try again, or override it in the CodePipeline console.",
                        escape(e)
                    ),
                    request_id,
                    deadline,
                )
                .await;
                return answer(200, None);
            }
        };
        let (Some(channel), Some(ts)) = (
            c.button.message.channel.as_deref(),
            c.button.message.ts.as_deref(),
        ) else {
            self.tell_override(&c, &text, request_id, deadline).await;
            return answer(200, None);
        };
        let body = decided(&c.button.blocks, &c.condition, &text);
        if let Err(e) = within(deadline, "chat.update", self.chat.update(channel, ts, body)).await {
            tracing::warn!(request_id, error = %e, "the condition message could not be updated; the override stands");
        }
        answer(200, None)
    }

    async fn authorise_override(&self, c: &Click, deadline: Instant) -> Result<(), String> {
        let pipeline = &c.condition.pipeline;
        let Some(overrides) = self.overrides.as_ref() else {
            return Err(format!(
                "Overriding stage conditions is not enabled in Slack here ({PIPELINES_VAR} names no pipeline)"
            ));
        };
        if !overrides.pipelines.contains(pipeline) {
            return Err(format!(
                "Stage conditions of {} may not be overridden from Slack (not in the template's ApprovalPipelineArns)",
                escape(pipeline)
            ));
        }
        let Some(approvers) = self.policy.for_pipeline(pipeline) else {
            return Err(format!(
                "Decisions for {} are not enabled in Slack (no entry in {})",
                escape(pipeline),
                crate::policy::VAR
            ));
        };
        if self
            .is_approver(approvers, &c.button.user.id, deadline)
            .await?
        {
            return Ok(());
        }
        Err(format!("You are not an approver of {}", escape(pipeline)))
    }

    /// Overrides unless it is no longer wanted; returns the state last read.
    async fn decide_override(
        &self,
        c: &Click,
        deadline: Instant,
    ) -> (OverrideOutcome, Option<ConditionView>) {
        let Some(overrides) = self.overrides.as_ref() else {
            return (OverrideOutcome::Refused("not enabled".into()), None);
        };
        let port = &overrides.conditions;
        let cond = &c.condition;
        let read = "GetPipelineState";
        let view = match within(deadline, read, port.condition(cond)).await {
            Ok(v) => v,
            Err(PortError::NotFound(e)) => return (OverrideOutcome::NotWaiting(e), None),
            Err(e) => return (OverrideOutcome::Failed(e.to_string()), None),
        };
        if let Some(done) = settled(&view, cond) {
            return (done, Some(view));
        }
        // Time is kept back for reading the state again when the answer is
        // unsure (as for PutApprovalResult, crate::confirm).
        let call_deadline = deadline
            .checked_sub(crate::confirm::REREAD_RESERVE)
            .unwrap_or(deadline);
        let left = call_deadline.saturating_duration_since(Instant::now());
        if left < crate::app::MIN_PUT_TIME {
            return (
                OverrideOutcome::Failed(
                    "OverrideStageCondition was not sent (too little of Slack's 3 seconds was left)"
                        .to_owned(),
                ),
                Some(view),
            );
        }
        let answered = match tokio::time::timeout(left, port.override_condition(cond)).await {
            Ok(a) => a,
            // The request may have been sent: unsure, never "not done".
            Err(_) => Ok(OverrideAnswer::Unsure(
                "OverrideStageCondition did not answer in time".to_owned(),
            )),
        };
        match answered {
            Ok(OverrideAnswer::Accepted) => (OverrideOutcome::Overridden, Some(view)),
            Ok(OverrideAnswer::Unsure(why)) => {
                match within(deadline, read, port.condition(cond)).await {
                    Ok(now) => (after_unsure(&now, cond, &why), Some(now)),
                    Err(_) => (OverrideOutcome::Unsure(why), Some(view)),
                }
            }
            Ok(OverrideAnswer::NotOverridable(code)) => {
                match within(deadline, read, port.condition(cond)).await {
                    Ok(now) => (
                        settled(&now, cond).unwrap_or(OverrideOutcome::NotWaiting(format!(
                            "CodePipeline refused the override ({code}) although the condition still shows as in progress"
                        ))),
                        Some(now),
                    ),
                    Err(e) => (OverrideOutcome::Failed(e.to_string()), None),
                }
            }
            Err(e) => (OverrideOutcome::Failed(e.to_string()), Some(view)),
        }
    }

    async fn tell_override(&self, c: &Click, text: &str, request_id: &str, deadline: Instant) {
        self.tell(c.button.response_url.as_deref(), text, request_id, deadline)
            .await;
    }
}
