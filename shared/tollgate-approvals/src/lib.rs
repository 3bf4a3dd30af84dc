//! # tollgate-approvals
//!
//! The approvals endpoint's logic: Slack posts a click on an approval
//! request's Approve or Reject button (or the reject-reason modal) to the
//! `approvals` function's URL, and this crate decides what happens.
//!
//! - [`signature`]: Slack's v0 request signature, constant-time, with a
//!   5-minute window against replays;
//! - [`interaction`]: the `payload=` form field (`block_actions`,
//!   `view_submission`), the action ids and button value of
//!   `tollgate_core::approval_request`;
//! - [`policy`]: who may decide (`TOLLGATE_APPROVERS`: Slack user and user
//!   group IDs per pipeline, the commit-author rule);
//! - [`author`]: the commit-author rule (the author's e-mail from an action
//!   output variable of the execution, `ListActionExecutions`; the clicker's
//!   from `users.info`), failing closed;
//! - [`ports`]: CodePipeline (`GetPipelineState`, `PutApprovalResult`) and
//!   Slack (`chat.update`, `response_url`, `views.open`,
//!   `usergroups.users.list`, `users.info`);
//! - [`render`]: the decided message, ephemeral answers, the modal;
//! - [`ecs_hook`]: Continue / Roll back of an ECS service deployment paused
//!   at a `PAUSE` lifecycle hook (`DescribeServiceDeployments`, then
//!   `ContinueServiceDeployment`), with the same signature, allowlist and
//!   idempotency rules;
//! - [`stage_condition`]: Override of a stage's entry or on-success
//!   condition still in progress (`GetPipelineState`, then
//!   `OverrideStageCondition`), with the same signature, allowlist and
//!   idempotency rules;
//! - [`confirm`]: a decision `PutApprovalResult` did not confirm (timed
//!   out, a server error) is read again, and shown as recorded, decided by
//!   someone else, or "may have been recorded, check …", never as "not
//!   recorded";
//! - [`app`]: the function (`Approvals`), its audit line and its idempotency
//!   (a decision already taken, lost to a concurrent click, or expired shows
//!   the recorded state, never a second result).
//!
//! Invariant: links no AWS SDK; never logs a request body, a header value,
//! the signing secret or an approval token.

pub mod app;
pub mod author;
pub mod confirm;
pub mod ecs_hook;
pub mod interaction;
pub mod policy;
pub mod ports;
pub mod render;
pub mod signature;
pub mod stage_condition;

pub use app::{Approvals, Outcome, Ready};

#[cfg(test)]
mod ecs_hook_tests;
#[cfg(test)]
mod stage_condition_tests;
#[cfg(test)]
mod test_fakes;
#[cfg(test)]
mod tests;
