//! CodeDeploy read adapter: implements [`DeploymentReader`] with the SDK
//! client (`GetDeployment`, `GetDeploymentGroup`, `ListDeploymentTargets`,
//! `GetDeploymentTarget`). The SDK's standard retries apply to these reads.

use aws_sdk_codedeploy::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tollgate_aws::SdkConfig;
use tollgate_deploy::discovery::{
    Deployment, DeploymentGroup, DeploymentReader, DeploymentTarget, EcsServiceRef, LifecycleEvent,
    ReadError, TargetGroupPair, TaskSet,
};

const NOT_FOUND: &[&str] = &[
    "DeploymentDoesNotExistException",
    "DeploymentGroupDoesNotExistException",
    "ApplicationDoesNotExistException",
    "DeploymentTargetDoesNotExistException",
    "DeploymentNotStartedException",
];

const DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
];

/// Sorts an SDK error of a read call into [`ReadError`].
pub(crate) fn read_error<E>(
    action: &'static str,
    err: SdkError<E, HttpResponse>,
    not_found: &[&str],
) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let message = err.message().unwrap_or_default().to_owned();
    let detail = if code.is_empty() {
        DisplayErrorContext(&err).to_string()
    } else if message.is_empty() {
        code.clone()
    } else {
        format!("{code}: {message}")
    };
    if DENIED.contains(&code.as_str()) {
        ReadError::Denied { action, detail }
    } else if not_found.contains(&code.as_str()) {
        ReadError::NotFound { action, detail }
    } else {
        ReadError::Failed { action, detail }
    }
}

/// Reads deployments, groups and targets from CodeDeploy.
#[derive(Debug, Clone)]
pub struct CodeDeployReader {
    client: tollgate_aws::Lazy<Client>,
}

impl CodeDeployReader {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
        }
    }
}

impl DeploymentReader for CodeDeployReader {
    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, ReadError> {
        const ACTION: &str = "codedeploy:GetDeployment";
        let out = self
            .client
            .get_deployment()
            .deployment_id(deployment_id)
            .send()
            .await
            .map_err(|e| read_error(ACTION, e, NOT_FOUND))?;
        let info = out.deployment_info.ok_or_else(|| ReadError::Failed {
            action: ACTION,
            detail: "the answer carried no deploymentInfo".to_owned(),
        })?;
        let missing = |field: &str| ReadError::Failed {
            action: ACTION,
            detail: format!("deploymentInfo has no {field}"),
        };
        Ok(Deployment {
            id: info
                .deployment_id
                .unwrap_or_else(|| deployment_id.to_owned()),
            application: info
                .application_name
                .ok_or_else(|| missing("applicationName"))?,
            group: info
                .deployment_group_name
                .ok_or_else(|| missing("deploymentGroupName"))?,
            compute_platform: info
                .compute_platform
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "Server".to_owned()),
            status: info
                .status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        })
    }

    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, ReadError> {
        const ACTION: &str = "codedeploy:GetDeploymentGroup";
        let out = self
            .client
            .get_deployment_group()
            .application_name(application)
            .deployment_group_name(group)
            .send()
            .await
            .map_err(|e| read_error(ACTION, e, NOT_FOUND))?;
        let info = out.deployment_group_info.ok_or_else(|| ReadError::Failed {
            action: ACTION,
            detail: "the answer carried no deploymentGroupInfo".to_owned(),
        })?;
        let ecs_services = info
            .ecs_services()
            .iter()
            .filter_map(|s| {
                Some(EcsServiceRef {
                    cluster: s.cluster_name()?.to_owned(),
                    service: s.service_name()?.to_owned(),
                })
            })
            .collect();
        let target_group_pairs = info
            .load_balancer_info()
            .map(|lb| {
                lb.target_group_pair_info_list()
                    .iter()
                    .map(|p| TargetGroupPair {
                        target_groups: p
                            .target_groups()
                            .iter()
                            .filter_map(|t| t.name().map(str::to_owned))
                            .collect(),
                        prod_listeners: p
                            .prod_traffic_route()
                            .map(|r| r.listener_arns().to_vec())
                            .unwrap_or_default(),
                        test_listeners: p
                            .test_traffic_route()
                            .map(|r| r.listener_arns().to_vec())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(DeploymentGroup {
            name: info
                .deployment_group_name
                .unwrap_or_else(|| group.to_owned()),
            ecs_services,
            target_group_pairs,
        })
    }

    async fn list_deployment_targets(&self, deployment_id: &str) -> Result<Vec<String>, ReadError> {
        const ACTION: &str = "codedeploy:ListDeploymentTargets";
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        // ECS deployments have one target per service; the bound only
        // guards against a service that keeps answering with a token.
        for _ in 0..50 {
            let out = self
                .client
                .list_deployment_targets()
                .deployment_id(deployment_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| read_error(ACTION, e, NOT_FOUND))?;
            ids.extend(out.target_ids().iter().cloned());
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(ids)
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, ReadError> {
        const ACTION: &str = "codedeploy:GetDeploymentTarget";
        let out = self
            .client
            .get_deployment_target()
            .deployment_id(deployment_id)
            .target_id(target_id)
            .send()
            .await
            .map_err(|e| read_error(ACTION, e, NOT_FOUND))?;
        let target = out
            .deployment_target()
            .and_then(|t| t.ecs_target())
            .ok_or_else(|| ReadError::Failed {
                action: ACTION,
                detail: format!(
                    "target {target_id} is not an ECS target (no ecsTarget in the answer)"
                ),
            })?;
        Ok(DeploymentTarget {
            id: target.target_id().unwrap_or(target_id).to_owned(),
            lifecycle_events: target
                .lifecycle_events()
                .iter()
                .filter_map(|e| {
                    Some(LifecycleEvent {
                        name: e.lifecycle_event_name()?.to_owned(),
                        status: e
                            .status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                    })
                })
                .collect(),
            task_sets: target
                .task_sets_info()
                .iter()
                .map(|t| TaskSet {
                    id: t.identifer().unwrap_or("unnamed").to_owned(),
                    label: t.task_set_label().map(|l| l.as_str().to_owned()),
                    desired: t.desired_count(),
                    pending: t.pending_count(),
                    running: t.running_count(),
                    status: t.status().map(str::to_owned),
                    traffic_weight: t.traffic_weight(),
                    target_group: t.target_group().and_then(|g| g.name()).map(str::to_owned),
                })
                .collect(),
        })
    }
}
