//! Port: the delivery ledger that makes "never sent twice" hold across
//! execution environments (issue 14 §10).
//!
//! The in-process memory of [`super::handler`] only sees retries that land
//! in the same execution environment. EventBridge and Lambda can deliver
//! one event to two environments (a retry after a timeout, a duplicate
//! delivery); the ledger is shared by all of them. Before sending to a
//! destination the notifier claims `<event id>#<destination>`:
//!
//! - [`Claim::Won`]: nobody has it; send, then [`DeliveryLedger::delivered`]
//!   (or [`DeliveryLedger::release`] when the send failed, so a retry can
//!   claim it again). The claim carries a token: only its owner marks it
//!   sent or releases it;
//! - [`Claim::AlreadyDelivered`]: skip, as for the in-process memory;
//! - [`Claim::Elsewhere`]: another environment is sending it right now (its
//!   lease has not expired): this invocation fails that destination, and
//!   Lambda's retry finds it delivered, or the lease expired after a crash
//!   and claims it.
//!
//! A ledger that cannot be reached does not stop a notification: it is sent
//! without the cross-environment guarantee, recorded as sent if the ledger
//! answers by then, and a warning says so (a duplicate message is better
//! than a missing failure notice). So the promise is "at most once while
//! the ledger answers"; a send whose answer is lost after the destination
//! received it, or a claimant killed past its lease, can still repeat one.

use std::future::Future;
use std::time::Duration;

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation may send; the token proves the claim is its own.
    Won(String),
    /// Delivered before (by any environment).
    AlreadyDelivered,
    /// Another environment holds an unexpired claim.
    Elsewhere,
}

/// Port: a shared record of deliveries, keyed by event id and destination.
pub trait DeliveryLedger: Send + Sync {
    /// Claims `key` for `lease` (after which a crashed claimant's claim may
    /// be taken over). `Err` says why the ledger could not answer.
    fn claim(
        &self,
        key: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, String>> + Send;

    /// Marks `key` delivered (kept until the ledger's retention ends):
    /// under the claim `token`, or, with `None`, after a send made without
    /// a claim because the ledger did not answer.
    fn delivered(
        &self,
        key: &str,
        token: Option<&str>,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Gives up the claim `token` after its send failed.
    fn release(&self, key: &str, token: &str) -> impl Future<Output = ()> + Send;
}

/// No shared ledger: every claim is won (the in-process memory still
/// applies). For local runs and deployments without the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLedger;

impl DeliveryLedger for NoLedger {
    async fn claim(&self, _key: &str, _lease: Duration) -> Result<Claim, String> {
        Ok(Claim::Won(String::new()))
    }

    async fn delivered(&self, _key: &str, _token: Option<&str>) -> Result<(), String> {
        Ok(())
    }

    async fn release(&self, _key: &str, _token: &str) {}
}

/// The ledger key of one event and destination.
pub fn key(event_id: &str, destination: &str) -> String {
    format!("{event_id}#{destination}")
}
