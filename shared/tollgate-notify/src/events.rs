//! Lenient types for the EventBridge events the notifier consumes.
//!
//! Covers every `detail-type` in the notes' table (§4): CodePipeline pipeline /
//! stage / action execution, CodeDeploy deployment / instance, CodeBuild build
//! state, ECS deployment state, ECS service action and ECS hook state.
//!
//! Parsing never fails. Real events disagree with the documentation in small
//! ways (`version` is `1`, `3.0` or `"1"`; newer events add fields), so:
//! - version-like fields accept numbers or strings ([`lenient_string`]);
//! - counters accept `1`, `1.0` or `"1"` ([`lenient_u32`]);
//! - every struct keeps fields it does not know in `extra`;
//! - a known `detail-type` whose `detail` still does not fit becomes
//!   [`Detail::Malformed`] (with the raw detail), and an unknown one becomes
//!   [`Detail::Unknown`]; the rules decide whether those produce a generic
//!   message or are dropped.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// `detail-type` values the notifier understands.
pub mod detail_types {
    /// CodePipeline pipeline execution.
    pub const PIPELINE_EXECUTION: &str = "CodePipeline Pipeline Execution State Change";
    /// CodePipeline stage execution.
    pub const STAGE_EXECUTION: &str = "CodePipeline Stage Execution State Change";
    /// CodePipeline action execution.
    pub const ACTION_EXECUTION: &str = "CodePipeline Action Execution State Change";
    /// CodeDeploy deployment.
    pub const DEPLOYMENT: &str = "CodeDeploy Deployment State-change Notification";
    /// CodeDeploy instance.
    pub const INSTANCE: &str = "CodeDeploy Instance State-change Notification";
    /// CodeBuild build.
    pub const BUILD: &str = "CodeBuild Build State Change";
    /// ECS service deployment.
    pub const ECS_DEPLOYMENT: &str = "ECS Deployment State Change";
    /// ECS service action.
    pub const ECS_SERVICE_ACTION: &str = "ECS Service Action";
    /// ECS deployment lifecycle hook (a `PAUSE` hook awaiting a decision).
    pub const ECS_HOOK: &str = "ECS Hook State Change";

    /// All of them, for documentation and event patterns.
    pub const ALL: [&str; 9] = [
        PIPELINE_EXECUTION,
        STAGE_EXECUTION,
        ACTION_EXECUTION,
        DEPLOYMENT,
        INSTANCE,
        BUILD,
        ECS_DEPLOYMENT,
        ECS_SERVICE_ACTION,
        ECS_HOOK,
    ];
}

/// One EventBridge event: the envelope plus its typed detail.
#[derive(Debug, Clone)]
pub struct Event {
    /// Envelope fields.
    pub envelope: Envelope,
    /// The typed `detail`.
    pub detail: Detail,
}

/// The EventBridge envelope.
///
/// Ours, not `aws_lambda_events::event::eventbridge::EventBridgeEvent`
/// (1.2, read for issue 15): that type requires `detail-type` and `source`,
/// takes `version` and `id` only as strings, `time` only as a valid
/// `DateTime<Utc>` and `resources` only as strings, and keeps unknown fields
/// only with its `catch-all-fields` feature; one odd field would fail the
/// whole envelope (losing the event id the duplicate memory and the ledger
/// key on), and the notifier must never fail on an event. Its CodePipeline
/// (`codepipeline_cloudwatch`) and CodeDeploy types are no better for the
/// details: `version: i64` where real events send `14.0` and `"1"`, a required
/// `time`. So the crate is not a dependency here.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Envelope {
    /// Envelope version (`"0"`).
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Event id: unique per event, repeated on at-least-once redeliveries.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// What happened, e.g. `CodePipeline Pipeline Execution State Change`.
    #[serde(rename = "detail-type", default, deserialize_with = "lenient_string")]
    pub detail_type: Option<String>,
    /// Emitting service, e.g. `aws.codepipeline`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub source: Option<String>,
    /// Account the resource lives in.
    #[serde(default, deserialize_with = "lenient_string")]
    pub account: Option<String>,
    /// RFC 3339 time of the event.
    #[serde(default, deserialize_with = "lenient_string")]
    pub time: Option<String>,
    /// Region of the resource.
    #[serde(default, deserialize_with = "lenient_string")]
    pub region: Option<String>,
    /// ARNs of the resources concerned.
    #[serde(default, deserialize_with = "lenient_strings")]
    pub resources: Vec<String>,
    /// Unknown envelope fields (e.g. `replay-name`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Envelope {
    /// The event id, or `""`.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
    /// The detail-type, or `""`.
    pub fn detail_type(&self) -> &str {
        self.detail_type.as_deref().unwrap_or_default()
    }
    /// The source, or `""`.
    pub fn source(&self) -> &str {
        self.source.as_deref().unwrap_or_default()
    }
    /// The account, or `""`.
    pub fn account(&self) -> &str {
        self.account.as_deref().unwrap_or_default()
    }
    /// The region, or `""`.
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or_default()
    }
}

/// The typed `detail` of an event.
#[derive(Debug, Clone)]
pub enum Detail {
    /// CodePipeline Pipeline Execution State Change.
    PipelineExecution(PipelineExecution),
    /// CodePipeline Stage Execution State Change.
    StageExecution(StageExecution),
    /// CodePipeline Action Execution State Change.
    ActionExecution(ActionExecution),
    /// CodeDeploy Deployment State-change Notification.
    Deployment(CodeDeployState),
    /// CodeDeploy Instance State-change Notification.
    Instance(CodeDeployState),
    /// CodeBuild Build State Change.
    Build(BuildState),
    /// ECS Deployment State Change.
    EcsDeployment(EcsDeployment),
    /// ECS Service Action.
    EcsServiceAction(EcsServiceAction),
    /// ECS Hook State Change.
    EcsHook(EcsHook),
    /// A detail-type the notifier does not know.
    Unknown {
        /// The raw detail.
        raw: Value,
    },
    /// A known detail-type whose detail does not have the documented shape.
    Malformed {
        /// What did not fit (no values quoted).
        problem: String,
        /// The raw detail.
        raw: Value,
    },
}

/// `execution-trigger` of CodePipeline events.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecutionTrigger {
    /// e.g. `StartPipelineExecution`, `Webhook`, `CloudWatchEvent`.
    #[serde(rename = "trigger-type", default, deserialize_with = "lenient_string")]
    pub trigger_type: Option<String>,
    /// e.g. the caller's ARN or the connection ARN.
    #[serde(
        rename = "trigger-detail",
        default,
        deserialize_with = "lenient_string"
    )]
    pub trigger_detail: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodePipeline Pipeline Execution State Change.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineExecution {
    /// Pipeline name.
    #[serde(deserialize_with = "required_string")]
    pub pipeline: String,
    /// Execution id.
    #[serde(rename = "execution-id", default, deserialize_with = "lenient_string")]
    pub execution_id: Option<String>,
    /// What started it.
    #[serde(rename = "execution-trigger", default)]
    pub execution_trigger: Option<ExecutionTrigger>,
    /// STARTED, STOPPING, STOPPED, SUCCEEDED, FAILED, SUPERSEDED, RESUMED, CANCELED.
    #[serde(deserialize_with = "required_string")]
    pub state: String,
    /// Pipeline version (number or string).
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Attempt of this execution (> 1 after a stage retry; newer events only).
    #[serde(
        rename = "pipeline-execution-attempt",
        default,
        deserialize_with = "lenient_u32"
    )]
    pub attempt: Option<u32>,
    /// Start time, when the event carries it (newer events).
    #[serde(rename = "start-time", default, deserialize_with = "lenient_string")]
    pub start_time: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodePipeline Stage Execution State Change.
#[derive(Debug, Clone, Deserialize)]
pub struct StageExecution {
    /// Pipeline name.
    #[serde(deserialize_with = "required_string")]
    pub pipeline: String,
    /// Execution id.
    #[serde(rename = "execution-id", default, deserialize_with = "lenient_string")]
    pub execution_id: Option<String>,
    /// Stage name.
    #[serde(deserialize_with = "required_string")]
    pub stage: String,
    /// STARTED, SUCCEEDED, FAILED, RESUMED, CANCELED, STOPPING, STOPPED.
    #[serde(deserialize_with = "required_string")]
    pub state: String,
    /// What started the execution.
    #[serde(rename = "execution-trigger", default)]
    pub execution_trigger: Option<ExecutionTrigger>,
    /// Pipeline version (number or string).
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Attempt of the pipeline execution.
    #[serde(
        rename = "pipeline-execution-attempt",
        default,
        deserialize_with = "lenient_u32"
    )]
    pub attempt: Option<u32>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `type` of an action.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionType {
    /// AWS, ThirdParty or Custom.
    #[serde(default, deserialize_with = "lenient_string")]
    pub owner: Option<String>,
    /// e.g. CodeBuild, CodeDeploy, Lambda, CodeStarSourceConnection.
    #[serde(default, deserialize_with = "lenient_string")]
    pub provider: Option<String>,
    /// Source, Build, Test, Deploy, Approval, Invoke.
    #[serde(default, deserialize_with = "lenient_string")]
    pub category: Option<String>,
    /// Action type version (a string in real events; a number accepted).
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `execution-result` of an action event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExecutionResult {
    /// Link to the action's own console page (the build, the deployment).
    #[serde(
        rename = "external-execution-url",
        default,
        deserialize_with = "lenient_string"
    )]
    pub external_execution_url: Option<String>,
    /// The action's summary, e.g. `Build terminated with state: FAILED`.
    #[serde(
        rename = "external-execution-summary",
        default,
        deserialize_with = "lenient_string"
    )]
    pub external_execution_summary: Option<String>,
    /// External id (build id, deployment id).
    #[serde(
        rename = "external-execution-id",
        default,
        deserialize_with = "lenient_string"
    )]
    pub external_execution_id: Option<String>,
    /// Failure type, e.g. `JobFailed`.
    #[serde(rename = "error-code", default, deserialize_with = "lenient_string")]
    pub error_code: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodePipeline Action Execution State Change.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionExecution {
    /// Pipeline name.
    #[serde(deserialize_with = "required_string")]
    pub pipeline: String,
    /// Execution id.
    #[serde(rename = "execution-id", default, deserialize_with = "lenient_string")]
    pub execution_id: Option<String>,
    /// Stage name.
    #[serde(deserialize_with = "required_string")]
    pub stage: String,
    /// Action name.
    #[serde(deserialize_with = "required_string")]
    pub action: String,
    /// STARTED, SUCCEEDED, FAILED, CANCELED, ABANDONED.
    #[serde(deserialize_with = "required_string")]
    pub state: String,
    /// Region the action ran in.
    #[serde(default, deserialize_with = "lenient_string")]
    pub region: Option<String>,
    /// Action type.
    #[serde(rename = "type", default)]
    pub action_type: Option<ActionType>,
    /// Result (on SUCCEEDED / FAILED).
    #[serde(rename = "execution-result", default)]
    pub execution_result: Option<ExecutionResult>,
    /// Input artifacts (shape varies; kept raw).
    #[serde(rename = "input-artifacts", default)]
    pub input_artifacts: Vec<Value>,
    /// Output artifacts (shape varies; kept raw).
    #[serde(rename = "output-artifacts", default)]
    pub output_artifacts: Vec<Value>,
    /// Pipeline version (number or string).
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Attempt of the pipeline execution.
    #[serde(
        rename = "pipeline-execution-attempt",
        default,
        deserialize_with = "lenient_u32"
    )]
    pub attempt: Option<u32>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodeDeploy Deployment (and Instance) State-change Notification.
#[derive(Debug, Clone, Deserialize)]
pub struct CodeDeployState {
    /// Application name.
    #[serde(default, deserialize_with = "lenient_string")]
    pub application: Option<String>,
    /// Deployment group name.
    #[serde(
        rename = "deploymentGroup",
        default,
        deserialize_with = "lenient_string"
    )]
    pub deployment_group: Option<String>,
    /// Deployment id (`d-…`).
    #[serde(rename = "deploymentId", default, deserialize_with = "lenient_string")]
    pub deployment_id: Option<String>,
    /// Instance group id.
    #[serde(
        rename = "instanceGroupId",
        default,
        deserialize_with = "lenient_string"
    )]
    pub instance_group_id: Option<String>,
    /// Instance id (instance events only).
    #[serde(rename = "instanceId", default, deserialize_with = "lenient_string")]
    pub instance_id: Option<String>,
    /// Region.
    #[serde(default, deserialize_with = "lenient_string")]
    pub region: Option<String>,
    /// START, SUCCESS, FAILURE, STOP, READY.
    #[serde(deserialize_with = "required_string")]
    pub state: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of CodeBuild's `phases`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BuildPhase {
    /// SUBMITTED, QUEUED, PROVISIONING, DOWNLOAD_SOURCE, INSTALL, PRE_BUILD,
    /// BUILD, POST_BUILD, UPLOAD_ARTIFACTS, FINALIZING, COMPLETED.
    #[serde(rename = "phase-type", default, deserialize_with = "lenient_string")]
    pub phase_type: Option<String>,
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS, STOPPED.
    #[serde(rename = "phase-status", default, deserialize_with = "lenient_string")]
    pub phase_status: Option<String>,
    /// Seconds the phase took.
    #[serde(
        rename = "duration-in-seconds",
        default,
        deserialize_with = "lenient_u32"
    )]
    pub duration_in_seconds: Option<u32>,
    /// Messages explaining the phase's status (the failing command).
    #[serde(
        rename = "phase-context",
        default,
        deserialize_with = "lenient_strings"
    )]
    pub phase_context: Vec<String>,
    /// Start, in CodeBuild's `Sep 1, 2017 4:12:29 PM` form.
    #[serde(rename = "start-time", default, deserialize_with = "lenient_string")]
    pub start_time: Option<String>,
    /// End, same form.
    #[serde(rename = "end-time", default, deserialize_with = "lenient_string")]
    pub end_time: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodeBuild `additional-information.logs`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BuildLogs {
    /// CloudWatch Logs group.
    #[serde(rename = "group-name", default, deserialize_with = "lenient_string")]
    pub group_name: Option<String>,
    /// CloudWatch Logs stream.
    #[serde(rename = "stream-name", default, deserialize_with = "lenient_string")]
    pub stream_name: Option<String>,
    /// Console link to the log stream.
    #[serde(rename = "deep-link", default, deserialize_with = "lenient_string")]
    pub deep_link: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodeBuild `additional-information.source`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BuildSource {
    /// Repository URL or S3 location.
    #[serde(default, deserialize_with = "lenient_string")]
    pub location: Option<String>,
    /// GITHUB, CODECOMMIT, S3, CODEPIPELINE, …
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub source_type: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodeBuild `additional-information`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BuildInformation {
    /// Who or what started the build (`codepipeline/<pipeline>` for pipeline builds).
    #[serde(default, deserialize_with = "lenient_string")]
    pub initiator: Option<String>,
    /// Commit id, branch or S3 version.
    #[serde(
        rename = "source-version",
        default,
        deserialize_with = "lenient_string"
    )]
    pub source_version: Option<String>,
    /// Start, in CodeBuild's `Sep 1, 2017 4:12:29 PM` form.
    #[serde(
        rename = "build-start-time",
        default,
        deserialize_with = "lenient_string"
    )]
    pub build_start_time: Option<String>,
    /// Build number within the project.
    #[serde(rename = "build-number", default, deserialize_with = "lenient_u32")]
    pub build_number: Option<u32>,
    /// Logs.
    #[serde(default)]
    pub logs: Option<BuildLogs>,
    /// Source.
    #[serde(default)]
    pub source: Option<BuildSource>,
    /// Phases so far.
    #[serde(default)]
    pub phases: Vec<BuildPhase>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CodeBuild Build State Change.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildState {
    /// IN_PROGRESS, SUCCEEDED, FAILED, STOPPED (FAULT, TIMED_OUT also seen).
    #[serde(rename = "build-status", deserialize_with = "required_string")]
    pub build_status: String,
    /// Project name.
    #[serde(rename = "project-name", deserialize_with = "required_string")]
    pub project_name: String,
    /// Build ARN.
    #[serde(rename = "build-id", default, deserialize_with = "lenient_string")]
    pub build_id: Option<String>,
    /// Phase at the time of the event.
    #[serde(rename = "current-phase", default, deserialize_with = "lenient_string")]
    pub current_phase: Option<String>,
    /// Context of the current phase (a JSON-ish string).
    #[serde(
        rename = "current-phase-context",
        default,
        deserialize_with = "lenient_string"
    )]
    pub current_phase_context: Option<String>,
    /// Detail version (number or string).
    #[serde(default, deserialize_with = "lenient_string")]
    pub version: Option<String>,
    /// Everything else CodeBuild knows.
    #[serde(rename = "additional-information", default)]
    pub additional_information: BuildInformation,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ECS Deployment State Change.
#[derive(Debug, Clone, Deserialize)]
pub struct EcsDeployment {
    /// INFO, WARN or ERROR.
    #[serde(rename = "eventType", default, deserialize_with = "lenient_string")]
    pub event_type: Option<String>,
    /// SERVICE_DEPLOYMENT_IN_PROGRESS / _COMPLETED / _FAILED.
    #[serde(rename = "eventName", deserialize_with = "required_string")]
    pub event_name: String,
    /// `ecs-svc/…`.
    #[serde(rename = "deploymentId", default, deserialize_with = "lenient_string")]
    pub deployment_id: Option<String>,
    /// When the deployment changed state.
    #[serde(rename = "updatedAt", default, deserialize_with = "lenient_string")]
    pub updated_at: Option<String>,
    /// Why (circuit breaker, alarms, rollback).
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ECS Service Action.
#[derive(Debug, Clone, Deserialize)]
pub struct EcsServiceAction {
    /// INFO, WARN or ERROR.
    #[serde(rename = "eventType", default, deserialize_with = "lenient_string")]
    pub event_type: Option<String>,
    /// SERVICE_STEADY_STATE, SERVICE_TASK_START_IMPAIRED, SERVICE_TASK_PLACEMENT_FAILURE, …
    #[serde(rename = "eventName", deserialize_with = "required_string")]
    pub event_name: String,
    /// Cluster ARN.
    #[serde(rename = "clusterArn", default, deserialize_with = "lenient_string")]
    pub cluster_arn: Option<String>,
    /// When it happened.
    #[serde(rename = "createdAt", default, deserialize_with = "lenient_string")]
    pub created_at: Option<String>,
    /// Why, for some events (e.g. `RESOURCE:MEMORY` on placement failures).
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: Option<String>,
    /// Task set or capacity provider details and the like.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ECS Hook State Change: a deployment lifecycle hook changed status
/// (`HOOK_AWAITING_ACTION` when a `PAUSE` hook waits for
/// `ContinueServiceDeployment`). `resources[0]` is the service deployment.
#[derive(Debug, Clone, Deserialize)]
pub struct EcsHook {
    /// INFO, WARN or ERROR.
    #[serde(rename = "eventType", default, deserialize_with = "lenient_string")]
    pub event_type: Option<String>,
    /// HOOK_IN_PROGRESS, HOOK_AWAITING_ACTION, HOOK_SUCCEEDED, HOOK_FAILED,
    /// HOOK_TIMED_OUT.
    #[serde(rename = "eventName", deserialize_with = "required_string")]
    pub event_name: String,
    /// The hook's id (`ecs-pause-…`), for `ContinueServiceDeployment`.
    #[serde(rename = "hookId", default, deserialize_with = "lenient_string")]
    pub hook_id: Option<String>,
    /// PAUSE or AWS_LAMBDA.
    #[serde(rename = "hookType", default, deserialize_with = "lenient_string")]
    pub hook_type: Option<String>,
    /// When the hook times out.
    #[serde(rename = "expiresAt", default, deserialize_with = "lenient_string")]
    pub expires_at: Option<String>,
    /// The lifecycle stage (`POST_TEST_TRAFFIC_SHIFT`, …).
    #[serde(
        rename = "lifecycleStage",
        default,
        deserialize_with = "lenient_string"
    )]
    pub lifecycle_stage: Option<String>,
    /// Cluster ARN.
    #[serde(rename = "clusterArn", default, deserialize_with = "lenient_string")]
    pub cluster_arn: Option<String>,
    /// Service ARN.
    #[serde(rename = "serviceArn", default, deserialize_with = "lenient_string")]
    pub service_arn: Option<String>,
    /// Service deployment ARN.
    #[serde(
        rename = "serviceDeploymentArn",
        default,
        deserialize_with = "lenient_string"
    )]
    pub service_deployment_arn: Option<String>,
    /// When the hook changed status.
    #[serde(rename = "updatedAt", default, deserialize_with = "lenient_string")]
    pub updated_at: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Parses an event from raw JSON text. Never fails: text that is not JSON is
/// treated like a payload without a detail-type.
pub fn parse_str(text: &str) -> Event {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => parse(v),
        Err(e) => Event {
            envelope: Envelope::default(),
            detail: Detail::Malformed {
                problem: format!(
                    "the payload is not JSON: {}",
                    tollgate_report::describe_json_error(&e)
                ),
                raw: Value::Null,
            },
        },
    }
}

/// Parses an event. Never fails: see the module docs.
pub fn parse(mut raw: Value) -> Event {
    let detail_raw = match raw.as_object_mut() {
        Some(obj) => obj.remove("detail").unwrap_or(Value::Null),
        None => Value::Null,
    };
    let envelope = match Envelope::deserialize(&raw) {
        Ok(env) => env,
        Err(e) => {
            return Event {
                envelope: Envelope::default(),
                detail: Detail::Malformed {
                    problem: format!(
                        "the payload is not an EventBridge event: {}",
                        tollgate_report::describe_json_error(&e)
                    ),
                    raw: detail_raw,
                },
            };
        }
    };
    let detail = typed_detail(envelope.detail_type(), detail_raw);
    Event { envelope, detail }
}

fn typed_detail(detail_type: &str, raw: Value) -> Detail {
    fn typed<T: for<'de> Deserialize<'de>>(raw: Value, wrap: impl FnOnce(T) -> Detail) -> Detail {
        match T::deserialize(&raw) {
            Ok(t) => wrap(t),
            Err(e) => Detail::Malformed {
                problem: tollgate_report::describe_json_error(&e),
                raw,
            },
        }
    }
    use detail_types as d;
    match detail_type {
        d::PIPELINE_EXECUTION => typed(raw, Detail::PipelineExecution),
        d::STAGE_EXECUTION => typed(raw, Detail::StageExecution),
        d::ACTION_EXECUTION => typed(raw, Detail::ActionExecution),
        d::DEPLOYMENT => typed(raw, Detail::Deployment),
        d::INSTANCE => typed(raw, Detail::Instance),
        d::BUILD => typed(raw, Detail::Build),
        d::ECS_DEPLOYMENT => typed(raw, Detail::EcsDeployment),
        d::ECS_SERVICE_ACTION => typed(raw, Detail::EcsServiceAction),
        d::ECS_HOOK => typed(raw, Detail::EcsHook),
        _ => Detail::Unknown { raw },
    }
}

/// Renders a JSON scalar as text: strings as-is, numbers without a trailing
/// `.0` (`3.0` → `"3"`), booleans as `true`/`false`. Objects, arrays and
/// null give `None`.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{}", f as i64)
            }
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// Deserializes a string, number or boolean as text; null, objects and arrays
/// as `None` (a field of the wrong kind is ignored, not fatal).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(d.deserialize_any(ScalarText)?.filter(|s| !s.is_empty()))
}

/// Visitor behind [`lenient_string`]: reads scalars straight from the input
/// (no intermediate `Value`), and skips anything nested.
struct ScalarText;

impl<'de> serde::de::Visitor<'de> for ScalarText {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(scalar_text(&Value::from(v)))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

/// Like [`lenient_string`], but the field must be present with a value.
fn required_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_string(d)?
        .ok_or_else(|| serde::de::Error::custom("expected a non-empty string or number"))
}

/// Deserializes a counter given as `1`, `1.0` or `"1"`; anything else is `None`.
pub fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match &v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<f64>().ok().and_then(|f| {
            (f.fract() == 0.0 && f >= 0.0 && f <= f64::from(u32::MAX)).then_some(f as u32)
        }),
        _ => None,
    })
}

/// Deserializes a list of scalars as text; a single scalar becomes a list of
/// one; anything else is an empty list.
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match &v {
        Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0",
            "id": "e-1",
            "detail-type": detail_type,
            "source": "aws.test",
            "account": "111122223333",
            "time": "2024-05-01T10:00:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:codepipeline:eu-west-1:111122223333:p"],
            "detail": detail,
        })
    }

    #[test]
    fn versions_may_be_numbers_floats_or_strings() {
        for (version, attempt, want_v, want_a) in [
            (json!(1), json!(1), "1", 1),
            (json!(3.0), json!(2.0), "3", 2),
            (json!("7"), json!("3"), "7", 3),
        ] {
            let ev = parse(envelope(
                detail_types::PIPELINE_EXECUTION,
                json!({"pipeline": "p", "execution-id": "x", "state": "FAILED",
                       "version": version, "pipeline-execution-attempt": attempt}),
            ));
            let Detail::PipelineExecution(p) = ev.detail else {
                panic!("not parsed: {:?}", ev.detail);
            };
            assert_eq!(p.version.as_deref(), Some(want_v));
            assert_eq!(p.attempt, Some(want_a));
        }
    }

    #[test]
    fn action_type_version_string_or_number() {
        let ev = parse(envelope(
            detail_types::ACTION_EXECUTION,
            json!({"pipeline": "p", "stage": "Build", "action": "Unit", "state": "FAILED",
                   "type": {"owner": "AWS", "provider": "CodeBuild", "category": "Build", "version": 1},
                   "version": 4.0}),
        ));
        let Detail::ActionExecution(a) = ev.detail else {
            panic!("not parsed");
        };
        assert_eq!(a.action_type.and_then(|t| t.version).as_deref(), Some("1"));
    }

    #[test]
    fn unknown_fields_are_kept() {
        let ev = parse(envelope(
            detail_types::STAGE_EXECUTION,
            json!({"pipeline": "p", "stage": "Deploy", "state": "STARTED", "brand-new": {"x": 1}}),
        ));
        let Detail::StageExecution(s) = ev.detail else {
            panic!("not parsed");
        };
        assert_eq!(s.extra.get("brand-new"), Some(&json!({"x": 1})));
    }

    #[test]
    fn unknown_detail_type_is_kept_raw() {
        let ev = parse(envelope("Something New", json!({"a": 1})));
        assert!(matches!(ev.detail, Detail::Unknown { ref raw } if raw["a"] == 1));
        assert_eq!(ev.envelope.detail_type(), "Something New");
    }

    #[test]
    fn a_known_type_with_a_bad_detail_is_malformed_not_a_crash() {
        let ev = parse(envelope(
            detail_types::BUILD,
            json!({"build-status": {"no": 1}}),
        ));
        let Detail::Malformed { problem, .. } = ev.detail else {
            panic!("should be malformed");
        };
        assert!(problem.contains("non-empty string"), "{problem}");
    }

    #[test]
    fn an_odd_envelope_keeps_what_it_has() {
        // What `aws_lambda_events`' EventBridgeEvent would refuse outright:
        // no source, a numeric version, a time that is no RFC 3339 time,
        // a number among the resources.
        let ev = parse(json!({
            "version": 0,
            "id": "e-odd",
            "detail-type": detail_types::STAGE_EXECUTION,
            "time": "yesterday",
            "resources": ["arn:aws:codepipeline:eu-west-1:111122223333:p", 7],
            "replay-name": "r",
            "detail": {"pipeline": "p", "stage": "Deploy", "state": "FAILED", "version": 14.0},
        }));
        assert_eq!(ev.envelope.id(), "e-odd");
        assert_eq!(ev.envelope.version.as_deref(), Some("0"));
        assert_eq!(ev.envelope.source(), "");
        assert_eq!(ev.envelope.time.as_deref(), Some("yesterday"));
        assert_eq!(ev.envelope.extra.get("replay-name"), Some(&json!("r")));
        assert!(
            matches!(ev.detail, Detail::StageExecution(ref s) if s.state == "FAILED"),
            "{:?}",
            ev.detail
        );
    }

    #[test]
    fn garbage_never_crashes() {
        for raw in [
            json!(null),
            json!([1, 2]),
            json!("x"),
            json!({"detail-type": 5}),
        ] {
            let _ = parse(raw);
        }
        let ev = parse_str("not json {");
        assert!(matches!(ev.detail, Detail::Malformed { .. }));
        let ev = parse(json!({"id": {"nested": true}, "detail-type": detail_types::BUILD}));
        assert!(ev.envelope.id.is_none());
    }
}
