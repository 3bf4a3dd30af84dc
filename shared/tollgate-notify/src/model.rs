//! The normalised notification every renderer works from.
//!
//! [`Notification::from_event`] turns any parsed event into the same shape:
//! what it is about (`kind`, `name`, `scope`), how it went (`status`, with a
//! [`Severity`]), why (`reason`), the commit, facts, console links and the
//! duration. Enrichment ([`super::enrich`]) fills in what the event itself
//! does not carry; the renderers only format.

use super::console;
use super::events::{
    ActionExecution, BuildState, CodeDeployState, Detail, EcsDeployment, EcsHook, EcsServiceAction,
    Event, ExecutionTrigger, PipelineExecution, StageExecution,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of resource the event is about. Rules select and route on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// CodePipeline pipeline execution.
    Pipeline,
    /// CodePipeline stage execution.
    Stage,
    /// CodePipeline action execution.
    Action,
    /// CodeDeploy deployment.
    Deployment,
    /// CodeDeploy instance.
    Instance,
    /// CodeBuild build.
    Build,
    /// ECS service deployment.
    EcsDeployment,
    /// ECS service action (steady state, impaired tasks, placement failures, …).
    EcsService,
    /// An event the notifier does not know.
    Other,
}

impl SourceKind {
    /// All kinds.
    pub const ALL: [SourceKind; 9] = [
        Self::Pipeline,
        Self::Stage,
        Self::Action,
        Self::Deployment,
        Self::Instance,
        Self::Build,
        Self::EcsDeployment,
        Self::EcsService,
        Self::Other,
    ];

    /// The name used in rules documents and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pipeline => "pipeline",
            Self::Stage => "stage",
            Self::Action => "action",
            Self::Deployment => "deployment",
            Self::Instance => "instance",
            Self::Build => "build",
            Self::EcsDeployment => "ecs-deployment",
            Self::EcsService => "ecs-service",
            Self::Other => "other",
        }
    }

    /// Parses [`SourceKind::as_str`] forms.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The normalised state. AWS's own word is kept in [`Notification::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Started.
    Started,
    /// Running (CodeBuild IN_PROGRESS, ECS deployment in progress).
    InProgress,
    /// Succeeded.
    Succeeded,
    /// A pipeline succeeded after its previous execution failed.
    Recovered,
    /// Failed (also CodeBuild FAULT / TIMED_OUT, ECS ERROR events).
    Failed,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
    /// Replaced by a newer execution.
    Superseded,
    /// Resumed after a retry.
    Resumed,
    /// Canceled.
    Canceled,
    /// Abandoned (action of a stopped execution).
    Abandoned,
    /// CodeDeploy blue/green deployment waiting to reroute traffic.
    Ready,
    /// Something needs attention but has not failed (ECS WARN events).
    Warning,
    /// Informational (ECS INFO events, anything unrecognised).
    Info,
}

impl Status {
    /// All statuses.
    pub const ALL: [Status; 14] = [
        Self::Started,
        Self::InProgress,
        Self::Succeeded,
        Self::Recovered,
        Self::Failed,
        Self::Stopping,
        Self::Stopped,
        Self::Superseded,
        Self::Resumed,
        Self::Canceled,
        Self::Abandoned,
        Self::Ready,
        Self::Warning,
        Self::Info,
    ];

    /// The name used in rules documents and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::InProgress => "in-progress",
            Self::Succeeded => "succeeded",
            Self::Recovered => "recovered",
            Self::Failed => "failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Superseded => "superseded",
            Self::Resumed => "resumed",
            Self::Canceled => "canceled",
            Self::Abandoned => "abandoned",
            Self::Ready => "ready",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    /// Parses [`Status::as_str`] forms.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How bad it is.
    pub fn severity(self) -> Severity {
        match self {
            Self::Failed => Severity::Failure,
            Self::Succeeded | Self::Recovered => Severity::Success,
            Self::Stopped | Self::Abandoned | Self::Canceled | Self::Warning => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The status as a phrase after the subject ("pipeline failed").
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::InProgress => "in progress",
            Self::Succeeded => "succeeded",
            Self::Recovered => "recovered",
            Self::Failed => "failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Superseded => "superseded",
            Self::Resumed => "resumed",
            Self::Canceled => "canceled",
            Self::Abandoned => "abandoned",
            Self::Ready => "ready to reroute traffic",
            Self::Warning => "needs attention",
            Self::Info => "changed state",
        }
    }

    /// A status emoji for chat.
    pub fn emoji(self) -> &'static str {
        match self {
            Self::Failed => "❌",
            Self::Succeeded => "✅",
            Self::Recovered => "💚",
            Self::Started | Self::Resumed => "▶️",
            Self::InProgress => "⏳",
            Self::Stopping | Self::Stopped | Self::Canceled | Self::Abandoned => "⏹️",
            Self::Superseded => "⏭️",
            Self::Ready => "🚦",
            Self::Warning => "⚠️",
            Self::Info => "ℹ️",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a status is; drives colours in chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Neutral.
    Info,
    /// Good news.
    Success,
    /// Needs a look.
    Warning,
    /// Broken.
    Failure,
}

impl Severity {
    /// The name used in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Failure => "failure",
        }
    }
}

/// A labelled value shown as a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// Label, e.g. `Pipeline`.
    pub label: String,
    /// Value, e.g. `payments-api`.
    pub value: String,
}

/// A button / link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Button text, e.g. `Open execution`.
    pub label: String,
    /// Target.
    pub url: String,
}

/// The commit behind a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// Full commit id (or other revision id).
    pub id: String,
    /// First line of the commit message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `owner/repo` or repository name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Link to the commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// GitHub, CodeCommit, Bitbucket, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// How enrichment went for this notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrichmentState {
    /// Nothing to look up for this event, or enrichment is switched off.
    None,
    /// Every lookup answered.
    Complete,
    /// Some lookups failed or timed out; the message has what was found.
    Partial,
    /// Every lookup failed or timed out; the message has the event's own data.
    Failed,
}

/// Enrichment outcome, carried into the generic webhook payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrichment {
    /// Overall state.
    pub state: EnrichmentState,
    /// What could not be looked up and why (no secrets, no payloads).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Default for Enrichment {
    fn default() -> Self {
        Self {
            state: EnrichmentState::None,
            problems: Vec::new(),
        }
    }
}

/// A metric gate that did not pass: the failing measurement, read back from
/// the gate's failure text ([`tollgate_core::gate_report`]) in an action's
/// failure reason or a deploy-hook's failure record. Every field is user
/// text (query names, units, alarm names, CloudWatch's words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    /// `failed`, `inconclusive`, `could not measure`, `ran out of time`.
    pub outcome: String,
    /// The lifecycle event, when a deploy-hook's gate failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The most telling sentence: `p99 812 ms > 600 ms in 3 of 5 measurements`.
    pub headline: String,
    /// Each missed condition or fired alarm, when more than one.
    pub findings: Vec<String>,
    /// Findings the gate left out to stay bounded.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// The last measurement: `(5 of 5) failed: requests 812, p99 812 ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_measurement: Option<String>,
    /// The tallies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurements: Option<String>,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what_to_do: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl GateResult {
    /// From the gate's report.
    pub fn from_report(r: tollgate_core::gate_report::GateReport, hook: Option<String>) -> Self {
        GateResult {
            outcome: r.outcome.phrase().to_owned(),
            hook,
            headline: r.headline,
            findings: r.findings,
            omitted: r.omitted,
            last_measurement: r.last,
            measurements: r.tally,
            what_to_do: r.advice,
        }
    }

    /// The section's title: `Metric gate failed (AfterAllowTraffic)`.
    pub fn title(&self) -> String {
        match &self.hook {
            Some(h) => format!("Metric gate {} ({h})", self.outcome),
            None => format!("Metric gate {}", self.outcome),
        }
    }

    /// One line for previews: `metric gate failed: p99 812 ms > 600 ms in 3 of 5 measurements`.
    pub fn headline_line(&self) -> String {
        format!("metric gate {}: {}", self.outcome, self.headline)
    }

    /// The section's lines: what failed (each finding, or the headline),
    /// what was left out, the last measurement, the tallies, what to do.
    pub fn body_lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.findings.len() + 4);
        if self.findings.is_empty() {
            out.push(self.headline.clone());
        } else {
            out.extend(self.findings.iter().cloned());
        }
        if self.omitted > 0 {
            out.push(format!("… and {} more", self.omitted));
        }
        if let Some(l) = &self.last_measurement {
            out.push(format!("Last measurement {l}"));
        }
        if let Some(m) = &self.measurements {
            out.push(format!("Measurements: {m}"));
        }
        if let Some(w) = &self.what_to_do {
            out.push(format!("What to do: {w}"));
        }
        out
    }
}

/// The checks a deploy-hook reported failed for this deployment, read back
/// from its SSM record ([`tollgate_core::hook_failures`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedChecks {
    /// The deployment whose hook failed.
    pub deployment_id: String,
    /// The lifecycle event, e.g. `AfterAllowTestTraffic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// One line: what failed and against what.
    pub summary: String,
    /// The failed checks and expectations, one line each.
    pub lines: Vec<String>,
    /// Whether deploy-hook had to shorten the list to fit its record.
    pub truncated: bool,
    /// Lines left out of the record.
    pub omitted: usize,
}

impl FailedChecks {
    /// The section's title: `Failed checks (AfterAllowTestTraffic)`.
    pub fn title(&self) -> String {
        match &self.hook {
            Some(h) => format!("Failed checks ({h})"),
            None => "Failed checks".to_owned(),
        }
    }

    /// The most telling line, for one-line previews: the first failed
    /// expectation (`status: expected 200, got 503`), else the first line.
    pub fn headline(&self) -> String {
        let first = self
            .lines
            .iter()
            .map(|l| l.trim())
            .find_map(|l| l.strip_prefix("- "))
            .or_else(|| self.lines.first().map(|l| l.trim()))
            .unwrap_or(self.summary.as_str());
        match &self.hook {
            Some(h) => format!("{h}: {first}"),
            None => first.to_owned(),
        }
    }

    /// The lines to show: the failed checks (or the summary when the hook
    /// failed before any check ran), and a last line saying what was cut.
    pub fn body_lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.lines.len() + 2);
        if self.lines.is_empty() {
            out.push(self.summary.clone());
        }
        out.extend(self.lines.iter().cloned());
        if self.omitted > 0 {
            out.push(format!(
                "… {} more line(s) not recorded (4 KB limit)",
                self.omitted
            ));
        } else if self.truncated {
            out.push("(shortened to fit the 4 KB record)".to_owned());
        }
        out
    }
}

/// One normalised notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// EventBridge event id (dedupe key).
    pub event_id: String,
    /// EventBridge `detail-type`.
    pub detail_type: String,
    /// EventBridge `source`.
    pub event_source: String,
    /// Account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Event time, RFC 3339 as sent.
    pub time: Option<String>,
    /// What the event is about.
    pub kind: SourceKind,
    /// Normalised state.
    pub status: Status,
    /// AWS's own state word (`FAILED`, `FAILURE`, `SERVICE_DEPLOYMENT_FAILED`).
    pub state: String,
    /// The main resource's display name (pipeline, `application/group`,
    /// project, `cluster/service`).
    pub name: String,
    /// Which part (stage, `stage › action`, instance id); `None` for the whole.
    pub scope: Option<String>,
    /// The event in words when the status alone says too little
    /// (ECS service actions).
    pub event_phrase: Option<String>,
    /// Short qualifier shown in the title (`rolled back`, `circuit breaker`).
    pub qualifier: Option<String>,
    /// Keys the routing rules match on (`pipeline`, `application`, …).
    pub route: Vec<(String, String)>,
    /// Why it failed (or other explanation).
    pub reason: Option<String>,
    /// Labelled values.
    pub facts: Vec<Fact>,
    /// The commit.
    pub commit: Option<Commit>,
    /// Console and tool links.
    pub links: Vec<Link>,
    /// Duration in seconds when start and end are known.
    pub duration_secs: Option<u64>,
    /// The failed deploy-hook checks (CodeDeploy failures, when recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<FailedChecks>,
    /// The metric gate that failed (a `gate` action's failure, or a
    /// deploy-hook's gate), read back from its failure text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateResult>,
    /// How enrichment went.
    pub enrichment: Enrichment,
    /// The run this event belongs to, for destinations that thread
    /// (Amazon Q in chat's `threadId`): `codepipeline/<pipeline>/<execution
    /// id>` for pipeline, stage and action events, `codedeploy/<deployment
    /// id>`, `codebuild/<build id>`, `ecs/<deployment id>`. `None` when the
    /// event names no run (ECS service actions, unknown events). Events of
    /// other services are not yet tied to the pipeline execution that
    /// started them: each keeps a thread of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The pipeline's stages in order, when its structure was read
    /// (`GetPipeline`, for the Slack bot mode's stage strip): the strip
    /// also shows the stages not reached yet. Empty when not read.
    #[serde(skip)]
    pub planned_stages: Vec<String>,
    /// The runs this pipeline event shows it started (its actions'
    /// external execution ids as threads: `codebuild/<build id>`,
    /// `codedeploy/<deployment id>`, `ecs/<deployment id>`), at most
    /// [`MAX_CHILDREN`]. The Slack bot mode links them to this execution.
    #[serde(skip)]
    pub children: Vec<String>,
    /// The pipeline execution (its thread) that started this run, when
    /// known from the event or a lookup (a CodeBuild build's initiator).
    #[serde(skip)]
    pub parent_run: Option<String>,
    /// Other runs this one belongs with (a CodeDeploy rollback deployment:
    /// the deployment it rolls back, as a thread).
    #[serde(skip)]
    pub related_runs: Vec<String>,
    /// An ECS deployment paused at a `PAUSE` hook, awaiting a decision
    /// (`ECS Hook State Change` / `HOOK_AWAITING_ACTION`): what the Slack
    /// bot's Continue / Roll back buttons carry (`crate::ecs_pause`).
    #[serde(skip)]
    pub ecs_pause: Option<tollgate_core::ecs_pause_request::PauseRef>,
    /// Whether [`Self::ecs_pause`]'s service may be decided in Slack (it is
    /// one of `TOLLGATE_APPROVAL_ECS_SERVICES`): the bot posts Continue /
    /// Roll back only then, else the pause notice alone (set by the
    /// handler from the configuration).
    #[serde(skip)]
    pub ecs_pause_decidable: bool,
    /// A stage's entry condition in progress for this execution, found by
    /// the enrichment (`GetPipelineState`): what the Slack bot's Override
    /// button carries (`crate::stage_condition`).
    #[serde(skip)]
    pub stage_condition: Option<crate::stage_condition::ConditionRequest>,
}

/// Child runs remembered per event at most.
pub const MAX_CHILDREN: usize = 20;

/// The thread of the run an action's external execution id names, when it
/// is a run whose events the notifier receives: a CodeBuild build
/// (`project:uuid`), a CodeDeploy deployment (`d-…`) or an ECS service
/// deployment (`ecs-svc/…`, as pipeline-action's `ecs-deploy` reports it).
pub fn child_thread(provider: Option<&str>, external_id: &str) -> Option<String> {
    let id = external_id.trim();
    if id.is_empty() || id.len() > 200 || id.contains(char::is_whitespace) {
        return None;
    }
    if id.starts_with("d-") && id[2..].chars().all(|c| c.is_ascii_alphanumeric()) {
        return Some(format!("codedeploy/{id}"));
    }
    if id.starts_with("ecs-svc/") {
        return Some(format!("ecs/{id}"));
    }
    // An ECS native deployment reported by its service deployment ARN (the
    // thread its pause hook's events use).
    if tollgate_core::ecs_pause_request::parse_deployment_arn(id).is_some() {
        return Some(format!("ecs/{id}"));
    }
    let build_like = id
        .rsplit_once(':')
        .is_some_and(|(project, uuid)| !project.is_empty() && uuid.len() == 36);
    if provider == Some("CodeBuild") || build_like {
        let short = id.rsplit_once(":build/").map_or(id, |(_, b)| b);
        return Some(format!("codebuild/{short}"));
    }
    None
}

/// The thread-like key of a CodeDeploy deployment group
/// (`codedeploy-group/<application>/<group>`): a pipeline execution whose
/// deploy action is in progress there without a deployment id yet links
/// it, so the deployment's events still land in the execution's thread
/// (CodeDeploy runs one deployment per group at a time). `None` for names
/// CodeDeploy would not accept (empty, over 100 characters, whitespace).
pub fn deployment_group_thread(application: &str, group: &str) -> Option<String> {
    let ok = |s: &str| !s.is_empty() && s.len() <= 100 && !s.contains(char::is_whitespace);
    (ok(application) && ok(group)).then(|| format!("codedeploy-group/{application}/{group}"))
}

/// Whether two CodeBuild build ids name the same build: `project:uuid`
/// (what CodePipeline reports as a CodeBuild action's external execution
/// id) or the build's ARN (`arn:aws:codebuild:…:build/project:uuid`, what
/// CodeBuild's events carry), either way round.
pub fn same_build(a: &str, b: &str) -> bool {
    let short = |id: &str| {
        let id = id.trim();
        id.rsplit_once(":build/").map_or(id, |(_, b)| b).to_owned()
    };
    let (a, b) = (short(a), short(b));
    !a.is_empty() && a == b
}

impl Notification {
    /// Notes a run this event's execution started (bounded, no repeats).
    pub fn add_child(&mut self, child: String) {
        if self.children.len() < MAX_CHILDREN && !self.children.contains(&child) {
            self.children.push(child);
        }
    }

    /// The severity of [`Notification::status`].
    pub fn severity(&self) -> Severity {
        self.status.severity()
    }

    /// Finds a metric gate's failure text in the reason (a `gate` action's
    /// failure message, relayed as is or after `Stage › Action failed: `):
    /// the gate becomes [`Notification::gate`], and the reason keeps only
    /// the gate's first line in place of its block, so one-line previews
    /// still say what failed and the details are shown once. Called when
    /// the event is read and again after enrichment, which may merge the
    /// full text back in; a gate already known (a deploy-hook's record,
    /// which names the hook) is kept.
    pub fn extract_gate(&mut self) {
        let Some(reason) = &self.reason else {
            return;
        };
        if let Some((report, reason)) = tollgate_core::gate_report::GateReport::find(reason) {
            if self.gate.is_none() {
                self.gate = Some(GateResult::from_report(report, None));
            }
            self.reason = Some(reason);
        }
    }

    /// `payments-api: pipeline failed`, `web/prod: deployment failed (rolled back)`.
    pub fn title(&self) -> String {
        let what = match (self.kind, &self.scope, &self.event_phrase) {
            (_, _, Some(phrase)) => phrase.clone(),
            (SourceKind::Pipeline, _, _) => format!("pipeline {}", self.status.phrase()),
            (SourceKind::Stage, Some(stage), _) => {
                format!("stage {stage} {}", self.status.phrase())
            }
            (SourceKind::Action, Some(action), _) => {
                format!("action {action} {}", self.status.phrase())
            }
            (SourceKind::Deployment, _, _) => format!("deployment {}", self.status.phrase()),
            (SourceKind::Instance, Some(instance), _) => {
                format!("instance {instance} {}", self.status.phrase())
            }
            (SourceKind::Build, Some(phase), _) if self.status == Status::Failed => {
                format!("build failed in {phase}")
            }
            (SourceKind::Build, _, _) => format!("build {}", self.status.phrase()),
            (SourceKind::EcsDeployment, _, _) => {
                format!("ECS deployment {}", self.status.phrase())
            }
            (_, _, _) => self.status.phrase().to_owned(),
        };
        match &self.qualifier {
            Some(q) => format!("{}: {what} ({q})", self.name),
            None => format!("{}: {what}", self.name),
        }
    }

    /// The route value for `key`, if the event has one.
    pub fn route_value(&self, key: &str) -> Option<&str> {
        self.route
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds a fact unless one with the same label exists.
    pub fn add_fact(&mut self, label: &str, value: impl Into<String>) {
        let value = value.into();
        if value.is_empty() || self.facts.iter().any(|f| f.label == label) {
            return;
        }
        self.facts.push(Fact {
            label: label.to_owned(),
            value,
        });
    }

    /// Sets a fact, replacing one with the same label.
    pub fn set_fact(&mut self, label: &str, value: impl Into<String>) {
        let value = value.into();
        match self.facts.iter_mut().find(|f| f.label == label) {
            Some(f) => f.value = value,
            None => self.facts.push(Fact {
                label: label.to_owned(),
                value,
            }),
        }
    }

    /// Adds a link unless the same URL is already there.
    pub fn add_link(&mut self, label: &str, url: impl Into<String>) {
        let url = url.into();
        if !url.starts_with("https://") || self.links.iter().any(|l| l.url == url) {
            return;
        }
        self.links.push(Link {
            label: label.to_owned(),
            url,
        });
    }

    /// Adds a route key.
    fn add_route(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.route.push((key.to_owned(), value.to_owned()));
        }
    }

    /// The event time formatted for people (`2024-05-01 10:00:00 UTC`).
    pub fn time_display(&self) -> Option<String> {
        let raw = self.time.as_deref()?;
        Some(match parse_rfc3339(raw) {
            Some(t) => format_utc(t),
            None => raw.to_owned(),
        })
    }

    /// Builds the notification from the event alone (before enrichment).
    pub fn from_event(event: &Event) -> Self {
        let env = &event.envelope;
        let mut n = Notification {
            event_id: env.id().to_owned(),
            detail_type: env.detail_type().to_owned(),
            event_source: env.source().to_owned(),
            account: env.account().to_owned(),
            region: env.region().to_owned(),
            time: env.time.clone(),
            kind: SourceKind::Other,
            status: Status::Info,
            state: String::new(),
            name: String::new(),
            scope: None,
            event_phrase: None,
            qualifier: None,
            route: Vec::new(),
            reason: None,
            facts: Vec::new(),
            commit: None,
            links: Vec::new(),
            duration_secs: None,
            failed_checks: None,
            gate: None,
            enrichment: Enrichment::default(),
            thread: None,
            planned_stages: Vec::new(),
            children: Vec::new(),
            parent_run: None,
            related_runs: Vec::new(),
            ecs_pause: None,
            ecs_pause_decidable: false,
            stage_condition: None,
        };
        match &event.detail {
            Detail::PipelineExecution(d) => n.pipeline(d),
            Detail::StageExecution(d) => n.stage(d),
            Detail::ActionExecution(d) => n.action(d),
            Detail::Deployment(d) => n.codedeploy(d, SourceKind::Deployment),
            Detail::Instance(d) => n.codedeploy(d, SourceKind::Instance),
            Detail::Build(d) => n.build(d),
            Detail::EcsDeployment(d) => n.ecs_deployment(d, &env.resources),
            Detail::EcsServiceAction(d) => n.ecs_service(d, &env.resources),
            Detail::EcsHook(d) => n.ecs_hook(d),
            Detail::Unknown { raw } => n.other(raw, None, &env.resources),
            Detail::Malformed { problem, raw } => n.other(raw, Some(problem), &env.resources),
        }
        n.extract_gate();
        n
    }

    fn pipeline_common(
        &mut self,
        pipeline: &str,
        execution_id: Option<&str>,
        trigger: Option<&ExecutionTrigger>,
        attempt: Option<u32>,
    ) {
        self.name = pipeline.to_owned();
        self.add_route("pipeline", pipeline);
        self.add_fact("Pipeline", pipeline);
        if let Some(id) = execution_id {
            self.add_fact("Execution", id);
            self.thread = Some(format!("codepipeline/{pipeline}/{id}"));
        }
        if let Some(kind) = trigger.and_then(|t| t.trigger_type.as_deref()) {
            let detail = trigger.and_then(|t| t.trigger_detail.as_deref());
            self.add_fact("Trigger", describe_trigger(kind, detail));
        }
        if let Some(a) = attempt.filter(|a| *a > 1) {
            self.add_fact("Attempt", a.to_string());
        }
        if let Some(id) = execution_id {
            let url = console::pipeline_execution(&self.region, pipeline, id);
            self.add_link("Open execution", url);
        }
        let url = console::pipeline(&self.region, pipeline);
        self.add_link("Open pipeline", url);
    }

    fn pipeline(&mut self, d: &PipelineExecution) {
        self.kind = SourceKind::Pipeline;
        self.state = d.state.clone();
        self.status = codepipeline_status(&d.state);
        self.pipeline_common(
            &d.pipeline,
            d.execution_id.as_deref(),
            d.execution_trigger.as_ref(),
            d.attempt,
        );
        // A stage retry succeeded: the same execution failed before.
        if self.status == Status::Succeeded && d.attempt.is_some_and(|a| a > 1) {
            self.status = Status::Recovered;
            self.reason = Some(format!(
                "succeeded on attempt {} after a failed stage was retried",
                d.attempt.unwrap_or_default()
            ));
        }
        if let (Some(start), Some(end)) = (
            d.start_time.as_deref().and_then(parse_rfc3339),
            self.time.as_deref().and_then(parse_rfc3339),
        ) && self.status.is_terminal()
        {
            self.duration_secs = secs_between(start, end);
        }
    }

    fn stage(&mut self, d: &StageExecution) {
        self.kind = SourceKind::Stage;
        self.state = d.state.clone();
        self.status = codepipeline_status(&d.state);
        self.scope = Some(d.stage.clone());
        self.add_route("stage", &d.stage);
        self.pipeline_common(
            &d.pipeline,
            d.execution_id.as_deref(),
            d.execution_trigger.as_ref(),
            d.attempt,
        );
        self.add_fact("Stage", d.stage.clone());
    }

    fn action(&mut self, d: &ActionExecution) {
        self.kind = SourceKind::Action;
        self.state = d.state.clone();
        self.status = codepipeline_status(&d.state);
        self.scope = Some(format!("{} › {}", d.stage, d.action));
        self.add_route("stage", &d.stage);
        self.add_route("action", &d.action);
        self.pipeline_common(&d.pipeline, d.execution_id.as_deref(), None, d.attempt);
        self.add_fact("Stage", d.stage.clone());
        self.add_fact("Action", d.action.clone());
        if let Some(t) = &d.action_type {
            let provider = [t.category.as_deref(), t.provider.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / ");
            self.add_fact("Provider", provider);
        }
        if let Some(r) = &d.execution_result {
            if let Some(summary) = &r.external_execution_summary
                && matches!(
                    self.status,
                    Status::Failed | Status::Abandoned | Status::Canceled
                )
            {
                self.reason = Some(summary.clone());
            }
            if let Some(code) = &r.error_code {
                self.add_fact("Error code", code.clone());
            }
            let provider = d.action_type.as_ref().and_then(|t| t.provider.as_deref());
            if let Some(child) = r
                .external_execution_id
                .as_deref()
                .and_then(|id| child_thread(provider, id))
            {
                self.add_child(child);
            }
            if let Some(url) = &r.external_execution_url {
                let label = match d.action_type.as_ref().and_then(|t| t.provider.as_deref()) {
                    Some(p) => format!("Open in {p}"),
                    None => "Open action".to_owned(),
                };
                // The action's own page is the most useful: put it first.
                if url.starts_with("https://") && !self.links.iter().any(|l| &l.url == url) {
                    self.links.insert(
                        0,
                        Link {
                            label,
                            url: url.clone(),
                        },
                    );
                }
            }
        }
    }

    fn codedeploy(&mut self, d: &CodeDeployState, kind: SourceKind) {
        self.kind = kind;
        self.state = d.state.clone();
        self.status = match d.state.as_str() {
            "START" => Status::Started,
            "SUCCESS" => Status::Succeeded,
            "FAILURE" => Status::Failed,
            "STOP" => Status::Stopped,
            "READY" => Status::Ready,
            _ => Status::Info,
        };
        let app = d.application.as_deref().unwrap_or("(unknown application)");
        self.name = match &d.deployment_group {
            Some(g) => format!("{app}/{g}"),
            None => app.to_owned(),
        };
        self.add_route("application", d.application.as_deref().unwrap_or_default());
        self.add_route(
            "deployment-group",
            d.deployment_group.as_deref().unwrap_or_default(),
        );
        self.add_fact("Application", app);
        if let Some(g) = &d.deployment_group {
            self.add_fact("Deployment group", g.clone());
        }
        if let Some(id) = &d.deployment_id {
            self.add_fact("Deployment", id.clone());
            self.thread = Some(format!("codedeploy/{id}"));
            let url = console::deployment(&self.region, id);
            self.add_link("Open deployment", url);
        }
        if kind == SourceKind::Instance {
            let instance = d.instance_id.as_deref().unwrap_or("(unknown)");
            self.scope = Some(instance.to_owned());
            self.add_fact("Instance", instance);
        }
    }

    fn build(&mut self, d: &BuildState) {
        self.kind = SourceKind::Build;
        self.state = d.build_status.clone();
        self.status = match d.build_status.as_str() {
            "IN_PROGRESS" => Status::InProgress,
            "SUCCEEDED" => Status::Succeeded,
            "FAILED" | "FAULT" | "TIMED_OUT" => Status::Failed,
            "STOPPED" => Status::Stopped,
            _ => Status::Info,
        };
        let info = &d.additional_information;
        self.name = d.project_name.clone();
        self.add_route("project", &d.project_name);
        if let Some(pipeline) = info
            .initiator
            .as_deref()
            .and_then(|i| i.strip_prefix("codepipeline/"))
        {
            self.add_route("pipeline", pipeline);
        }
        self.add_fact("Project", d.project_name.clone());
        if let Some(n) = info.build_number {
            self.add_fact("Build", format!("#{n}"));
        }
        // The failing phase: CodeBuild marks it FAILED / FAULT / TIMED_OUT and
        // explains it in phase-context.
        let failed = info.phases.iter().find(|p| {
            matches!(
                p.phase_status.as_deref(),
                Some("FAILED" | "FAULT" | "TIMED_OUT" | "CLIENT_ERROR")
            )
        });
        if let Some(phase) = failed {
            let name = phase.phase_type.clone().unwrap_or_else(|| "?".to_owned());
            if self.status == Status::Failed {
                self.scope = Some(name.clone());
            }
            self.add_fact(
                "Failed phase",
                format!(
                    "{name} ({})",
                    phase.phase_status.as_deref().unwrap_or_default()
                ),
            );
            let context: Vec<&str> = phase
                .phase_context
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect();
            if !context.is_empty() {
                self.reason = Some(context.join("\n"));
            } else {
                self.reason = Some(format!(
                    "phase {name} ended {}",
                    phase.phase_status.as_deref().unwrap_or_default()
                ));
            }
        } else if self.status == Status::Failed && d.build_status == "TIMED_OUT" {
            self.reason = Some("the build timed out".to_owned());
        }
        if let Some(initiator) = &info.initiator {
            self.add_fact("Initiator", initiator.clone());
        }
        if let Some(version) = &info.source_version {
            let looks_like_commit =
                version.len() >= 7 && version.bytes().all(|b| b.is_ascii_hexdigit());
            if looks_like_commit {
                let repository = info
                    .source
                    .as_ref()
                    .and_then(|s| s.location.as_deref())
                    .and_then(repo_from_url);
                let url = repository
                    .as_deref()
                    .filter(|_| {
                        info.source
                            .as_ref()
                            .and_then(|s| s.location.as_deref())
                            .is_some_and(|l| l.contains("github.com"))
                    })
                    .map(|r| format!("https://github.com/{r}/commit/{version}"));
                self.commit = Some(Commit {
                    id: version.clone(),
                    repository,
                    url,
                    provider: info.source.as_ref().and_then(|s| s.source_type.clone()),
                    ..Commit::default()
                });
            } else {
                self.add_fact("Source version", version.clone());
            }
        }
        if let Some(id) = &d.build_id {
            // `arn:…:build/<project>:<uuid>`: the build's own id is the tail.
            let short = id.rsplit_once(":build/").map_or(id.as_str(), |(_, b)| b);
            self.thread = Some(format!("codebuild/{short}"));
            let url = console::build(&self.region, &self.account, &d.project_name, id);
            self.add_link("Open build", url);
        }
        if let Some(link) = info.logs.as_ref().and_then(|l| l.deep_link.clone()) {
            self.add_link("View logs", link);
        }
        if self.status.is_terminal() {
            let start = info
                .build_start_time
                .as_deref()
                .and_then(parse_codebuild_time);
            let end = self.time.as_deref().and_then(parse_rfc3339);
            self.duration_secs = match (start, end) {
                (Some(s), Some(e)) => secs_between(s, e),
                _ => {
                    let sum: u64 = info
                        .phases
                        .iter()
                        .filter_map(|p| p.duration_in_seconds)
                        .map(u64::from)
                        .sum();
                    (sum > 0).then_some(sum)
                }
            };
        }
    }

    fn ecs_names(&mut self, resources: &[String], cluster_arn: Option<&str>) {
        let service_arn = resources
            .iter()
            .find(|r| r.contains(":service/"))
            .map(String::as_str);
        let (cluster_from_arn, service) = service_arn
            .map(console::ecs_service_parts)
            .unwrap_or((None, "(unknown service)"));
        let cluster = cluster_from_arn
            .map(str::to_owned)
            .or_else(|| cluster_arn.map(|a| console::arn_name(a).to_owned()));
        self.name = match &cluster {
            Some(c) => format!("{c}/{service}"),
            None => service.to_owned(),
        };
        self.add_route("service", service);
        if let Some(c) = &cluster {
            self.add_route("cluster", c);
            self.add_fact("Cluster", c.clone());
        }
        self.add_fact("Service", service);
        if let (Some(c), true) = (&cluster, service_arn.is_some()) {
            let url = console::ecs_service(&self.region, c, service);
            self.add_link("Open service", url);
        }
    }

    fn ecs_deployment(&mut self, d: &EcsDeployment, resources: &[String]) {
        self.kind = SourceKind::EcsDeployment;
        self.state = d.event_name.clone();
        self.status = match d.event_name.as_str() {
            "SERVICE_DEPLOYMENT_IN_PROGRESS" => Status::InProgress,
            "SERVICE_DEPLOYMENT_COMPLETED" => Status::Succeeded,
            "SERVICE_DEPLOYMENT_FAILED" => Status::Failed,
            _ => ecs_event_type_status(d.event_type.as_deref(), &d.event_name),
        };
        self.ecs_names(resources, None);
        if let Some(id) = &d.deployment_id {
            self.add_fact("Deployment", id.clone());
            self.thread = Some(format!("ecs/{id}"));
        }
        if let Some(reason) = &d.reason {
            self.reason = Some(reason.clone());
            let lower = reason.to_ascii_lowercase();
            let breaker = lower.contains("circuit breaker");
            let alarms = lower.contains("alarm");
            let rollback = lower.contains("rolling back") || lower.contains("rollback");
            if rollback && self.status == Status::InProgress {
                self.event_phrase = Some("ECS rollback in progress".to_owned());
            }
            self.qualifier = match (breaker, alarms, rollback) {
                (true, _, true) if self.status == Status::InProgress => {
                    Some("circuit breaker".to_owned())
                }
                (true, _, true) => Some("circuit breaker, rolling back".to_owned()),
                (true, _, false) => Some("circuit breaker".to_owned()),
                (false, true, true) if self.status == Status::InProgress => {
                    Some("alarm".to_owned())
                }
                (false, true, true) => Some("alarm, rolling back".to_owned()),
                (false, true, false) => Some("alarm".to_owned()),
                (false, false, true) if self.status == Status::InProgress => None,
                (false, false, true) => Some("rollback".to_owned()),
                _ => None,
            };
        }
    }

    fn ecs_hook(&mut self, d: &EcsHook) {
        self.kind = SourceKind::EcsDeployment;
        self.state = d.event_name.clone();
        let pause = d.hook_type.as_deref() == Some("PAUSE");
        self.status = match d.event_name.as_str() {
            "HOOK_AWAITING_ACTION" | "HOOK_IN_PROGRESS" => Status::InProgress,
            "HOOK_SUCCEEDED" => Status::Info,
            "HOOK_FAILED" => Status::Failed,
            "HOOK_TIMED_OUT" => Status::Warning,
            _ => ecs_event_type_status(d.event_type.as_deref(), &d.event_name),
        };
        let service: Vec<String> = d.service_arn.iter().cloned().collect();
        self.ecs_names(&service, d.cluster_arn.as_deref());
        let stage = d.lifecycle_stage.as_deref().unwrap_or("a lifecycle stage");
        self.event_phrase = Some(match (d.event_name.as_str(), pause) {
            ("HOOK_AWAITING_ACTION", _) => format!("paused at {stage}, awaiting a decision"),
            ("HOOK_SUCCEEDED", true) => format!("continued after its pause at {stage}"),
            ("HOOK_FAILED", true) => format!("rolled back at its pause at {stage}"),
            ("HOOK_TIMED_OUT", _) => format!("hook at {stage} timed out"),
            ("HOOK_SUCCEEDED", false) => format!("hook at {stage} succeeded"),
            ("HOOK_FAILED", false) => format!("hook at {stage} failed"),
            _ => format!("hook at {stage} in progress"),
        });
        if let Some(stage) = &d.lifecycle_stage {
            self.add_fact("Lifecycle stage", stage.clone());
        }
        if let Some(t) = &d.hook_type {
            self.add_fact("Hook", t.clone());
        }
        if let Some(t) = &d.expires_at {
            self.add_fact("Expires", t.clone());
        }
        if let Some(arn) = &d.service_deployment_arn {
            self.thread = Some(format!("ecs/{arn}"));
            if let (Some(hook), true, "HOOK_AWAITING_ACTION") =
                (&d.hook_id, pause, d.event_name.as_str())
            {
                let r = tollgate_core::ecs_pause_request::PauseRef::new(
                    arn,
                    hook,
                    d.lifecycle_stage.as_deref(),
                );
                let fits =
                    r.encode().chars().count() <= tollgate_core::ecs_pause_request::MAX_VALUE;
                if r.check().is_ok() && fits {
                    self.ecs_pause = Some(r);
                }
            }
        }
    }

    fn ecs_service(&mut self, d: &EcsServiceAction, resources: &[String]) {
        self.kind = SourceKind::EcsService;
        self.state = d.event_name.clone();
        self.status = ecs_event_type_status(d.event_type.as_deref(), &d.event_name);
        self.ecs_names(resources, d.cluster_arn.as_deref());
        self.event_phrase = Some(ecs_service_phrase(&d.event_name));
        self.add_fact("Event", d.event_name.clone());
        if let Some(reason) = &d.reason {
            self.reason = Some(explain_placement_reason(reason));
        }
        if let Some(sets) = d.extra.get("taskSetArns").and_then(|v| v.as_array()) {
            let names: Vec<&str> = sets
                .iter()
                .filter_map(|v| v.as_str())
                .map(console::arn_name)
                .collect();
            if !names.is_empty() {
                self.add_fact("Task sets", names.join(", "));
            }
        }
    }

    fn other(&mut self, raw: &serde_json::Value, problem: Option<&String>, resources: &[String]) {
        self.kind = SourceKind::Other;
        self.status = Status::Info;
        let dt = if self.detail_type.is_empty() {
            "(no detail-type)".to_owned()
        } else {
            self.detail_type.clone()
        };
        self.name = if self.event_source.is_empty() {
            dt.clone()
        } else {
            format!("{} ({})", dt, self.event_source)
        };
        self.event_phrase = Some(match problem {
            Some(_) => "event not understood".to_owned(),
            None => "event received".to_owned(),
        });
        self.add_route("detail-type", &dt);
        self.add_route("event-source", &self.event_source.clone());
        if let Some(p) = problem {
            self.reason = Some(format!("the event did not have the expected shape: {p}"));
        }
        // Show the detail's scalar fields: enough to recognise the event
        // without dumping JSON into the channel.
        if let Some(obj) = raw.as_object() {
            for (k, v) in obj.iter().take(10) {
                if let Some(text) = super::events::scalar_text(v) {
                    self.add_fact(k, console::ellipsize(&text, 200));
                }
            }
            if let Some(state) = ["state", "status", "eventName", "build-status"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(super::events::scalar_text))
            {
                self.state = state;
            }
        }
        if !resources.is_empty() {
            let shown: Vec<&str> = resources.iter().take(3).map(String::as_str).collect();
            self.add_fact("Resources", shown.join("\n"));
        }
    }
}

impl Status {
    /// Whether the status ends a run (so a duration makes sense).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Recovered
                | Self::Failed
                | Self::Stopped
                | Self::Superseded
                | Self::Canceled
                | Self::Abandoned
        )
    }
}

fn codepipeline_status(state: &str) -> Status {
    match state {
        "STARTED" => Status::Started,
        "STOPPING" => Status::Stopping,
        "STOPPED" => Status::Stopped,
        "SUCCEEDED" => Status::Succeeded,
        "FAILED" => Status::Failed,
        "SUPERSEDED" => Status::Superseded,
        "RESUMED" => Status::Resumed,
        "CANCELED" | "CANCELLED" => Status::Canceled,
        "ABANDONED" => Status::Abandoned,
        "IN_PROGRESS" | "InProgress" => Status::InProgress,
        _ => Status::Info,
    }
}

fn ecs_event_type_status(event_type: Option<&str>, event_name: &str) -> Status {
    match event_type {
        Some("ERROR") => Status::Failed,
        Some("WARN") => Status::Warning,
        Some("INFO") => Status::Info,
        _ if event_name.contains("FAIL") => Status::Failed,
        _ if event_name.contains("IMPAIRED")
            || event_name.contains("THROTTLED")
            || event_name.contains("VIOLATED")
            || event_name.contains("UNHEALTHY") =>
        {
            Status::Warning
        }
        _ => Status::Info,
    }
}

fn ecs_service_phrase(event_name: &str) -> String {
    match event_name {
        "SERVICE_STEADY_STATE" => "service reached a steady state".to_owned(),
        "TASKSET_STEADY_STATE" => "task set reached a steady state".to_owned(),
        "CAPACITY_PROVIDER_STEADY_STATE" => "capacity provider reached a steady state".to_owned(),
        "SERVICE_TASK_START_IMPAIRED" => "tasks keep failing to start".to_owned(),
        "SERVICE_TASK_PLACEMENT_FAILURE" => "tasks cannot be placed".to_owned(),
        "SERVICE_TASK_CONFIGURATION_FAILURE" => "task configuration is invalid".to_owned(),
        "SERVICE_DAEMON_PLACEMENT_CONSTRAINT_VIOLATED" => {
            "daemon placement constraint violated".to_owned()
        }
        "ECS_OPERATION_THROTTLED" => "ECS throttled the service's API calls".to_owned(),
        "SERVICE_DISCOVERY_OPERATION_THROTTLED" => {
            "Cloud Map throttled the service's API calls".to_owned()
        }
        "SERVICE_DISCOVERY_INSTANCE_UNHEALTHY" => "service discovery instance unhealthy".to_owned(),
        other => other.to_ascii_lowercase().replace('_', " "),
    }
}

fn explain_placement_reason(reason: &str) -> String {
    let why = match reason {
        "RESOURCE:CPU" => "no container instance has enough free CPU",
        "RESOURCE:MEMORY" => "no container instance has enough free memory",
        "RESOURCE:PORTS" | "RESOURCE:PORTS_TCP" | "RESOURCE:PORTS_UDP" => {
            "the ports the task needs are taken on every container instance"
        }
        "RESOURCE:ENI" => "no container instance has a free network interface (awsvpc)",
        "RESOURCE:GPU" => "no container instance has a free GPU",
        "RESOURCE:FARGATE" => "Fargate capacity is not available for this task size",
        "AGENT" => "the ECS agent on the container instances is disconnected",
        "ATTRIBUTE" => "no container instance matches the placement constraints",
        _ => return reason.to_owned(),
    };
    format!("{why} ({reason})")
}

/// "StartPipelineExecution by Admin/alice", "Webhook via CodeConnections",
/// "CloudWatchEvent (rule orders-source-change)".
pub(crate) fn describe_trigger(kind: &str, detail: Option<&str>) -> String {
    let Some(d) = detail.map(str::trim).filter(|d| !d.is_empty()) else {
        return kind.to_owned();
    };
    let mut parts = d.splitn(6, ':');
    let is_arn = parts.next() == Some("arn");
    let _partition = parts.next();
    let service = parts.next().unwrap_or_default();
    let resource = d.splitn(6, ':').nth(5).unwrap_or(d);
    if !is_arn {
        return format!("{kind} by {d}");
    }
    match service {
        // assumed-role/Admin/alice → Admin/alice; user/alice → alice
        "sts" | "iam" => format!(
            "{kind} by {}",
            resource
                .strip_prefix("assumed-role/")
                .or_else(|| resource.strip_prefix("user/"))
                .unwrap_or(resource)
        ),
        "codeconnections" | "codestar-connections" => format!("{kind} via CodeConnections"),
        "events" => format!(
            "{kind} (rule {})",
            resource.strip_prefix("rule/").unwrap_or(resource)
        ),
        _ => format!("{kind} ({resource})"),
    }
}

/// `owner/repo` from `https://github.com/owner/repo.git` and similar.
pub(crate) fn repo_from_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (_host, path) = rest.split_once('/')?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => Some(format!("{a}/{b}")),
        _ => None,
    }
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// CodeBuild's `Sep 1, 2017 4:12:29 PM` (UTC).
pub fn parse_codebuild_time(s: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:none], [year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    time::PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(|t| t.assume_utc())
}

/// `2024-05-01 10:00:00 UTC`.
pub fn format_utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    match t.format(format) {
        Ok(s) => format!("{s} UTC"),
        Err(_) => t.to_string(),
    }
}

/// Whole seconds from `start` to `end`, when `end` is not before `start`.
pub fn secs_between(start: time::OffsetDateTime, end: time::OffsetDateTime) -> Option<u64> {
    let d = end - start;
    (d.whole_seconds() >= 0).then(|| d.whole_seconds() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;
    use serde_json::json;

    #[test]
    fn build_ids_match_as_ids_or_arns_and_groups_are_keyed() {
        let arn = "arn:aws:codebuild:eu-west-1:111122223333:build/pay-build:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61";
        let id = "pay-build:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61";
        assert!(same_build(id, id));
        assert!(same_build(arn, id));
        assert!(same_build(id, arn));
        assert!(!same_build("pay-build:other", id));
        assert!(!same_build("", ""));
        assert_eq!(
            deployment_group_thread("pay", "prod").as_deref(),
            Some("codedeploy-group/pay/prod")
        );
        assert!(deployment_group_thread("", "prod").is_none());
        assert!(deployment_group_thread("pay", "a b").is_none());
        assert!(deployment_group_thread("pay", &"g".repeat(101)).is_none());
    }

    #[test]
    fn external_ids_name_the_runs_an_action_started() {
        assert_eq!(
            child_thread(Some("CodeDeployToECS"), "d-7QXQ4LJ2B").as_deref(),
            Some("codedeploy/d-7QXQ4LJ2B")
        );
        assert_eq!(
            child_thread(Some("Lambda"), "ecs-svc/2001").as_deref(),
            Some("ecs/ecs-svc/2001")
        );
        assert_eq!(
            child_thread(
                Some("CodeBuild"),
                "payments:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61"
            )
            .as_deref(),
            Some("codebuild/payments:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61")
        );
        assert_eq!(child_thread(Some("Lambda"), "a task id"), None);
        assert_eq!(child_thread(Some("Manual"), "approval-1"), None);
        let n = Notification::from_event(&parse(json!({
            "id": "e", "detail-type": "CodePipeline Action Execution State Change",
            "source": "aws.codepipeline", "region": "eu-west-1", "account": "1",
            "time": "2026-11-26T06:00:00Z",
            "detail": {"pipeline": "pay", "execution-id": "x1", "stage": "Deploy", "action": "Blue",
                       "state": "SUCCEEDED", "type": {"provider": "CodeDeployToECS"},
                       "execution-result": {"external-execution-id": "d-ABC123"}}
        })));
        assert_eq!(n.children, vec!["codedeploy/d-ABC123".to_owned()]);
    }

    #[test]
    fn codebuild_times_parse() {
        let t = parse_codebuild_time("Sep 1, 2017 4:12:29 PM").expect("parses");
        assert_eq!(format_utc(t), "2017-09-01 16:12:29 UTC");
    }

    #[test]
    fn triggers_are_shortened() {
        let t = |k: &str, d: &str| describe_trigger(k, Some(d));
        assert_eq!(
            t(
                "StartPipelineExecution",
                "arn:aws:sts::123456789012:assumed-role/Admin/alice"
            ),
            "StartPipelineExecution by Admin/alice"
        );
        assert_eq!(
            t(
                "Webhook",
                "arn:aws:codeconnections:eu-west-1:1:connection/abc"
            ),
            "Webhook via CodeConnections"
        );
        assert_eq!(
            t(
                "CloudWatchEvent",
                "arn:aws:events:eu-west-1:1:rule/src-change"
            ),
            "CloudWatchEvent (rule src-change)"
        );
        assert_eq!(describe_trigger("Webhook", None), "Webhook");
    }

    #[test]
    fn repo_urls() {
        assert_eq!(
            repo_from_url("https://github.com/acme/payments.git").as_deref(),
            Some("acme/payments")
        );
        assert_eq!(repo_from_url("s3://bucket/key"), None);
    }

    #[test]
    fn succeeded_on_a_retry_attempt_is_recovered() {
        let ev = parse(json!({
            "id": "1", "detail-type": "CodePipeline Pipeline Execution State Change",
            "source": "aws.codepipeline", "region": "us-east-1", "account": "1",
            "detail": {"pipeline": "p", "execution-id": "x", "state": "SUCCEEDED",
                       "pipeline-execution-attempt": 2}
        }));
        let n = Notification::from_event(&ev);
        assert_eq!(n.status, Status::Recovered);
        assert_eq!(n.title(), "p: pipeline recovered");
    }

    #[test]
    fn ecs_circuit_breaker_is_qualified() {
        let ev = parse(json!({
            "id": "1", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
            "region": "us-west-2", "account": "1",
            "resources": ["arn:aws:ecs:us-west-2:1:service/prod/web"],
            "detail": {"eventType": "ERROR", "eventName": "SERVICE_DEPLOYMENT_FAILED",
                       "deploymentId": "ecs-svc/1", "reason": "ECS deployment circuit breaker: tasks failed to start."}
        }));
        let n = Notification::from_event(&ev);
        assert_eq!(n.status, Status::Failed);
        assert_eq!(
            n.title(),
            "prod/web: ECS deployment failed (circuit breaker)"
        );
        assert_eq!(n.route_value("service"), Some("web"));
        assert_eq!(n.route_value("cluster"), Some("prod"));
    }
}
