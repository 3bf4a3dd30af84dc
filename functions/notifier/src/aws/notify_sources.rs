//! Read adapter for the notifier's enrichment: CodePipeline
//! `GetPipelineExecution` / `ListActionExecutions` / `ListPipelineExecutions`
//! / `GetPipeline` (the stage plan, Slack bot mode only) / `GetPipelineState`
//! (an entry condition in progress, pipelines with overrides only)
//! and CodeDeploy `GetDeployment`, reduced to the domain types of
//! [`tollgate_notify::enrich`]; SSM `GetParameter` for deploy-hook's
//! hook-failure records.
//!
//! Calls go to the event's region (an event forwarded from another region is
//! looked up there), except the hook-failure record: it is read only for
//! events of the notifier's own region, where its stack's deploy-hook writes
//! it (the IAM grant covers that region only). SDK retries are limited to 2 attempts: enrichment is
//! best effort under its own time bound.

use aws_config::Region;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::BTreeMap;
use tollgate_aws::SdkConfig;
use tollgate_core::stage_condition_request::ConditionKind;
use tollgate_notify::enrich::{
    ActionExecutionInfo, DeploymentInfo, ExecutionSummaryInfo, PipelineExecutionInfo, Revision,
    SourceError, SourceReader, TargetCounts,
};
use tollgate_notify::stage_condition::StageConditionInfo;

/// The read clients.
#[derive(Debug, Clone)]
pub struct NotifySources {
    pipeline: tollgate_aws::Lazy<aws_sdk_codepipeline::Client>,
    deploy: tollgate_aws::Lazy<aws_sdk_codedeploy::Client>,
    ssm: tollgate_aws::Lazy<aws_sdk_ssm::Client>,
    home_region: Option<String>,
}

impl NotifySources {
    /// Builds the clients.
    pub fn new(sdk: &SdkConfig) -> Self {
        let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(2);
        let pipeline = aws_sdk_codepipeline::config::Builder::from(sdk)
            .retry_config(retry.clone())
            .build();
        let deploy = aws_sdk_codedeploy::config::Builder::from(sdk)
            .retry_config(retry.clone())
            .build();
        let ssm = aws_sdk_ssm::config::Builder::from(sdk)
            .retry_config(retry)
            .build();
        let (pipeline, deploy, ssm) = (
            tollgate_aws::lazy(move || aws_sdk_codepipeline::Client::from_conf(pipeline)),
            tollgate_aws::lazy(move || aws_sdk_codedeploy::Client::from_conf(deploy)),
            tollgate_aws::lazy(move || aws_sdk_ssm::Client::from_conf(ssm)),
        );
        Self {
            pipeline,
            deploy,
            ssm,
            home_region: sdk.region().map(|r| r.as_ref().to_owned()),
        }
    }

    /// The region to override with, when the event's differs from ours.
    fn other_region(&self, region: &str) -> Option<Region> {
        (!region.is_empty() && self.home_region.as_deref() != Some(region))
            .then(|| Region::new(region.to_owned()))
    }
}

fn source_error<E>(action: &'static str, err: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let detail = DisplayErrorContext(&err).to_string();
    match code.as_str() {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
            SourceError::Denied { action, detail }
        }
        "PipelineNotFoundException"
        | "PipelineExecutionNotFoundException"
        | "DeploymentDoesNotExistException"
        | "InvalidDeploymentIdException"
        | "ParameterNotFound" => SourceError::NotFound { action, detail },
        _ => SourceError::Failed { action, detail },
    }
}

fn epoch(t: Option<&aws_smithy_types::DateTime>) -> Option<i64> {
    t.map(|t| t.secs())
}

fn map(m: Option<&std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

impl SourceReader for NotifySources {
    async fn pipeline_stages(
        &self,
        region: &str,
        pipeline: &str,
        version: i32,
    ) -> Result<Vec<String>, SourceError> {
        const ACTION: &str = "codepipeline:GetPipeline";
        let mut op = self
            .pipeline
            .get_pipeline()
            .name(pipeline)
            .version(version)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codepipeline::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        Ok(out
            .pipeline
            .map(|p| p.stages.into_iter().map(|s| s.name).collect())
            .unwrap_or_default())
    }

    async fn pipeline_execution(
        &self,
        region: &str,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<PipelineExecutionInfo, SourceError> {
        const ACTION: &str = "codepipeline:GetPipelineExecution";
        let mut op = self
            .pipeline
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codepipeline::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        let Some(exec) = out.pipeline_execution else {
            return Ok(PipelineExecutionInfo::default());
        };
        Ok(PipelineExecutionInfo {
            status: exec.status.map(|s| s.as_str().to_owned()),
            status_summary: exec.status_summary,
            trigger_type: exec
                .trigger
                .as_ref()
                .and_then(|t| t.trigger_type.as_ref())
                .map(|t| t.as_str().to_owned()),
            trigger_detail: exec.trigger.and_then(|t| t.trigger_detail),
            revisions: exec
                .artifact_revisions
                .unwrap_or_default()
                .into_iter()
                .map(|r| Revision {
                    name: r.name,
                    revision_id: r.revision_id,
                    summary: r.revision_summary,
                    url: r.revision_url,
                })
                .collect(),
        })
    }

    async fn action_executions(
        &self,
        region: &str,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        const ACTION: &str = "codepipeline:ListActionExecutions";
        let filter = aws_sdk_codepipeline::types::ActionExecutionFilter::builder()
            .pipeline_execution_id(execution_id)
            .build();
        let mut op = self
            .pipeline
            .list_action_executions()
            .pipeline_name(pipeline)
            .filter(filter)
            .max_results(100)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codepipeline::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        Ok(out
            .action_execution_details
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let result = d.output.as_ref().and_then(|o| o.execution_result.as_ref());
                let type_id = d.input.as_ref().and_then(|i| i.action_type_id.as_ref());
                ActionExecutionInfo {
                    stage: d.stage_name.clone().unwrap_or_default(),
                    action: d.action_name.clone().unwrap_or_default(),
                    status: d.status.as_ref().map(|s| s.as_str().to_owned()),
                    category: type_id.map(|t| t.category.as_str().to_owned()),
                    provider: type_id.map(|t| t.provider.clone()),
                    summary: result.and_then(|r| r.external_execution_summary.clone()),
                    external_url: result.and_then(|r| r.external_execution_url.clone()),
                    error_code: result
                        .and_then(|r| r.error_details.as_ref())
                        .and_then(|e| e.code.clone()),
                    error_message: result
                        .and_then(|r| r.error_details.as_ref())
                        .and_then(|e| e.message.clone()),
                    started: epoch(d.start_time.as_ref()),
                    updated: epoch(d.last_update_time.as_ref()),
                    output_variables: map(d
                        .output
                        .as_ref()
                        .and_then(|o| o.output_variables.as_ref())),
                    configuration: map(d.input.as_ref().and_then(|i| i.configuration.as_ref())),
                    external_id: result.and_then(|r| r.external_execution_id.clone()),
                    execution_id: d.pipeline_execution_id.clone(),
                }
            })
            .collect())
    }

    async fn stage_conditions(
        &self,
        region: &str,
        pipeline: &str,
    ) -> Result<Vec<StageConditionInfo>, SourceError> {
        const ACTION: &str = "codepipeline:GetPipelineState";
        let mut op = self
            .pipeline
            .get_pipeline_state()
            .name(pipeline)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codepipeline::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        Ok(out
            .stage_states()
            .iter()
            .filter_map(|stage| {
                // The entry condition's execution: the stage's inbound
                // execution, else its latest only while in progress (a
                // finished one has passed the entry; StageConditionState
                // carries none; docs/approvals.md).
                let state = stage.before_entry_condition_state()?;
                let execution = stage
                    .inbound_execution()
                    .or_else(|| {
                        stage.latest_execution().filter(|e| {
                            *e.status()
                                == aws_sdk_codepipeline::types::StageExecutionStatus::InProgress
                        })
                    })
                    .map(|e| e.pipeline_execution_id().to_owned());
                Some(StageConditionInfo {
                    stage: stage.stage_name().unwrap_or_default().to_owned(),
                    kind: ConditionKind::BeforeEntry,
                    execution,
                    status: state
                        .latest_execution()
                        .and_then(|l| l.status())
                        .map(|s| s.as_str().to_owned()),
                    rules: state
                        .condition_states()
                        .iter()
                        .flat_map(|c| c.rule_states())
                        .map(|r| {
                            let latest = r.latest_execution();
                            (
                                r.rule_name().unwrap_or_default().to_owned(),
                                latest
                                    .and_then(|e| e.status())
                                    .map(|s| s.as_str().to_owned()),
                                latest.and_then(|e| e.summary()).map(str::to_owned),
                            )
                        })
                        .collect(),
                })
            })
            .collect())
    }

    async fn recent_action_executions(
        &self,
        region: &str,
        pipeline: &str,
        max_results: i32,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        const ACTION: &str = "codepipeline:ListActionExecutions";
        let mut op = self
            .pipeline
            .list_action_executions()
            .pipeline_name(pipeline)
            .max_results(max_results)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codepipeline::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        Ok(out
            .action_execution_details
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let result = d.output.as_ref().and_then(|o| o.execution_result.as_ref());
                let type_id = d.input.as_ref().and_then(|i| i.action_type_id.as_ref());
                ActionExecutionInfo {
                    stage: d.stage_name.clone().unwrap_or_default(),
                    action: d.action_name.clone().unwrap_or_default(),
                    status: d.status.as_ref().map(|s| s.as_str().to_owned()),
                    provider: type_id.map(|t| t.provider.clone()),
                    external_id: result.and_then(|r| r.external_execution_id.clone()),
                    execution_id: d.pipeline_execution_id.clone(),
                    ..ActionExecutionInfo::default()
                }
            })
            .collect())
    }

    async fn pipeline_executions(
        &self,
        region: &str,
        pipeline: &str,
        max_results: i32,
    ) -> Result<Vec<ExecutionSummaryInfo>, SourceError> {
        const ACTION: &str = "codepipeline:ListPipelineExecutions";
        let mut op = self
            .pipeline
            .list_pipeline_executions()
            .pipeline_name(pipeline)
            .max_results(max_results)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codepipeline::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        Ok(out
            .pipeline_execution_summaries
            .unwrap_or_default()
            .into_iter()
            .map(|s| ExecutionSummaryInfo {
                execution_id: s.pipeline_execution_id.unwrap_or_default(),
                status: s.status.map(|s| s.as_str().to_owned()),
                started: epoch(s.start_time.as_ref()),
                updated: epoch(s.last_update_time.as_ref()),
            })
            .collect())
    }

    async fn deployment(
        &self,
        region: &str,
        deployment_id: &str,
    ) -> Result<DeploymentInfo, SourceError> {
        const ACTION: &str = "codedeploy:GetDeployment";
        let mut op = self
            .deploy
            .get_deployment()
            .deployment_id(deployment_id)
            .customize();
        if let Some(r) = self.other_region(region) {
            op = op.config_override(aws_sdk_codedeploy::config::Builder::default().region(r));
        }
        let out = op.send().await.map_err(|e| source_error(ACTION, e))?;
        let Some(d) = out.deployment_info else {
            return Ok(DeploymentInfo::default());
        };
        let github = d
            .revision
            .as_ref()
            .and_then(|r| r.git_hub_location.as_ref());
        Ok(DeploymentInfo {
            status: d.status.as_ref().map(|s| s.as_str().to_owned()),
            error_code: d
                .error_information
                .as_ref()
                .and_then(|e| e.code.as_ref())
                .map(|c| c.as_str().to_owned()),
            error_message: d.error_information.as_ref().and_then(|e| e.message.clone()),
            creator: d.creator.as_ref().map(|c| c.as_str().to_owned()),
            rollback_deployment_id: d
                .rollback_info
                .as_ref()
                .and_then(|r| r.rollback_deployment_id.clone()),
            rollback_triggering_deployment_id: d
                .rollback_info
                .as_ref()
                .and_then(|r| r.rollback_triggering_deployment_id.clone()),
            rollback_message: d
                .rollback_info
                .as_ref()
                .and_then(|r| r.rollback_message.clone()),
            created: epoch(d.create_time.as_ref()),
            started: epoch(d.start_time.as_ref()),
            completed: epoch(d.complete_time.as_ref()),
            targets: d.deployment_overview.as_ref().map(|o| TargetCounts {
                pending: o.pending,
                in_progress: o.in_progress,
                succeeded: o.succeeded,
                failed: o.failed,
                skipped: o.skipped,
                ready: o.ready,
            }),
            status_messages: d.deployment_status_messages.clone().unwrap_or_default(),
            compute_platform: d.compute_platform.as_ref().map(|c| c.as_str().to_owned()),
            github_repository: github.and_then(|g| g.repository.clone()),
            github_commit: github.and_then(|g| g.commit_id.clone()),
        })
    }

    async fn hook_failure_record(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<String>, SourceError> {
        const ACTION: &str = "ssm:GetParameter";
        if self.other_region(region).is_some() {
            tracing::debug!(
                region,
                "hook-failure records are read for this region's events only"
            );
            return Ok(None);
        }
        match self.ssm.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
            Err(e) => match source_error(ACTION, e) {
                SourceError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }
}
