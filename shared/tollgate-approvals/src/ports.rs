//! The endpoint's ports: CodePipeline's approval calls ([`Pipelines`]) and
//! Slack's Web API and response URLs ([`Chat`]). Adapters live in
//! `functions/approvals/src/`.

use serde_json::Value;
use std::future::Future;
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::secret::Secret;

/// A call to AWS or Slack failed. The text is the service's error code and
/// what to do, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The role or the bot lacks a permission.
    #[error("{0}")]
    Denied(String),
    /// The pipeline, stage or action does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Anything else (throttled, unavailable, timed out).
    #[error("{0}")]
    Failed(String),
}

/// An approval action's latest execution as `GetPipelineState` shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ApprovalState {
    /// The pipeline execution the stage is running (or last ran).
    pub execution: Option<String>,
    /// `InProgress`, `Succeeded`, `Failed`, `Abandoned`.
    pub status: Option<String>,
    /// The approval token while it waits.
    pub token: Option<Secret>,
    /// When the status last changed (Unix seconds).
    pub changed_at: Option<i64>,
    /// The summary a decision left (ours names the approver).
    pub summary: Option<String>,
    /// Who decided (an IAM identity) when CodePipeline says.
    pub updated_by: Option<String>,
    /// The error a failed (e.g. expired) approval shows.
    pub error: Option<String>,
}

impl std::fmt::Debug for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalState")
            .field("execution", &self.execution)
            .field("status", &self.status)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("changed_at", &self.changed_at)
            .finish_non_exhaustive()
    }
}

/// What `PutApprovalResult` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Recorded.
    Recorded,
    /// `ApprovalAlreadyCompletedException`: someone decided first.
    AlreadyCompleted,
    /// `InvalidApprovalTokenException`: the approval expired or was
    /// superseded since it was read.
    InvalidToken,
    /// No answer that says either way (timed out, connection lost after
    /// sending, a server error): the decision may have been recorded. The
    /// text says what happened, never the token.
    Unsure(String),
}

/// CodePipeline's manual approvals.
pub trait Pipelines: Send + Sync {
    /// The approval action's latest execution (`GetPipelineState`).
    fn approval_state(
        &self,
        approval: &ApprovalRef,
    ) -> impl Future<Output = Result<ApprovalState, PortError>> + Send;

    /// Records the decision (`PutApprovalResult`).
    fn put_result(
        &self,
        approval: &ApprovalRef,
        token: &Secret,
        approved: bool,
        summary: &str,
    ) -> impl Future<Output = Result<PutOutcome, PortError>> + Send;

    /// `ListActionExecutions` of the approval's pipeline execution: the
    /// executions of the action named `action` (or whose variable
    /// namespace is `action`), with their output variables (the
    /// commit-author rule, [`crate::author`]).
    fn action_outputs(
        &self,
        approval: &ApprovalRef,
        action: &str,
    ) -> impl Future<Output = Result<Vec<crate::author::ActionOutput>, PortError>> + Send;

    /// Where a person can see the approval's execution (a console link),
    /// for when a decision cannot be confirmed.
    fn console_url(&self, approval: &ApprovalRef) -> Option<String> {
        let _ = approval;
        None
    }
}

/// Slack.
pub trait Chat: Send + Sync {
    /// `chat.update` of the request message.
    fn update(
        &self,
        channel: &str,
        ts: &str,
        message: Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Posts to an interaction's `response_url` (already checked to be
    /// Slack's).
    fn respond(
        &self,
        response_url: &str,
        message: Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// `views.open` with a click's trigger id.
    fn open_view(
        &self,
        trigger_id: &str,
        view: Value,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The members of a user group (`usergroups.users.list`).
    fn group_members(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;

    /// A user's e-mail (`users.info`, scope `users:read.email`), if Slack
    /// shows it.
    fn user_email(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
}
