//! Best-effort enrichment: what the event does not say, looked up in the APIs.
//!
//! - CodePipeline `GetPipelineExecution`: trigger, and the commit (id,
//!   message, repository) from the artifact revisions; CodeConnections put a
//!   JSON string in `revisionSummary`, which is unwrapped.
//! - `ListActionExecutions`: the failed action's summary, error details and
//!   external URL; branch and repository from the source action's output
//!   variables; action durations.
//! - `ListPipelineExecutions` (pipeline-level terminal events): the duration,
//!   and whether a SUCCEEDED execution *recovered* (the previous completed
//!   execution failed). Stateless: nothing is stored between invocations.
//! - CodeDeploy `GetDeployment`: `errorInformation`, rollback info, instance
//!   counts, the GitHub commit, duration.
//! - SSM `GetParameter` (CodeDeploy deployment failures, and the rollback
//!   deployment that undoes one, when `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX`
//!   is set): the record deploy-hook left for a failed lifecycle hook
//!   ([`tollgate_core::hook_failures`]). It is shown as "Failed checks" only
//!   when its `deploymentId` is this deployment (or the one this rollback
//!   undoes); a missing, stale or unreadable record just leaves it out.
//! - CodeBuild and ECS events carry their reason, failing phase and log link
//!   themselves ([`super::model`]); no call is made for them.
//!
//! Every call runs concurrently under one time bound
//! (`TOLLGATE_NOTIFY_ENRICH_TIMEOUT_MS`, and never past the invocation's
//! deadline). A failed or slow call only leaves its part out: the message is
//! still sent, and [`Enrichment`] records what is missing.

use super::console;
use super::events::{Detail, Event};
use super::model::{
    Commit, Enrichment, EnrichmentState, FailedChecks, GateResult, Notification, SourceKind, Status,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_core::hook_failures::{HookFailureRecord, parameter_name};

/// Why a lookup failed. Messages name the IAM action to grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The role may not call the API.
    #[error("{action} was denied ({detail}); grant {action} to the notifier's role")]
    Denied {
        /// IAM action, e.g. `codepipeline:GetPipelineExecution`.
        action: &'static str,
        /// Service message.
        detail: String,
    },
    /// The resource does not exist (deleted, or another account/region).
    #[error("{action}: not found ({detail})")]
    NotFound {
        /// IAM action.
        action: &'static str,
        /// Service message.
        detail: String,
    },
    /// Anything else (throttling, 5xx, network).
    #[error("{action} failed: {detail}")]
    Failed {
        /// IAM action.
        action: &'static str,
        /// Service message.
        detail: String,
    },
}

/// One source revision of a pipeline execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    /// Artifact (or source action) name.
    pub name: Option<String>,
    /// Commit id, S3 version, image digest.
    pub revision_id: Option<String>,
    /// Commit message, or a JSON string for CodeConnections sources.
    pub summary: Option<String>,
    /// Link to the revision.
    pub url: Option<String>,
}

/// `GetPipelineExecution`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineExecutionInfo {
    /// InProgress, Succeeded, Failed, …
    pub status: Option<String>,
    /// Why it ended (for failed / stopped executions).
    pub status_summary: Option<String>,
    /// e.g. `Webhook`, `StartPipelineExecution`.
    pub trigger_type: Option<String>,
    /// e.g. the caller or connection ARN.
    pub trigger_detail: Option<String>,
    /// Source revisions.
    pub revisions: Vec<Revision>,
}

/// One entry of `ListActionExecutions`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionExecutionInfo {
    /// Stage name.
    pub stage: String,
    /// Action name.
    pub action: String,
    /// InProgress, Abandoned, Succeeded, Failed.
    pub status: Option<String>,
    /// Source, Build, Deploy, …
    pub category: Option<String>,
    /// CodeBuild, CodeStarSourceConnection, …
    pub provider: Option<String>,
    /// `executionResult.externalExecutionSummary`.
    pub summary: Option<String>,
    /// `executionResult.externalExecutionUrl`.
    pub external_url: Option<String>,
    /// `executionResult.errorDetails.code`.
    pub error_code: Option<String>,
    /// `executionResult.errorDetails.message`.
    pub error_message: Option<String>,
    /// Start, epoch seconds.
    pub started: Option<i64>,
    /// Last update, epoch seconds.
    pub updated: Option<i64>,
    /// Output variables (source actions: BranchName, CommitId, …).
    pub output_variables: BTreeMap<String, String>,
    /// The action's configuration (source actions: BranchName, FullRepositoryId).
    pub configuration: BTreeMap<String, String>,
    /// The run it started (`externalExecutionId`: build id, deployment id).
    pub external_id: Option<String>,
    /// The pipeline execution it belongs to.
    pub execution_id: Option<String>,
}

/// One entry of `ListPipelineExecutions`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionSummaryInfo {
    /// Execution id.
    pub execution_id: String,
    /// InProgress, Stopped, Stopping, Succeeded, Superseded, Failed, Cancelled.
    pub status: Option<String>,
    /// Start, epoch seconds.
    pub started: Option<i64>,
    /// Last update, epoch seconds.
    pub updated: Option<i64>,
}

/// CodeDeploy instance (target) counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounts {
    /// Pending.
    pub pending: i64,
    /// In progress.
    pub in_progress: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Failed.
    pub failed: i64,
    /// Skipped.
    pub skipped: i64,
    /// Ready (blue/green).
    pub ready: i64,
}

/// `GetDeployment`, reduced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentInfo {
    /// Created, Queued, InProgress, Baking, Succeeded, Failed, Stopped, Ready.
    pub status: Option<String>,
    /// `errorInformation.code`.
    pub error_code: Option<String>,
    /// `errorInformation.message`.
    pub error_message: Option<String>,
    /// user, autoscaling, codeDeployRollback, CodeDeploy, CodeDeployAutoUpdate.
    pub creator: Option<String>,
    /// The rollback deployment started because this one failed.
    pub rollback_deployment_id: Option<String>,
    /// The deployment this rollback undoes.
    pub rollback_triggering_deployment_id: Option<String>,
    /// CodeDeploy's rollback message.
    pub rollback_message: Option<String>,
    /// Created, epoch seconds.
    pub created: Option<i64>,
    /// Started, epoch seconds.
    pub started: Option<i64>,
    /// Completed, epoch seconds.
    pub completed: Option<i64>,
    /// Target counts.
    pub targets: Option<TargetCounts>,
    /// Extra status messages.
    pub status_messages: Vec<String>,
    /// Server, Lambda, ECS.
    pub compute_platform: Option<String>,
    /// GitHub revision: `owner/repo`.
    pub github_repository: Option<String>,
    /// GitHub revision: commit id.
    pub github_commit: Option<String>,
}

/// Port: the read APIs enrichment uses. `region` is the event's region.
pub trait SourceReader: Send + Sync {
    /// CodePipeline `GetPipelineExecution`.
    fn pipeline_execution(
        &self,
        region: &str,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<PipelineExecutionInfo, SourceError>> + Send;

    /// CodePipeline `ListActionExecutions` filtered to one execution.
    fn action_executions(
        &self,
        region: &str,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Vec<ActionExecutionInfo>, SourceError>> + Send;

    /// CodePipeline `ListPipelineExecutions`, newest first.
    fn pipeline_executions(
        &self,
        region: &str,
        pipeline: &str,
        max_results: i32,
    ) -> impl Future<Output = Result<Vec<ExecutionSummaryInfo>, SourceError>> + Send;

    /// CodeDeploy `GetDeployment`.
    fn deployment(
        &self,
        region: &str,
        deployment_id: &str,
    ) -> impl Future<Output = Result<DeploymentInfo, SourceError>> + Send;

    /// CodePipeline `GetPipeline` of one pipeline version: its stage names
    /// in order. The default (a source without it) has none.
    fn pipeline_stages(
        &self,
        region: &str,
        pipeline: &str,
        version: i32,
    ) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send {
        let _ = (region, pipeline, version);
        std::future::ready(Err(SourceError::Failed {
            action: "codepipeline:GetPipeline",
            detail: "not available from this source".to_owned(),
        }))
    }

    /// CodePipeline `ListActionExecutions` of a pipeline, newest first, not
    /// filtered to one execution (which execution started a build). The
    /// default (a source without it) has none.
    fn recent_action_executions(
        &self,
        region: &str,
        pipeline: &str,
        max_results: i32,
    ) -> impl Future<Output = Result<Vec<ActionExecutionInfo>, SourceError>> + Send {
        let _ = (region, pipeline, max_results);
        std::future::ready(Ok(Vec::new()))
    }

    /// CodePipeline `GetPipelineState`: each stage's entry and on-success
    /// condition (`crate::stage_condition`). The default (a source without
    /// it) has none.
    fn stage_conditions(
        &self,
        region: &str,
        pipeline: &str,
    ) -> impl Future<Output = Result<Vec<crate::stage_condition::StageConditionInfo>, SourceError>> + Send
    {
        let _ = (region, pipeline);
        std::future::ready(Ok(Vec::new()))
    }

    /// SSM `GetParameter` of a deploy-hook failure record: the raw value,
    /// or `None` when there is no such parameter. The default (a source
    /// without SSM) never has one.
    fn hook_failure_record(
        &self,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, SourceError>> + Send {
        let _ = (region, name);
        std::future::ready(Ok(None))
    }
}

/// One pipeline execution, where to look it up.
#[derive(Debug, Clone, Copy)]
struct PipelineRef<'a> {
    region: &'a str,
    pipeline: &'a str,
    execution_id: &'a str,
}

/// How many recent executions are read to find the previous one.
pub const HISTORY_DEPTH: i32 = 20;

/// Pipeline structures kept (one per pipeline version) at most.
pub const PLAN_CACHE_ENTRIES: usize = 64;
/// Stage names kept per pipeline at most (CodePipeline allows 50).
pub const PLAN_MAX_STAGES: usize = 50;
/// Characters kept per stage name (CodePipeline allows 100).
const PLAN_NAME_CHARS: usize = 100;
/// A failed structure read is tried again after this long.
const PLAN_RETRY: Duration = Duration::from_secs(60);

/// Answers kept by key, bounded (oldest evicted past `cap`): stage plans by
/// `region/pipeline/version` (a version's structure never changes), and
/// the pipeline execution of a build. A failed read is remembered for
/// [`PLAN_RETRY`] so that a denied or failing API is not asked per event.
#[derive(Debug)]
struct Memo<T> {
    entries: std::collections::VecDeque<(String, Result<T, Instant>)>,
    cap: usize,
}

impl<T: Clone> Memo<T> {
    fn new(cap: usize) -> Self {
        Self {
            entries: std::collections::VecDeque::new(),
            cap,
        }
    }

    /// `Some(Some(v))`: known; `Some(None)`: failed recently; `None`: read it.
    fn get(&self, key: &str) -> Option<Option<T>> {
        let (_, v) = self.entries.iter().find(|(k, _)| k == key)?;
        match v {
            Ok(v) => Some(Some(v.clone())),
            Err(at) if at.elapsed() < PLAN_RETRY => Some(None),
            Err(_) => None,
        }
    }

    fn put(&mut self, key: String, v: Result<T, Instant>) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push_back((key, v));
        while self.entries.len() > self.cap {
            self.entries.pop_front();
        }
    }
}

/// Builds whose pipeline execution is remembered at most.
pub const PARENT_CACHE_ENTRIES: usize = 256;
/// Recent action executions read to find a build's pipeline execution.
pub const PARENT_LOOKUP_DEPTH: i32 = 50;

/// What the Slack bot mode reads beyond enrichment, with its caches.
#[derive(Debug)]
struct ReleaseReads {
    plans: std::sync::Mutex<Memo<std::sync::Arc<Vec<String>>>>,
    parents: std::sync::Mutex<Memo<Option<String>>>,
}

/// A pipeline version from an event (`3`, `3.0` or `"3"`).
pub fn pipeline_version(v: Option<&str>) -> Option<i32> {
    let f: f64 = v?.trim().parse().ok()?;
    (f.is_finite() && f >= 1.0 && f.fract() == 0.0 && f <= f64::from(i32::MAX)).then_some(f as i32)
}

/// Runs the lookups for one notification.
#[derive(Debug, Clone)]
pub struct Enricher<S> {
    source: S,
    timeout: Duration,
    enabled: bool,
    hook_failure_prefix: Option<String>,
    /// Pipelines whose entry conditions in progress get an Override request
    /// (`crate::stage_condition`).
    override_pipelines: Vec<String>,
    /// The Slack bot mode's reads: the pipeline's structure (the stage
    /// strip) and which execution started a build.
    reads: Option<std::sync::Arc<ReleaseReads>>,
}

/// The time bound for one lookup.
async fn bounded<T>(
    deadline: Instant,
    action: &'static str,
    fut: impl Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(SourceError::Failed {
            action,
            detail: "no answer within the enrichment time limit".to_owned(),
        }),
    }
}

impl<S: SourceReader> Enricher<S> {
    /// An enricher over `source`, each run bounded by `timeout`.
    /// With `enabled == false` nothing is looked up.
    pub fn new(source: S, timeout: Duration, enabled: bool) -> Self {
        Self {
            source,
            timeout,
            enabled,
            hook_failure_prefix: None,
            override_pipelines: Vec::new(),
            reads: None,
        }
    }

    /// Reads `GetPipelineState` of `pipelines` when one of their stages
    /// succeeds (or an execution starts), and keeps an entry condition in
    /// progress for that execution in [`Notification::stage_condition`]
    /// (the Slack bot posts its Override request). Empty: never read.
    pub fn with_stage_overrides(mut self, pipelines: Vec<String>) -> Self {
        self.override_pipelines = pipelines;
        self
    }

    /// Whether `event` may find an entry condition waiting: a stage of an
    /// override pipeline succeeded, or its execution started.
    pub fn may_find_waiting_condition(&self, event: &Event) -> bool {
        let (pipeline, state) = match &event.detail {
            Detail::StageExecution(d) => (&d.pipeline, d.state.as_str()),
            Detail::PipelineExecution(d) => (&d.pipeline, d.state.as_str()),
            _ => return false,
        };
        let wanted = match &event.detail {
            Detail::StageExecution(_) => state == "SUCCEEDED",
            _ => state == "STARTED",
        };
        wanted && self.override_pipelines.iter().any(|p| p == pipeline)
    }

    /// The entry condition waiting for this execution, if any (one bounded
    /// `GetPipelineState`).
    async fn waiting_condition(
        &self,
        event: &Event,
        n: &mut Notification,
        region: &str,
        deadline: Instant,
        problems: &mut Vec<String>,
    ) -> usize {
        if !self.may_find_waiting_condition(event) {
            return 0;
        }
        let (pipeline, execution) = match &event.detail {
            Detail::StageExecution(d) => (&d.pipeline, d.execution_id.as_deref()),
            Detail::PipelineExecution(d) => (&d.pipeline, d.execution_id.as_deref()),
            _ => return 0,
        };
        let Some(execution) = execution else { return 0 };
        let fut = self.source.stage_conditions(region, pipeline);
        match bounded(deadline, "codepipeline:GetPipelineState", fut).await {
            Ok(stages) => {
                n.stage_condition =
                    crate::stage_condition::waiting_entry(pipeline, execution, &stages);
            }
            Err(e) => problems.push(format!("{e}; no Override request is posted")),
        }
        1
    }

    /// Also reads each pipeline version's structure (`GetPipeline`, cached
    /// per version) into [`Notification::planned_stages`], so the Slack bot
    /// mode's strip shows the stages not reached yet. A failed read leaves
    /// it empty (the strip shows the stages seen) and is not a problem of
    /// the enrichment.
    ///
    /// It also ties a CodeBuild build started by a pipeline (initiator
    /// `codepipeline/<pipeline>`) to the execution that started it
    /// ([`Notification::parent_run`]): one `ListActionExecutions` of the
    /// pipeline, newest first, looking for the build's id; remembered per
    /// build. Not found or failed: the build keeps its own message.
    pub fn with_release_reads(mut self, on: bool) -> Self {
        self.reads = on.then(|| {
            std::sync::Arc::new(ReleaseReads {
                plans: std::sync::Mutex::new(Memo::new(PLAN_CACHE_ENTRIES)),
                parents: std::sync::Mutex::new(Memo::new(PARENT_CACHE_ENTRIES)),
            })
        });
        self
    }

    /// The pipeline execution that started a build, from the cache or one
    /// bounded read.
    async fn build_parent(
        &self,
        event: &Event,
        region: &str,
        thread: Option<&str>,
        deadline: Instant,
    ) -> Option<String> {
        let reads = self.reads.as_ref()?;
        let Detail::Build(d) = &event.detail else {
            return None;
        };
        let pipeline = d
            .additional_information
            .initiator
            .as_deref()?
            .strip_prefix("codepipeline/")?
            .trim();
        let thread = thread?;
        let build = thread.strip_prefix("codebuild/")?;
        if pipeline.is_empty() {
            return None;
        }
        let key = format!("{region}/{thread}");
        if let Some(known) = reads.parents.lock().ok().and_then(|c| c.get(&key)) {
            return known.flatten();
        }
        let read = bounded(
            deadline,
            "codepipeline:ListActionExecutions",
            self.source
                .recent_action_executions(region, pipeline, PARENT_LOOKUP_DEPTH),
        )
        .await;
        let entry = match read {
            Ok(list) => Ok(list
                .iter()
                .find(|a| {
                    a.external_id
                        .as_deref()
                        .is_some_and(|id| super::model::same_build(id, build))
                })
                .and_then(|a| a.execution_id.as_deref())
                .map(|exec| format!("codepipeline/{pipeline}/{exec}"))),
            Err(e) => {
                tracing::info!(pipeline = %pipeline, problem = %e, "could not tell which pipeline execution started this build; it keeps its own message");
                Err(Instant::now())
            }
        };
        let parent = entry.clone().ok().flatten();
        // Not found yet (the action's id not listed yet) is not remembered.
        if !matches!(entry, Ok(None))
            && let Ok(mut c) = reads.parents.lock()
        {
            c.put(key, entry);
        }
        parent
    }

    /// The stage plan of a CodePipeline event's pipeline version: from the
    /// cache, or read once (bounded by `deadline`).
    async fn stage_plan(&self, event: &Event, region: &str, deadline: Instant) -> Vec<String> {
        let Some(reads) = &self.reads else {
            return Vec::new();
        };
        let cache = &reads.plans;
        let (pipeline, version) = match &event.detail {
            Detail::PipelineExecution(d) => (&d.pipeline, d.version.as_deref()),
            Detail::StageExecution(d) => (&d.pipeline, d.version.as_deref()),
            Detail::ActionExecution(d) => (&d.pipeline, d.version.as_deref()),
            _ => return Vec::new(),
        };
        let Some(version) = pipeline_version(version) else {
            return Vec::new();
        };
        let key = format!("{region}/{pipeline}/{version}");
        match cache.lock().ok().and_then(|c| c.get(&key)) {
            Some(Some(plan)) => return plan.as_ref().clone(),
            Some(None) => return Vec::new(),
            None => {}
        }
        let read = bounded(
            deadline,
            "codepipeline:GetPipeline",
            self.source.pipeline_stages(region, pipeline, version),
        )
        .await;
        let entry = match read {
            Ok(stages) => {
                let plan: Vec<String> = stages
                    .into_iter()
                    .take(PLAN_MAX_STAGES)
                    .map(|s| s.chars().take(PLAN_NAME_CHARS).collect())
                    .collect();
                Ok(std::sync::Arc::new(plan))
            }
            Err(e) => {
                tracing::info!(pipeline = %pipeline, version, problem = %e, "the pipeline's structure could not be read; the stage strip shows the stages seen so far");
                Err(Instant::now())
            }
        };
        let plan = entry
            .as_ref()
            .map(|p| p.as_ref().clone())
            .unwrap_or_default();
        if let Ok(mut c) = cache.lock() {
            c.put(key, entry);
        }
        plan
    }

    /// Reads deploy-hook failure records under `prefix` (the value of
    /// `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX`); `None` switches it off.
    pub fn with_hook_failures(mut self, prefix: Option<String>) -> Self {
        self.hook_failure_prefix = prefix;
        self
    }

    /// The port, for callers that need it directly.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Fills in `n` from the APIs. Never fails and never runs past
    /// `min(now + timeout, deadline)`.
    pub async fn enrich(&self, event: &Event, n: &mut Notification, deadline: Instant) {
        self.enrich_for(event, n, deadline, true).await;
    }

    /// Like [`Enricher::enrich`]. With `plain_success_notifies == false` (the
    /// default rules: a pipeline success only notifies as a recovery), a
    /// pipeline SUCCEEDED first asks `ListPipelineExecutions` alone, and the
    /// other lookups run only when it turns out to be a recovery: most
    /// successes stay quiet after one call.
    pub async fn enrich_for(
        &self,
        event: &Event,
        n: &mut Notification,
        deadline: Instant,
        plain_success_notifies: bool,
    ) {
        if !self.enabled {
            return;
        }
        let deadline = deadline.min(Instant::now() + self.timeout);
        let region = n.region.clone();
        let thread = n.thread.clone();
        let plan = self.stage_plan(event, &region, deadline);
        let parent = self.build_parent(event, &region, thread.as_deref(), deadline);
        let lookups = self.lookups(event, n, &region, deadline, plain_success_notifies);
        let (plan, parent, (mut problems, mut calls)) = tokio::join!(plan, parent, lookups);
        calls += self
            .waiting_condition(event, n, &region, deadline, &mut problems)
            .await;
        n.planned_stages = plan;
        if parent.is_some() {
            n.parent_run = parent;
        }
        self.finish(n, problems, calls);
    }

    /// The lookups of [`Enricher::enrich_for`]: the problems and how many
    /// calls were made.
    async fn lookups(
        &self,
        event: &Event,
        n: &mut Notification,
        region: &str,
        deadline: Instant,
        plain_success_notifies: bool,
    ) -> (Vec<String>, usize) {
        let region = region.to_owned();
        let mut problems = Vec::new();
        let mut calls = 0usize;
        match &event.detail {
            Detail::PipelineExecution(d) => {
                if let Some(exec) = &d.execution_id {
                    let history_first = !plain_success_notifies && n.status == Status::Succeeded;
                    if history_first {
                        calls += 1;
                        let fut =
                            self.source
                                .pipeline_executions(&region, &d.pipeline, HISTORY_DEPTH);
                        match bounded(deadline, "codepipeline:ListPipelineExecutions", fut).await {
                            Ok(list) => apply_history(n, exec, &list),
                            Err(e) => problems.push(format!(
                                "{e}; could not tell whether this success is a recovery"
                            )),
                        }
                    }
                    if !history_first || n.status == Status::Recovered {
                        let at = PipelineRef {
                            region: &region,
                            pipeline: &d.pipeline,
                            execution_id: exec,
                        };
                        calls += self
                            .pipeline(n, at, deadline, !history_first, &mut problems)
                            .await;
                    }
                }
            }
            Detail::StageExecution(d) => {
                if let Some(exec) = &d.execution_id {
                    let at = PipelineRef {
                        region: &region,
                        pipeline: &d.pipeline,
                        execution_id: exec,
                    };
                    calls += self.pipeline(n, at, deadline, false, &mut problems).await;
                }
            }
            Detail::ActionExecution(d) => {
                if let Some(exec) = &d.execution_id {
                    let at = PipelineRef {
                        region: &region,
                        pipeline: &d.pipeline,
                        execution_id: exec,
                    };
                    calls += self.pipeline(n, at, deadline, false, &mut problems).await;
                }
            }
            Detail::Deployment(d) | Detail::Instance(d) => {
                if let Some(id) = &d.deployment_id {
                    calls += 1;
                    // The hook-failure record: read alongside GetDeployment
                    // for a failure; for a rollback deployment only once
                    // GetDeployment says which deployment it undoes.
                    let record_name = match (
                        &self.hook_failure_prefix,
                        &d.application,
                        &d.deployment_group,
                    ) {
                        (Some(prefix), Some(app), Some(group))
                            if n.kind == SourceKind::Deployment =>
                        {
                            Some(parameter_name(prefix, app, group))
                        }
                        _ => None,
                    };
                    let early = record_name
                        .as_deref()
                        .filter(|_| n.status == Status::Failed);
                    let deployment = bounded(
                        deadline,
                        "codedeploy:GetDeployment",
                        self.source.deployment(&region, id),
                    );
                    let record = async {
                        match early {
                            Some(name) => Some(self.read_record(deadline, &region, name).await),
                            None => None,
                        }
                    };
                    let (deployment, mut record) = tokio::join!(deployment, record);
                    let mut undoes = None;
                    match deployment {
                        Ok(info) => {
                            undoes = info.rollback_triggering_deployment_id.clone();
                            apply_deployment(n, &info);
                        }
                        Err(e) => problems.push(e.to_string()),
                    }
                    if record.is_none()
                        && undoes.is_some()
                        && n.status.is_terminal()
                        && let Some(name) = &record_name
                    {
                        record = Some(self.read_record(deadline, &region, name).await);
                    }
                    if let Some(found) = record {
                        calls += 1;
                        match found {
                            Ok(Some(text)) => {
                                apply_hook_failure(n, &text, id, undoes.as_deref());
                            }
                            Ok(None) => tracing::debug!(
                                deployment_id = %id,
                                parameter = record_name.as_deref().unwrap_or_default(),
                                "no hook-failure record for this deployment group"
                            ),
                            Err(e) => problems.push(e.to_string()),
                        }
                    }
                }
            }
            _ => {}
        }
        (problems, calls)
    }

    /// Records how enrichment went.
    fn finish(&self, n: &mut Notification, problems: Vec<String>, calls: usize) {
        n.enrichment = Enrichment {
            state: if calls == 0 {
                EnrichmentState::None
            } else if problems.is_empty() {
                EnrichmentState::Complete
            } else if problems.len() >= calls {
                EnrichmentState::Failed
            } else {
                EnrichmentState::Partial
            },
            problems,
        };
        for p in &n.enrichment.problems {
            tracing::warn!(event_id = %n.event_id, problem = %p, "enrichment lookup failed; sending without it");
        }
        // A merged reason may carry a gate's full failure text again.
        n.extract_gate();
    }

    /// `GetParameter` of a hook-failure record, bounded like every lookup.
    async fn read_record(
        &self,
        deadline: Instant,
        region: &str,
        name: &str,
    ) -> Result<Option<String>, SourceError> {
        bounded(
            deadline,
            "ssm:GetParameter",
            self.source.hook_failure_record(region, name),
        )
        .await
    }

    /// The CodePipeline lookups; returns how many calls were made.
    /// `with_history`: also read `ListPipelineExecutions` (pipeline-level
    /// terminal events only).
    async fn pipeline(
        &self,
        n: &mut Notification,
        at: PipelineRef<'_>,
        deadline: Instant,
        with_history: bool,
        problems: &mut Vec<String>,
    ) -> usize {
        let PipelineRef {
            region,
            pipeline,
            execution_id,
        } = at;
        let want_history = with_history && n.kind == SourceKind::Pipeline && n.status.is_terminal();
        let exec = bounded(
            deadline,
            "codepipeline:GetPipelineExecution",
            self.source
                .pipeline_execution(region, pipeline, execution_id),
        );
        let actions = bounded(
            deadline,
            "codepipeline:ListActionExecutions",
            self.source
                .action_executions(region, pipeline, execution_id),
        );
        let history = async {
            if want_history {
                Some(
                    bounded(
                        deadline,
                        "codepipeline:ListPipelineExecutions",
                        self.source
                            .pipeline_executions(region, pipeline, HISTORY_DEPTH),
                    )
                    .await,
                )
            } else {
                None
            }
        };
        let (exec, actions, history) = tokio::join!(exec, actions, history);
        match exec {
            Ok(info) => apply_pipeline_execution(n, &info),
            Err(e) => problems.push(e.to_string()),
        }
        match actions {
            Ok(list) => apply_action_executions(n, &list),
            Err(e) => problems.push(e.to_string()),
        }
        match history {
            Some(Ok(list)) => apply_history(n, execution_id, &list),
            Some(Err(e)) => {
                if n.status == Status::Succeeded {
                    problems.push(format!(
                        "{e}; could not tell whether this success is a recovery"
                    ));
                } else {
                    problems.push(e.to_string());
                }
            }
            None => {}
        }
        2 + usize::from(want_history)
    }
}

/// Applies `GetPipelineExecution`.
pub fn apply_pipeline_execution(n: &mut Notification, info: &PipelineExecutionInfo) {
    if let Some(kind) = &info.trigger_type {
        let text = super::model::describe_trigger(kind, info.trigger_detail.as_deref());
        n.add_fact("Trigger", text);
    }
    if n.reason.is_none()
        && matches!(
            n.status,
            Status::Failed | Status::Stopped | Status::Canceled
        )
        && let Some(summary) = info.status_summary.as_deref().filter(|s| !s.is_empty())
    {
        n.reason = Some(summary.to_owned());
    }
    let mut first = true;
    for rev in &info.revisions {
        match commit_from_revision(rev) {
            Some(c) if first && n.commit.is_none() => {
                n.commit = Some(c);
                first = false;
            }
            Some(c) => {
                let label = format!("Source {}", rev.name.as_deref().unwrap_or("revision"));
                let text = match &c.message {
                    Some(m) => format!("{} {m}", console::short_commit(&c.id)),
                    None => console::short_commit(&c.id).to_owned(),
                };
                n.add_fact(&label, text);
            }
            None => {
                if let Some(id) = &rev.revision_id {
                    let label = format!("Source {}", rev.name.as_deref().unwrap_or("revision"));
                    n.add_fact(&label, console::ellipsize(id, 80));
                }
            }
        }
    }
}

/// Applies `ListActionExecutions`.
pub fn apply_action_executions(n: &mut Notification, list: &[ActionExecutionInfo]) {
    // The runs the execution's actions started.
    for a in list {
        if let Some(child) = a
            .external_id
            .as_deref()
            .and_then(|id| super::model::child_thread(a.provider.as_deref(), id))
        {
            n.add_child(child);
        } else if a.status.as_deref() == Some("InProgress")
            && matches!(
                a.provider.as_deref(),
                Some("CodeDeploy" | "CodeDeployToECS")
            )
            && let (Some(app), Some(group)) = (
                a.configuration.get("ApplicationName"),
                a.configuration.get("DeploymentGroupName"),
            )
            && let Some(child) = super::model::deployment_group_thread(app, group)
        {
            // A deploy action in progress that lists no deployment id (yet):
            // its deployment is tied through its group (docs/slack-app.md).
            n.add_child(child);
        }
    }
    // Branch and repository from the source action.
    if let Some(a) = list
        .iter()
        .find(|a| a.category.as_deref() == Some("Source"))
    {
        let vars = &a.output_variables;
        let cfg = &a.configuration;
        let branch = vars
            .get("BranchName")
            .or_else(|| cfg.get("BranchName"))
            .cloned();
        let repo = vars
            .get("FullRepositoryName")
            .or_else(|| vars.get("RepositoryName"))
            .or_else(|| cfg.get("FullRepositoryId"))
            .or_else(|| cfg.get("RepositoryName"))
            .cloned();
        let commit_id = vars.get("CommitId").cloned();
        let message = vars.get("CommitMessage").map(|m| first_line(m));
        match &mut n.commit {
            Some(c) => {
                let same = commit_id.as_deref().is_none_or(|id| id == c.id);
                if same {
                    if c.branch.is_none() {
                        c.branch = branch;
                    }
                    if c.repository.is_none() {
                        c.repository = repo;
                    }
                    if c.message.is_none() {
                        c.message = message;
                    }
                }
            }
            None => {
                if let Some(id) = commit_id {
                    n.commit = Some(Commit {
                        id,
                        message,
                        repository: repo,
                        branch,
                        provider: a.provider.clone(),
                        ..Commit::default()
                    });
                }
            }
        }
    }

    let failed: Vec<&ActionExecutionInfo> = list
        .iter()
        .filter(|a| a.status.as_deref() == Some("Failed"))
        .collect();
    match n.kind {
        SourceKind::Action => {
            let Some(scope) = n.scope.clone() else {
                return;
            };
            let found = list
                .iter()
                .filter(|a| format!("{} › {}", a.stage, a.action) == scope)
                .max_by_key(|a| a.updated.or(a.started));
            if let Some(a) = found {
                if let (Some(s), Some(e)) = (a.started, a.updated)
                    && n.status.is_terminal()
                    && e >= s
                {
                    n.duration_secs = Some((e - s) as u64);
                }
                if n.status == Status::Failed {
                    merge_reason(n, a);
                }
            }
        }
        SourceKind::Pipeline | SourceKind::Stage if n.status == Status::Failed => {
            let stage_filter = (n.kind == SourceKind::Stage)
                .then(|| n.scope.clone())
                .flatten();
            let relevant: Vec<&&ActionExecutionInfo> = failed
                .iter()
                .filter(|a| stage_filter.as_deref().is_none_or(|s| s == a.stage))
                .collect();
            if let Some(a) = relevant.first() {
                n.add_fact("Failed action", format!("{} › {}", a.stage, a.action));
                let detail = action_failure_text(a);
                n.reason = Some(match (n.reason.take(), detail) {
                    (_, Some(d)) => format!("{} › {} failed: {d}", a.stage, a.action),
                    (Some(r), None) => r,
                    (None, None) => format!("{} › {} failed", a.stage, a.action),
                });
                if let Some(url) = &a.external_url {
                    let label = match &a.provider {
                        Some(p) => format!("Open in {p}"),
                        None => "Open failed action".to_owned(),
                    };
                    if url.starts_with("https://") && !n.links.iter().any(|l| &l.url == url) {
                        n.links.insert(
                            0,
                            super::model::Link {
                                label,
                                url: url.clone(),
                            },
                        );
                    }
                }
            }
            if relevant.len() > 1 {
                let others: Vec<String> = relevant[1..]
                    .iter()
                    .map(|a| format!("{} › {}", a.stage, a.action))
                    .collect();
                n.add_fact("Also failed", others.join(", "));
            }
        }
        _ => {}
    }
}

fn action_failure_text(a: &ActionExecutionInfo) -> Option<String> {
    let summary = a.summary.as_deref().filter(|s| !s.is_empty());
    let message = a.error_message.as_deref().filter(|s| !s.is_empty());
    match (summary, message) {
        (Some(s), Some(m)) if s.contains(m) => Some(s.to_owned()),
        (Some(s), Some(m)) if m.contains(s) => Some(m.to_owned()),
        (Some(s), Some(m)) => Some(format!("{s}\n{m}")),
        (Some(s), None) => Some(s.to_owned()),
        (None, Some(m)) => Some(m.to_owned()),
        (None, None) => None,
    }
}

fn merge_reason(n: &mut Notification, a: &ActionExecutionInfo) {
    let Some(more) = action_failure_text(a) else {
        return;
    };
    n.reason = Some(match n.reason.take() {
        Some(r) if more.contains(&r) => more,
        Some(r) if r.contains(&more) => r,
        Some(r) => format!("{r}\n{more}"),
        None => more,
    });
}

/// Applies `ListPipelineExecutions`: duration, and SUCCEEDED → recovered when
/// the previous completed execution failed.
pub fn apply_history(n: &mut Notification, execution_id: &str, list: &[ExecutionSummaryInfo]) {
    let Some(pos) = list.iter().position(|e| e.execution_id == execution_id) else {
        return;
    };
    let this = &list[pos];
    let end = n
        .time
        .as_deref()
        .and_then(super::model::parse_rfc3339)
        .map(|t| t.unix_timestamp())
        .or(this.updated);
    if let (Some(s), Some(e)) = (this.started, end)
        && e >= s
        && n.duration_secs.is_none()
    {
        n.duration_secs = Some((e - s) as u64);
    }
    if n.status != Status::Succeeded {
        return;
    }
    // Older executions follow (newest first). Skip those that did not
    // complete a run: superseded, still running, cancelled.
    let previous = list[pos + 1..].iter().find(|e| {
        matches!(
            e.status.as_deref(),
            Some("Succeeded" | "Failed" | "Stopped")
        ) && e.started.zip(this.started).is_none_or(|(p, t)| p <= t)
    });
    if let Some(prev) = previous
        && prev.status.as_deref() == Some("Failed")
    {
        n.status = Status::Recovered;
        n.add_fact(
            "Previous execution",
            format!("{} (failed)", prev.execution_id),
        );
        if n.reason.is_none() {
            n.reason = Some(format!(
                "the previous execution {} failed; this one succeeded",
                prev.execution_id
            ));
        }
    }
}

/// How a hook-failure record compared with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMatch {
    /// It is this deployment's (or the rolled-back one's): shown.
    Shown,
    /// It belongs to another deployment of the group: left out.
    OtherDeployment,
    /// The value is not a record: left out.
    Unreadable,
}

/// Applies a deploy-hook failure record: `event_deployment` is the event's
/// deployment, `undoes` the deployment a rollback deployment rolls back.
pub fn apply_hook_failure(
    n: &mut Notification,
    text: &str,
    event_deployment: &str,
    undoes: Option<&str>,
) -> RecordMatch {
    let record = match HookFailureRecord::decode(text) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                deployment_id = %event_deployment,
                error = %e,
                "the hook-failure parameter does not hold a tollgate record; leaving it out"
            );
            return RecordMatch::Unreadable;
        }
    };
    let own = record.deployment_id == event_deployment && n.status == Status::Failed;
    let undone = undoes == Some(record.deployment_id.as_str());
    if !(own || undone) {
        tracing::debug!(
            deployment_id = %event_deployment,
            recorded_for = %record.deployment_id,
            "the hook-failure record is for another deployment; leaving it out"
        );
        return RecordMatch::OtherDeployment;
    }
    // A metric gate's failure (deploy-hook records the gate's failure text
    // as it records failed checks, after its own prefix, e.g.
    // `AfterAllowTraffic failed for d-…: metric gate failed: …`): shown as
    // the gate's own section.
    let text = std::iter::once(record.summary.as_str())
        .chain(record.failures.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    let head = tollgate_core::gate_report::HEAD;
    // Only where the gate's text begins: the record's own start, or right
    // after deploy-hook's `<hook> failed for <deployment id>: ` (a check's
    // failure that merely quotes the words is not a gate report).
    let gate_summary = record.summary.starts_with(head)
        || record
            .summary
            .split_once(": ")
            .is_some_and(|(prefix, rest)| {
                rest.starts_with(head)
                    && prefix.contains(" failed for ")
                    && prefix.ends_with(record.deployment_id.as_str())
            });
    if gate_summary && let Some(report) = tollgate_core::gate_report::GateReport::parse(&text) {
        n.gate = Some(GateResult::from_report(report, record.hook));
        return RecordMatch::Shown;
    }
    n.failed_checks = Some(FailedChecks {
        deployment_id: record.deployment_id,
        hook: record.hook,
        summary: record.summary,
        lines: record.failures,
        truncated: record.truncated,
        omitted: record.omitted,
    });
    RecordMatch::Shown
}

/// Applies `GetDeployment`.
pub fn apply_deployment(n: &mut Notification, d: &DeploymentInfo) {
    let error = match (&d.error_code, &d.error_message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (None, Some(m)) => Some(m.clone()),
        (Some(c), None) => Some(c.clone()),
        (None, None) => None,
    };
    if matches!(n.status, Status::Failed | Status::Stopped) {
        let mut reason = error.or_else(|| d.status_messages.first().cloned());
        if let (Some(r), Some(rb)) = (&mut reason, &d.rollback_message)
            && n.status == Status::Failed
            && d.rollback_deployment_id.is_none()
        {
            r.push('\n');
            r.push_str(rb);
        }
        if reason.is_some() {
            n.reason = reason;
        }
    }
    if let Some(rb) = &d.rollback_deployment_id {
        n.qualifier = Some("rolled back".to_owned());
        n.add_fact("Rollback deployment", rb.clone());
        let url = console::deployment(&n.region, rb);
        n.add_link("Open rollback", url);
        if let Some(m) = &d.rollback_message {
            n.add_fact("Rollback", m.clone());
        }
    } else if let Some(orig) = &d.rollback_triggering_deployment_id {
        n.qualifier = Some(format!("rollback of {orig}"));
        let related = format!("codedeploy/{orig}");
        if !n.related_runs.contains(&related) {
            n.related_runs.push(related);
        }
        n.add_fact("Rolls back", orig.clone());
        let url = console::deployment(&n.region, orig);
        n.add_link("Open failed deployment", url);
    } else if let Some(m) = &d.rollback_message
        && n.status == Status::Failed
    {
        // ECS blue/green rolls back inside the same deployment.
        n.qualifier = Some("rolled back".to_owned());
        n.add_fact("Rollback", m.clone());
    }
    if let Some(c) = &d.creator {
        n.add_fact("Started by", c.clone());
    }
    if let Some(p) = &d.compute_platform {
        n.add_fact("Platform", p.clone());
    }
    if let Some(t) = d.targets {
        let mut parts = Vec::new();
        for (count, word) in [
            (t.succeeded, "succeeded"),
            (t.failed, "failed"),
            (t.in_progress, "in progress"),
            (t.pending, "pending"),
            (t.skipped, "skipped"),
            (t.ready, "ready"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {word}"));
            }
        }
        if !parts.is_empty() {
            n.add_fact("Targets", parts.join(", "));
        }
    }
    if let Some(commit) = &d.github_commit
        && n.commit.is_none()
    {
        n.commit = Some(Commit {
            id: commit.clone(),
            url: d
                .github_repository
                .as_ref()
                .map(|r| format!("https://github.com/{r}/commit/{commit}")),
            repository: d.github_repository.clone(),
            provider: Some("GitHub".to_owned()),
            ..Commit::default()
        });
    }
    let start = d.started.or(d.created);
    if let (Some(s), Some(e)) = (start, d.completed)
        && e >= s
    {
        n.duration_secs = Some((e - s) as u64);
    }
}

/// The commit in a pipeline revision, when the revision is a commit.
/// CodeConnections revisions carry a JSON `revisionSummary`
/// (`{"ProviderType":"GitHub","CommitMessage":"…"}`); CodeCommit carries the
/// message itself; S3 and ECR revisions are not commits.
pub fn commit_from_revision(rev: &Revision) -> Option<Commit> {
    let id = rev.revision_id.as_deref()?;
    let is_commit = (7..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_commit {
        return None;
    }
    let (message, provider) = match rev.summary.as_deref() {
        Some(s) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(v) => (
                    v.get("CommitMessage")
                        .and_then(|m| m.as_str())
                        .map(first_line),
                    v.get("ProviderType")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned),
                ),
                Err(_) => (Some(first_line(s)), None),
            }
        }
        Some(s) if !s.is_empty() => (Some(first_line(s)), None),
        _ => (None, None),
    };
    let revision_url = rev.url.clone().filter(|u| u.starts_with("https://"));
    let repository = revision_url.as_deref().and_then(repo_from_revision_url);
    let provider = provider.or_else(|| {
        revision_url
            .as_deref()
            .filter(|u| u.contains("/codecommit/"))
            .map(|_| "CodeCommit".to_owned())
    });
    // A direct link to the commit on the hosting service reads better than
    // the console's connection redirect; fall back to the latter.
    let url = match (provider.as_deref(), repository.as_deref()) {
        (Some("GitHub"), Some(r)) => Some(format!("https://github.com/{r}/commit/{id}")),
        (Some("GitLab"), Some(r)) => Some(format!("https://gitlab.com/{r}/-/commit/{id}")),
        (Some("Bitbucket"), Some(r)) => Some(format!("https://bitbucket.org/{r}/commits/{id}")),
        _ => revision_url,
    };
    Some(Commit {
        id: id.to_owned(),
        message,
        repository,
        branch: None,
        url,
        provider,
    })
}

/// Repository from a revision URL: CodeConnections redirect links carry
/// `FullRepositoryId=owner%2Frepo`; CodeCommit console links
/// `#/repository/<name>/commit/…`; GitHub links `github.com/owner/repo/commit/…`.
fn repo_from_revision_url(url: &str) -> Option<String> {
    if let Some(q) = url.split_once('?').map(|(_, q)| q) {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("FullRepositoryId=") {
                return percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned());
            }
        }
    }
    for marker in ["/repositories/", "/repository/"] {
        if let Some((_, rest)) = url.split_once(marker) {
            return rest.split(['/', '?']).next().map(str::to_owned);
        }
    }
    if url.contains("github.com/") || url.contains("gitlab.com/") || url.contains("bitbucket.org/")
    {
        return super::model::repo_from_url(url);
    }
    None
}

fn first_line(s: &str) -> String {
    console::ellipsize(s.lines().next().unwrap_or_default().trim(), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codeconnections_summary_is_unwrapped() {
        let rev = Revision {
            name: Some("SourceArtifact".into()),
            revision_id: Some("9f1c0e2b7d3a4c5e8f9a0b1c2d3e4f5a6b7c8d9e".into()),
            summary: Some(
                r#"{"ProviderType":"GitHub","CommitMessage":"Fix rounding in invoices\n\nLonger body"}"#
                    .into(),
            ),
            url: Some("https://us-east-1.console.aws.amazon.com/codesuite/settings/connections/redirect?connectionArn=arn%3Aaws%3Acodeconnections%3Aus-east-1%3A111122223333%3Aconnection%2Fabc&referenceType=COMMIT&FullRepositoryId=acme%2Fpayments&Commit=9f1c0e2b7d3a4c5e8f9a0b1c2d3e4f5a6b7c8d9e".into()),
        };
        let c = commit_from_revision(&rev).expect("a commit");
        assert_eq!(c.message.as_deref(), Some("Fix rounding in invoices"));
        assert_eq!(c.provider.as_deref(), Some("GitHub"));
        assert_eq!(c.repository.as_deref(), Some("acme/payments"));
    }

    #[test]
    fn s3_revisions_are_not_commits() {
        let rev = Revision {
            revision_id: Some("3YsXqvPZ1e.Jb0ny8FbXv9Jm1kJ0d0qa".into()),
            summary: Some("Amazon S3 version id: 3YsXqvPZ1e".into()),
            ..Revision::default()
        };
        assert!(commit_from_revision(&rev).is_none());
    }

    #[test]
    fn codecommit_revision() {
        let rev = Revision {
            revision_id: Some("0123456789abcdef0123456789abcdef01234567".into()),
            summary: Some("Add health check".into()),
            url: Some("https://us-east-1.console.aws.amazon.com/codecommit/home#/repository/payments/commit/0123456789abcdef0123456789abcdef01234567".into()),
            ..Revision::default()
        };
        let c = commit_from_revision(&rev).expect("a commit");
        assert_eq!(c.repository.as_deref(), Some("payments"));
        assert_eq!(c.provider.as_deref(), Some("CodeCommit"));
    }

    /// The runs an execution's actions started, in either shape
    /// `ListActionExecutions` may list an action in progress: with its
    /// external id (a CodeBuild `project:uuid`, a deployment `d-…`), or
    /// without it yet, when a CodeDeploy action is tied through its
    /// deployment group.
    #[test]
    fn children_come_from_external_ids_or_an_in_progress_deploy_actions_group() {
        let parsed = crate::events::parse(serde_json::json!({
            "id": "s1", "detail-type": "CodePipeline Stage Execution State Change",
            "source": "aws.codepipeline", "region": "eu-west-1", "account": "1",
            "time": "2026-11-26T06:00:00Z",
            "detail": {"pipeline": "pay", "execution-id": "x1", "stage": "Deploy", "state": "STARTED"}
        }));
        let deploy = |status: &str, id: Option<&str>| ActionExecutionInfo {
            stage: "Deploy".into(),
            action: "Blue".into(),
            status: Some(status.into()),
            category: Some("Deploy".into()),
            provider: Some("CodeDeployToECS".into()),
            configuration: [
                ("ApplicationName".to_owned(), "pay".to_owned()),
                ("DeploymentGroupName".to_owned(), "prod".to_owned()),
            ]
            .into_iter()
            .collect(),
            external_id: id.map(str::to_owned),
            ..ActionExecutionInfo::default()
        };
        let build = ActionExecutionInfo {
            provider: Some("CodeBuild".into()),
            status: Some("InProgress".into()),
            external_id: Some("pay-build:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61".into()),
            ..ActionExecutionInfo::default()
        };
        // The deployment id listed while in progress.
        let mut n = Notification::from_event(&parsed);
        apply_action_executions(
            &mut n,
            &[deploy("InProgress", Some("d-ABC12345")), build.clone()],
        );
        assert_eq!(
            n.children,
            vec![
                "codedeploy/d-ABC12345".to_owned(),
                "codebuild/pay-build:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61".to_owned()
            ]
        );
        // Not listed yet: the deployment group stands in for it.
        let mut n = Notification::from_event(&parsed);
        apply_action_executions(&mut n, &[deploy("InProgress", None), build]);
        assert_eq!(n.children[0], "codedeploy-group/pay/prod");
        // A finished action without an id links nothing.
        let mut n = Notification::from_event(&parsed);
        apply_action_executions(&mut n, &[deploy("Failed", None)]);
        assert!(n.children.is_empty());
    }

    mod hook_failures {
        use super::super::*;
        use crate::events;
        use crate::test_fakes::FakeSource;

        const FAILED: &str =
            include_str!("../../../events/notifier/codedeploy-deployment-failed-rollback.json");
        const SUCCEEDED: &str =
            include_str!("../../../events/notifier/codedeploy-deployment-succeeded.json");
        const PREFIX: &str = "/tollgate/s/hook-failures";

        /// A failed deployment's `GetDeployment`, and `record` as the hook
        /// failure record; the pipeline reads are not expected.
        fn src(record: Result<Option<String>, SourceError>) -> FakeSource {
            FakeSource::unanswered()
                .deployment(Ok(DeploymentInfo {
                    status: Some("Failed".into()),
                    error_code: Some("HOOK_EXECUTION_FAILURE".into()),
                    error_message: Some("Lifecycle event AfterAllowTestTraffic failed".into()),
                    ..DeploymentInfo::default()
                }))
                .hook_failure_record(record)
        }

        fn record(deployment_id: &str) -> String {
            HookFailureRecord::from_message(
                deployment_id,
                Some("AfterAllowTestTraffic"),
                "AfterAllowTestTraffic failed for d-7QXQ4LJ2B: smoke checks against http://t did not pass: 0/1 passed\nFAIL health (GET http://t/health): 3 attempts\n  - status: expected 200, got 503",
                "2024-05-14T12:18:40Z",
            )
            .encode()
        }

        async fn run(
            text: &str,
            src: FakeSource,
            prefix: Option<&str>,
        ) -> (Notification, Vec<String>) {
            let event = events::parse_str(text);
            let mut n = Notification::from_event(&event);
            let e = Enricher::new(src, Duration::from_secs(2), true)
                .with_hook_failures(prefix.map(str::to_owned));
            e.enrich(&event, &mut n, Instant::now() + Duration::from_secs(5))
                .await;
            let reads = e.source().hook_failure_reads();
            (n, reads)
        }

        #[tokio::test]
        async fn a_matching_record_becomes_the_failed_checks() {
            let (n, reads) = run(FAILED, src(Ok(Some(record("d-7QXQ4LJ2B")))), Some(PREFIX)).await;
            assert_eq!(reads, ["/tollgate/s/hook-failures/payments-api/prod"]);
            let f = n.failed_checks.expect("shown");
            assert_eq!(f.hook.as_deref(), Some("AfterAllowTestTraffic"));
            assert_eq!(
                f.lines,
                [
                    "FAIL health (GET http://t/health): 3 attempts",
                    "  - status: expected 200, got 503"
                ]
            );
            assert_eq!(n.enrichment.state, EnrichmentState::Complete);
            assert!(
                n.reason
                    .expect("reason")
                    .starts_with("HOOK_EXECUTION_FAILURE")
            );
        }

        #[tokio::test]
        async fn a_record_of_another_deployment_is_left_out() {
            let (n, reads) = run(FAILED, src(Ok(Some(record("d-OLDER0001")))), Some(PREFIX)).await;
            assert_eq!(reads.len(), 1);
            assert!(n.failed_checks.is_none());
            assert_eq!(n.enrichment.state, EnrichmentState::Complete);
        }

        #[tokio::test]
        async fn a_missing_or_foreign_value_is_left_out_quietly() {
            let (n, _) = run(FAILED, src(Ok(None)), Some(PREFIX)).await;
            assert!(n.failed_checks.is_none());
            assert_eq!(n.enrichment.state, EnrichmentState::Complete);
            let (n, _) = run(FAILED, src(Ok(Some("not json".into()))), Some(PREFIX)).await;
            assert!(n.failed_checks.is_none());
        }

        #[tokio::test]
        async fn a_read_error_is_a_partial_enrichment_and_the_rest_still_shows() {
            let denied = SourceError::Denied {
                action: "ssm:GetParameter",
                detail: "AccessDeniedException".into(),
            };
            let (n, _) = run(FAILED, src(Err(denied)), Some(PREFIX)).await;
            assert!(n.failed_checks.is_none());
            assert_eq!(n.enrichment.state, EnrichmentState::Partial);
            assert!(n.enrichment.problems[0].contains("grant ssm:GetParameter"));
            assert!(n.reason.is_some(), "GetDeployment's reason is kept");
        }

        #[tokio::test]
        async fn without_a_prefix_or_for_a_success_nothing_is_read() {
            let (n, reads) = run(FAILED, src(Ok(Some(record("d-7QXQ4LJ2B")))), None).await;
            assert!(reads.is_empty());
            assert!(n.failed_checks.is_none());
            let succeeded = src(Ok(Some(record("d-7QXQ4LJ2B")))).deployment(Ok(DeploymentInfo {
                status: Some("Succeeded".into()),
                ..DeploymentInfo::default()
            }));
            let (n, reads) = run(SUCCEEDED, succeeded, Some(PREFIX)).await;
            assert!(reads.is_empty());
            assert!(n.failed_checks.is_none());
        }

        #[tokio::test]
        async fn a_rollback_deployment_shows_the_checks_of_the_one_it_undoes() {
            let event = events::parse_str(SUCCEEDED);
            let Detail::Deployment(d) = &event.detail else {
                panic!("a deployment event");
            };
            let undone = "d-UNDONE001";
            let rollback = src(Ok(Some(record(undone)))).deployment(Ok(DeploymentInfo {
                status: Some("Succeeded".into()),
                rollback_triggering_deployment_id: Some(undone.into()),
                ..DeploymentInfo::default()
            }));
            let (n, reads) = run(SUCCEEDED, rollback, Some(PREFIX)).await;
            assert_eq!(
                reads,
                [parameter_name(
                    PREFIX,
                    d.application.as_deref().expect("app"),
                    d.deployment_group.as_deref().expect("group")
                )]
            );
            assert_eq!(n.failed_checks.expect("shown").deployment_id, undone);
        }
    }

    mod release_reads {
        use super::super::*;
        use crate::events::parse;
        use crate::test_fakes::FakeSource;
        use serde_json::json;

        /// GetPipeline and the unfiltered ListActionExecutions (counted by
        /// the fake), one deploy action of the execution.
        fn src() -> FakeSource {
            FakeSource::unanswered()
                .pipeline_execution(Ok(PipelineExecutionInfo::default()))
                .action_executions(Ok(vec![ActionExecutionInfo {
                    stage: "Deploy".into(),
                    action: "Blue".into(),
                    provider: Some("CodeDeployToECS".into()),
                    external_id: Some("d-ABC123".into()),
                    ..ActionExecutionInfo::default()
                }]))
                .pipeline_stages(Ok(vec!["Source".into(), "Build".into(), "Prod".into()]))
                .recent_action_executions(Ok(vec![ActionExecutionInfo {
                    provider: Some("CodeBuild".into()),
                    external_id: Some("pay-build:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61".into()),
                    execution_id: Some("x1".into()),
                    ..ActionExecutionInfo::default()
                }]))
        }

        fn stage_event(version: serde_json::Value) -> Event {
            parse(json!({
                "id": "s1", "detail-type": "CodePipeline Stage Execution State Change",
                "source": "aws.codepipeline", "region": "eu-west-1", "account": "1",
                "time": "2026-11-26T06:00:00Z",
                "detail": {"pipeline": "pay", "execution-id": "x1", "stage": "Build", "state": "STARTED", "version": version}
            }))
        }

        async fn enrich(e: &Enricher<FakeSource>, event: &Event) -> Notification {
            let mut n = Notification::from_event(event);
            e.enrich(event, &mut n, Instant::now() + Duration::from_secs(2))
                .await;
            n
        }

        #[tokio::test]
        async fn the_stage_plan_is_read_once_per_pipeline_version() {
            let e = Enricher::new(src(), Duration::from_secs(2), true).with_release_reads(true);
            for v in [json!(3), json!("3"), json!(3.0)] {
                let n = enrich(&e, &stage_event(v)).await;
                assert_eq!(n.planned_stages, vec!["Source", "Build", "Prod"]);
                assert_eq!(n.enrichment.state, EnrichmentState::Complete);
                assert_eq!(n.children, vec!["codedeploy/d-ABC123".to_owned()]);
            }
            let n = enrich(&e, &stage_event(json!(4))).await;
            assert_eq!(n.planned_stages.len(), 3);
            assert_eq!(
                e.source().plan_reads(),
                vec![("pay".to_owned(), 3), ("pay".to_owned(), 4)]
            );
            // The cache is bounded.
            for v in 0..(PLAN_CACHE_ENTRIES as i64 + 10) {
                enrich(&e, &stage_event(json!(v + 10))).await;
            }
            let cache = e
                .reads
                .as_ref()
                .expect("on")
                .plans
                .lock()
                .expect("lock")
                .entries
                .len();
            assert_eq!(cache, PLAN_CACHE_ENTRIES);
        }

        #[tokio::test]
        async fn a_failed_structure_read_leaves_the_seen_stages_and_is_no_problem() {
            let src = src().pipeline_stages(Err(SourceError::Denied {
                action: "codepipeline:GetPipeline",
                detail: "AccessDenied".into(),
            }));
            let e = Enricher::new(src, Duration::from_secs(2), true).with_release_reads(true);
            let n = enrich(&e, &stage_event(json!(3))).await;
            assert!(n.planned_stages.is_empty());
            assert_eq!(
                n.enrichment.state,
                EnrichmentState::Complete,
                "{:?}",
                n.enrichment
            );
            // Not asked again for every event.
            enrich(&e, &stage_event(json!(3))).await;
            assert_eq!(e.source().plan_reads().len(), 1);
        }

        #[tokio::test]
        async fn without_a_bot_destination_nothing_more_is_read() {
            let e = Enricher::new(src(), Duration::from_secs(2), true);
            let n = enrich(&e, &stage_event(json!(3))).await;
            assert!(n.planned_stages.is_empty());
            assert!(e.source().plan_reads().is_empty());
        }

        fn build_event(initiator: &str) -> Event {
            parse(json!({
                "id": "b1", "detail-type": "CodeBuild Build State Change",
                "source": "aws.codebuild", "region": "eu-west-1", "account": "1",
                "time": "2026-11-26T06:00:30Z",
                "detail": {"build-status": "FAILED", "project-name": "pay-build",
                           "build-id": "arn:aws:codebuild:eu-west-1:1:build/pay-build:1e6c4b9a-2d7f-4a3e-8c5b-0f9d2a7e4c61",
                           "additional-information": {"initiator": initiator}}
            }))
        }

        #[tokio::test]
        async fn a_build_a_pipeline_started_is_tied_to_its_execution_once() {
            let e = Enricher::new(src(), Duration::from_secs(2), true).with_release_reads(true);
            for _ in 0..3 {
                let n = enrich(&e, &build_event("codepipeline/pay")).await;
                assert_eq!(n.parent_run.as_deref(), Some("codepipeline/pay/x1"));
            }
            assert_eq!(e.source().recent_reads(), 1, "remembered");
            // Started by someone else: no lookup, its own message.
            let n = enrich(&e, &build_event("GitHub-Hookshot/4c1e9a2")).await;
            assert!(n.parent_run.is_none());
            assert_eq!(e.source().recent_reads(), 1);
        }
    }
}
