//! Release state for the Slack bot mode ([`crate::destinations::slackbot`]):
//! one record per run ([`Notification::thread`], e.g.
//! `codepipeline/<pipeline>/<execution id>`) and destination, holding the
//! live message (channel, `ts`), what it shows (the stage strip, the final
//! state, the commit, the trigger, the links) and which event ids were
//! already applied and answered in the thread.
//!
//! Merging is a join: every mark (a stage's state, the run's own state) is
//! ordered by (event time, rank, status), and a merge keeps the larger. So
//! the result does not depend on the order events arrive in: a late
//! `STARTED` (earlier time) after `FAILED` never regresses the strip, an
//! action event never changes the run's final state, and a retry (`RESUMED`,
//! later time) does reopen it. Concurrent writers converge because each
//! writes with the version it read ([`ReleaseStore::store`]) and, on a
//! conflict, re-reads and merges again.
//!
//! Port: [`ReleaseStore`]; the notifier's adapter shares the delivery
//! ledger's DynamoDB table with the key prefix `release#`.

use crate::model::{Notification, SourceKind, Status, parse_rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// Event ids remembered per run (a run has far fewer events).
pub const MAX_APPLIED: usize = 500;
/// Stages shown at most (CodePipeline allows 50 per pipeline).
pub const MAX_STAGES: usize = 50;
/// Linked runs (builds, deployments) remembered per run.
pub const MAX_CHILDREN: usize = 40;

/// A boxed future (the port is used as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How far a state has come: running < stopping < ended.
fn rank(status: Status) -> u8 {
    match status {
        Status::Started | Status::Resumed | Status::InProgress | Status::Ready => 1,
        Status::Stopping => 2,
        Status::Succeeded
        | Status::Recovered
        | Status::Failed
        | Status::Stopped
        | Status::Superseded
        | Status::Canceled
        | Status::Abandoned => 3,
        Status::Warning | Status::Info => 0,
    }
}

/// One state with what orders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The state.
    pub status: Status,
    /// Event time, epoch seconds (0 when the event had none).
    pub at: i64,
}

impl Mark {
    fn key(&self) -> (i64, u8, Status) {
        (self.at, rank(self.status), self.status)
    }

    /// The larger of two marks (commutative, associative, idempotent).
    pub fn join(a: Option<Mark>, b: Mark) -> Mark {
        match a {
            Some(a) if a.key() >= b.key() => a,
            _ => b,
        }
    }

    /// Whether the state is an end state.
    pub fn is_final(&self) -> bool {
        rank(self.status) == 3
    }
}

/// A stage in the strip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageCell {
    /// Stage name.
    pub name: String,
    /// Its state.
    pub mark: Mark,
    /// When it was first seen (orders the strip).
    pub first: i64,
}

/// What the live message shows, and where it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Stored version (the condition of the next write); 0: not stored yet.
    #[serde(skip)]
    pub version: u64,
    /// Channel of the live message.
    pub channel: String,
    /// The live message's `ts`, once posted.
    pub ts: Option<String>,
    /// A writer is posting the message until this epoch second.
    pub creating_until: Option<i64>,
    /// The run's display name (pipeline, `application/group`, …).
    pub name: String,
    /// What the run is (`pipeline`, `deployment`, …).
    pub kind: Option<SourceKind>,
    /// The run's own state (from the run-level events only).
    pub overall: Option<Mark>,
    /// The stages seen, in order.
    pub stages: Vec<StageCell>,
    /// Earliest event time seen (epoch seconds).
    pub started: Option<i64>,
    /// Commit line and link.
    pub commit: Option<(String, Option<String>)>,
    /// Trigger in words.
    pub trigger: Option<String>,
    /// Console links (label, url).
    pub links: Vec<(String, String)>,
    /// The failure reasons seen, latest last (at most 3).
    pub reasons: Vec<String>,
    /// Event ids already merged.
    pub applied: Vec<String>,
    /// Event ids already answered in the thread.
    pub replied: Vec<String>,
    /// The pipeline's stages in order, when its structure was read: the
    /// strip also shows the stages not reached yet.
    #[serde(default)]
    pub planned: Vec<String>,
    /// The runs this execution started that are linked to it (their
    /// events land in this thread).
    #[serde(default)]
    pub children: Vec<String>,
    /// A rollback tied to this run (a CodeDeploy rollback, an ECS
    /// rollback): what rolled back. Set once, never cleared.
    #[serde(default)]
    pub rolled_back: Option<String>,
    /// A link record: the run (thread) this run belongs to.
    #[serde(default)]
    pub parent: Option<String>,
}

/// What rolled back, in words (`payments-api/prod (CodeDeploy)`).
fn rollback_what(n: &Notification) -> String {
    let service = if n.kind == SourceKind::EcsDeployment {
        "ECS"
    } else {
        "CodeDeploy"
    };
    let name: String = n.name.chars().take(200).collect();
    format!("{name} ({service})")
}

/// Whether a run-level event tells of a rollback: a CodeDeploy deployment
/// that was rolled back, a rollback deployment, an ECS deployment that
/// failed and rolled back.
pub fn is_rollback(n: &Notification) -> bool {
    let Some(q) = n.qualifier.as_deref() else {
        return false;
    };
    match n.kind {
        SourceKind::Deployment => q == "rolled back" || q.starts_with("rollback of"),
        SourceKind::EcsDeployment => {
            n.status == Status::Failed && (q.contains("rolling back") || q == "rollback")
        }
        _ => false,
    }
}

/// Epoch seconds of the event, 0 when unknown.
pub fn event_time(n: &Notification) -> i64 {
    n.time
        .as_deref()
        .and_then(parse_rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

fn fact<'a>(n: &'a Notification, label: &str) -> Option<&'a str> {
    n.facts
        .iter()
        .find(|f| f.label == label)
        .map(|f| f.value.as_str())
}

/// Whether the event is about the run as a whole (not a stage or action).
pub fn is_run_level(n: &Notification) -> bool {
    !matches!(n.kind, SourceKind::Stage | SourceKind::Action)
}

impl ReleaseRecord {
    /// Whether `event_id` was already merged.
    pub fn has_applied(&self, event_id: &str) -> bool {
        !event_id.is_empty() && self.applied.iter().any(|e| e == event_id)
    }

    /// Whether `event_id` was already answered in the thread.
    pub fn has_replied(&self, event_id: &str) -> bool {
        !event_id.is_empty() && self.replied.iter().any(|e| e == event_id)
    }

    /// Notes a thread reply for `event_id`.
    pub fn mark_replied(&mut self, event_id: &str) {
        if !self.has_replied(event_id) {
            self.replied.push(event_id.to_owned());
            trim(&mut self.replied);
        }
    }

    /// Merges one event (idempotent; order-independent).
    pub fn merge(&mut self, n: &Notification) {
        let at = event_time(n);
        let mark = Mark {
            status: n.status,
            at,
        };
        // An event of a run this one started (a build, a deployment) tells
        // its failure and rollback here, but never moves the strip or the
        // run's own state.
        if let Some(parent) = &n.parent_run {
            if self.name.is_empty()
                && let Some(rest) = parent.strip_prefix("codepipeline/")
                && let Some((pipeline, _)) = rest.rsplit_once('/')
            {
                self.name = pipeline.to_owned();
                self.kind.get_or_insert(SourceKind::Pipeline);
            }
            if is_rollback(n) && self.rolled_back.is_none() {
                self.rolled_back = Some(rollback_what(n));
            }
        } else {
            self.merge_own(n, mark, at);
        }
        if self.planned.is_empty() && !n.planned_stages.is_empty() {
            self.planned = n.planned_stages.iter().take(MAX_STAGES).cloned().collect();
        }
        for c in &n.children {
            if self.children.len() < MAX_CHILDREN && !self.children.contains(c) {
                self.children.push(c.clone());
            }
        }
        if n.status == Status::Failed
            && let Some(r) = &n.reason
        {
            let line = r.lines().next().unwrap_or_default().trim().to_owned();
            if !line.is_empty() && !self.reasons.contains(&line) {
                self.reasons.push(line);
                if self.reasons.len() > 3 {
                    self.reasons.remove(0);
                }
            }
        }
        if !n.event_id.is_empty() && !self.has_applied(&n.event_id) {
            self.applied.push(n.event_id.clone());
            trim(&mut self.applied);
        }
    }

    /// The strip: the planned stages in order (those not reached yet
    /// without a state), then any stage seen that the plan does not have.
    pub fn strip(&self) -> Vec<(&str, Option<Status>)> {
        let seen = |name: &str| {
            self.stages
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.mark.status)
        };
        let mut out: Vec<(&str, Option<Status>)> =
            self.planned.iter().map(|p| (p.as_str(), seen(p))).collect();
        for s in &self.stages {
            if !self.planned.contains(&s.name) {
                out.push((s.name.as_str(), Some(s.mark.status)));
            }
        }
        out
    }

    /// The run's own events: its state, the stages, name, kind, commit,
    /// trigger and links.
    fn merge_own(&mut self, n: &Notification, mark: Mark, at: i64) {
        if self.name.is_empty() {
            self.name.clone_from(&n.name);
        }
        if is_run_level(n) {
            self.kind.get_or_insert(n.kind);
            if is_rollback(n) && self.rolled_back.is_none() {
                self.rolled_back = Some(rollback_what(n));
            }
        }
        if at > 0 {
            self.started = Some(self.started.map_or(at, |s| s.min(at)));
        }
        if rank(n.status) > 0 {
            if is_run_level(n) {
                self.overall = Some(Mark::join(self.overall, mark));
            } else if let Some(stage) = fact(n, "Stage") {
                let room = self.stages.len() < MAX_STAGES;
                match self.stages.iter_mut().find(|s| s.name == stage) {
                    Some(cell) => {
                        // A stage's own events and its actions' events both
                        // move it; an action's end does not end the stage.
                        let m = if n.kind == SourceKind::Action && mark.is_final() {
                            match n.status {
                                Status::Failed => mark,
                                _ => Mark {
                                    status: Status::InProgress,
                                    at,
                                },
                            }
                        } else {
                            mark
                        };
                        cell.mark = Mark::join(Some(cell.mark), m);
                        cell.first = cell.first.min(at);
                    }
                    None if room => {
                        let m = if n.kind == SourceKind::Action && n.status != Status::Failed {
                            Mark {
                                status: Status::InProgress,
                                at,
                            }
                        } else {
                            mark
                        };
                        self.stages.push(StageCell {
                            name: stage.to_owned(),
                            mark: m,
                            first: at,
                        });
                    }
                    None => {}
                }
                self.stages
                    .sort_by(|a, b| (a.first, &a.name).cmp(&(b.first, &b.name)));
            }
        }
        if self.commit.is_none()
            && let Some(c) = &n.commit
        {
            self.commit = Some((crate::render::commit_line(c), c.url.clone()));
        }
        if self.trigger.is_none()
            && let Some(t) = fact(n, "Trigger")
        {
            self.trigger = Some(t.to_owned());
        }
        for l in &n.links {
            if self.links.len() < 5 && !self.links.iter().any(|(_, u)| *u == l.url) {
                self.links.push((l.label.clone(), l.url.clone()));
            }
        }
    }

    /// The stage that failed (the first failed in the strip), if any.
    pub fn failed_stage(&self) -> Option<&str> {
        self.stages
            .iter()
            .find(|s| s.mark.status == Status::Failed)
            .map(|s| s.name.as_str())
    }

    /// Seconds from the first event to the run's end (or to `now`).
    pub fn elapsed(&self, now: i64) -> Option<u64> {
        let start = self.started?;
        let end = match self.overall {
            Some(m) if m.is_final() && m.at > 0 => m.at,
            _ => now,
        };
        u64::try_from(end - start).ok()
    }

    /// Folds another writer's record into this one (both kept their own
    /// `ts`/`channel`: the stored one wins, it was written first).
    pub fn absorb(&mut self, other: &ReleaseRecord) {
        if let Some(m) = other.overall {
            self.overall = Some(Mark::join(self.overall, m));
        }
        for s in &other.stages {
            let room = self.stages.len() < MAX_STAGES;
            match self.stages.iter_mut().find(|c| c.name == s.name) {
                Some(c) => {
                    c.mark = Mark::join(Some(c.mark), s.mark);
                    c.first = c.first.min(s.first);
                }
                None if room => self.stages.push(s.clone()),
                None => {}
            }
        }
        self.stages
            .sort_by(|a, b| (a.first, &a.name).cmp(&(b.first, &b.name)));
        self.started = match (self.started, other.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.commit.is_none() {
            self.commit.clone_from(&other.commit);
        }
        if self.trigger.is_none() {
            self.trigger.clone_from(&other.trigger);
        }
        if self.kind.is_none() {
            self.kind = other.kind;
        }
        for l in &other.links {
            if self.links.len() < 5 && !self.links.iter().any(|(_, u)| *u == l.1) {
                self.links.push(l.clone());
            }
        }
        for r in &other.reasons {
            if !self.reasons.contains(r) {
                self.reasons.push(r.clone());
            }
        }
        while self.reasons.len() > 3 {
            self.reasons.remove(0);
        }
        for e in &other.applied {
            if !self.has_applied(e) {
                self.applied.push(e.clone());
            }
        }
        trim(&mut self.applied);
        for e in &other.replied {
            self.mark_replied(e);
        }
        if self.planned.is_empty() {
            self.planned.clone_from(&other.planned);
        }
        for c in &other.children {
            if self.children.len() < MAX_CHILDREN && !self.children.contains(c) {
                self.children.push(c.clone());
            }
        }
        if self.rolled_back.is_none() {
            self.rolled_back.clone_from(&other.rolled_back);
        }
        if self.parent.is_none() {
            self.parent.clone_from(&other.parent);
        }
    }
}

fn trim(ids: &mut Vec<String>) {
    if ids.len() > MAX_APPLIED {
        let cut = ids.len() - MAX_APPLIED;
        ids.drain(..cut);
    }
}

/// Port: the shared release records.
pub trait ReleaseStore: Send + Sync + std::fmt::Debug {
    /// Reads a record (strongly consistent); `None`: no record yet.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ReleaseRecord>, String>>;

    /// Writes `record` with version `record.version + 1` if the stored
    /// version is still `record.version` (0: no record yet). `Ok(false)`:
    /// someone else wrote first; re-read and merge again.
    fn store<'a>(
        &'a self,
        key: &'a str,
        record: &'a ReleaseRecord,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// Records in this process only (local runs, tests, no table configured:
/// one execution environment still keeps one message per run).
#[derive(Debug, Default)]
pub struct MemoryReleases {
    records: Mutex<HashMap<String, ReleaseRecord>>,
}

impl ReleaseStore for MemoryReleases {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ReleaseRecord>, String>> {
        let got = self
            .records
            .lock()
            .map(|m| m.get(key).cloned())
            .map_err(|_| "release records unavailable".to_owned());
        Box::pin(async move { got })
    }

    fn store<'a>(
        &'a self,
        key: &'a str,
        record: &'a ReleaseRecord,
    ) -> BoxFuture<'a, Result<bool, String>> {
        let out = match self.records.lock() {
            Ok(mut m) => {
                let current = m.get(key).map_or(0, |r| r.version);
                if current == record.version {
                    let mut r = record.clone();
                    r.version += 1;
                    m.insert(key.to_owned(), r);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Err(_) => Err("release records unavailable".to_owned()),
        };
        Box::pin(async move { out })
    }
}

/// The record key of a run and destination.
pub fn key(run: &str, destination: &str) -> String {
    format!("release#{destination}#{run}")
}

/// The key of the link record saying which run `child` (a thread such as
/// `codedeploy/d-…`) belongs to, for a destination.
pub fn link_key(child: &str, destination: &str) -> String {
    format!("release#{destination}#link#{child}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::parse;
    use serde_json::json;

    pub(crate) fn ev(
        id: &str,
        kind: &str,
        state: &str,
        stage: Option<&str>,
        time: &str,
    ) -> Notification {
        let (dt, mut detail) = match kind {
            "pipeline" => (
                "CodePipeline Pipeline Execution State Change",
                json!({"pipeline": "pay", "execution-id": "x1", "state": state}),
            ),
            "stage" => (
                "CodePipeline Stage Execution State Change",
                json!({"pipeline": "pay", "execution-id": "x1", "state": state}),
            ),
            _ => (
                "CodePipeline Action Execution State Change",
                json!({"pipeline": "pay", "execution-id": "x1", "state": state, "action": "A"}),
            ),
        };
        if let Some(s) = stage {
            detail["stage"] = json!(s);
        }
        Notification::from_event(&parse(json!({
            "id": id, "detail-type": dt, "source": "aws.codepipeline",
            "region": "eu-west-1", "account": "111122223333", "time": time,
            "detail": detail
        })))
    }

    pub(crate) fn events() -> Vec<Notification> {
        vec![
            ev("1", "pipeline", "STARTED", None, "2026-11-26T06:00:00Z"),
            ev(
                "2",
                "stage",
                "STARTED",
                Some("Source"),
                "2026-11-26T06:00:01Z",
            ),
            ev(
                "3",
                "stage",
                "SUCCEEDED",
                Some("Source"),
                "2026-11-26T06:00:05Z",
            ),
            ev(
                "4",
                "stage",
                "STARTED",
                Some("Build"),
                "2026-11-26T06:00:06Z",
            ),
            ev(
                "5",
                "action",
                "STARTED",
                Some("Build"),
                "2026-11-26T06:00:06Z",
            ),
            ev(
                "6",
                "action",
                "FAILED",
                Some("Build"),
                "2026-11-26T06:01:00Z",
            ),
            ev(
                "7",
                "stage",
                "FAILED",
                Some("Build"),
                "2026-11-26T06:01:00Z",
            ),
            ev("8", "pipeline", "FAILED", None, "2026-11-26T06:01:01Z"),
        ]
    }

    fn shown(r: &ReleaseRecord) -> (Option<Status>, Vec<(String, Status)>) {
        (
            r.overall.map(|m| m.status),
            r.stages
                .iter()
                .map(|s| (s.name.clone(), s.mark.status))
                .collect(),
        )
    }

    #[test]
    fn any_arrival_order_shows_the_same_state() {
        let evs = events();
        let mut inorder = ReleaseRecord::default();
        for e in &evs {
            inorder.merge(e);
        }
        let want = shown(&inorder);
        assert_eq!(want.0, Some(Status::Failed));
        assert_eq!(
            want.1,
            vec![
                ("Source".to_owned(), Status::Succeeded),
                ("Build".to_owned(), Status::Failed)
            ]
        );
        // Reversed, rotated, and each event twice.
        let orders: Vec<Vec<usize>> = vec![
            (0..evs.len()).rev().collect(),
            vec![7, 0, 6, 1, 5, 2, 4, 3],
            vec![3, 3, 7, 7, 0, 1, 2, 4, 5, 6, 6],
        ];
        for order in orders {
            let mut r = ReleaseRecord::default();
            for i in &order {
                r.merge(&evs[*i]);
            }
            assert_eq!(shown(&r), want, "order {order:?}");
        }
    }

    #[test]
    fn late_started_never_regresses_and_actions_never_reopen_the_run() {
        let mut r = ReleaseRecord::default();
        r.merge(&ev("8", "pipeline", "FAILED", None, "2026-11-26T06:01:01Z"));
        r.merge(&ev(
            "1",
            "pipeline",
            "STARTED",
            None,
            "2026-11-26T06:00:00Z",
        ));
        r.merge(&ev(
            "9",
            "action",
            "STARTED",
            Some("Deploy"),
            "2026-11-26T06:02:00Z",
        ));
        assert_eq!(r.overall.map(|m| m.status), Some(Status::Failed));
        // Same second: the end state wins over the start.
        let mut r = ReleaseRecord::default();
        r.merge(&ev(
            "b",
            "stage",
            "FAILED",
            Some("S"),
            "2026-11-26T06:00:00Z",
        ));
        r.merge(&ev(
            "a",
            "stage",
            "STARTED",
            Some("S"),
            "2026-11-26T06:00:00Z",
        ));
        assert_eq!(r.stages[0].mark.status, Status::Failed);
    }

    #[test]
    fn a_retry_later_reopens_the_run() {
        let mut r = ReleaseRecord::default();
        r.merge(&ev("8", "pipeline", "FAILED", None, "2026-11-26T06:01:01Z"));
        r.merge(&ev(
            "r",
            "pipeline",
            "RESUMED",
            None,
            "2026-11-26T06:05:00Z",
        ));
        assert!(!r.overall.expect("mark").is_final());
    }

    #[test]
    fn absorbing_is_the_same_as_merging_everything() {
        let evs = events();
        let (mut a, mut b, mut all) = (
            ReleaseRecord::default(),
            ReleaseRecord::default(),
            ReleaseRecord::default(),
        );
        for (i, e) in evs.iter().enumerate() {
            if i % 2 == 0 { &mut a } else { &mut b }.merge(e);
            all.merge(e);
        }
        a.absorb(&b);
        assert_eq!(shown(&a), shown(&all));
        assert!(evs.iter().all(|e| a.has_applied(&e.event_id)));
    }

    #[test]
    fn applied_ids_are_bounded() {
        let mut r = ReleaseRecord::default();
        for i in 0..(MAX_APPLIED + 20) {
            r.merge(&ev(
                &format!("e{i}"),
                "pipeline",
                "STARTED",
                None,
                "2026-11-26T06:00:00Z",
            ));
        }
        assert_eq!(r.applied.len(), MAX_APPLIED);
        assert!(r.has_applied(&format!("e{}", MAX_APPLIED + 19)));
    }

    #[test]
    fn the_strip_shows_planned_stages_not_reached_yet() {
        let mut r = ReleaseRecord::default();
        let mut first = ev(
            "2",
            "stage",
            "SUCCEEDED",
            Some("Source"),
            "2026-11-26T06:00:05Z",
        );
        first.planned_stages = vec!["Source".into(), "Build".into(), "Prod".into()];
        r.merge(&first);
        r.merge(&ev(
            "3",
            "stage",
            "STARTED",
            Some("Build"),
            "2026-11-26T06:00:06Z",
        ));
        // A stage the plan does not have (the pipeline changed) still shows.
        r.merge(&ev(
            "4",
            "stage",
            "STARTED",
            Some("Extra"),
            "2026-11-26T06:00:07Z",
        ));
        assert_eq!(
            r.strip(),
            vec![
                ("Source", Some(Status::Succeeded)),
                ("Build", Some(Status::Started)),
                ("Prod", None),
                ("Extra", Some(Status::Started)),
            ]
        );
        // Without a plan: the stages seen.
        let mut seen = ReleaseRecord::default();
        seen.merge(&ev(
            "3",
            "stage",
            "STARTED",
            Some("Build"),
            "2026-11-26T06:00:06Z",
        ));
        assert_eq!(seen.strip(), vec![("Build", Some(Status::Started))]);
    }

    fn deployment(id: &str, state: &str, qualifier: Option<&str>, time: &str) -> Notification {
        let mut n = Notification::from_event(&parse(json!({
            "id": id, "detail-type": "CodeDeploy Deployment State-change Notification",
            "source": "aws.codedeploy", "region": "eu-west-1", "account": "111122223333",
            "time": time,
            "detail": {"application": "pay", "deploymentGroup": "prod", "deploymentId": "d-ABC", "state": state}
        })));
        n.qualifier = qualifier.map(str::to_owned);
        n.parent_run = Some("codepipeline/pay/x1".into());
        n
    }

    #[test]
    fn a_linked_deployment_never_moves_the_run_but_its_rollback_is_final() {
        let evs = events();
        let mut r = ReleaseRecord::default();
        for e in &evs[..5] {
            r.merge(e);
        }
        let started = r.overall;
        // The deployment's own success does not end the pipeline.
        r.merge(&deployment("d1", "SUCCESS", None, "2026-11-26T06:00:30Z"));
        assert_eq!(r.overall, started);
        assert!(r.rolled_back.is_none());
        // Its rollback is remembered, in any order with the rest.
        let rb = deployment("d2", "FAILURE", Some("rolled back"), "2026-11-26T06:00:50Z");
        let mut a = r.clone();
        a.merge(&rb);
        for e in &evs[5..] {
            a.merge(e);
        }
        let mut b = r.clone();
        for e in evs[5..].iter().rev() {
            b.merge(e);
        }
        b.merge(&rb);
        b.merge(&evs[0]);
        for x in [&a, &b] {
            assert_eq!(x.overall.map(|m| m.status), Some(Status::Failed));
            assert_eq!(x.rolled_back.as_deref(), Some("pay/prod (CodeDeploy)"));
            assert_eq!(x.failed_stage(), Some("Build"));
        }
        // A late success of the deployment does not clear it.
        a.merge(&deployment("d3", "SUCCESS", None, "2026-11-26T06:09:00Z"));
        assert!(a.rolled_back.is_some());
        // Absorbing keeps it.
        let mut c = ReleaseRecord::default();
        c.absorb(&a);
        assert_eq!(c.rolled_back, a.rolled_back);
    }

    #[test]
    fn a_linked_event_names_a_run_not_seen_yet() {
        let mut r = ReleaseRecord::default();
        r.merge(&deployment("d1", "START", None, "2026-11-26T06:00:30Z"));
        assert_eq!(r.name, "pay");
        assert_eq!(r.kind, Some(SourceKind::Pipeline));
        assert!(r.overall.is_none() && r.stages.is_empty());
    }

    #[test]
    fn children_are_remembered_bounded() {
        let mut r = ReleaseRecord::default();
        let mut n = ev("1", "pipeline", "STARTED", None, "2026-11-26T06:00:00Z");
        n.children = (0..60).map(|i| format!("codebuild/p:{i}")).collect();
        r.merge(&n);
        assert_eq!(r.children.len(), MAX_CHILDREN);
    }

    #[tokio::test]
    async fn the_memory_store_refuses_a_stale_version() {
        let s = MemoryReleases::default();
        let r = ReleaseRecord::default();
        assert!(s.store("k", &r).await.expect("store"));
        assert!(!s.store("k", &r).await.expect("conflict"));
        let got = s.load("k").await.expect("load").expect("some");
        assert_eq!(got.version, 1);
        assert!(s.store("k", &got).await.expect("store"));
    }
}
