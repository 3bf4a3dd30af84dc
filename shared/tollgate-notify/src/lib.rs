//! # tollgate-notify
//!
//! Invariant: names no AWS SDK crate (SNS, DynamoDB and the enrichment
//! reads are ports the `notifier` function adapts) and no other function's
//! logic; depends on `tollgate-core` and `tollgate-report` only.
//!
//! The logic of the notifier: EventBridge events to Slack, Microsoft Teams, a generic JSON
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
//! invocations (twice, after about 1 and 2 minutes). Within one execution
//! environment the notifier remembers, per event id, which destinations
//! were delivered (the last [`handler::MEMORY_EVENTS`] events) and skips
//! them on a redelivery or retry. The remaining duplicate window:
//! - a retry or redelivery that lands in a *different* execution environment
//!   (a cold start, or a concurrent one) re-sends to every destination;
//! - an attempt that timed out after the webhook had already accepted it is
//!   retried, and the message may show twice;
//! - Slack and Teams webhooks have no idempotency key. The generic webhook
//!   carries `Idempotency-Key: <event id>` so receivers can drop duplicates,
//!   and FIFO SNS topics get a deduplication id (event id + destination),
//!   which closes the window for them.
//!
//! Closing it fully would need a shared store (e.g. a DynamoDB conditional
//! write per event id and destination); that is not done here.
//!
//! Configuration: [`config`] (secret references: [`secret_ref`]; each
//! destination type's own settings: [`destinations`]). Rules document:
//! [`rules`].

pub mod approval_request;
pub mod config;
pub mod console;
pub mod deliver;
pub mod destinations;
pub mod enrich;
pub mod events;
pub mod handler;
pub mod ledger;
pub mod model;
pub mod release;
pub mod render;
pub mod rules;
pub mod secret_ref;

pub use handler::{Notifier, Outcome, Undelivered};
