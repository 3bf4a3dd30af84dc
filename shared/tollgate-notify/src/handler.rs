//! One invocation: parse → normalise → (maybe) enrich → decide → render →
//! deliver to every routed destination concurrently.
//!
//! The invocation fails (so Lambda's async retries and the OnFailure
//! destination keep the event) when any routed destination could not be
//! delivered. Destinations already delivered for this event id are
//! remembered in this execution environment and skipped on the retry.

use super::config::NotifierConfig;
use super::deliver::{Attempts, ChatTransport, DeliveryError, RetryPolicy};
use super::destinations::{self, Destination, DestinationKind, Via, sns::TopicPublisher};
use super::enrich::{Enricher, SourceReader};
use super::events;
use super::ledger::{self, Claim, DeliveryLedger, NoLedger};
use super::model::Notification;
use super::rules::{Decision, Rules};
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub use tollgate_report::deadline_from_epoch_ms;

/// How many event ids the duplicate memory keeps.
pub const MEMORY_EVENTS: usize = 1024;

/// What happened to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// Destination name.
    pub destination: String,
    /// Destination type.
    pub kind: DestinationKind,
    /// `delivered`, `already-delivered` or `failed`.
    pub result: &'static str,
    /// Attempts made in this invocation.
    pub attempts: u32,
    /// The last error, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The invocation's result (returned to Lambda as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// EventBridge event id.
    pub event_id: String,
    /// EventBridge detail-type.
    pub detail_type: String,
    /// The notification's title.
    pub title: String,
    /// `sent` or `quiet`.
    pub decision: &'static str,
    /// Why it stayed quiet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per destination.
    pub deliveries: Vec<DeliveryRecord>,
    /// How enrichment went.
    pub enrichment: super::model::EnrichmentState,
}

/// Some destinations could not be delivered: the invocation must fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} of {} destinations failed for event {event_id} ({title}): {}{}. Lambda retries the event; \
     destinations already delivered are skipped when the retry lands in this execution environment",
    failed.len(),
    failed.len() + delivered.len(),
    failed.iter().map(|f| format!("{} ({})", f.destination, f.error.as_deref().unwrap_or("failed"))).collect::<Vec<_>>().join("; "),
    if delivered.is_empty() { String::new() } else { format!("; delivered: {}", delivered.join(", ")) }
)]
pub struct Undelivered {
    /// Event id.
    pub event_id: String,
    /// Title.
    pub title: String,
    /// Failed destinations.
    pub failed: Vec<DeliveryRecord>,
    /// Destinations delivered (now or earlier).
    pub delivered: Vec<String>,
}

impl From<Undelivered> for lambda_runtime::Diagnostic {
    fn from(value: Undelivered) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "NotificationUndelivered".to_owned(),
            error_message: value.to_string(),
        }
    }
}

/// Event ids → destinations already delivered, bounded (oldest evicted).
#[derive(Debug, Default)]
struct Memory {
    order: VecDeque<String>,
    delivered: std::collections::HashMap<String, HashSet<String>>,
}

impl Memory {
    fn has(&self, event_id: &str, destination: &str) -> bool {
        self.delivered
            .get(event_id)
            .is_some_and(|s| s.contains(destination))
    }

    fn record(&mut self, event_id: &str, destination: &str) {
        if event_id.is_empty() {
            return;
        }
        if !self.delivered.contains_key(event_id) {
            self.order.push_back(event_id.to_owned());
            while self.order.len() > MEMORY_EVENTS {
                if let Some(old) = self.order.pop_front() {
                    self.delivered.remove(&old);
                }
            }
        }
        self.delivered
            .entry(event_id.to_owned())
            .or_default()
            .insert(destination.to_owned());
    }
}

/// The notifier: configuration plus ports, built once at init. `L` is the
/// delivery ledger shared by every execution environment
/// ([`super::ledger`]); without one, deduplication is per environment.
#[derive(Debug)]
pub struct Notifier<S, H, P, L = NoLedger> {
    rules: Rules,
    destinations: Vec<Destination>,
    names: Vec<String>,
    enricher: Enricher<S>,
    http: H,
    sns: P,
    policy: RetryPolicy,
    reserve: Duration,
    memory: Mutex<Memory>,
    ledger: L,
    releases: std::sync::Arc<dyn crate::release::ReleaseStore>,
    ecs_pause_services: Vec<String>,
}

/// How long a claim outlives this invocation's deadline: the time a
/// crashed claimant blocks others.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The longest one ledger call may take (a claim: at most a third of the
/// time left); a send that won a claim ends this much before its deadline,
/// so that it can be marked sent.
const LEDGER_CALL: Duration = Duration::from_millis(1500);

impl<S: SourceReader, H: ChatTransport, P: TopicPublisher> Notifier<S, H, P, NoLedger> {
    /// Builds the notifier from resolved configuration and its ports.
    pub fn new(cfg: NotifierConfig, source: S, http: H, sns: P) -> Self {
        let names = cfg.destinations.iter().map(|d| d.name.clone()).collect();
        // Only the Slack bot mode's strip shows stages not reached yet.
        let plans = cfg
            .destinations
            .iter()
            .any(|d| d.kind() == destinations::DestinationKind::SlackBot);
        Self {
            rules: cfg.rules,
            destinations: cfg.destinations,
            names,
            enricher: Enricher::new(source, cfg.enrich_timeout, cfg.enrich)
                .with_hook_failures(cfg.hook_failure_prefix)
                .with_release_reads(plans)
                .with_stage_overrides(cfg.override_pipelines),
            http,
            sns,
            policy: RetryPolicy {
                request_timeout: cfg.request_timeout,
                ..RetryPolicy::default()
            },
            reserve: cfg.reserve,
            memory: Mutex::new(Memory::default()),
            ledger: NoLedger,
            releases: std::sync::Arc::new(crate::release::MemoryReleases::default()),
            ecs_pause_services: cfg.ecs_pause_services,
        }
    }
}

/// The notifier as a Lambda function: an EventBridge event in, an
/// [`Outcome`] out; an undelivered destination fails the invocation so
/// Lambda retries it.
impl<S, H, P, L> tollgate_report::lambda::Function for Notifier<S, H, P, L>
where
    S: SourceReader + Send + Sync + 'static,
    H: ChatTransport + Send + Sync + 'static,
    P: TopicPublisher + Send + Sync + 'static,
    L: DeliveryLedger + Send + Sync + 'static,
{
    type Event = serde_json::Value;
    type Output = Outcome;

    async fn handle(
        &self,
        event: serde_json::Value,
        invocation: tollgate_report::lambda::Invocation,
    ) -> Result<Outcome, lambda_runtime::Diagnostic> {
        Notifier::handle(self, event, invocation.deadline())
            .await
            .map_err(lambda_runtime::Diagnostic::from)
    }
}

impl<S: SourceReader, H: ChatTransport, P: TopicPublisher, L: DeliveryLedger> Notifier<S, H, P, L> {
    /// Uses a delivery ledger shared by every execution environment.
    pub fn with_ledger<L2: DeliveryLedger>(self, ledger: L2) -> Notifier<S, H, P, L2> {
        Notifier {
            rules: self.rules,
            destinations: self.destinations,
            names: self.names,
            enricher: self.enricher,
            http: self.http,
            sns: self.sns,
            policy: self.policy,
            reserve: self.reserve,
            memory: self.memory,
            ledger,
            releases: self.releases,
            ecs_pause_services: self.ecs_pause_services,
        }
    }

    /// Uses shared release records for the Slack bot mode's live messages
    /// (default: this process's memory).
    pub fn with_releases(
        mut self,
        releases: std::sync::Arc<dyn crate::release::ReleaseStore>,
    ) -> Self {
        self.releases = releases;
        self
    }

    /// Overrides the retry tuning (tests).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Handles one event. `deadline` is the Lambda deadline; the notifier
    /// keeps `reserve` of it for returning its result.
    pub async fn handle(
        &self,
        raw: serde_json::Value,
        deadline: Instant,
    ) -> Result<Outcome, Undelivered> {
        let work_deadline = deadline
            .checked_sub(self.reserve)
            .unwrap_or(deadline)
            .max(Instant::now());
        let event = events::parse(raw);
        let mut n = Notification::from_event(&event);
        n.ecs_pause_decidable =
            crate::ecs_pause::decidable(n.ecs_pause.as_ref(), &self.ecs_pause_services);
        if let events::Detail::Malformed { problem, .. } = &event.detail {
            tracing::warn!(event_id = %n.event_id, detail_type = %n.detail_type, problem = %problem, "event not understood; handling it as an unknown event");
        }
        // A stage success of an override pipeline is read for an entry
        // condition waiting (crate::stage_condition) even when quiet.
        if !self.rules.could_notify(&n) && !self.enricher.may_find_waiting_condition(&event) {
            return Ok(self.quiet(&n, "quiet by rules before lookups"));
        }
        // Enrichment never takes more than a third of the time left: delivery
        // (and its retries) needs the rest.
        let left = work_deadline.saturating_duration_since(Instant::now());
        let plain_success_notifies = self.rules.notifies_as(&n, super::model::Status::Succeeded);
        self.enricher
            .enrich_for(
                &event,
                &mut n,
                Instant::now() + left / 3,
                plain_success_notifies,
            )
            .await;
        let targets = match self.rules.decide(&n, &self.names) {
            Decision::Quiet(why) => return Ok(self.quiet(&n, &why)),
            Decision::Send(t) => t,
        };
        let title = n.title();
        let dests: Vec<&Destination> = targets
            .iter()
            .filter_map(|name| self.destinations.iter().find(|d| &d.name == name))
            .collect();
        let sends = dests.iter().map(|d| self.send_one(d, &n, work_deadline));
        let records = futures::future::join_all(sends).await;
        let failed: Vec<DeliveryRecord> = records
            .iter()
            .filter(|r| r.result == "failed")
            .cloned()
            .collect();
        let outcome = Outcome {
            event_id: n.event_id.clone(),
            detail_type: n.detail_type.clone(),
            title: title.clone(),
            decision: "sent",
            reason: None,
            deliveries: records.clone(),
            enrichment: n.enrichment.state,
        };
        if failed.is_empty() {
            tracing::info!(
                event_id = %n.event_id,
                title = %title,
                destinations = %targets.join(","),
                "notification delivered"
            );
            Ok(outcome)
        } else {
            Err(Undelivered {
                event_id: n.event_id.clone(),
                title,
                failed,
                delivered: records
                    .iter()
                    .filter(|r| r.result != "failed")
                    .map(|r| r.destination.clone())
                    .collect(),
            })
        }
    }

    fn quiet(&self, n: &Notification, why: &str) -> Outcome {
        tracing::info!(event_id = %n.event_id, title = %n.title(), reason = %why, "no notification");
        Outcome {
            event_id: n.event_id.clone(),
            detail_type: n.detail_type.clone(),
            title: n.title(),
            decision: "quiet",
            reason: Some(why.to_owned()),
            deliveries: Vec::new(),
            enrichment: n.enrichment.state,
        }
    }

    async fn send_one(
        &self,
        dest: &Destination,
        n: &Notification,
        deadline: Instant,
    ) -> DeliveryRecord {
        let kind = dest.kind();
        let already = self
            .memory
            .lock()
            .map(|m| m.has(&n.event_id, &dest.name))
            .unwrap_or(false);
        let skipped = |result: &'static str, error: Option<String>| DeliveryRecord {
            destination: dest.name.clone(),
            kind,
            result,
            attempts: 0,
            error,
        };
        if already {
            tracing::info!(event_id = %n.event_id, destination = %dest.name, "already delivered for this event; not sending again");
            return skipped("already-delivered", None);
        }
        // The shared ledger: the same event in another execution environment.
        let key = (!n.event_id.is_empty()).then(|| ledger::key(&n.event_id, &dest.name));
        // Won: the claim's token. Unclaimed: the ledger did not answer; the
        // send goes ahead and is recorded after, if the ledger answers then.
        let mut claim: Option<String> = None;
        let mut unclaimed = false;
        let mut deadline = deadline;
        if let Some(key) = &key {
            let left = deadline.saturating_duration_since(Instant::now());
            let lease = left + LEASE_MARGIN;
            let bound = (left / 3).min(LEDGER_CALL);
            match tokio::time::timeout(bound, self.ledger.claim(key, lease)).await {
                Ok(Ok(Claim::Won(token))) => {
                    claim = Some(token);
                    // Leave room to mark it sent before the deadline.
                    if left > 2 * LEDGER_CALL {
                        deadline -= LEDGER_CALL;
                    }
                }
                Ok(Ok(Claim::AlreadyDelivered)) => {
                    if let Ok(mut m) = self.memory.lock() {
                        m.record(&n.event_id, &dest.name);
                    }
                    tracing::info!(event_id = %n.event_id, destination = %dest.name, "already delivered for this event (by another execution environment); not sending again");
                    return skipped("already-delivered", None);
                }
                Ok(Ok(Claim::Elsewhere)) => {
                    let why = "another execution environment is delivering this event to this \
                               destination right now; Lambda's retry will find it delivered (or \
                               take over if that environment stopped)";
                    tracing::warn!(event_id = %n.event_id, destination = %dest.name, "{why}");
                    return skipped("failed", Some(why.to_owned()));
                }
                Ok(Err(e)) => {
                    unclaimed = true;
                    tracing::warn!(
                        event_id = %n.event_id,
                        destination = %dest.name,
                        error = %e,
                        "the delivery ledger could not be read; sending without cross-environment deduplication"
                    );
                }
                Err(_) => {
                    unclaimed = true;
                    tracing::warn!(
                        event_id = %n.event_id,
                        destination = %dest.name,
                        "the delivery ledger did not answer in time; sending without cross-environment deduplication"
                    );
                }
            }
        }
        let via = Via {
            http: &self.http,
            sns: &self.sns,
            policy: &self.policy,
            releases: self.releases.as_ref(),
        };
        let Attempts { attempts, result } = destinations::deliver(dest, n, deadline, &via).await;
        if let Some(key) = &key {
            match &result {
                Ok(()) if claim.is_some() || unclaimed => {
                    let recorded = tokio::time::timeout(
                        LEDGER_CALL,
                        self.ledger.delivered(key, claim.as_deref()),
                    )
                    .await;
                    if !matches!(recorded, Ok(Ok(()))) {
                        tracing::warn!(event_id = %n.event_id, destination = %dest.name, "delivered, but the ledger could not record it; a retry in another environment may send it again after the claim expires");
                    }
                }
                Err(_) => {
                    if let Some(token) = &claim {
                        let release = self.ledger.release(key, token);
                        let _ = tokio::time::timeout(LEDGER_CALL, release).await;
                    }
                }
                Ok(()) => {}
            }
        }
        match result {
            Ok(()) => {
                if let Ok(mut m) = self.memory.lock() {
                    m.record(&n.event_id, &dest.name);
                }
                DeliveryRecord {
                    destination: dest.name.clone(),
                    kind,
                    result: "delivered",
                    attempts,
                    error: None,
                }
            }
            Err((err, why)) => {
                let status = match &err {
                    DeliveryError::Retryable { status, .. }
                    | DeliveryError::Permanent { status, .. } => *status,
                };
                tracing::error!(
                    event_id = %n.event_id,
                    destination = %dest.name,
                    kind = kind.as_str(),
                    status = status.map(i64::from).unwrap_or(-1),
                    attempts,
                    error = %err,
                    "delivery failed: {why}"
                );
                DeliveryRecord {
                    destination: dest.name.clone(),
                    kind,
                    result: "failed",
                    attempts,
                    error: Some(format!("{err}; {why}")),
                }
            }
        }
    }
}
