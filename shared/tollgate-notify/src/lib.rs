//! # tollgate-notify
//!
//! Invariant: names no AWS SDK crate (SNS, DynamoDB and the enrichment
//! reads are ports the `notifier` function adapts) and no other function's
//! logic; depends on `tollgate-core` and `tollgate-report` only.
//!
//! The logic of the notifier: EventBridge events to Slack (webhook, or a bot
//! keeping one live message per release), Microsoft Teams, Amazon Q in chat, a generic JSON
//! webhook and SNS, with the failure reason inline, the commit, console
//! links, and less noise (issue 6).
//!
//! Flow of one invocation ([`handler::Notifier::handle`]):
//! 1. [`events`]: parse the EventBridge event leniently (never fails).
//! 2. [`model`]: normalise it into a [`model::Notification`].
//! 3. [`rules`]: if no rule could make it notify, stop here (no API calls).
//! 4. [`enrich`]: best-effort, time-bounded lookups (reason, commit,
//!    rollback, duration, "recovered").
//! 5. [`rules`]: decide and route to named destinations.
//! 6. [`destinations`]: each destination type renders its payload (Slack
//!    Block Kit, Teams Adaptive Card 1.4, webhook JSON
//!    `tollgate.notification/v1`, SNS subject + text; shared pieces in
//!    [`render`]) and delivers it.
//! 7. [`deliver`]: POST / Publish with per-request timeouts, 429
//!    `Retry-After`, 5xx backoff inside the deadline; permanent 4xx stop.
//!    If any destination failed, the invocation fails so Lambda retries it
//!    and the OnFailure destination keeps it: nothing is silently lost.
//!
//! ## Duplicates
//!
//! EventBridge delivers at least once and Lambda retries failed async
//! invocations (twice, after about 1 and 2 minutes). Two layers keep a
//! redelivered or retried event from being sent twice:
//! - within one execution environment, the notifier remembers per event id
//!   which destinations were delivered (the last [`handler::MEMORY_EVENTS`]
//!   events) and skips them;
//! - across environments, the [`ledger`] port (the DynamoDB deliveries table
//!   in the stack, `TOLLGATE_NOTIFY_DEDUPE_TABLE`) is claimed per event id
//!   and destination before sending; see [`ledger`] for its exact promise
//!   ("at most once while the ledger answers").
//!
//! What remains: an attempt that timed out after a destination had already
//! accepted it, or a claimant killed past its lease, can repeat one message.
//! Slack and Teams webhooks have no idempotency key; the generic webhook
//! carries `Idempotency-Key: <event id>` and FIFO SNS topics get a
//! deduplication id (event id + destination), so those receivers can drop
//! such a repeat. The Slack bot mode's live message is keyed by the release
//! ([`release`]), so a repeat updates it rather than posting another.
//!
//! Configuration: [`config`] (secret references: [`secret_ref`]; each
//! destination type's own settings: [`destinations`]). Rules document:
//! [`rules`].

pub mod approval_request;
pub mod config;
pub mod console;
pub mod deliver;
pub mod destinations;
pub mod ecs_pause;
pub mod enrich;
pub mod events;
pub mod handler;
pub mod ledger;
pub mod model;
pub mod release;
pub mod render;
pub mod rules;
pub mod secret_ref;
pub mod stage_condition;
#[cfg(test)]
pub(crate) mod test_fakes;

pub use handler::{Notifier, Outcome, Undelivered};
