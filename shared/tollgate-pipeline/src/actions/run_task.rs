//! `run-task`: runs one ECS task (a database migration, a cache warm-up, a
//! seed job) as a pipeline step and waits for it with continuation tokens,
//! never sleeping inside the function.
//!
//! First invocation: the task definition is the one named in
//! `task_definition`, or the service's current revision (`service`) with
//! the new images of `imagedefinitions.json` from the input artifact, which
//! is registered as a revision tagged with the job id. Container overrides
//! (command, environment) come from `overrides`, network configuration from
//! `network` or the service. The task is started with `startedBy` = the job
//! id and the job tag. Then every invocation polls `DescribeTasks` once:
//! - not stopped yet → in progress, the statuses seen so far in the summary
//!   (`PROVISIONING → PENDING → RUNNING`);
//! - `STOPPED` with every essential container at exit code 0 → success,
//!   output variables `task_arn`, `exit_code`, `duration_seconds`;
//! - `STOPPED` otherwise → `JobFailed` naming the container, its exit code,
//!   ECS's `stoppedReason`, and the last lines of its awslogs stream;
//! - the time limit reached → `StopTask` with a reason naming the job, and
//!   `JobFailed` saying what the task was doing.
//!
//! Late and duplicate deliveries: a first invocation looks for a task this
//! job already started (`ListTasks` by `startedBy`) and waits for that one
//! instead of starting another; before registering or starting anything it
//! asks CodePipeline whether the job is still live ([`crate::liveness`]).
//!
//! Log lines shown are bounded ([`LOG_LINES`], [`LOG_LINE_CHARS`],
//! [`LOG_TAIL_CHARS`]), come only from the failed container's own stream,
//! have control characters removed, and have every environment value given
//! in `overrides` replaced by `***`. The values of the task definition's
//! `secrets` are never read.
//!
//! Owns the action whole: [`RunTaskParams`] and their parsing ([`parse`]),
//! and the execution ([`run`]).

use crate::actions::ecs_deploy::check_policy;
use crate::artifact::ArtifactStore;
use crate::artifact::Archive;
use crate::deploy_files::{parse_image_definitions, parse_image_detail};
use crate::ecs::{
    EcsApi, EcsError, JOB_TAG, MAX_POLL_ERRORS, REGISTERED_AT_TAG,
    human_duration, revision_label,
};
use crate::image::{ImagePolicy, parse_image_policy};
use crate::liveness::{self, JobLiveness, Liveness};
use crate::params::{Fields, ParamError};
use crate::task::{ContainerOverride, NetworkConfig, RunRequest, TaskSpec, TaskState, task_id};
use crate::{Deps, Failure, open_input};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_report::events::codepipeline::Job;
use tollgate_report::{JobOutcome, JobSuccess, Step};

/// The action's name, as written in `"action"`.
pub const NAME: &str = "run-task";

/// Valid `UserParameters`, shown in every error about this action.
pub const EXAMPLE: &str = r#"{"action":"run-task","cluster":"prod","service":"web","overrides":{"web":{"command":["bin/migrate","--yes"]}},"timeout_minutes":20}"#;

/// Log lines quoted from a failed container.
pub const LOG_LINES: usize = 20;
/// Characters kept of one log line.
pub const LOG_LINE_CHARS: usize = 240;
/// Characters of log lines quoted in all (the newest are kept).
pub const LOG_TAIL_CHARS: usize = 2000;
/// Longest time limit run-task takes, in minutes (23 h). CodePipeline
/// times an action out 24 h after it started, and the first invocation can
/// come up to 15 minutes late (the function's `MaximumEventAgeInSeconds`)
/// with every poll some time apart: the cap leaves an hour so that Tollgate
/// stops the task and reports before CodePipeline gives up on the action
/// and leaves the task running.
pub const MAX_TIME_LIMIT_MINUTES: u64 = 23 * 60;

/// Longest `startedBy` ECS accepts.
const STARTED_BY_MAX: usize = 128;
/// Longest `StopTask` reason ECS accepts.
const STOP_REASON_MAX: usize = 255;
/// Environment values shorter than this are not redacted from log lines
/// (`1`, `on` would blank out unrelated text).
const REDACT_MIN_CHARS: usize = 4;

/// Where the task definition comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A task definition family, `family:revision` or ARN, run as it is.
    TaskDefinition(String),
    /// A whole task definition document in the input artifact
    /// (`taskdef.json`), registered as a revision tagged with the job id.
    File {
        /// Input artifact; `None` when there is one.
        artifact: Option<String>,
        /// The document's path inside it.
        path: String,
        /// Placeholder (without `<>`) filled with the artifact's image.
        placeholder: Option<String>,
        /// Policy for the images.
        image_policy: ImagePolicy,
    },
    /// The service's current revision, with the images of the input
    /// artifact's image definitions (when the job has an input artifact).
    Service {
        /// Service name or ARN.
        service: String,
        /// Input artifact; `None` when there is one.
        artifact: Option<String>,
        /// Image definitions file inside it.
        file: String,
        /// Policy for the images.
        image_policy: ImagePolicy,
    },
}

/// `run-task` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTaskParams {
    /// Cluster name or ARN.
    pub cluster: String,
    /// The task definition to run.
    pub source: Source,
    /// `FARGATE` or `EC2`; `None`: the service's, else from the task definition.
    pub launch_type: Option<String>,
    /// Network configuration; `None`: the service's.
    pub network: Option<NetworkConfig>,
    /// Container overrides, by container name.
    pub overrides: Vec<ContainerOverride>,
    /// Time limit from the first invocation.
    pub timeout: Option<Duration>,
}

/// Parses `run-task`'s fields.
pub fn parse(map: &Map<String, Value>) -> Result<RunTaskParams, ParamError> {
    let mut f = Fields::new("", map, EXAMPLE);
    f.known(&[
        "action",
        "cluster",
        "task_definition",
        "task_definition_file",
        "service",
        "artifact",
        "file",
        "image_placeholder",
        "image_policy",
        "launch_type",
        "network",
        "overrides",
        "timeout_minutes",
    ])?;
    let cluster = f.string("cluster", "the ECS cluster name or ARN")?;
    let task_definition = f.opt_string(
        "task_definition",
        "a task definition family, family:revision or ARN",
    )?;
    let task_definition_file = f.opt_string(
        "task_definition_file",
        "the path of a task definition document (taskdef.json) in the input artifact",
    )?;
    let service = f.opt_string("service", "the ECS service whose task definition runs")?;
    let given: Vec<&str> = [
        ("task_definition", task_definition.is_some()),
        ("task_definition_file", task_definition_file.is_some()),
        ("service", service.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    const ONE_OF: &str = "give one of: \"task_definition\" (family, family:revision or ARN, run as it \
         is), \"task_definition_file\" (a taskdef.json in the input artifact, registered and run) \
         or \"service\" (the service's task definition with the artifact's new images)";
    if given.len() > 1 {
        return Err(f.err(
            given[0],
            format!("and \"{}\" are both set; {ONE_OF}", given[1]),
        ));
    }
    let only_with = |f: &Fields<'_>, keys: &[&str], source: &str, why: &str| {
        for key in keys {
            if map.contains_key(*key) {
                return Err(f.err(key, format!("applies only with {source}; {why}")));
            }
        }
        Ok(())
    };
    let source = if let Some(td) = task_definition {
        only_with(
            &f,
            &["artifact", "file", "image_policy", "image_placeholder"],
            "\"service\" or \"task_definition_file\"",
            "with \"task_definition\" the revision runs as it is",
        )?;
        Source::TaskDefinition(td)
    } else if let Some(path) = task_definition_file {
        only_with(
            &f,
            &["file"],
            "\"service\" (the image definitions to apply to its revision)",
            "with \"task_definition_file\" the image comes from \"image_placeholder\"",
        )?;
        let placeholder = f.opt_string(
            "image_placeholder",
            "a placeholder name such as IMAGE1_NAME",
        )?;
        if let Some(p) = &placeholder
            && (p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(f.err(
                "image_placeholder",
                "is not a placeholder name; use letters, digits and _ like IMAGE1_NAME \
                 (written <IMAGE1_NAME> in taskdef.json)",
            ));
        }
        Source::File {
            artifact: f.opt_string(
                "artifact",
                "the input artifact holding the task definition document",
            )?,
            path,
            placeholder,
            image_policy: parse_image_policy(&mut f)?,
        }
    } else if let Some(service) = service {
        only_with(
            &f,
            &["image_placeholder"],
            "\"task_definition_file\"",
            "with \"service\" the images come from imagedefinitions.json (\"file\")",
        )?;
        Source::Service {
            service,
            artifact: f.opt_string(
                "artifact",
                "the input artifact holding imagedefinitions.json",
            )?,
            file: f
                .opt_string("file", "the image definitions file inside the artifact")?
                .unwrap_or_else(|| "imagedefinitions.json".to_owned()),
            image_policy: parse_image_policy(&mut f)?,
        }
    } else {
        return Err(f.err("task_definition", format!("is missing: {ONE_OF}")));
    };
    let launch_type = match f.opt_string("launch_type", "FARGATE or EC2")? {
        None => None,
        Some(l) if l == "FARGATE" || l == "EC2" => Some(l),
        Some(_) => return Err(f.err("launch_type", "must be \"FARGATE\" or \"EC2\"")),
    };
    let network = match f.opt_object("network")? {
        None => None,
        Some(mut n) => {
            n.known(&["subnets", "security_groups", "assign_public_ip"])?;
            let subnets = n
                .opt_string_list("subnets", "subnet ids")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| n.err("subnets", "is missing: at least one subnet id"))?;
            Some(NetworkConfig {
                subnets,
                security_groups: n
                    .opt_string_list("security_groups", "security group ids")?
                    .unwrap_or_default(),
                assign_public_ip: n.opt_bool("assign_public_ip")?.unwrap_or(false),
            })
        }
    };
    let mut overrides = Vec::new();
    if let Some(o) = f.opt_object("overrides")? {
        for (name, value) in map
            .get("overrides")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let Value::Object(_) = value else {
                return Err(o.err(
                    name,
                    "must be an object with \"command\" and/or \"environment\", \
                     e.g. {\"command\":[\"bin/migrate\"]}",
                ));
            };
            let Some(mut c) = o.opt_object(name)? else {
                continue;
            };
            c.known(&["command", "environment"])?;
            let command = c.opt_string_list("command", "the command and its arguments")?;
            if command.as_ref().is_some_and(Vec::is_empty) {
                return Err(c.err("command", "is an empty list; leave it out to keep the container's command"));
            }
            overrides.push(ContainerOverride {
                name: name.clone(),
                command,
                environment: c
                    .opt_string_map("environment", "environment variables")?
                    .unwrap_or_default(),
            });
        }
    }
    if let Some(m) = map.get("timeout_minutes").and_then(Value::as_u64)
        && m > MAX_TIME_LIMIT_MINUTES
    {
        return Err(f.err(
            "timeout_minutes",
            format!(
                "is {m}, over run-task's cap of {MAX_TIME_LIMIT_MINUTES} minutes (23 h): \
                 CodePipeline times an action out 24 h after it starts, and Tollgate must stop \
                 the task and report before that; split the job or make it faster"
            ),
        ));
    }
    let timeout = f
        .opt_u64("timeout_minutes", 1, MAX_TIME_LIMIT_MINUTES)?
        .map(|m| Duration::from_secs(m * 60));
    Ok(RunTaskParams {
        cluster,
        source,
        launch_type,
        network,
        overrides,
        timeout,
    })
}

/// What the next poll needs; sent as the continuation token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskToken {
    /// Format version.
    pub v: u8,
    /// Always `run-task`.
    pub action: String,
    /// Cluster.
    pub cluster: String,
    /// Task ARN.
    pub task: String,
    /// The job that started the task (named in the stop reason).
    pub job: String,
    /// When the wait started, epoch seconds.
    pub started_at: u64,
    /// Statuses seen so far, in order.
    pub seen: Vec<String>,
    /// Polls so far.
    pub polls: u32,
    /// Consecutive failed polls.
    pub errors: u32,
}

impl TaskToken {
    /// Compact JSON.
    pub fn encode(&self) -> String {
        serde_json::json!({
            "v": self.v,
            "action": self.action,
            "cluster": self.cluster,
            "task": self.task,
            "job": self.job,
            "startedAt": self.started_at,
            "seen": self.seen,
            "polls": self.polls,
            "errors": self.errors,
        })
        .to_string()
    }

    /// Reads a token this action produced.
    pub fn decode(raw: &str) -> Result<Self, Failure> {
        let t: Self = serde_json::from_str(raw).map_err(|e| {
            Failure::job(format!(
                "the continuation token is not one tollgate's run-task produced ({}); \
                 retry the stage to start the task again",
                tollgate_report::describe_json_error(&e)
            ))
        })?;
        if t.v != 1 || t.action != NAME {
            return Err(Failure::job(
                "the continuation token is not a version 1 run-task token; retry the stage to \
                 start the task again",
            ));
        }
        Ok(t)
    }

    /// The token that waits for `task`, which this job started (now, or
    /// in an earlier or concurrent delivery): no statuses seen, no polls yet.
    fn adopt(cluster: &str, task: String, job: &str, now: u64) -> Self {
        Self {
            v: 1,
            action: NAME.to_owned(),
            cluster: cluster.to_owned(),
            task,
            job: job.to_owned(),
            started_at: now,
            seen: Vec::new(),
            polls: 0,
            errors: 0,
        }
    }

    fn note(&mut self, status: &str) {
        // ECS has eight task statuses; the list never grows past them.
        if !status.is_empty() && self.seen.last().map(String::as_str) != Some(status) && self.seen.len() < 12 {
            self.seen.push(status.to_owned());
        }
    }
}

/// The time limit: `timeout_minutes`, else the function's default wait
/// limit (`EcsWaitTimeoutMinutes`, which may be up to 24 h), never more
/// than [`MAX_TIME_LIMIT_MINUTES`].
pub fn time_limit(params: &RunTaskParams, settings: &crate::Settings) -> Duration {
    params
        .timeout
        .unwrap_or(settings.default_wait_timeout)
        .min(Duration::from_secs(MAX_TIME_LIMIT_MINUTES * 60))
}

/// `startedBy` for a job: its id, cut to ECS's limit.
pub fn started_by(job_id: &str) -> String {
    job_id.chars().take(STARTED_BY_MAX).collect()
}

/// Runs `run-task`.
pub async fn run<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &RunTaskParams,
    step: &Step,
    _deadline: Instant,
) -> Result<JobOutcome, Failure>
where
    A: ArtifactStore,
    E: EcsApi,
    J: JobLiveness,
{
    let limit = time_limit(params, &deps.settings);
    if let Some(raw) = &job.data.continuation_token {
        let token = TaskToken::decode(raw)?;
        return poll(deps, params, token, limit, step).await;
    }
    let cluster = &params.cluster;

    // The service (for its revision, network and launch type).
    let (base, service) = match &params.source {
        Source::TaskDefinition(td) => (td.clone(), None),
        Source::File { .. } => (String::new(), None),
        Source::Service { service, .. } => {
            step.enter(format!(
                "describing ECS service {service} in cluster {cluster}"
            ));
            let s = deps.ecs.describe_service(cluster, service).await?;
            if s.status != "ACTIVE" {
                return Err(Failure::config(format!(
                    "service {} in cluster {cluster} is {}, not ACTIVE; check \"service\" in UserParameters",
                    s.name, s.status
                )));
            }
            (s.task_definition.clone(), Some(s))
        }
    };

    // A redelivery of this job: wait for the task it already started.
    step.enter(format!(
        "looking for a task this job already started in cluster {cluster}"
    ));
    let by = started_by(&job.id);
    if let Some(existing) = deps
        .ecs
        .tasks_started_by(cluster, &by)
        .await?
        .into_iter()
        .next()
    {
        tracing::info!(task = %existing, "this job already started a task (duplicate delivery): waiting for it");
        let token = TaskToken::adopt(cluster, existing, &job.id, deps.clock.now());
        return poll(deps, params, token, limit, step).await;
    }

    let (spec, plan) = match &params.source {
        Source::File {
            artifact,
            path,
            placeholder,
            image_policy,
        } => {
            let prepared = read_taskdef(
                deps,
                job,
                artifact.as_deref(),
                path,
                placeholder.as_deref(),
                image_policy,
                step,
            )
            .await?;
            (prepared.spec.clone(), Plan::Document(prepared))
        }
        _ => {
            // New images from the artifact (service source, job with an input artifact).
            let images = match &params.source {
                Source::Service {
                    artifact,
                    file,
                    image_policy,
                    ..
                } if !job.data.input_artifacts.is_empty() => {
                    read_images(deps, job, artifact.as_deref(), file, image_policy, step).await?
                }
                _ => BTreeMap::new(),
            };
            step.enter(format!("describing task definition {}", revision_label(&base)));
            let spec = deps.ecs.describe_task_spec(&base).await?;
            let unknown: Vec<&str> = images
                .keys()
                .map(String::as_str)
                .filter(|n| spec.container(n).is_none())
                .collect();
            if !unknown.is_empty() {
                return Err(Failure::config(format!(
                    "the image definitions name container(s) {} that task definition {} does not have \
                     (its containers: {}); the names must match the task definition's container names",
                    unknown.join(", "),
                    revision_label(&spec.arn),
                    spec.names()
                )));
            }
            let plan = if images.is_empty() {
                Plan::Existing
            } else {
                Plan::Images(images)
            };
            (spec, plan)
        }
    };
    check_overrides(&spec, &params.overrides)?;
    let launch_type = params
        .launch_type
        .clone()
        .or_else(|| service.as_ref().and_then(|s| s.launch_type.clone()))
        .unwrap_or_else(|| {
            if spec.compatibilities.iter().any(|c| c == "FARGATE")
                && !spec.compatibilities.iter().any(|c| c == "EC2")
            {
                "FARGATE".to_owned()
            } else if spec.compatibilities.iter().any(|c| c == "EC2") {
                "EC2".to_owned()
            } else {
                "FARGATE".to_owned()
            }
        });
    let network = params
        .network
        .clone()
        .or_else(|| service.as_ref().and_then(|s| s.network.clone()));
    let awsvpc = spec.network_mode.as_deref() == Some("awsvpc") || launch_type == "FARGATE";
    if awsvpc && network.is_none() {
        return Err(Failure::config(format!(
            "invalid UserParameters: field \"network\" is missing: task definition {} uses network \
             mode awsvpc{}, which needs subnets, and {}. Example: \"network\":{{\"subnets\":[\"subnet-0abc\"],\
             \"security_groups\":[\"sg-0abc\"]}}",
            revision_label(&spec.arn),
            if launch_type == "FARGATE" { " (Fargate)" } else { "" },
            match &service {
                Some(s) => format!("service {} has no awsvpc network configuration to reuse", s.name),
                None => "no \"service\" is given to take them from".to_owned(),
            }
        )));
    }

    // Issue 14.4: nothing is registered or started for a job that is over.
    step.enter("asking CodePipeline whether this job is still live");
    if let Liveness::Gone { why } = deps.jobs.liveness(&job.id).await? {
        return Err(liveness::gone(&job.id, &why));
    }

    let task_definition = match plan {
        Plan::Existing => spec.arn.clone(),
        Plan::Images(images) => {
            step.enter(format!(
                "checking the latest revision of family {}",
                spec.family
            ));
            let latest = deps.ecs.describe_task_definition(&spec.family).await?;
            if latest.tagged_with(&job.id) {
                tracing::info!(task_definition = %latest.arn, "reusing the revision an earlier delivery of this job registered");
                latest.arn
            } else {
                step.enter(format!(
                    "registering a new revision of {} with {}",
                    spec.family,
                    images
                        .iter()
                        .map(|(n, i)| format!("{n}={i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                let tags = vec![
                    (JOB_TAG.to_owned(), job.id.clone()),
                    (REGISTERED_AT_TAG.to_owned(), deps.clock.now_ms().to_string()),
                ];
                deps.ecs
                    .register_task_definition(&spec.arn, &images, &tags)
                    .await?
                    .arn
            }
        }
        Plan::Document(prepared) => register_document(deps, job, &prepared, step).await?,
    };

    step.enter(format!(
        "starting a task of {} in cluster {cluster} ({launch_type})",
        revision_label(&task_definition)
    ));
    let request = RunRequest {
        cluster: cluster.clone(),
        task_definition: task_definition.clone(),
        launch_type,
        network: if awsvpc { network } else { None },
        overrides: params.overrides.clone(),
        started_by: by,
        tags: vec![(JOB_TAG.to_owned(), job.id.clone())],
    };
    let task = match deps.ecs.run_task(&request).await {
        Ok(task) => task,
        Err(e) => {
            // A concurrent delivery of this job may have started the task
            // meanwhile (ListTasks above is eventually consistent, and the
            // client token, the job id, makes ECS refuse a second start
            // whose parameters differ): wait for that task instead of
            // failing a job whose task runs.
            if let Ok(found) = deps.ecs.tasks_started_by(cluster, &request.started_by).await
                && let Some(existing) = found.into_iter().next()
            {
                tracing::info!(task = %existing, "a concurrent delivery of this job started the task: waiting for it");
                let token = TaskToken::adopt(cluster, existing, &job.id, deps.clock.now());
                return poll(deps, params, token, limit, step).await;
            }
            return Err(run_hint(e, &task_definition));
        }
    };
    tracing::info!(task = %task.arn, "task started");
    let mut token = TaskToken::adopt(cluster, task.arn.clone(), &job.id, deps.clock.now());
    token.note(&task.last_status);
    Ok(waiting(&task, token, 0, limit))
}

/// Adds what to grant when `RunTask` was denied.
fn run_hint(e: EcsError, task_definition: &str) -> Failure {
    match e {
        EcsError::Denied {
            operation, detail, ..
        } => Failure::from(EcsError::Denied {
            operation,
            detail,
            hint: format!(
                " on {} (RunTaskDefinitionArns), with ecs:TagResource, and iam:PassRole on the task \
                 definition's task and execution roles (EcsPassRoleArns)",
                revision_label(task_definition)
            ),
        }),
        other => other.into(),
    }
}

/// What the task runs: a revision as it is, one registered with new images,
/// or a document from the artifact.
enum Plan {
    Existing,
    Images(BTreeMap<String, String>),
    Document(taskdef::Prepared),
}

/// Reads, fills and checks the task definition document of the artifact.
async fn read_taskdef<A: ArtifactStore, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    artifact: Option<&str>,
    path: &str,
    placeholder: Option<&str>,
    policy: &ImagePolicy,
    step: &Step,
) -> Result<taskdef::Prepared, Failure> {
    if job.data.input_artifacts.is_empty() {
        return Err(Failure::config(format!(
            "invalid UserParameters: field \"task_definition_file\" names {path} in the input \
             artifact, but this action has no input artifact; add the build output as its input"
        )));
    }
    let mut archive = open_input(deps, job, artifact, step).await?;
    let Some(text) = archive.read_text(path)? else {
        return Err(Failure::job(format!(
            "{path} is not in artifact {} (it contains: {}); set \"task_definition_file\" in \
             UserParameters to its path",
            archive.name(),
            archive.listing()
        )));
    };
    let fill = match placeholder {
        None => None,
        Some(p) => Some(placeholder_image(&mut archive, p)?),
    };
    // Within the function's memory: the text, its parsed value (bounded
    // separately) and the request body are alive together, beside the
    // artifact itself.
    let max_bytes = taskdef::TASKDEF_MAX_BYTES.min(deps.settings.memory.work_bytes() / 64);
    let rules = taskdef::Rules {
        path,
        fill: fill.as_ref(),
        policy,
        pass_roles: deps.settings.pass_roles.as_deref(),
        max_bytes,
    };
    step.enter(format!("checking task definition {path} of artifact {}", archive.name()));
    taskdef::prepare(&text, &rules, &job.id, deps.clock.now_ms())
}

/// The image for `<placeholder>`: imageDetail.json's `ImageURI`, else the
/// one image of imagedefinitions.json (as CodeDeploy fills it).
fn placeholder_image(archive: &mut Archive, placeholder: &str) -> Result<taskdef::Fill, Failure> {
    if let Some(text) = archive.read_text("imageDetail.json")? {
        let detail = parse_image_detail(&text).map_err(|p| {
            Failure::job(format!(
                "imageDetail.json in artifact {} is invalid: {}",
                archive.name(),
                p.join("; ")
            ))
        })?;
        return Ok(taskdef::Fill {
            placeholder: placeholder.to_owned(),
            image: detail.image_uri,
            from: "imageDetail.json".to_owned(),
        });
    }
    if let Some(text) = archive.read_text("imagedefinitions.json")? {
        let defs = parse_image_definitions(&text).map_err(|p| {
            Failure::job(format!(
                "imagedefinitions.json in artifact {} is invalid: {}",
                archive.name(),
                p.join("; ")
            ))
        })?;
        if let [one] = defs.as_slice() {
            return Ok(taskdef::Fill {
                placeholder: placeholder.to_owned(),
                image: one.image_uri.clone(),
                from: "imagedefinitions.json".to_owned(),
            });
        }
        return Err(Failure::job(format!(
            "<{placeholder}> cannot be filled: artifact {} has no imageDetail.json and its \
             imagedefinitions.json lists {} images; add imageDetail.json ({{\"ImageURI\":\"…\"}})",
            archive.name(),
            defs.len()
        )));
    }
    Err(Failure::job(format!(
        "<{placeholder}> cannot be filled: artifact {} holds neither imageDetail.json nor \
         imagedefinitions.json (it contains: {}); write one in the build, or leave \
         \"image_placeholder\" out when taskdef.json names its images",
        archive.name(),
        archive.listing()
    )))
}

/// Registers the artifact's task definition, once per job: a revision an
/// earlier delivery of this job registered (the family's latest, tagged
/// with the job id) is reused.
async fn register_document<A, E: EcsApi, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    prepared: &taskdef::Prepared,
    step: &Step,
) -> Result<String, Failure> {
    step.enter(format!(
        "checking the latest revision of family {}",
        prepared.family
    ));
    match deps.ecs.describe_task_definition(&prepared.family).await {
        Ok(latest) if latest.tagged_with(&job.id) => {
            tracing::info!(task_definition = %latest.arn, "reusing the revision an earlier delivery of this job registered");
            return Ok(latest.arn);
        }
        Ok(_) | Err(EcsError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    step.enter(format!(
        "registering task definition family {} from the artifact ({})",
        prepared.family,
        prepared
            .images
            .iter()
            .map(|(n, i)| format!("{n}={i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let view = deps
        .ecs
        .register_task_definition_document(&prepared.family, &prepared.document)
        .await?;
    tracing::info!(task_definition = %view.arn, "registered the artifact's task definition");
    Ok(view.arn)
}

/// Every overridden container must exist in the task definition.
fn check_overrides(spec: &TaskSpec, overrides: &[ContainerOverride]) -> Result<(), Failure> {
    for o in overrides {
        if spec.container(&o.name).is_none() {
            return Err(Failure::config(format!(
                "invalid UserParameters: field \"overrides.{}\" names a container that task \
                 definition {} does not have (its containers: {}); key \"overrides\" by container name",
                o.name,
                revision_label(&spec.arn),
                spec.names()
            )));
        }
    }
    Ok(())
}

async fn read_images<A: ArtifactStore, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    artifact: Option<&str>,
    file: &str,
    policy: &ImagePolicy,
    step: &Step,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut archive = open_input(deps, job, artifact, step).await?;
    let Some(text) = archive.read_text(file)? else {
        return Err(Failure::job(format!(
            "{file} is not in artifact {} (it contains: {}); set \"file\" in UserParameters to its \
             path, or use \"task_definition\" to run a revision as it is",
            archive.name(),
            archive.listing()
        )));
    };
    let defs = parse_image_definitions(&text).map_err(|problems| {
        Failure::job(format!(
            "{file} in artifact {} is invalid: {}",
            archive.name(),
            problems.join("; ")
        ))
    })?;
    check_policy(&defs, policy)?;
    Ok(defs
        .into_iter()
        .map(|d| (d.name, d.image_uri))
        .collect())
}

/// One poll: `DescribeTasks`, then the answer.
async fn poll<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    params: &RunTaskParams,
    mut token: TaskToken,
    limit: Duration,
    step: &Step,
) -> Result<JobOutcome, Failure>
where
    E: EcsApi,
{
    let id = task_id(&token.task).to_owned();
    step.enter(format!(
        "polling task {id} in cluster {}",
        token.cluster
    ));
    token.polls += 1;
    let elapsed = deps.clock.now().saturating_sub(token.started_at);
    let task = match deps.ecs.describe_task(&token.cluster, &token.task).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(Failure::job(format!(
                "task {id} is no longer known to ECS in cluster {} (ECS forgets stopped tasks \
                 after about an hour); its outcome is unknown: retry the stage to run it again",
                token.cluster
            )));
        }
        Err(EcsError::Unavailable { operation, detail }) => {
            token.errors += 1;
            if token.errors >= MAX_POLL_ERRORS || elapsed >= limit.as_secs() {
                let stopped = stop_unwatched(deps, &token, &id, step).await;
                return Err(Failure::unavailable(format!(
                    "{operation} failed {} times in a row while waiting for task {id} ({detail}); \
                     the task's state is unknown: {stopped}",
                    token.errors
                )));
            }
            return Ok(JobOutcome::Success(JobSuccess {
                summary: Some(format!(
                    "task {id}: could not poll ECS ({detail}); trying again ({}/{MAX_POLL_ERRORS})",
                    token.errors
                )),
                percent_complete: None,
                external_execution_id: Some(id),
                output_variables: BTreeMap::new(),
                continuation_token: Some(token.encode()),
            }));
        }
        Err(e) => {
            let stopped = stop_unwatched(deps, &token, &id, step).await;
            let mut f: Failure = e.into();
            f.message = format!("{}; {stopped}", f.message);
            return Err(f);
        }
    };
    token.errors = 0;
    token.note(&task.last_status);
    if task.last_status == "STOPPED" {
        return judge(deps, params, &task, &token, step).await;
    }
    if elapsed >= limit.as_secs() {
        return Err(time_out(deps, &task, &token, elapsed, limit, step).await);
    }
    Ok(waiting(&task, token, elapsed, limit))
}

/// The job is about to fail while its task's state is unknown: stop the
/// task (a retried stage is a new job and would start another one beside
/// it), and say what happened (review finding: only the time limit
/// stopped it before).
async fn stop_unwatched<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    token: &TaskToken,
    id: &str,
    step: &Step,
) -> String
where
    E: EcsApi,
{
    let reason: String = format!(
        "Tollgate: CodePipeline job {} failed while waiting for this task",
        token.job
    )
    .chars()
    .take(STOP_REASON_MAX)
    .collect();
    step.enter(format!("stopping task {id} (the job fails unwatched)"));
    match deps.ecs.stop_task(&token.cluster, &token.task, &reason).await {
        Ok(()) => format!(
            "it was stopped so that a retry does not run a second one beside it (StopTask: \"{reason}\")"
        ),
        Err(e) => format!(
            "stopping it failed too ({e}): check task {id} in the ECS console (cluster {}) and \
             stop it before you retry the stage",
            token.cluster
        ),
    }
}

/// An in-progress answer.
fn waiting(task: &TaskState, token: TaskToken, elapsed: u64, limit: Duration) -> JobOutcome {
    let percent = match task.last_status.as_str() {
        "PROVISIONING" => 5,
        "PENDING" => 15,
        "ACTIVATING" => 25,
        "RUNNING" => 50,
        "DEACTIVATING" => 80,
        "STOPPING" => 85,
        "DEPROVISIONING" => 90,
        _ => 0,
    };
    let stopping = if task.desired_status == "STOPPED" && task.last_status != "STOPPED" {
        " (stopping)"
    } else {
        ""
    };
    JobOutcome::Success(JobSuccess {
        summary: Some(format!(
            "task {} ({}): {}{stopping}; {} of {} limit",
            task.id(),
            revision_label(&task.task_definition),
            token.seen.join(" → "),
            human_duration(elapsed),
            human_duration(limit.as_secs())
        )),
        percent_complete: Some(percent),
        external_execution_id: Some(task.id().to_owned()),
        output_variables: BTreeMap::new(),
        continuation_token: Some(token.encode()),
    })
}

/// The time limit ran out: stop the task, say what it was doing.
async fn time_out<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    task: &TaskState,
    token: &TaskToken,
    elapsed: u64,
    limit: Duration,
    step: &Step,
) -> Failure
where
    E: EcsApi,
{
    let reason: String = format!(
        "Tollgate: time limit of {} reached for CodePipeline job {}",
        human_duration(limit.as_secs()),
        token.job
    )
    .chars()
    .take(STOP_REASON_MAX)
    .collect();
    step.enter(format!("stopping task {} (time limit reached)", task.id()));
    let stopped = match deps.ecs.stop_task(&token.cluster, &token.task, &reason).await {
        Ok(()) => format!("it was stopped (StopTask: \"{reason}\")"),
        Err(e) => format!(
            "stopping it failed ({e}): stop task {} in cluster {} yourself",
            task.id(),
            token.cluster
        ),
    };
    let containers: Vec<String> = task
        .containers
        .iter()
        .map(|c| format!("{} {}", c.name, c.last_status))
        .collect();
    Failure::job(format!(
        "task {} ({}) did not finish within the {} time limit: after {} it was {} (statuses seen: {}{}); {stopped}. \
         Raise timeout_minutes in UserParameters if the job needs longer, or look at why it does not finish",
        task.id(),
        revision_label(&task.task_definition),
        human_duration(limit.as_secs()),
        human_duration(elapsed),
        task.last_status,
        token.seen.join(" → "),
        if containers.is_empty() {
            String::new()
        } else {
            format!("; containers: {}", containers.join(", "))
        },
    ))
}

/// A stopped task: success when every essential container exited 0.
async fn judge<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    params: &RunTaskParams,
    task: &TaskState,
    token: &TaskToken,
    step: &Step,
) -> Result<JobOutcome, Failure>
where
    E: EcsApi,
{
    step.enter(format!(
        "reading task definition {} of stopped task {}",
        revision_label(&task.task_definition),
        task.id()
    ));
    // Which containers are essential, and where they log. Without it,
    // every container counts as essential (never green on a doubt).
    let spec = match deps.ecs.describe_task_spec(&task.task_definition).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "task definition unreadable: every container counts as essential");
            None
        }
    };
    let essential = |name: &str| {
        spec.as_ref()
            .and_then(|s| s.container(name))
            .is_none_or(|c| c.essential)
    };
    let duration = match (task.started_at, task.stopped_at) {
        (Some(a), Some(b)) => u64::try_from(b - a).unwrap_or(0),
        _ => deps.clock.now().saturating_sub(token.started_at),
    };
    let failed = task
        .containers
        .iter()
        .find(|c| essential(&c.name) && c.exit_code != Some(0));
    let trail = token.seen.join(" → ");
    let label = revision_label(&task.task_definition);
    if task.containers.is_empty() || failed.is_some() {
        let mut message = match failed {
            Some(c) => format!(
                "task {} ({label}) failed: essential container {} {}{}",
                task.id(),
                c.name,
                match c.exit_code {
                    Some(code) => format!("exited with code {code}"),
                    None => "has no exit code (it never ran or was killed)".to_owned(),
                },
                c.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            None => format!("task {} ({label}) stopped without running a container", task.id()),
        };
        message.push_str(&format!(
            "; stopped reason: {}{}; statuses seen: {trail}.",
            task.stopped_reason.as_deref().unwrap_or("none given"),
            task.stop_code
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ));
        if let Some(c) = failed {
            message.push(' ');
            message.push_str(&log_tail(deps, params, spec.as_ref(), task, &c.name, step).await);
        }
        return Err(Failure::job(message));
    }
    // The exit code reported: the overridden container's, else the first essential one's.
    let main = params
        .overrides
        .first()
        .and_then(|o| task.containers.iter().find(|c| c.name == o.name))
        .or_else(|| task.containers.iter().find(|c| essential(&c.name)))
        .or_else(|| task.containers.first());
    let exit_code = main.and_then(|c| c.exit_code).unwrap_or(0);
    let mut variables = BTreeMap::new();
    variables.insert("task_arn".to_owned(), task.arn.clone());
    variables.insert("exit_code".to_owned(), exit_code.to_string());
    variables.insert("duration_seconds".to_owned(), duration.to_string());
    let codes: Vec<String> = task
        .containers
        .iter()
        .filter(|c| essential(&c.name))
        .map(|c| format!("{} exited {}", c.name, c.exit_code.unwrap_or(0)))
        .collect();
    Ok(JobOutcome::Success(JobSuccess {
        summary: Some(format!(
            "task {} ({label}) succeeded after {}: {}; statuses seen: {trail}",
            task.id(),
            human_duration(duration),
            codes.join(", ")
        )),
        percent_complete: Some(100),
        external_execution_id: Some(task.id().to_owned()),
        output_variables: variables,
        continuation_token: None,
    }))
}

/// `Last N log lines of <container> (…): | … | …`, or why there are none.
async fn log_tail<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    params: &RunTaskParams,
    spec: Option<&TaskSpec>,
    task: &TaskState,
    container: &str,
    step: &Step,
) -> String {
    let unavailable = |why: String| format!("Log lines of {container} are unavailable: {why}.");
    let Some(c) = spec.and_then(|s| s.container(container)) else {
        return unavailable("its task definition could not be read".to_owned());
    };
    let Some(logs) = &c.awslogs else {
        return unavailable(format!(
            "its task definition has no awslogs log configuration (logDriver {}); use the awslogs \
             driver with awslogs-group and awslogs-stream-prefix to see them here",
            c.log_driver.as_deref().unwrap_or("not set")
        ));
    };
    let Some(stream) = logs.stream(container, task.id()) else {
        return unavailable(format!(
            "its awslogs configuration (group {}) has no awslogs-stream-prefix, so the stream name \
             is not known; set awslogs-stream-prefix",
            logs.group
        ));
    };
    step.enter(format!(
        "reading the last log lines of {container} from {}",
        logs.group
    ));
    match deps
        .logs
        .last_lines(&logs.group, &stream, logs.region.as_deref(), LOG_LINES)
        .await
    {
        Ok(lines) if lines.is_empty() => unavailable(format!(
            "stream {stream} in group {} is empty",
            logs.group
        )),
        Ok(lines) => {
            let secrets: Vec<&str> = params
                .overrides
                .iter()
                .flat_map(|o| o.environment.values())
                .map(String::as_str)
                .collect();
            let shown = bound_lines(&lines, &secrets);
            format!(
                "Last {} log line{} of {container} (group {}, stream {stream}):\n{}",
                shown.len(),
                if shown.len() == 1 { "" } else { "s" },
                logs.group,
                shown.join("\n")
            )
        }
        Err(e) => unavailable(e.to_string()),
    }
}

/// Control characters become spaces (in log lines and in the values
/// redacted from them alike).
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The values to redact as they appear in a cleaned line: cleaned the same
/// way, at least [`REDACT_MIN_CHARS`] long, without duplicates, longest
/// first (a value that holds a shorter one is replaced whole, not left
/// half shown around the shorter one's `***`).
fn redaction_list(redact: &[&str]) -> Vec<String> {
    let mut values: Vec<String> = redact
        .iter()
        .map(|v| clean(v))
        .filter(|v| v.trim().chars().count() >= REDACT_MIN_CHARS)
        .collect();
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    values
}

/// The newest lines that fit [`LOG_TAIL_CHARS`], each cut to
/// [`LOG_LINE_CHARS`], control characters removed, `redact` values replaced
/// (longest first; values with control characters match the cleaned line).
pub fn bound_lines(lines: &[String], redact: &[&str]) -> Vec<String> {
    let redact = redaction_list(redact);
    let mut out = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev().take(LOG_LINES) {
        let mut text = clean(line.trim_end());
        for value in &redact {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), "***");
            }
        }
        let mut cut: String = text.chars().take(LOG_LINE_CHARS).collect();
        if text.chars().count() > LOG_LINE_CHARS {
            cut.push('…');
        }
        let line = format!("| {cut}");
        let n = line.chars().count() + 1;
        if used + n > LOG_TAIL_CHARS {
            break;
        }
        used += n;
        out.push(line);
    }
    out.reverse();
    out
}

pub mod taskdef;

#[cfg(test)]
mod tests;
