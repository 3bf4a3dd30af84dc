//! ECS adapter: implements [`EcsApi`] with the SDK client.
//!
//! Calls made (each needs the IAM action of the same name): `DescribeServices`,
//! `DescribeTaskDefinition`, `RegisterTaskDefinition` (plus `TagResource`
//! for the job tag and `iam:PassRole` for the task definition's roles),
//! `UpdateService`, and on a failed rollout `ListTasks` + `DescribeTasks`
//! for the stopped tasks' reasons.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{DesiredStatus, Service, Tag, TaskDefinition, TaskDefinitionField};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tollgate_aws::{SdkConfig, classify};
use tollgate_pipeline::ecs::{
    Deployment, EcsApi, EcsError, JOB_TAG, ServiceEvent, ServiceState, TaskDefinitionView,
};
use tollgate_report::ReportError;

/// The ECS calls of `ecs-deploy` / `ecs-wait`.
#[derive(Debug)]
pub struct EcsClient {
    client: Client,
    /// The task definition described last (revisions are immutable, so a
    /// cached copy by ARN is always right): saves a second describe before
    /// registering.
    last_described: Mutex<Option<(String, TaskDefinition, Vec<Tag>)>>,
}

impl EcsClient {
    /// Builds the client (SDK standard retries stay on).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: Client::new(sdk),
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

fn service_state(s: Service) -> ServiceState {
    ServiceState {
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
}
