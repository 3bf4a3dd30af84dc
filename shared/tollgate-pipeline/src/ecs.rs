//! What `ecs-deploy` and `ecs-wait` share: the [`EcsApi`] port, and the
//! wait for an ECS rolling update with continuation tokens ([`WaitToken`],
//! [`assess`], the poll). The actions themselves live in
//! [`crate::actions::ecs_deploy`] and [`crate::actions::ecs_wait`].
//!
//! `ecs-deploy` (first invocation): read `imagedefinitions.json` from the
//! input artifact → `DescribeServices` → `DescribeTaskDefinition` of the
//! service's current revision → `RegisterTaskDefinition` with the new images
//! → `UpdateService`. `ecs-wait` (first invocation) takes the service's
//! current PRIMARY deployment instead.
//!
//! Then every invocation polls `DescribeServices` once and answers:
//! - rollout `COMPLETED` → success (summary, output variables);
//! - rollout `FAILED` → `JobFailed` with ECS's reason (circuit breaker), the
//!   stopped tasks' reasons and the latest service events;
//! - otherwise → in progress with a [`WaitToken`], `percentComplete` from
//!   running/desired and a summary such as `web: 2/4 tasks on new revision
//!   web:13`, until the wait limit runs out.
//!
//! Late and duplicate deliveries: before it registers or updates anything,
//! `ecs-deploy` asks CodePipeline whether its job is still live
//! ([`super::liveness`]); a job whose action execution is over changes
//! nothing. It also never deploys over a revision that a newer Tollgate job
//! registered ([`REGISTERED_AT_TAG`] later than this job's action started).
//! The registered revision is tagged with the job id ([`JOB_TAG`]). A redelivered first invocation finds the tag on the
//! service's current revision (already deployed: it only waits) or on the
//! family's latest revision (registered, not yet deployed: it reuses it), so
//! one job registers one revision. What remains: if another revision of the
//! same family is registered between the two deliveries, and the first
//! delivery never reached `UpdateService`, a second revision is registered.

use super::{Deps, Failure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
pub use tollgate_core::text::human_duration;
use tollgate_report::{JobOutcome, JobSuccess, Step};

/// Tag put on every task definition revision `ecs-deploy` registers; its
/// value is the CodePipeline job id.
pub const JOB_TAG: &str = "tollgate:codepipeline-job-id";
/// Tag put beside [`JOB_TAG`]: when the revision was registered (epoch
/// milliseconds), so a later job can tell whether it is older.
pub const REGISTERED_AT_TAG: &str = "tollgate:registered-at";

/// Longest wait a rollout may be given: CodePipeline's own cap for an action
/// kept alive by continuation tokens is 24 hours.
pub const MAX_WAIT_MINUTES: u64 = 24 * 60;

/// Consecutive failed polls tolerated before the wait gives up.
pub const MAX_POLL_ERRORS: u32 = 5;

/// Service events quoted in a failure message.
const EVENTS_QUOTED: usize = 5;

/// A problem calling ECS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    /// The function's role may not make the call.
    #[error(
        "{operation} was denied ({detail}); grant {operation} to the function's execution role{hint}"
    )]
    Denied {
        /// IAM action, e.g. `ecs:UpdateService`.
        operation: &'static str,
        /// What ECS said.
        detail: String,
        /// Extra advice, e.g. about `iam:PassRole`.
        hint: String,
    },
    /// The cluster, service or task definition does not exist.
    #[error("{what} was not found ({detail}); check the name and the region in UserParameters")]
    NotFound {
        /// IAM action.
        operation: &'static str,
        /// e.g. `service web in cluster prod`.
        what: String,
        /// What ECS said.
        detail: String,
    },
    /// Throttling, 5xx or no connection, after the SDK's retries.
    #[error("{operation} failed: ECS was unavailable ({detail})")]
    Unavailable {
        /// IAM action.
        operation: &'static str,
        /// What failed.
        detail: String,
    },
    /// Any other rejection.
    #[error("{operation} was rejected ({code}): {detail}")]
    Rejected {
        /// IAM action.
        operation: &'static str,
        /// Error code.
        code: String,
        /// What ECS said.
        detail: String,
    },
}

/// A service as `DescribeServices` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceState {
    /// Service name.
    pub name: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    /// Service-level desired count.
    pub desired_count: i64,
    /// The service's current task definition ARN.
    pub task_definition: String,
    /// `ECS`, `CODE_DEPLOY` or `EXTERNAL`.
    pub deployment_controller: String,
    /// Whether the deployment circuit breaker is on, and whether it rolls back.
    pub circuit_breaker: Option<(bool, bool)>,
    /// Deployments, newest first as ECS returns them.
    pub deployments: Vec<Deployment>,
    /// Service events, newest first.
    pub events: Vec<ServiceEvent>,
    /// The service's `awsvpcConfiguration`, if any (`run-task` reuses it).
    pub network: Option<crate::task::NetworkConfig>,
    /// The service's launch type (`FARGATE`, `EC2`), if set.
    pub launch_type: Option<String>,
}

/// One deployment of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deployment {
    /// `ecs-svc/…`.
    pub id: String,
    /// `PRIMARY`, `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// Desired tasks.
    pub desired: i64,
    /// Running tasks.
    pub running: i64,
    /// Pending tasks.
    pub pending: i64,
    /// Tasks that failed to start.
    pub failed_tasks: i64,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED` (absent on old services).
    pub rollout_state: Option<String>,
    /// ECS's reason for the rollout state.
    pub rollout_state_reason: Option<String>,
    /// Epoch seconds.
    pub created_at: Option<i64>,
}

/// A service event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEvent {
    /// Epoch seconds.
    pub created_at: Option<i64>,
    /// The event text.
    pub message: String,
}

/// What tollgate needs to know about a task definition revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskDefinitionView {
    /// ARN with revision.
    pub arn: String,
    /// Family.
    pub family: String,
    /// Revision number.
    pub revision: i64,
    /// (container name, image).
    pub containers: Vec<(String, String)>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Task role, which `RegisterTaskDefinition` passes (`iam:PassRole`).
    pub task_role_arn: Option<String>,
    /// Execution role, passed as well.
    pub execution_role_arn: Option<String>,
}

impl TaskDefinitionView {
    pub(crate) fn tagged_with(&self, job_id: &str) -> bool {
        self.tags.iter().any(|(k, v)| k == JOB_TAG && v == job_id)
    }

    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses to deploy over this revision when another Tollgate job
    /// registered it after `started_at_ms`, when this job's action started:
    /// that job is newer, and deploying now would roll it back.
    pub(crate) fn refuse_if_newer(
        &self,
        job_id: &str,
        started_at_ms: Option<i64>,
    ) -> Result<(), Failure> {
        let (Some(other), Some(started)) = (self.tag(JOB_TAG), started_at_ms) else {
            return Ok(());
        };
        let registered = self
            .tag(REGISTERED_AT_TAG)
            .and_then(|v| v.parse::<i64>().ok());
        match registered {
            Some(at) if other != job_id && at > started => Err(Failure::job(format!(
                "revision {} was registered by a newer Tollgate job ({other}) after this job's \
                 action started; deploying this job's images now would roll that release back, \
                 so nothing was changed. Retry the stage to deploy again on purpose",
                revision_label(&self.arn)
            ))),
            _ => Ok(()),
        }
    }
}

/// Port: the ECS calls the actions make.
pub trait EcsApi: Send + Sync {
    /// `DescribeServices` for one service.
    fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<ServiceState, EcsError>> + Send;

    /// `DescribeTaskDefinition` (with tags) by ARN, `family:revision` or
    /// family (latest ACTIVE revision).
    fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> impl Future<Output = Result<TaskDefinitionView, EcsError>> + Send;

    /// `RegisterTaskDefinition`: a copy of `base` with the given container
    /// images replaced and `tags` added.
    fn register_task_definition(
        &self,
        base: &str,
        images: &BTreeMap<String, String>,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<TaskDefinitionView, EcsError>> + Send;

    /// `RegisterTaskDefinition` of a whole document: `document` is the
    /// operation's input as JSON (`taskdef.json`, tags included), sent as
    /// written. `family` is the document's, for messages.
    fn register_task_definition_document(
        &self,
        family: &str,
        document: &str,
    ) -> impl Future<Output = Result<TaskDefinitionView, EcsError>> + Send;

    /// `UpdateService` to a task definition.
    fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        force_new_deployment: bool,
    ) -> impl Future<Output = Result<ServiceState, EcsError>> + Send;

    /// Reasons of stopped tasks started by a deployment (`ListTasks` +
    /// `DescribeTasks`), newest first, at most `limit`.
    fn stopped_task_reasons(
        &self,
        cluster: &str,
        deployment_id: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, EcsError>> + Send;

    /// `DescribeTaskDefinition`, as `run-task` needs it: containers with
    /// essential flags and log configuration, network mode.
    fn describe_task_spec(
        &self,
        task_definition: &str,
    ) -> impl Future<Output = Result<crate::task::TaskSpec, EcsError>> + Send;

    /// `RunTask` of one task. A placement failure (`failures` in the
    /// answer) is an error.
    fn run_task(
        &self,
        request: &crate::task::RunRequest,
    ) -> impl Future<Output = Result<crate::task::TaskState, EcsError>> + Send;

    /// `DescribeTasks` of one task; `None` when ECS no longer knows it.
    fn describe_task(
        &self,
        cluster: &str,
        task: &str,
    ) -> impl Future<Output = Result<Option<crate::task::TaskState>, EcsError>> + Send;

    /// `ListTasks` with `startedBy`, running and stopped: the ARNs.
    fn tasks_started_by(
        &self,
        cluster: &str,
        started_by: &str,
    ) -> impl Future<Output = Result<Vec<String>, EcsError>> + Send;

    /// `StopTask` with a reason.
    fn stop_task(
        &self,
        cluster: &str,
        task: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
}

/// What the next poll needs; sent to CodePipeline as the continuation token
/// (compact JSON, far below the 2048-char limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitToken {
    /// Format version.
    pub v: u8,
    /// `ecs-deploy` or `ecs-wait`.
    pub action: String,
    /// Cluster.
    pub cluster: String,
    /// Service.
    pub service: String,
    /// Deployment id waited for.
    pub deployment: String,
    /// Task definition ARN being rolled out.
    pub task_definition: String,
    /// When the wait started, epoch seconds.
    pub started_at: u64,
    /// Polls made so far.
    pub polls: u32,
    /// Consecutive failed polls.
    pub errors: u32,
}

impl WaitToken {
    /// Compact JSON.
    pub fn encode(&self) -> String {
        // Built with json! (infallible): an empty token would turn "still
        // waiting" into a final success.
        serde_json::json!({
            "v": self.v,
            "action": self.action,
            "cluster": self.cluster,
            "service": self.service,
            "deployment": self.deployment,
            "taskDefinition": self.task_definition,
            "startedAt": self.started_at,
            "polls": self.polls,
            "errors": self.errors,
        })
        .to_string()
    }

    /// Reads a token this function produced.
    pub fn decode(raw: &str) -> Result<Self, Failure> {
        let t: Self = serde_json::from_str(raw).map_err(|e| {
            Failure::job(format!(
                "the continuation token is not one tollgate's ECS wait produced ({}); \
                 retry the stage to start the wait again",
                tollgate_report::describe_json_error(&e)
            ))
        })?;
        if t.v != 1 {
            return Err(Failure::job(format!(
                "the continuation token has format version {}, this function reads version 1; \
                 retry the stage to start the wait again",
                t.v
            )));
        }
        Ok(t)
    }
}

/// Where a rollout stands after one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Done: final success.
    Completed {
        /// Summary for the console.
        summary: String,
        /// Output variables.
        variables: BTreeMap<String, String>,
    },
    /// Failed: the rollout failed, was replaced, or ran out of time.
    Failed {
        /// The message (without stopped-task reasons, added by the caller).
        message: String,
        /// True when the caller should add the deployment's stopped tasks.
        wants_stopped_tasks: bool,
    },
    /// Still rolling.
    Waiting {
        /// Summary for the console.
        summary: String,
        /// 0–99.
        percent: u8,
    },
}

/// `family:revision` from a task definition ARN.
pub fn revision_label(arn: &str) -> &str {
    arn.rsplit_once('/').map_or(arn, |(_, r)| r)
}

/// Judges one `DescribeServices` answer for the deployment in `token`.
pub fn assess(service: &ServiceState, token: &WaitToken, now: u64, limit: Duration) -> Progress {
    let elapsed = now.saturating_sub(token.started_at);
    let label = revision_label(&token.task_definition);
    if service.status != "ACTIVE" {
        return Progress::Failed {
            message: format!(
                "service {} is {} (not ACTIVE) while waiting for its rollout to {label}; it was deleted or is being deleted",
                service.name, service.status
            ),
            wants_stopped_tasks: false,
        };
    }
    let Some(d) = service
        .deployments
        .iter()
        .find(|d| d.id == token.deployment)
    else {
        let now_primary = service
            .deployments
            .iter()
            .find(|d| d.status == "PRIMARY")
            .map(|p| {
                format!(
                    "the PRIMARY deployment is now {} with {} (rollout {})",
                    p.id,
                    revision_label(&p.task_definition),
                    p.rollout_state.as_deref().unwrap_or("state unknown")
                )
            })
            .unwrap_or_else(|| "the service has no PRIMARY deployment".to_owned());
        return Progress::Failed {
            message: format!(
                "deployment {} of service {} (rolling out {label}) is no longer among the service's deployments: \
                 another deployment replaced it; {now_primary}.{}",
                token.deployment,
                service.name,
                recent_events(service, token.started_at)
            ),
            wants_stopped_tasks: false,
        };
    };
    let counts = format!(
        "{}/{} tasks on new revision {label}",
        d.running.max(0),
        d.desired.max(0)
    );
    let extra = {
        let mut parts = Vec::new();
        if d.pending > 0 {
            parts.push(format!("{} pending", d.pending));
        }
        if d.failed_tasks > 0 {
            parts.push(format!("{} failed to start", d.failed_tasks));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    };
    let stable_without_state = d.rollout_state.is_none()
        && d.status == "PRIMARY"
        && service.deployments.len() == 1
        && d.running == d.desired
        && d.pending == 0;
    match d.rollout_state.as_deref() {
        Some("COMPLETED") => completed(service, token, d, elapsed),
        _ if stable_without_state => completed(service, token, d, elapsed),
        Some("FAILED") => {
            let reason = d
                .rollout_state_reason
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or("ECS gave no reason");
            let rolled_back = service
                .deployments
                .iter()
                .find(|o| o.status == "PRIMARY" && o.id != d.id)
                .map(|p| {
                    format!(
                        " The service is rolling back to {} (deployment {}).",
                        revision_label(&p.task_definition),
                        p.id
                    )
                })
                .unwrap_or_default();
            Progress::Failed {
                message: format!(
                    "ECS rollout of service {} to {label} FAILED after {}: {reason}. {counts}{extra}.{rolled_back}{}",
                    service.name,
                    human_duration(elapsed),
                    recent_events(service, token.started_at)
                ),
                wants_stopped_tasks: true,
            }
        }
        _ if elapsed >= limit.as_secs() => Progress::Failed {
            message: format!(
                "ECS rollout of service {} to {label} did not complete within the {} wait limit: {counts}{extra}; \
                 rollout state {}. Raise wait_timeout_minutes in UserParameters if rollouts take longer, \
                 or look at why tasks do not become healthy.{}{}",
                service.name,
                human_duration(limit.as_secs()),
                d.rollout_state.as_deref().unwrap_or("unknown"),
                if matches!(service.circuit_breaker, Some((true, _))) {
                    ""
                } else {
                    " The service's deployment circuit breaker is off: turn it on so a rollout whose tasks \
                     keep failing stops (and rolls back) instead of running into this limit."
                },
                recent_events(service, token.started_at)
            ),
            wants_stopped_tasks: true,
        },
        _ => {
            let percent = if d.desired > 0 {
                u8::try_from((d.running.max(0) * 100 / d.desired).clamp(0, 99)).unwrap_or(99)
            } else {
                0
            };
            Progress::Waiting {
                summary: format!(
                    "{}: {counts}{extra}; rollout {} for {} (limit {})",
                    service.name,
                    d.rollout_state
                        .as_deref()
                        .map(str::to_ascii_lowercase)
                        .unwrap_or_else(|| "in progress".to_owned())
                        .replace('_', " "),
                    human_duration(elapsed),
                    human_duration(limit.as_secs())
                ),
                percent,
            }
        }
    }
}

fn completed(service: &ServiceState, token: &WaitToken, d: &Deployment, elapsed: u64) -> Progress {
    let label = revision_label(&token.task_definition);
    let mut variables = BTreeMap::new();
    variables.insert("deployment_id".to_owned(), d.id.clone());
    variables.insert(
        "task_definition_arn".to_owned(),
        token.task_definition.clone(),
    );
    variables.insert("running_count".to_owned(), d.running.to_string());
    variables.insert("service".to_owned(), service.name.clone());
    Progress::Completed {
        summary: format!(
            "{}: {}/{} tasks on new revision {label}; rollout completed after {} ({} poll{})",
            service.name,
            d.running.max(0),
            d.desired.max(0),
            human_duration(elapsed),
            token.polls,
            if token.polls == 1 { "" } else { "s" }
        ),
        variables,
    }
}

/// ` Recent service events: …` for events since `since` (epoch seconds).
fn recent_events(service: &ServiceState, since: u64) -> String {
    let since = i64::try_from(since).unwrap_or(i64::MAX).saturating_sub(60);
    let events: Vec<&str> = service
        .events
        .iter()
        .filter(|e| e.created_at.is_none_or(|t| t >= since))
        .take(EVENTS_QUOTED)
        .map(|e| e.message.as_str())
        .collect();
    if events.is_empty() {
        String::new()
    } else {
        format!(" Recent service events: {}", events.join(" | "))
    }
}

pub(crate) fn check_controller(service: &ServiceState, cluster: &str) -> Result<(), Failure> {
    if service.status != "ACTIVE" {
        return Err(Failure::config(format!(
            "service {} in cluster {cluster} is {}, not ACTIVE; check the service name in UserParameters",
            service.name, service.status
        )));
    }
    match service.deployment_controller.as_str() {
        "" | "ECS" => Ok(()),
        other => Err(Failure::config(format!(
            "service {} uses the {other} deployment controller; ecs-deploy/ecs-wait handle rolling updates \
             (controller ECS) only. For blue/green use the CodeDeployToECS action with the deploy-hook function",
            service.name
        ))),
    }
}

/// Turns an assessment into the job outcome, adding stopped-task reasons on failure.
pub(crate) async fn finish<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    service: &ServiceState,
    mut token: WaitToken,
    limit: Duration,
    step: &Step,
) -> Result<JobOutcome, Failure>
where
    E: EcsApi,
{
    let now = deps.clock.now();
    token.polls += 1;
    token.errors = 0;
    match assess(service, &token, now, limit) {
        Progress::Completed { summary, variables } => Ok(JobOutcome::Success(JobSuccess {
            summary: Some(summary),
            percent_complete: Some(100),
            external_execution_id: Some(token.deployment.clone()),
            output_variables: variables,
            continuation_token: None,
        })),
        Progress::Waiting { summary, percent } => Ok(JobOutcome::Success(JobSuccess {
            summary: Some(summary),
            percent_complete: Some(percent),
            external_execution_id: Some(token.deployment.clone()),
            output_variables: BTreeMap::new(),
            continuation_token: Some(token.encode()),
        })),
        Progress::Failed {
            mut message,
            wants_stopped_tasks,
        } => {
            if wants_stopped_tasks {
                step.enter(format!(
                    "reading stopped tasks of deployment {}",
                    token.deployment
                ));
                match deps
                    .ecs
                    .stopped_task_reasons(&token.cluster, &token.deployment, 5)
                    .await
                {
                    Ok(reasons) if !reasons.is_empty() => {
                        message.push_str(&format!(" Stopped tasks: {}", reasons.join(" | ")));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "stopped task reasons unavailable");
                        message
                            .push_str(&format!(" (Stopped-task reasons could not be read: {e})"));
                    }
                }
            }
            Err(Failure::job(message))
        }
    }
}

/// One poll on a continuation invocation.
pub(crate) async fn poll<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    raw_token: &str,
    limit: Duration,
    step: &Step,
) -> Result<JobOutcome, Failure>
where
    E: EcsApi,
{
    let token = WaitToken::decode(raw_token)?;
    step.enter(format!(
        "polling ECS service {} in cluster {} (deployment {})",
        token.service, token.cluster, token.deployment
    ));
    match deps
        .ecs
        .describe_service(&token.cluster, &token.service)
        .await
    {
        Ok(service) => finish(deps, &service, token, limit, step).await,
        Err(EcsError::Unavailable { operation, detail }) => {
            // A blip must not fail a rollout that may be fine: poll again later.
            let mut next = token;
            next.errors += 1;
            next.polls += 1;
            let elapsed = deps.clock.now().saturating_sub(next.started_at);
            if next.errors >= MAX_POLL_ERRORS || elapsed >= limit.as_secs() {
                return Err(Failure::unavailable(format!(
                    "{operation} failed {} times in a row while waiting for service {} ({detail}); \
                     the rollout's state is unknown: check the service in the ECS console",
                    next.errors, next.service
                )));
            }
            Ok(JobOutcome::Success(JobSuccess {
                summary: Some(format!(
                    "{}: could not poll ECS ({detail}); trying again ({}/{MAX_POLL_ERRORS})",
                    next.service, next.errors
                )),
                percent_complete: None,
                external_execution_id: Some(next.deployment.clone()),
                output_variables: BTreeMap::new(),
                continuation_token: Some(next.encode()),
            }))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn primary(service: &ServiceState) -> Option<&Deployment> {
    service.deployments.iter().find(|d| d.status == "PRIMARY")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::td_arn;

    #[test]
    fn tokens_round_trip_and_stay_small() {
        let t = WaitToken {
            v: 1,
            action: "ecs-deploy".into(),
            cluster: format!(
                "arn:aws:ecs:us-east-1:111111111111:cluster/{}",
                "c".repeat(255)
            ),
            service: format!(
                "arn:aws:ecs:us-east-1:111111111111:service/prod/{}",
                "s".repeat(255)
            ),
            deployment: "ecs-svc/1234567890123456789".into(),
            task_definition: format!(
                "arn:aws:ecs:us-east-1:111111111111:task-definition/{}:99999",
                "f".repeat(255)
            ),
            started_at: 1_760_000_000,
            polls: 2880,
            errors: 0,
        };
        let encoded = t.encode();
        assert!(encoded.len() < 2048, "{}", encoded.len());
        assert_eq!(WaitToken::decode(&encoded).expect("round trip"), t);
    }

    #[test]
    fn services_without_rollout_state_use_the_stability_rule() {
        let token = WaitToken {
            v: 1,
            action: "ecs-wait".into(),
            cluster: "c".into(),
            service: "web".into(),
            deployment: "d1".into(),
            task_definition: td_arn("web", 3),
            started_at: 0,
            polls: 1,
            errors: 0,
        };
        let d = Deployment {
            id: "d1".into(),
            status: "PRIMARY".into(),
            task_definition: td_arn("web", 3),
            desired: 2,
            running: 2,
            ..Deployment::default()
        };
        let mut svc = ServiceState {
            name: "web".into(),
            status: "ACTIVE".into(),
            deployments: vec![d.clone()],
            ..ServiceState::default()
        };
        assert!(matches!(
            assess(&svc, &token, 10, Duration::from_secs(600)),
            Progress::Completed { .. }
        ));
        // An old deployment still draining: not stable yet.
        svc.deployments.push(Deployment {
            id: "d0".into(),
            status: "ACTIVE".into(),
            running: 1,
            ..Deployment::default()
        });
        assert!(matches!(
            assess(&svc, &token, 10, Duration::from_secs(600)),
            Progress::Waiting { percent: 99, .. }
        ));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(192), "3m 12s");
        assert_eq!(human_duration(1800), "30m");
        assert_eq!(human_duration(7200), "2h");
        assert_eq!(human_duration(3900), "1h 05m");
        assert_eq!(revision_label(&td_arn("web", 13)), "web:13");
    }
}
