//! **Continue** / **Roll back** for an ECS service deployment paused at a
//! `PAUSE` lifecycle hook (ECS emits `ECS Hook State Change` /
//! `HOOK_AWAITING_ACTION`; the notifier's bot posts the request with the
//! buttons of `tollgate_core::ecs_pause_request`).
//!
//! A click is verified exactly like an approval's (the endpoint checked
//! Slack's signature before this module sees it), then:
//! 1. the button value is a service deployment ARN and a hook id of the
//!    right shape ([`PauseRef::decode`]);
//! 2. the deployment's service (`<cluster>/<service>`) is one the function
//!    is configured for ([`SERVICES_VAR`], the template's
//!    `ApprovalEcsServices`, which is also all its role may touch);
//! 3. the clicker is an approver of that service (the approvers document's
//!    `services`, `crate::policy`); a refusal answers the clicker alone;
//! 4. `DescribeServiceDeployments`: the deployment is `IN_PROGRESS` and that
//!    very hook is `AWAITING_ACTION`; anything else (continued or rolled
//!    back already, timed out, another state) ends with the message showing
//!    what ECS recorded, and nothing is called;
//! 5. `ContinueServiceDeployment` (`CONTINUE` or `ROLLBACK`), sent once;
//!    two concurrent clicks both get here, and ECS refusing the second
//!    (`ClientException`: the hook stopped waiting) is what prevents a
//!    second decision: the state is then read again and shown. An unsure
//!    answer (timeout, lost connection, 5xx) is followed by a read too
//!    ([`after_unsure`]): this click's decision shown → decided by the
//!    clicker; else "may have been done", never "not done". The hook
//!    statuses after a decision (`SUCCEEDED` after Continue, `FAILED` after
//!    Roll back) are assumed from ECS's API reference, not verified;
//! 6. one audit line (`audit: "ecs-pause"`: who, what, cluster, service,
//!    deployment, hook, result, Slack's id, the request id), and the
//!    message shows who decided and when.

use crate::app::{Ready, answer, within};
use crate::interaction::{ButtonClick, button_click, payload_field, str_at};
use crate::ports::{Chat, PortError};
use crate::render::{escape, when};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;
use tollgate_core::config::ConfigError;
use tollgate_core::ecs_pause_request::{BLOCK, CONTINUE, PauseRef, PauseValueError, ROLLBACK};
use tollgate_core::text::ellipsize;

// The configured services are read by the notifier too (it posts buttons
// only for them): one definition in the handoff module.
pub use tollgate_core::ecs_pause_request::{MAX_SERVICES, SERVICES_VAR, services_from_env};
/// `block_id` of the outcome section this module writes.
pub const OUTCOME_BLOCK: &str = "tollgate.ecs_pause.outcome";

/// A boxed future (the port is used as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `DescribeServiceDeployments` shows of a deployment and one hook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PauseState {
    /// The deployment's status (`IN_PROGRESS`, `SUCCESSFUL`,
    /// `ROLLBACK_IN_PROGRESS`, …); `None` when ECS has no such deployment.
    pub deployment_status: Option<String>,
    /// The hook's status (`AWAITING_ACTION`, `SUCCEEDED`, `FAILED`,
    /// `TIMED_OUT`, `IN_PROGRESS`); `None` when the deployment lists no
    /// such hook.
    pub hook_status: Option<String>,
    /// When the hook times out (Unix seconds).
    pub expires_at: Option<i64>,
    /// What ECS does then (`CONTINUE` / `ROLLBACK`).
    pub timeout_action: Option<String>,
    /// When the deployment last changed (Unix seconds).
    pub updated_at: Option<i64>,
}

/// What `ContinueServiceDeployment` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeAnswer {
    /// Accepted.
    Accepted,
    /// Refused because the hook no longer waits (ECS's `ClientException` /
    /// `InvalidParameterException`): the code, never a request value.
    NotPaused(String),
    /// The request may have reached ECS but no answer came (a timeout, a
    /// lost connection, an unreadable answer, a 5xx): ECS may have acted.
    /// What happened, never a request value.
    Unsure(String),
}

/// ECS's service deployments.
pub trait ServiceDeployments: Send + Sync + std::fmt::Debug {
    /// `DescribeServiceDeployments` of `deployment`, with the hook `hook`.
    fn pause_state<'a>(
        &'a self,
        deployment: &'a str,
        hook: &'a str,
    ) -> BoxFuture<'a, Result<PauseState, PortError>>;

    /// `ContinueServiceDeployment` with `CONTINUE`, or `ROLLBACK`.
    fn resume<'a>(
        &'a self,
        deployment: &'a str,
        hook: &'a str,
        rollback: bool,
    ) -> BoxFuture<'a, Result<ResumeAnswer, PortError>>;
}

/// The ECS side of the endpoint: the port and the configured services.
#[derive(Debug, Clone)]
pub struct EcsHooks {
    /// ECS.
    pub deployments: Arc<dyn ServiceDeployments>,
    /// `<cluster>/<service>` names ([`SERVICES_VAR`]).
    pub services: Vec<String>,
}

/// Every configured service needs approvers (its own entry under the
/// approvers document's `services`, or `*`): checked at init, so a gap
/// fails every request with this reason instead of surfacing at the first
/// click of a paused production deployment.
pub fn check_approvers(
    services: &[String],
    policy: &crate::policy::Policy,
) -> Result<(), ConfigError> {
    match services.iter().find(|s| policy.for_service(s).is_none()) {
        None => Ok(()),
        Some(missing) => Err(ConfigError::invalid(
            SERVICES_VAR,
            missing,
            format!(
                "{missing} has no approvers: {} has no entry for it under services (and no \"*\")",
                crate::policy::VAR
            ),
            format!(
                "an entry {{\"services\": {{\"{missing}\": {{\"users\": [...], \"groups\": [...]}}}}}} in {}, or remove the service from {SERVICES_VAR}",
                crate::policy::VAR
            ),
        )),
    }
}

/// A click on Continue or Roll back.
#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    /// Who clicked, on which message ([`ButtonClick`]).
    pub button: ButtonClick,
    /// The paused deployment.
    pub pause: PauseRef,
    /// Roll back (else continue).
    pub rollback: bool,
}

/// A click that is ours but malformed (HTTP 400; never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClickError {
    /// A field Slack always sends is missing.
    #[error("the payload has no {0}")]
    Missing(&'static str),
    /// The button value is not a pause reference.
    #[error("{0}")]
    Value(#[from] PauseValueError),
}

/// A Continue / Roll back click, if the (signed) body is one; `None` for
/// anything else (the approvals parser answers it).
pub fn parse(body: &[u8]) -> Option<Result<Click, ClickError>> {
    let v = payload_field(body).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("block_actions") {
        return None;
    }
    let action = v.pointer("/actions/0")?;
    let rollback = match str_at(action, "/action_id")? {
        CONTINUE => false,
        ROLLBACK => true,
        _ => return None,
    };
    Some(click(&v, action, rollback))
}

fn click(v: &Value, action: &Value, rollback: bool) -> Result<Click, ClickError> {
    let button = button_click(v, action).map_err(|_| ClickError::Missing("user.id"))?;
    let value = str_at(action, "/value").ok_or(ClickError::Missing("the button value"))?;
    let pause = PauseRef::decode(value)?;
    Ok(Click {
        button,
        pause,
        rollback,
    })
}

/// What became of one click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseOutcome {
    /// ECS accepted the decision.
    Decided {
        /// Rolled back (else continued).
        rollback: bool,
    },
    /// Decided before this click (a double click, another approver).
    AlreadyDecided {
        /// Rolled back (else continued).
        rollback: bool,
    },
    /// The hook timed out; ECS took its timeout action.
    TimedOut,
    /// Nothing waits: the deployment or the hook is in another state
    /// (ECS's word for it).
    NotWaiting(String),
    /// Refused before ECS was asked to change anything.
    Refused(String),
    /// ECS could not be asked or told.
    Failed(String),
    /// `ContinueServiceDeployment` may have gone through, and reading the
    /// state again did not show this click's decision: never "not done".
    Unsure(String),
}

impl PauseOutcome {
    fn audit_result(&self) -> &'static str {
        match self {
            Self::Decided { rollback: false } => "continued",
            Self::Decided { rollback: true } => "rolled-back",
            Self::AlreadyDecided { rollback: false } => "already-continued",
            Self::AlreadyDecided { rollback: true } => "already-rolled-back",
            Self::TimedOut => "timed-out",
            Self::NotWaiting(_) => "not-waiting",
            Self::Refused(_) => "refused",
            Self::Failed(_) => "failed",
            Self::Unsure(_) => "unsure",
        }
    }
}

fn audit(request_id: &str, c: &Click, outcome: &PauseOutcome) {
    let arn = c.pause.arn();
    let detail = match outcome {
        PauseOutcome::Refused(d)
        | PauseOutcome::Failed(d)
        | PauseOutcome::NotWaiting(d)
        | PauseOutcome::Unsure(d) => d.as_str(),
        _ => "",
    };
    tracing::info!(
        audit = "ecs-pause",
        who = %c.button.user.id,
        who_name = c.button.user.name.as_deref().unwrap_or(""),
        team = c.button.user.team.as_deref().unwrap_or(""),
        what = if c.rollback { "rollback" } else { "continue" },
        cluster = arn.as_ref().map(|a| a.cluster).unwrap_or(""),
        service = arn.as_ref().map(|a| a.service).unwrap_or(""),
        deployment = %c.pause.deployment,
        hook = %c.pause.hook,
        result = outcome.audit_result(),
        detail,
        slack_request = %c.button.slack_id,
        request_id,
        "ecs pause decision"
    );
}

/// A state that needs no `ContinueServiceDeployment`, or `None` when the
/// hook waits for a decision.
pub fn settled(state: &PauseState) -> Option<PauseOutcome> {
    let Some(status) = state.deployment_status.as_deref() else {
        return Some(PauseOutcome::NotWaiting(
            "ECS has no such service deployment".to_owned(),
        ));
    };
    match state.hook_status.as_deref() {
        Some("SUCCEEDED") => return Some(PauseOutcome::AlreadyDecided { rollback: false }),
        Some("FAILED") => return Some(PauseOutcome::AlreadyDecided { rollback: true }),
        Some("TIMED_OUT") => return Some(PauseOutcome::TimedOut),
        Some("AWAITING_ACTION") if status == "IN_PROGRESS" => return None,
        Some(h) => {
            return Some(PauseOutcome::NotWaiting(format!(
                "the deployment is {} and its pause hook {}",
                ellipsize(status, 40),
                ellipsize(h, 40)
            )));
        }
        None => {}
    }
    Some(PauseOutcome::NotWaiting(format!(
        "the deployment is {} and lists no such pause hook",
        ellipsize(status, 40)
    )))
}

/// The recorded state in words, for the message.
pub fn recorded_text(outcome: &PauseOutcome, state: &PauseState) -> String {
    let at = state
        .updated_at
        .map(when)
        .unwrap_or_else(|| "an unknown time".into());
    match outcome {
        PauseOutcome::AlreadyDecided { rollback: false } => {
            format!(":arrow_forward: Already *continued* (ECS, updated {at})")
        }
        PauseOutcome::AlreadyDecided { rollback: true } => {
            format!(":rewind: Already *rolled back* (ECS, updated {at})")
        }
        PauseOutcome::TimedOut => {
            let expired = state
                .expires_at
                .map(when)
                .unwrap_or_else(|| "an unknown time".into());
            let action = state
                .timeout_action
                .as_deref()
                .map(|a| escape(&ellipsize(a, 20)))
                .unwrap_or_else(|| "its timeout action".into());
            format!(
                ":hourglass: *Timed out* at {expired}: ECS took its timeout action ({action}); nothing can be decided here any more"
            )
        }
        PauseOutcome::NotWaiting(why) => format!(
            ":information_source: Nothing to decide: {}",
            escape(&ellipsize(why, 300))
        ),
        _ => String::new(),
    }
}

/// What an unsure `ContinueServiceDeployment` came to, from the state read
/// again: the hook shows this click's decision (`SUCCEEDED` after
/// Continue, `FAILED` after Roll back) → decided by this clicker; anything
/// else (still waiting, the other decision, timed out) → unsure.
///
/// The status mapping is assumed from ECS's API reference
/// (`ContinueServiceDeployment`, `ServiceDeploymentLifecycleHookDetail`),
/// not verified against ECS itself.
pub fn after_unsure(now: &PauseState, rollback: bool, why: &str) -> PauseOutcome {
    let mine = if rollback { "FAILED" } else { "SUCCEEDED" };
    if now.hook_status.as_deref() == Some(mine) {
        PauseOutcome::Decided { rollback }
    } else {
        PauseOutcome::Unsure(why.to_owned())
    }
}

/// The clicker's answer when ECS may have acted: never "not done".
pub fn unsure_text(why: &str) -> String {
    format!(
        ":grey_question: Not confirmed: {}. It may have been done; check the service's Deployments tab in the ECS console before deciding again.",
        escape(&ellipsize(why, 200))
    )
}

/// Whether the message already carries an outcome this module wrote.
pub fn has_outcome(blocks: &[Value]) -> bool {
    crate::render::has_block(blocks, OUTCOME_BLOCK)
}

/// The request message with its buttons replaced by `outcome`.
pub fn decided(blocks: &[Value], c: &Click, outcome: &str) -> Value {
    let name = c
        .pause
        .service_key()
        .map(|k| escape(&k))
        .unwrap_or_default();
    crate::render::with_outcome(
        blocks,
        (BLOCK, OUTCOME_BLOCK),
        &format!("ECS deployment of *{name}* paused"),
        &name,
        outcome,
    )
}

impl<P, C: Chat> Ready<P, C> {
    /// One Continue / Roll back click (already signature-checked).
    pub async fn serve_pause(
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
        if let Err(refusal) = self.authorise_pause(&c, deadline).await {
            let outcome = PauseOutcome::Refused(refusal.clone());
            audit(request_id, &c, &outcome);
            self.tell_pause(
                &c,
                &format!(":no_entry: {refusal}. Nothing was changed."),
                request_id,
                deadline,
            )
            .await;
            return answer(200, None);
        }
        let (outcome, state) = self.decide_pause(&c, deadline).await;
        audit(request_id, &c, &outcome);
        let who = escape(&c.button.user.id);
        let now = when(time::OffsetDateTime::now_utc().unix_timestamp());
        let text = match &outcome {
            PauseOutcome::Decided { rollback: false } => {
                format!(":arrow_forward: *Continued* by <@{who}> at {now}")
            }
            PauseOutcome::Decided { rollback: true } => {
                format!(":rewind: *Rolled back* by <@{who}> at {now}")
            }
            PauseOutcome::AlreadyDecided { .. }
            | PauseOutcome::TimedOut
            | PauseOutcome::NotWaiting(_) => {
                let text = recorded_text(&outcome, &state.unwrap_or_default());
                if has_outcome(&c.button.blocks) {
                    // The message already says what happened (possibly
                    // who decided, which ECS does not record): keep it,
                    // answer the clicker alone.
                    self.tell_pause(
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
            PauseOutcome::Unsure(e) => {
                // The buttons stay: nothing shows that ECS acted.
                self.tell_pause(&c, &unsure_text(e), request_id, deadline)
                    .await;
                return answer(200, None);
            }
            PauseOutcome::Refused(e) | PauseOutcome::Failed(e) => {
                self.tell_pause(
                    &c,
                    &format!(
                        ":warning: Not done: {}. Try again, or decide in the ECS console (the service's Deployments tab).",
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
            self.tell_pause(&c, &text, request_id, deadline).await;
            return answer(200, None);
        };
        let body = decided(&c.button.blocks, &c, &text);
        if let Err(e) = within(deadline, "chat.update", self.chat.update(channel, ts, body)).await {
            tracing::warn!(request_id, error = %e, "the pause message could not be updated; the decision stands");
        }
        answer(200, None)
    }

    async fn authorise_pause(&self, c: &Click, deadline: Instant) -> Result<(), String> {
        let key = c.pause.service_key().unwrap_or_default();
        let Some(hooks) = self.ecs.as_ref() else {
            return Err(format!(
                "Continuing ECS deployments is not enabled in Slack here ({SERVICES_VAR} names no service)"
            ));
        };
        if !hooks.services.contains(&key) {
            return Err(format!(
                "The service {} is not one Slack may decide for (the template's ApprovalEcsServices)",
                escape(&key)
            ));
        }
        let Some(approvers) = self.policy.for_service(&key) else {
            return Err(format!(
                "ECS decisions for {} are not enabled in Slack (no entry under services in {})",
                escape(&key),
                crate::policy::VAR
            ));
        };
        if self
            .is_approver(approvers, &c.button.user.id, deadline)
            .await?
        {
            return Ok(());
        }
        Err(format!("You are not an approver of {}", escape(&key)))
    }

    /// Decides unless it is no longer wanted; returns the state last read.
    async fn decide_pause(
        &self,
        c: &Click,
        deadline: Instant,
    ) -> (PauseOutcome, Option<PauseState>) {
        let Some(hooks) = self.ecs.as_ref() else {
            return (PauseOutcome::Refused("not enabled".into()), None);
        };
        let ecs = &hooks.deployments;
        let (deployment, hook) = (c.pause.deployment.as_str(), c.pause.hook.as_str());
        let describe = "DescribeServiceDeployments";
        let state = match within(deadline, describe, ecs.pause_state(deployment, hook)).await {
            Ok(s) => s,
            Err(PortError::NotFound(e)) => return (PauseOutcome::NotWaiting(e), None),
            Err(e) => return (PauseOutcome::Failed(e.to_string()), None),
        };
        if let Some(done) = settled(&state) {
            return (done, Some(state));
        }
        // Time is kept back for reading the state again when the answer
        // is unsure (as for PutApprovalResult, crate::confirm).
        let resume_deadline = deadline
            .checked_sub(crate::confirm::REREAD_RESERVE)
            .unwrap_or(deadline);
        let left = resume_deadline.saturating_duration_since(Instant::now());
        let resumed =
            match tokio::time::timeout(left, ecs.resume(deployment, hook, c.rollback)).await {
                Ok(answer) => answer,
                // The request may have been sent: unsure, never "not done".
                Err(_) => Ok(ResumeAnswer::Unsure(
                    "ContinueServiceDeployment did not answer in time".to_owned(),
                )),
            };
        match resumed {
            Ok(ResumeAnswer::Unsure(why)) => {
                match within(deadline, describe, ecs.pause_state(deployment, hook)).await {
                    Ok(now) => (after_unsure(&now, c.rollback, &why), Some(now)),
                    Err(_) => (PauseOutcome::Unsure(why), Some(state)),
                }
            }
            Ok(ResumeAnswer::Accepted) => (
                PauseOutcome::Decided {
                    rollback: c.rollback,
                },
                Some(state),
            ),
            Ok(ResumeAnswer::NotPaused(code)) => {
                // Someone decided first (or it timed out meanwhile): show
                // what ECS recorded.
                match within(deadline, describe, ecs.pause_state(deployment, hook)).await {
                    Ok(now) => (
                        settled(&now).unwrap_or(PauseOutcome::NotWaiting(format!(
                            "ECS refused ({code}) although the hook still shows as waiting"
                        ))),
                        Some(now),
                    ),
                    Err(e) => (PauseOutcome::Failed(e.to_string()), None),
                }
            }
            Err(e) => (PauseOutcome::Failed(e.to_string()), Some(state)),
        }
    }

    async fn tell_pause(&self, c: &Click, text: &str, request_id: &str, deadline: Instant) {
        self.tell(c.button.response_url.as_deref(), text, request_id, deadline)
            .await;
    }
}
