//! What `run-task` ([`crate::actions::run_task`]) knows about a one-off ECS
//! task: the task definition as it matters for running it ([`TaskSpec`]),
//! the request ([`RunRequest`]), the task as `DescribeTasks` shows it
//! ([`TaskState`]), and the CloudWatch Logs port ([`LogReader`]) for the
//! last lines of a failed container.
//!
//! Nothing here holds a secret's value: a container's `secrets` are known
//! by their environment variable names only ([`ContainerSpec::secret_names`]),
//! and Tollgate never resolves them.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A task definition revision, as far as running one task of it goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskSpec {
    /// ARN with revision.
    pub arn: String,
    /// Family.
    pub family: String,
    /// `awsvpc`, `bridge`, `host`, `none`; `None` when not set (EC2 default: bridge).
    pub network_mode: Option<String>,
    /// `requiresCompatibilities`, e.g. `["FARGATE"]`.
    pub compatibilities: Vec<String>,
    /// The containers, in definition order.
    pub containers: Vec<ContainerSpec>,
}

impl TaskSpec {
    /// The container called `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The container names, comma-separated (for messages).
    pub fn names(&self) -> String {
        self.containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One container definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    /// Name.
    pub name: String,
    /// `essential` (ECS's default is true).
    pub essential: bool,
    /// `logConfiguration.logDriver`, if any.
    pub log_driver: Option<String>,
    /// The awslogs options, when the driver is `awslogs`.
    pub awslogs: Option<AwsLogs>,
    /// Names of the environment variables set from `secrets` (Secrets
    /// Manager / SSM references): names only, never values.
    pub secret_names: Vec<String>,
}

/// Where the awslogs driver writes a container's output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsLogs {
    /// `awslogs-group`.
    pub group: String,
    /// `awslogs-region`, if set.
    pub region: Option<String>,
    /// `awslogs-stream-prefix`, if set (without one, the stream name is not predictable).
    pub stream_prefix: Option<String>,
}

impl AwsLogs {
    /// The stream of `container` in task `task_id`:
    /// `prefix/container/task-id`, as the awslogs driver names it.
    pub fn stream(&self, container: &str, task_id: &str) -> Option<String> {
        self.stream_prefix
            .as_deref()
            .map(|p| format!("{p}/{container}/{task_id}"))
    }
}

/// `awsvpcConfiguration` of a task or service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkConfig {
    /// Subnet ids.
    pub subnets: Vec<String>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// `assignPublicIp` ENABLED.
    pub assign_public_ip: bool,
}

/// A container override: command and environment.
///
/// Its `Debug` shows the environment's names only, never the values (they
/// may be credentials someone put in `UserParameters`): the parameters,
/// the `RunTask` request and every error or log line that formats them
/// with `{:?}` stay clean.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ContainerOverride {
    /// Container name.
    pub name: String,
    /// Replaces the container's command.
    pub command: Option<Vec<String>>,
    /// Added to (or replacing) the container's environment.
    pub environment: BTreeMap<String, String>,
}

impl fmt::Debug for ContainerOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerOverride")
            .field("name", &self.name)
            .field("command", &self.command)
            .field(
                "environment",
                &self
                    .environment
                    .keys()
                    .map(|k| (k.as_str(), "***"))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

/// One `RunTask` call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunRequest {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// `FARGATE` or `EC2`.
    pub launch_type: String,
    /// For `awsvpc` tasks.
    pub network: Option<NetworkConfig>,
    /// Container overrides.
    pub overrides: Vec<ContainerOverride>,
    /// `startedBy`: the job id (how a redelivery finds the task).
    pub started_by: String,
    /// Tags (the job tag).
    pub tags: Vec<(String, String)>,
}

/// A task as `DescribeTasks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskState {
    /// Task ARN.
    pub arn: String,
    /// Its task definition ARN.
    pub task_definition: String,
    /// `PROVISIONING`, `PENDING`, `ACTIVATING`, `RUNNING`, …, `STOPPED`.
    pub last_status: String,
    /// `RUNNING` or `STOPPED`.
    pub desired_status: String,
    /// ECS's reason for stopping it.
    pub stopped_reason: Option<String>,
    /// `EssentialContainerExited`, `TaskFailedToStart`, `UserInitiated`, …
    pub stop_code: Option<String>,
    /// The containers.
    pub containers: Vec<ContainerState>,
    /// Epoch seconds.
    pub created_at: Option<i64>,
    /// Epoch seconds.
    pub started_at: Option<i64>,
    /// Epoch seconds.
    pub stopped_at: Option<i64>,
}

impl TaskState {
    /// The task id (the ARN's last part).
    pub fn id(&self) -> &str {
        task_id(&self.arn)
    }
}

/// A task ARN's id.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// One container of a task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// Name.
    pub name: String,
    /// Its last status.
    pub last_status: String,
    /// Exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Why it stopped (e.g. `OutOfMemoryError: Container killed due to memory usage`).
    pub reason: Option<String>,
}

/// A problem reading log events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The function's role may not read the group.
    #[error("logs:GetLogEvents was denied ({detail}); add the log group to RunTaskLogGroupArns")]
    Denied {
        /// What CloudWatch Logs said.
        detail: String,
    },
    /// No such group or stream.
    #[error(
        "no log stream {stream} in group {group} (the container wrote no output, or the task definition's awslogs options point elsewhere)"
    )]
    NotFound {
        /// Group.
        group: String,
        /// Stream.
        stream: String,
    },
    /// Anything else (throttling, network).
    #[error("logs:GetLogEvents failed ({detail})")]
    Failed {
        /// What failed.
        detail: String,
    },
}

/// The future [`LogReader::last_lines`] returns.
pub type LinesFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<String>, LogError>> + Send + 'a>>;

/// Port: the last lines of a CloudWatch Logs stream (`GetLogEvents` from
/// the end). Object-safe, so [`crate::Deps`] holds it without another
/// type parameter.
pub trait LogReader: Send + Sync + fmt::Debug {
    /// At most `limit` messages, oldest first, from the end of `stream`.
    /// `region` is the group's region when it is not the function's.
    fn last_lines<'a>(
        &'a self,
        group: &'a str,
        stream: &'a str,
        region: Option<&'a str>,
        limit: usize,
    ) -> LinesFuture<'a>;
}

/// A reader for functions without CloudWatch Logs access: every read says so.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLogs;

impl LogReader for NoLogs {
    fn last_lines<'a>(
        &'a self,
        _group: &'a str,
        _stream: &'a str,
        _region: Option<&'a str>,
        _limit: usize,
    ) -> LinesFuture<'a> {
        Box::pin(async {
            Err(LogError::Failed {
                detail: "this function has no CloudWatch Logs reader".to_owned(),
            })
        })
    }
}
