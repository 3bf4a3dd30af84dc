//! ECS adapter: implements [`EcsApi`] with the SDK client.
//!
//! Calls made (each needs the IAM action of the same name): `DescribeServices`,
//! `DescribeTaskDefinition`, `RegisterTaskDefinition` (plus `TagResource`
//! for the job tag and `iam:PassRole` for the task definition's roles),
//! `UpdateService`, and on a failed rollout `ListTasks` + `DescribeTasks`
//! for the stopped tasks' reasons; for `run-task`: `RunTask` (plus
//! `TagResource` for the job tag and `iam:PassRole`), `DescribeTasks`,
//! `ListTasks` (by `startedBy`) and `StopTask`.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, DesiredStatus, KeyValuePair,
    LaunchType, LogDriver, NetworkConfiguration, Service, Tag, Task, TaskDefinition,
    TaskDefinitionField, TaskOverride,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tollgate_aws::{SdkConfig, classify};
use tollgate_pipeline::ecs::{
    Deployment, EcsApi, EcsError, JOB_TAG, ServiceEvent, ServiceState, TaskDefinitionView,
};
use tollgate_pipeline::task::{
    AwsLogs, ContainerSpec, ContainerState, NetworkConfig, RunRequest, TaskSpec, TaskState,
};
use tollgate_report::ReportError;

/// The ECS calls of `ecs-deploy` / `ecs-wait`.
#[derive(Debug)]
pub struct EcsClient {
    client: tollgate_aws::Lazy<Client>,
    /// The task definition described last (revisions are immutable, so a
    /// cached copy by ARN is always right): saves a second describe before
    /// registering.
    last_described: Mutex<Option<(String, TaskDefinition, Vec<Tag>)>>,
}

impl EcsClient {
    /// Builds the client (SDK standard retries stay on).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
            last_described: Mutex::new(None),
        }
    }

    async fn describe_raw(
        &self,
        task_definition: &str,
    ) -> Result<(TaskDefinition, Vec<Tag>), EcsError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:DescribeTaskDefinition", || {
                    format!("task definition {task_definition}")
                })
            })?;
        let td = out.task_definition.ok_or_else(|| EcsError::NotFound {
            operation: "ecs:DescribeTaskDefinition",
            what: format!("task definition {task_definition}"),
            detail: "the answer held no task definition".to_owned(),
        })?;
        let tags = out.tags.unwrap_or_default();
        if let Some(arn) = &td.task_definition_arn {
            *self
                .last_described
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some((arn.clone(), td.clone(), tags.clone()));
        }
        Ok((td, tags))
    }
}

/// Maps an SDK error to the port's error, naming the IAM action.
fn to_ecs_error<E>(
    err: SdkError<E, HttpResponse>,
    operation: &'static str,
    what: impl FnOnce() -> String,
) -> EcsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(err, &[]) {
        ReportError::Throttled { code, message } | ReportError::Server { code, message, .. } => {
            EcsError::Unavailable {
                operation,
                detail: format!("{code}: {message}"),
            }
        }
        ReportError::Transport(m) => EcsError::Unavailable {
            operation,
            detail: m,
        },
        ReportError::Timeout(d) => EcsError::Unavailable {
            operation,
            detail: format!("no answer within {d:?}"),
        },
        ReportError::AccessDenied { code, message } => EcsError::Denied {
            operation,
            detail: format!("{code}: {message}"),
            hint: String::new(),
        },
        ReportError::Rejected { code, message }
        | ReportError::AlreadyReported { code, message } => {
            let not_found = matches!(
                code.as_str(),
                "ClusterNotFoundException" | "ServiceNotFoundException"
            ) || (code == "ClientException"
                && message.contains("Unable to describe task definition"));
            if not_found {
                let what = match code.as_str() {
                    "ClusterNotFoundException" => "the cluster".to_owned(),
                    _ => what(),
                };
                EcsError::NotFound {
                    operation,
                    what,
                    detail: format!("{code}: {message}"),
                }
            } else if message.contains("iam:PassRole") || message.contains("not authorized") {
                EcsError::Denied {
                    operation,
                    detail: format!("{code}: {message}"),
                    hint: String::new(),
                }
            } else {
                EcsError::Rejected {
                    operation,
                    code,
                    detail: message,
                }
            }
        }
    }
}

fn epoch(t: Option<&aws_smithy_types::DateTime>) -> Option<i64> {
    t.map(aws_smithy_types::DateTime::secs)
}

fn network_of(n: Option<&NetworkConfiguration>) -> Option<NetworkConfig> {
    let v = n?.awsvpc_configuration.as_ref()?;
    Some(NetworkConfig {
        subnets: v.subnets.clone(),
        security_groups: v.security_groups.clone().unwrap_or_default(),
        assign_public_ip: v.assign_public_ip == Some(AssignPublicIp::Enabled),
    })
}

fn service_state(s: Service) -> ServiceState {
    ServiceState {
        network: network_of(s.network_configuration.as_ref()),
        launch_type: s.launch_type.as_ref().map(|l| l.as_str().to_owned()),
        name: s.service_name.unwrap_or_default(),
        status: s.status.unwrap_or_default(),
        desired_count: i64::from(s.desired_count),
        task_definition: s.task_definition.unwrap_or_default(),
        deployment_controller: s
            .deployment_controller
            .map(|d| d.r#type.as_str().to_owned())
            .unwrap_or_default(),
        circuit_breaker: s
            .deployment_configuration
            .and_then(|c| c.deployment_circuit_breaker)
            .map(|b| (b.enable, b.rollback)),
        deployments: s
            .deployments
            .unwrap_or_default()
            .into_iter()
            .map(|d| Deployment {
                id: d.id.unwrap_or_default(),
                status: d.status.unwrap_or_default(),
                task_definition: d.task_definition.unwrap_or_default(),
                desired: i64::from(d.desired_count),
                running: i64::from(d.running_count),
                pending: i64::from(d.pending_count),
                failed_tasks: i64::from(d.failed_tasks),
                rollout_state: d.rollout_state.map(|r| r.as_str().to_owned()),
                rollout_state_reason: d.rollout_state_reason,
                created_at: epoch(d.created_at.as_ref()),
            })
            .collect(),
        events: s
            .events
            .unwrap_or_default()
            .into_iter()
            .map(|e| ServiceEvent {
                created_at: epoch(e.created_at.as_ref()),
                message: e.message.unwrap_or_default(),
            })
            .collect(),
    }
}

fn view(td: &TaskDefinition, tags: &[Tag]) -> TaskDefinitionView {
    TaskDefinitionView {
        arn: td.task_definition_arn.clone().unwrap_or_default(),
        family: td.family.clone().unwrap_or_default(),
        revision: i64::from(td.revision),
        containers: td
            .container_definitions
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.name.clone().unwrap_or_default(),
                    c.image.clone().unwrap_or_default(),
                )
            })
            .collect(),
        tags: tags
            .iter()
            .filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default())))
            .collect(),
        task_role_arn: td.task_role_arn.clone(),
        execution_role_arn: td.execution_role_arn.clone(),
    }
}

fn spec(td: &TaskDefinition) -> TaskSpec {
    TaskSpec {
        arn: td.task_definition_arn.clone().unwrap_or_default(),
        family: td.family.clone().unwrap_or_default(),
        network_mode: td.network_mode.as_ref().map(|m| m.as_str().to_owned()),
        compatibilities: td
            .requires_compatibilities
            .iter()
            .flatten()
            .map(|c| c.as_str().to_owned())
            .collect(),
        containers: td
            .container_definitions
            .iter()
            .flatten()
            .map(|c| {
                let log = c.log_configuration.as_ref();
                let awslogs = log
                    .filter(|l| l.log_driver == LogDriver::Awslogs)
                    .and_then(|l| {
                        let o = l.options.as_ref()?;
                        Some(AwsLogs {
                            group: o.get("awslogs-group")?.clone(),
                            region: o.get("awslogs-region").cloned(),
                            stream_prefix: o.get("awslogs-stream-prefix").cloned(),
                        })
                    });
                ContainerSpec {
                    name: c.name.clone().unwrap_or_default(),
                    essential: c.essential.unwrap_or(true),
                    log_driver: log.map(|l| l.log_driver.as_str().to_owned()),
                    awslogs,
                    // Names only: the values are references Tollgate never resolves.
                    secret_names: c.secrets.iter().flatten().map(|s| s.name.clone()).collect(),
                }
            })
            .collect(),
    }
}

fn task_state(t: Task) -> TaskState {
    TaskState {
        arn: t.task_arn.unwrap_or_default(),
        task_definition: t.task_definition_arn.unwrap_or_default(),
        last_status: t.last_status.unwrap_or_default(),
        desired_status: t.desired_status.unwrap_or_default(),
        stopped_reason: t.stopped_reason,
        stop_code: t.stop_code.map(|c| c.as_str().to_owned()),
        containers: t
            .containers
            .unwrap_or_default()
            .into_iter()
            .map(|c| ContainerState {
                name: c.name.unwrap_or_default(),
                last_status: c.last_status.unwrap_or_default(),
                exit_code: c.exit_code,
                reason: c.reason,
            })
            .collect(),
        created_at: epoch(t.created_at.as_ref()),
        started_at: epoch(t.started_at.as_ref()),
        stopped_at: epoch(t.stopped_at.as_ref()),
    }
}

fn failures_text(failures: Option<Vec<aws_sdk_ecs::types::Failure>>) -> String {
    let text: Vec<String> = failures
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            format!(
                "{}{}",
                f.reason.unwrap_or_default(),
                f.detail.map(|d| format!(": {d}")).unwrap_or_default()
            )
        })
        .collect();
    if text.is_empty() {
        "no task in the answer".to_owned()
    } else {
        text.join("; ")
    }
}

fn non_empty<T>(v: Option<Vec<T>>) -> Option<Vec<T>> {
    v.filter(|v| !v.is_empty())
}

impl EcsApi for EcsClient {
    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<ServiceState, EcsError> {
        let what = || format!("service {service} in cluster {cluster}");
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| to_ecs_error(e, "ecs:DescribeServices", what))?;
        if let Some(s) = out.services.unwrap_or_default().into_iter().next() {
            return Ok(service_state(s));
        }
        let reason = out
            .failures
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|f| {
                format!(
                    "{}{}",
                    f.reason.unwrap_or_default(),
                    f.detail.map(|d| format!(": {d}")).unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no service in the answer".to_owned());
        Err(EcsError::NotFound {
            operation: "ecs:DescribeServices",
            what: what(),
            detail: reason,
        })
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinitionView, EcsError> {
        let (td, tags) = self.describe_raw(task_definition).await?;
        Ok(view(&td, &tags))
    }

    async fn register_task_definition(
        &self,
        base: &str,
        images: &BTreeMap<String, String>,
        tags: &[(String, String)],
    ) -> Result<TaskDefinitionView, EcsError> {
        let cached = self
            .last_described
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(arn, _, _)| arn == base);
        let (td, base_tags) = match cached {
            Some((_, td, t)) => (td, t),
            None => self.describe_raw(base).await?,
        };
        let containers = td
            .container_definitions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|mut c| {
                if let Some(image) = c.name.as_ref().and_then(|n| images.get(n)) {
                    c.image = Some(image.clone());
                }
                c
            })
            .collect::<Vec<_>>();
        let mut all_tags: Vec<Tag> = base_tags
            .into_iter()
            .filter(|t| {
                t.key
                    .as_deref()
                    .is_some_and(|k| k != JOB_TAG && !k.starts_with("aws:"))
            })
            .collect();
        for (k, v) in tags {
            all_tags.push(Tag::builder().key(k).value(v).build());
        }
        let family = td.family.clone().unwrap_or_default();
        let out = self
            .client
            .register_task_definition()
            .family(&family)
            .set_task_role_arn(td.task_role_arn.clone())
            .set_execution_role_arn(td.execution_role_arn.clone())
            .set_network_mode(td.network_mode.clone())
            .set_container_definitions(Some(containers))
            .set_volumes(non_empty(td.volumes.clone()))
            .set_placement_constraints(non_empty(td.placement_constraints.clone()))
            .set_requires_compatibilities(non_empty(td.requires_compatibilities.clone()))
            .set_cpu(td.cpu.clone())
            .set_memory(td.memory.clone())
            .set_pid_mode(td.pid_mode.clone())
            .set_ipc_mode(td.ipc_mode.clone())
            .set_proxy_configuration(td.proxy_configuration.clone())
            .set_ephemeral_storage(td.ephemeral_storage.clone())
            .set_runtime_platform(td.runtime_platform.clone())
            .set_enable_fault_injection(td.enable_fault_injection)
            .set_tags(non_empty(Some(all_tags)))
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:RegisterTaskDefinition", || {
                    format!("task definition family {family}")
                })
            })?;
        let new = out.task_definition.ok_or_else(|| EcsError::Rejected {
            operation: "ecs:RegisterTaskDefinition",
            code: "EmptyAnswer".to_owned(),
            detail: "the answer held no task definition".to_owned(),
        })?;
        let new_tags = out.tags.unwrap_or_default();
        tracing::info!(
            task_definition = new.task_definition_arn.as_deref().unwrap_or_default(),
            "task definition registered"
        );
        Ok(view(&new, &new_tags))
    }

    async fn register_task_definition_document(
        &self,
        family: &str,
        document: &str,
    ) -> Result<TaskDefinitionView, EcsError> {
        // The document is RegisterTaskDefinition's input as written (the
        // JSON protocol's body is exactly that shape): the SDK builds and
        // signs the request, and the interceptor puts the document in as
        // the body before signing, so every field ECS takes passes through
        // without a field-by-field copy that could drop one.
        let out = self
            .client
            .register_task_definition()
            .family(family)
            .customize()
            .interceptor(DocumentBody(document.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:RegisterTaskDefinition", || {
                    format!("task definition family {family}")
                })
            })?;
        let new = out.task_definition.ok_or_else(|| EcsError::Rejected {
            operation: "ecs:RegisterTaskDefinition",
            code: "EmptyAnswer".to_owned(),
            detail: "the answer held no task definition".to_owned(),
        })?;
        let new_tags = out.tags.unwrap_or_default();
        tracing::info!(
            task_definition = new.task_definition_arn.as_deref().unwrap_or_default(),
            "task definition registered from a document"
        );
        Ok(view(&new, &new_tags))
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        force_new_deployment: bool,
    ) -> Result<ServiceState, EcsError> {
        let out = self
            .client
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(task_definition)
            .force_new_deployment(force_new_deployment)
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:UpdateService", || {
                    format!("service {service} in cluster {cluster}")
                })
            })?;
        out.service
            .map(service_state)
            .ok_or_else(|| EcsError::Rejected {
                operation: "ecs:UpdateService",
                code: "EmptyAnswer".to_owned(),
                detail: "the answer held no service".to_owned(),
            })
    }

    async fn stopped_task_reasons(
        &self,
        cluster: &str,
        deployment_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, EcsError> {
        let listed = self
            .client
            .list_tasks()
            .cluster(cluster)
            .started_by(deployment_id)
            .desired_status(DesiredStatus::Stopped)
            .max_results(i32::try_from(limit.clamp(1, 100)).unwrap_or(100))
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:ListTasks", || format!("tasks of {deployment_id}"))
            })?;
        let arns = listed.task_arns.unwrap_or_default();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let described = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:DescribeTasks", || {
                    format!("tasks of {deployment_id}")
                })
            })?;
        let mut tasks = described.tasks.unwrap_or_default();
        tasks.sort_by_key(|t| std::cmp::Reverse(epoch(t.stopped_at.as_ref())));
        Ok(tasks
            .into_iter()
            .take(limit)
            .map(|t| {
                let id = t
                    .task_arn
                    .as_deref()
                    .and_then(|a| a.rsplit('/').next())
                    .unwrap_or("?")
                    .to_owned();
                let containers: Vec<String> = t
                    .containers
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.exit_code.is_some_and(|x| x != 0) || c.reason.is_some())
                    .map(|c| {
                        let mut s = c.name.unwrap_or_default();
                        if let Some(code) = c.exit_code {
                            s.push_str(&format!(": exit code {code}"));
                        }
                        if let Some(r) = c.reason {
                            s.push_str(&format!(": {r}"));
                        }
                        s
                    })
                    .collect();
                let mut line = format!(
                    "task {id}: {}",
                    t.stopped_reason
                        .as_deref()
                        .unwrap_or("stopped (no reason given)")
                );
                if !containers.is_empty() {
                    line.push_str(&format!(" ({})", containers.join("; ")));
                }
                line
            })
            .collect())
    }

    async fn describe_task_spec(&self, task_definition: &str) -> Result<TaskSpec, EcsError> {
        let (td, _) = self.describe_raw(task_definition).await?;
        Ok(spec(&td))
    }

    async fn run_task(&self, request: &RunRequest) -> Result<TaskState, EcsError> {
        let overrides = TaskOverride::builder()
            .set_container_overrides(Some(
                request
                    .overrides
                    .iter()
                    .map(|o| {
                        ContainerOverride::builder()
                            .name(&o.name)
                            .set_command(o.command.clone())
                            .set_environment(non_empty(Some(
                                o.environment
                                    .iter()
                                    .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                                    .collect(),
                            )))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let network = match &request.network {
            Some(n) => Some(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(
                        AwsVpcConfiguration::builder()
                            .set_subnets(Some(n.subnets.clone()))
                            .set_security_groups(non_empty(Some(n.security_groups.clone())))
                            .assign_public_ip(if n.assign_public_ip {
                                AssignPublicIp::Enabled
                            } else {
                                AssignPublicIp::Disabled
                            })
                            .build()
                            .map_err(|e| EcsError::Rejected {
                                operation: "ecs:RunTask",
                                code: "InvalidNetworkConfiguration".to_owned(),
                                detail: e.to_string(),
                            })?,
                    )
                    .build(),
            ),
            None => None,
        };
        let tags: Vec<Tag> = request
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let out = self
            .client
            .run_task()
            .cluster(&request.cluster)
            .task_definition(&request.task_definition)
            .count(1)
            .launch_type(LaunchType::from(request.launch_type.as_str()))
            .set_network_configuration(network)
            .overrides(overrides)
            .started_by(&request.started_by)
            // Idempotent per job: a duplicate delivery racing this one gets
            // the same task back (same parameters) or a refusal, never a
            // second task (ECS: up to 64 characters in 33-126).
            .client_token(client_token(&request.started_by))
            .set_tags(non_empty(Some(tags)))
            .send()
            .await
            .map_err(|e| {
                to_ecs_error(e, "ecs:RunTask", || {
                    format!("task definition {}", request.task_definition)
                })
            })?;
        match out.tasks.unwrap_or_default().into_iter().next() {
            Some(t) => Ok(task_state(t)),
            None => Err(EcsError::Rejected {
                operation: "ecs:RunTask",
                code: "TaskNotPlaced".to_owned(),
                detail: format!(
                    "ECS started no task in cluster {}: {}",
                    request.cluster,
                    failures_text(out.failures)
                ),
            }),
        }
    }

    async fn describe_task(
        &self,
        cluster: &str,
        task: &str,
    ) -> Result<Option<TaskState>, EcsError> {
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .tasks(task)
            .send()
            .await
            .map_err(|e| to_ecs_error(e, "ecs:DescribeTasks", || format!("task {task}")))?;
        Ok(out
            .tasks
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(task_state))
    }

    async fn tasks_started_by(
        &self,
        cluster: &str,
        started_by: &str,
    ) -> Result<Vec<String>, EcsError> {
        let mut arns = Vec::new();
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let out = self
                .client
                .list_tasks()
                .cluster(cluster)
                .started_by(started_by)
                .desired_status(status)
                .max_results(10)
                .send()
                .await
                .map_err(|e| {
                    to_ecs_error(e, "ecs:ListTasks", || {
                        format!("tasks started by {started_by}")
                    })
                })?;
            arns.extend(out.task_arns.unwrap_or_default());
        }
        Ok(arns)
    }

    async fn stop_task(&self, cluster: &str, task: &str, reason: &str) -> Result<(), EcsError> {
        self.client
            .stop_task()
            .cluster(cluster)
            .task(task)
            .reason(reason)
            .send()
            .await
            .map_err(|e| to_ecs_error(e, "ecs:StopTask", || format!("task {task}")))?;
        Ok(())
    }
}

/// Replaces a request's body with a JSON document before it is signed.
#[derive(Debug)]
struct DocumentBody(Vec<u8>);

impl Intercept for DocumentBody {
    fn name(&self) -> &'static str {
        "TollgateDocumentBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        request
            .headers_mut()
            .insert("content-length", self.0.len().to_string());
        *request.body_mut() = SdkBody::from(self.0.clone());
        Ok(())
    }
}

/// RunTask's idempotency token from the job id (`startedBy`): the characters
/// ECS allows (33-126), at most 64.
fn client_token(started_by: &str) -> String {
    started_by
        .chars()
        .filter(|c| ('!'..='~').contains(c))
        .take(64)
        .collect()
}
