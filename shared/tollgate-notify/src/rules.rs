//! Noise control and routing: which events notify, and where they go.
//!
//! The rules document is JSON or YAML, given inline in
//! `TOLLGATE_NOTIFY_RULES` or stored in SSM (`TOLLGATE_NOTIFY_RULES_SSM`).
//! Every key is optional; unknown keys are rejected so typos fail at init.
//!
//! ```yaml
//! version: 1
//! # Which statuses notify, per source. Replaces the default list of that
//! # source only. Statuses: started, in-progress, succeeded, recovered,
//! # failed, stopping, stopped, superseded, resumed, canceled, abandoned,
//! # ready, warning, info; or "all".
//! notify:
//!   pipeline: [failed, recovered, stopped]
//!   build: []                 # CodeBuild: never
//! # Events with a detail-type the notifier does not know: generic | drop.
//! unknown: generic
//! # Routes, first match wins (unless `continue: true`). `match` keys:
//! # source, pipeline, stage, action, application, deployment-group,
//! # project, service, cluster, detail-type, event-source, account, region.
//! # Values are globs (`*`, `?`) or lists of globs (any of them).
//! routes:
//!   - match: { pipeline: "payments-*" }
//!     to: [payments-slack]
//!     notify: [failed, recovered, succeeded]   # optional, replaces `notify` here
//!   - match: { source: [ecs-deployment, ecs-service], cluster: prod }
//!     to: [ops-teams, audit]
//!     continue: true
//! # Destinations for events no route matched (default: every destination).
//! default_destinations: [ops-teams]
//! # Named destinations besides the ones from environment variables.
//! destinations:
//!   payments-slack: { type: slack, url: "secretsmanager:tollgate/payments#slack_url" }
//!   ops-teams: { type: teams, url: "ssm:/tollgate/ops-teams-webhook" }
//!   audit: { type: sns, topic_arn: "arn:aws:sns:eu-west-1:111122223333:deploys" }
//!   q-chat: { type: amazonq, topic_arn: "arn:aws:sns:eu-west-1:111122223333:q-chat" }
//!   ci: { type: webhook, url: "secretsmanager:tollgate/ci#url", token: "secretsmanager:tollgate/ci#token" }
//! ```
//!
//! Defaults (what a missing `notify` entry means):
//! - failures always notify, for every source;
//! - a pipeline SUCCEEDED notifies only as *recovered*: when the previous
//!   execution failed (found with `ListPipelineExecutions`) or the execution
//!   succeeded on a retry attempt;
//! - ECS service actions also notify on WARN events (tasks failing to start);
//! - STARTED, SUPERSEDED, STOPPED and the rest stay quiet unless listed,
//!   except a manual approval starting (the Slack bot's approval request);
//! - unknown detail-types get a generic message.
//!
//! A `recovered` event also notifies where only `succeeded` is listed: a
//! recovery is a success.

use super::destinations::DestinationDoc;
use super::model::{Notification, SourceKind, Status};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// A problem in the rules document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not valid JSON/YAML, or the wrong shape.
    #[error("the notifier rules document is not valid {format}: {detail}")]
    Syntax {
        /// JSON or YAML.
        format: &'static str,
        /// What is wrong (values not quoted).
        detail: String,
    },
    /// A value the rules do not know.
    #[error("the notifier rules document is invalid at {at}: {problem}")]
    Invalid {
        /// Where, e.g. `notify.pipline`.
        at: String,
        /// What is wrong and what is accepted.
        problem: String,
    },
}

/// What unknown detail-types produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    /// A generic message with the detail's scalar fields.
    Generic,
    /// Nothing (logged at info).
    Drop,
}

/// Keys a route may match on.
pub const MATCH_KEYS: [&str; 13] = [
    "source",
    "pipeline",
    "stage",
    "action",
    "application",
    "deployment-group",
    "project",
    "service",
    "cluster",
    "detail-type",
    "event-source",
    "account",
    "region",
];

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    #[serde(rename = "match", default)]
    matcher: BTreeMap<String, OneOrMany>,
    to: Vec<String>,
    #[serde(default)]
    notify: Option<Vec<String>>,
    #[serde(rename = "continue", default)]
    keep_going: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesDoc {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    notify: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    unknown: Option<UnknownPolicy>,
    #[serde(default)]
    routes: Vec<RouteDoc>,
    #[serde(default)]
    default_destinations: Option<Vec<String>>,
    #[serde(default)]
    destinations: BTreeMap<String, DestinationDoc>,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Key → globs (any of them matches); all keys must match.
    pub matcher: Vec<(String, Vec<String>)>,
    /// Destination names.
    pub to: Vec<String>,
    /// Statuses that notify for events of this route (overrides `notify`).
    pub notify: Option<BTreeSet<Status>>,
    /// Keep looking at later routes after this one matched.
    pub keep_going: bool,
}

/// The parsed, validated rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Statuses that notify, per source.
    pub notify: BTreeMap<SourceKind, BTreeSet<Status>>,
    /// Unknown detail-types.
    pub unknown: UnknownPolicy,
    /// Routes in order.
    pub routes: Vec<Route>,
    /// Destinations for unrouted events; `None` = all destinations.
    pub default_destinations: Option<Vec<String>>,
}

impl Default for Rules {
    fn default() -> Self {
        let mut notify = BTreeMap::new();
        for kind in SourceKind::ALL {
            let mut set = BTreeSet::from([Status::Failed]);
            match kind {
                SourceKind::Pipeline => {
                    set.insert(Status::Recovered);
                }
                SourceKind::EcsService => {
                    set.insert(Status::Warning);
                }
                SourceKind::Other => {
                    set = Status::ALL.into_iter().collect();
                }
                _ => {}
            }
            notify.insert(kind, set);
        }
        Self {
            notify,
            unknown: UnknownPolicy::Generic,
            routes: Vec::new(),
            default_destinations: None,
        }
    }
}

/// What to do with one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send to these destinations (names, in order, no duplicates).
    Send(Vec<String>),
    /// Stay quiet, and why (for the log and the invocation result).
    Quiet(String),
}

fn status_set(at: &str, items: &[String]) -> Result<BTreeSet<Status>, RulesError> {
    let mut set = BTreeSet::new();
    for item in items {
        if item == "all" {
            set.extend(Status::ALL);
            continue;
        }
        let status = Status::parse(item).ok_or_else(|| RulesError::Invalid {
            at: at.to_owned(),
            problem: format!(
                "unknown status `{item}`{}; use one of: all, {}",
                hint(item, &Status::ALL.map(Status::as_str)),
                Status::ALL.map(Status::as_str).join(", ")
            ),
        })?;
        set.insert(status);
    }
    Ok(set)
}

/// ` (did you mean `x`?)` for a near miss, else nothing.
fn hint(input: &str, choices: &[&str]) -> String {
    tollgate_core::text::did_you_mean(input, choices)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Parses a rules document (JSON when it starts with `{`, else YAML).
/// Returns the rules and the destinations the document declares.
pub fn parse_document(text: &str) -> Result<(Rules, BTreeMap<String, DestinationDoc>), RulesError> {
    let trimmed = text.trim_start();
    let doc: RulesDoc = if trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|e| RulesError::Syntax {
            format: "JSON",
            detail: tollgate_core::doc_error::json(&e, trimmed),
        })?
    } else {
        serde_saphyr::from_str_with_options(trimmed, tollgate_core::memory::document_yaml_options())
            .map_err(|e| RulesError::Syntax {
                format: "YAML",
                detail: tollgate_core::doc_error::yaml(&e, trimmed),
            })?
    };
    if let Some(v) = doc.version
        && v != 1
    {
        return Err(RulesError::Invalid {
            at: "version".to_owned(),
            problem: format!("version {v} is not supported; this notifier reads version 1"),
        });
    }
    let mut rules = Rules::default();
    for (key, statuses) in &doc.notify {
        let kind = SourceKind::parse(key).ok_or_else(|| RulesError::Invalid {
            at: format!("notify.{key}"),
            problem: format!(
                "unknown source `{key}`{}; use one of: {}",
                hint(key, &SourceKind::ALL.map(SourceKind::as_str)),
                SourceKind::ALL.map(SourceKind::as_str).join(", ")
            ),
        })?;
        rules
            .notify
            .insert(kind, status_set(&format!("notify.{key}"), statuses)?);
    }
    if let Some(policy) = doc.unknown {
        rules.unknown = policy;
    }
    for (i, r) in doc.routes.into_iter().enumerate() {
        let at = format!("routes[{i}]");
        if r.to.is_empty() {
            return Err(RulesError::Invalid {
                at: format!("{at}.to"),
                problem: "a route needs at least one destination".to_owned(),
            });
        }
        let mut matcher = Vec::new();
        for (key, values) in r.matcher {
            if !MATCH_KEYS.contains(&key.as_str()) {
                return Err(RulesError::Invalid {
                    at: format!("{at}.match.{key}"),
                    problem: format!(
                        "unknown match key `{key}`{}; use one of: {}",
                        hint(&key, &MATCH_KEYS),
                        MATCH_KEYS.join(", ")
                    ),
                });
            }
            let values = values.into_vec();
            if key == "source" {
                for v in &values {
                    if !v.contains(['*', '?']) && SourceKind::parse(v).is_none() {
                        return Err(RulesError::Invalid {
                            at: format!("{at}.match.source"),
                            problem: format!(
                                "unknown source `{v}`{}; use one of: {}",
                                hint(v, &SourceKind::ALL.map(SourceKind::as_str)),
                                SourceKind::ALL.map(SourceKind::as_str).join(", ")
                            ),
                        });
                    }
                }
            }
            matcher.push((key, values));
        }
        let notify = match &r.notify {
            Some(list) => Some(status_set(&format!("{at}.notify"), list)?),
            None => None,
        };
        rules.routes.push(Route {
            matcher,
            to: r.to,
            notify,
            keep_going: r.keep_going,
        });
    }
    rules.default_destinations = doc.default_destinations;
    Ok((rules, doc.destinations))
}

/// `*` matches any run of characters, `?` exactly one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Rules {
    /// Checks that every destination named in routes and defaults exists.
    pub fn check_destinations(&self, known: &BTreeSet<String>) -> Result<(), RulesError> {
        let list = || known.iter().cloned().collect::<Vec<_>>().join(", ");
        for (i, r) in self.routes.iter().enumerate() {
            for name in &r.to {
                if !known.contains(name) {
                    return Err(RulesError::Invalid {
                        at: format!("routes[{i}].to"),
                        problem: format!(
                            "no destination named `{name}`; configured destinations: {}",
                            list()
                        ),
                    });
                }
            }
        }
        for name in self.default_destinations.iter().flatten() {
            if !known.contains(name) {
                return Err(RulesError::Invalid {
                    at: "default_destinations".to_owned(),
                    problem: format!(
                        "no destination named `{name}`; configured destinations: {}",
                        list()
                    ),
                });
            }
        }
        Ok(())
    }

    fn value_for<'a>(n: &'a Notification, key: &str) -> Option<&'a str> {
        match key {
            "source" => Some(n.kind.as_str()),
            "account" => Some(n.account.as_str()),
            "region" => Some(n.region.as_str()),
            "detail-type" => Some(n.detail_type.as_str()),
            "event-source" => Some(n.event_source.as_str()),
            other => n.route_value(other),
        }
    }

    fn route_matches(route: &Route, n: &Notification) -> bool {
        route.matcher.iter().all(|(key, globs)| {
            Self::value_for(n, key).is_some_and(|v| globs.iter().any(|g| glob_match(g, v)))
        })
    }

    fn wants(set: &BTreeSet<Status>, status: Status) -> bool {
        set.contains(&status) || (status == Status::Recovered && set.contains(&Status::Succeeded))
    }

    fn global_set(&self, kind: SourceKind) -> BTreeSet<Status> {
        if kind == SourceKind::Other && self.unknown == UnknownPolicy::Drop {
            return BTreeSet::new();
        }
        self.notify.get(&kind).cloned().unwrap_or_default()
    }

    /// Whether any status in `candidates` could notify for this event: used
    /// before enrichment to skip API calls for events that stay quiet anyway
    /// (a pipeline SUCCEEDED is checked as succeeded *or* recovered).
    pub fn could_notify(&self, n: &Notification) -> bool {
        let mut candidates = vec![n.status];
        if n.kind == SourceKind::Pipeline && n.status == Status::Succeeded {
            candidates.push(Status::Recovered);
        }
        candidates.into_iter().any(|s| self.notifies_as(n, s))
    }

    /// Whether this event would notify if its status were `status`.
    pub fn notifies_as(&self, n: &Notification, status: Status) -> bool {
        let any = ["*".to_owned()];
        let mut probe = n.clone();
        probe.status = status;
        matches!(self.decide(&probe, &any), Decision::Send(_))
    }

    /// Decides for a (possibly enriched) notification. `all` is every
    /// configured destination name, used when no route matched and no
    /// `default_destinations` are set.
    pub fn decide(&self, n: &Notification, all: &[String]) -> Decision {
        if n.kind == SourceKind::Other && self.unknown == UnknownPolicy::Drop {
            return Decision::Quiet(format!(
                "unknown detail-type `{}` dropped (rules: unknown: drop)",
                n.detail_type
            ));
        }
        let mut global = self.global_set(n.kind);
        // A manual approval waiting for a decision notifies (the Slack bot
        // posts its approval request, crate::approval_request); a route's
        // own `notify` list can still keep it quiet.
        if crate::approval_request::approval_of(n).is_some() {
            global.insert(Status::Started);
        }
        // So does an ECS deployment paused at a PAUSE hook (the bot posts
        // Continue / Roll back, crate::ecs_pause).
        if crate::ecs_pause::pause_of(n).is_some() {
            global.insert(n.status);
        }
        // So does an entry condition in progress found for this execution
        // (the bot posts Override, crate::stage_condition).
        if crate::stage_condition::request_of(n).is_some() {
            global.insert(n.status);
        }
        let mut out: Vec<String> = Vec::new();
        let mut matched = false;
        let mut quiet_routes = 0usize;
        for route in &self.routes {
            if !Self::route_matches(route, n) {
                continue;
            }
            matched = true;
            let set = route.notify.as_ref().unwrap_or(&global);
            if Self::wants(set, n.status) {
                for d in &route.to {
                    if !out.contains(d) {
                        out.push(d.clone());
                    }
                }
            } else {
                quiet_routes += 1;
            }
            if !route.keep_going {
                break;
            }
        }
        if !matched {
            if !Self::wants(&global, n.status) {
                return Decision::Quiet(format!(
                    "{} {} is not in the statuses that notify for {} ({})",
                    n.kind,
                    n.status,
                    n.kind,
                    describe_set(&global)
                ));
            }
            out = match &self.default_destinations {
                Some(d) => d.clone(),
                None => all.to_vec(),
            };
        }
        if out.is_empty() {
            return Decision::Quiet(if quiet_routes > 0 {
                format!(
                    "{} {} is not in the statuses that notify for the matching route",
                    n.kind, n.status
                )
            } else {
                "no destination is configured".to_owned()
            });
        }
        Decision::Send(out)
    }
}

fn describe_set(set: &BTreeSet<Status>) -> String {
    if set.is_empty() {
        "none".to_owned()
    } else {
        set.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;
    use serde_json::json;

    fn pipeline(state: &str, name: &str) -> Notification {
        Notification::from_event(&parse(json!({
            "id": "1", "detail-type": "CodePipeline Pipeline Execution State Change",
            "source": "aws.codepipeline", "region": "us-east-1", "account": "111122223333",
            "detail": {"pipeline": name, "execution-id": "x", "state": state}
        })))
    }

    fn all() -> Vec<String> {
        vec!["slack".into(), "teams".into()]
    }

    #[test]
    fn defaults_failures_notify_everywhere_success_stays_quiet() {
        let r = Rules::default();
        assert_eq!(
            r.decide(&pipeline("FAILED", "p"), &all()),
            Decision::Send(all())
        );
        assert!(matches!(
            r.decide(&pipeline("SUCCEEDED", "p"), &all()),
            Decision::Quiet(_)
        ));
        assert!(matches!(
            r.decide(&pipeline("STARTED", "p"), &all()),
            Decision::Quiet(_)
        ));
        assert!(matches!(
            r.decide(&pipeline("SUPERSEDED", "p"), &all()),
            Decision::Quiet(_)
        ));
        let mut rec = pipeline("SUCCEEDED", "p");
        assert!(r.could_notify(&rec), "a success may be a recovery");
        rec.status = Status::Recovered;
        assert_eq!(r.decide(&rec, &all()), Decision::Send(all()));
        assert!(!r.could_notify(&pipeline("STARTED", "p")));
    }

    #[test]
    fn yaml_routes_first_match_wins() {
        let (rules, dests) = parse_document(
            r#"
version: 1
notify:
  pipeline: [failed, succeeded]
routes:
  - match: { pipeline: "payments-*" }
    to: [payments]
  - match: { source: pipeline }
    to: [ops]
    notify: [failed]
default_destinations: [ops]
destinations:
  payments: { type: slack, url: "secretsmanager:x#url" }
  ops: { type: teams, url: "ssm:/x" }
"#,
        )
        .expect("valid");
        assert_eq!(dests.len(), 2);
        let names: Vec<String> = vec!["payments".into(), "ops".into()];
        assert_eq!(
            rules.decide(&pipeline("SUCCEEDED", "payments-api"), &names),
            Decision::Send(vec!["payments".into()])
        );
        assert!(matches!(
            rules.decide(&pipeline("SUCCEEDED", "web"), &names),
            Decision::Quiet(_)
        ));
        assert_eq!(
            rules.decide(&pipeline("FAILED", "web"), &names),
            Decision::Send(vec!["ops".into()])
        );
    }

    #[test]
    fn continue_collects_more_destinations() {
        let (rules, _) = parse_document(
            r#"{"routes": [
                {"match": {"pipeline": "p*"}, "to": ["a"], "continue": true},
                {"match": {"region": "us-*"}, "to": ["b", "a"]}
            ]}"#,
        )
        .expect("valid");
        assert_eq!(
            rules.decide(&pipeline("FAILED", "pay"), &[]),
            Decision::Send(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn typos_are_rejected_with_the_accepted_values() {
        let err = parse_document("notify:\n  pipline: [failed]\n").expect_err("bad source");
        assert!(err.to_string().contains("notify.pipline"), "{err}");
        assert!(err.to_string().contains("ecs-deployment"), "{err}");
        let err = parse_document("notify:\n  pipeline: [faild]\n").expect_err("bad status");
        assert!(err.to_string().contains("unknown status `faild`"), "{err}");
        assert!(
            err.to_string().contains("(did you mean `failed`?)"),
            "{err}"
        );
        let err = parse_document("notfy: {}\n").expect_err("bad key");
        assert!(err.to_string().contains("notfy"), "{err}");
        let err = parse_document("routes:\n  - match: {pipe: x}\n    to: [a]\n").expect_err("key");
        assert!(
            err.to_string()
                .contains("unknown match key `pipe` (did you mean `pipeline`?)"),
            "{err}"
        );
        let err = parse_document("version: 2\n").expect_err("version");
        assert!(err.to_string().contains("version 1"), "{err}");
    }

    #[test]
    fn syntax_errors_do_not_quote_values() {
        let err = parse_document(
            "destinations:\n  a: { type: slack, url: [\"https://hooks.slack.com/services/T0/B0/SECRET\"] }\n",
        )
        .expect_err("wrong type");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn unknown_destinations_are_caught() {
        let (rules, _) = parse_document("routes:\n  - match: {}\n    to: [nope]\n").expect("ok");
        let known = BTreeSet::from(["slack".to_owned()]);
        let err = rules.check_destinations(&known).expect_err("unknown");
        assert!(
            err.to_string().contains("no destination named `nope`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_can_be_dropped() {
        let (rules, _) = parse_document("unknown: drop\n").expect("ok");
        let n = Notification::from_event(&parse(json!({"detail-type": "X", "detail": {}})));
        assert!(matches!(rules.decide(&n, &all()), Decision::Quiet(_)));
        assert!(matches!(
            Rules::default().decide(&n, &all()),
            Decision::Send(_)
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match("payments-*", "payments-api"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*-prod-*", "web-prod-eu"));
        assert!(!glob_match("payments", "payments-api"));
    }
}
