//! `ecs-deploy`: an ECS rolling update driven from a CodePipeline Invoke
//! action, waited for with continuation tokens ([`crate::ecs`]).
//!
//! First invocation: read `imagedefinitions.json` from the input artifact →
//! `DescribeServices` → `DescribeTaskDefinition` of the service's current
//! revision → `RegisterTaskDefinition` with the new images →
//! `UpdateService`. Then every invocation polls `DescribeServices` once
//! (see [`crate::ecs`] for what each answer becomes).
//!
//! Late and duplicate deliveries: before it registers or updates anything,
//! `ecs-deploy` asks CodePipeline whether its job is still live
//! ([`crate::liveness`]); a job whose action execution is over changes
//! nothing. It also never deploys over a revision that a newer Tollgate job
//! registered ([`REGISTERED_AT_TAG`] later than this job's action started).
//! The registered revision is tagged with the job id ([`JOB_TAG`]). A redelivered first invocation finds the tag on the
//! service's current revision (already deployed: it only waits) or on the
//! family's latest revision (registered, not yet deployed: it reuses it), so
//! one job registers one revision. What remains: if another revision of the
//! same family is registered between the two deliveries, and the first
//! delivery never reached `UpdateService`, a second revision is registered.
//!
//! Owns the action whole: [`EcsDeployParams`] and their parsing ([`parse`]),
//! and the execution ([`run`]).

use crate::artifact::ArtifactStore;
use crate::deploy_files::{ImageDefinition, parse_image_definitions};
use crate::ecs::{
    EcsApi, EcsError, JOB_TAG, MAX_WAIT_MINUTES, REGISTERED_AT_TAG, TaskDefinitionView,
    WaitToken, check_controller, finish, poll, primary, revision_label,
};
use crate::image::{ImagePolicy, parse_image_policy, violations};
use crate::liveness::{self, JobLiveness, Liveness};
use crate::params::{Fields, ParamError};
use crate::{Deps, Failure, open_input};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_report::events::codepipeline::Job;
use tollgate_report::{JobOutcome, Step};

/// The action's name, as written in `"action"`.
pub const NAME: &str = "ecs-deploy";

/// Valid `UserParameters`, shown in every error about this action.
pub const EXAMPLE: &str =
    r#"{"action":"ecs-deploy","cluster":"prod","service":"web","wait_timeout_minutes":30}"#;

/// `ecs-deploy` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsDeployParams {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
    /// Input artifact holding the image definitions; `None` when there is one.
    pub artifact: Option<String>,
    /// Path of the image definitions file inside the artifact.
    pub file: String,
    /// Overall limit for the rollout, from the first invocation.
    pub wait_timeout: Option<Duration>,
    /// Passed to `UpdateService`.
    pub force_new_deployment: bool,
    /// Policy for the images deployed.
    pub image_policy: ImagePolicy,
}

/// Parses `ecs-deploy`'s fields.
pub fn parse(map: &Map<String, Value>) -> Result<EcsDeployParams, ParamError> {
    let ex = EXAMPLE;
    let mut f = Fields::new("", map, ex);
    f.known(&[
        "action",
        "cluster",
        "service",
        "artifact",
        "file",
        "wait_timeout_minutes",
        "force_new_deployment",
        "image_policy",
    ])?;
    let cluster = f.string("cluster", "the ECS cluster name or ARN")?;
    let service = f.string("service", "the ECS service name or ARN")?;
    let artifact = f.opt_string(
        "artifact",
        "the input artifact holding imagedefinitions.json",
    )?;
    let file = f
        .opt_string("file", "the image definitions file inside the artifact")?
        .unwrap_or_else(|| "imagedefinitions.json".to_owned());
    let wait_timeout = f
        .opt_u64("wait_timeout_minutes", 1, MAX_WAIT_MINUTES)?
        .map(|m| Duration::from_secs(m * 60));
    let force_new_deployment = f.opt_bool("force_new_deployment")?.unwrap_or(false);
    let image_policy = parse_image_policy(&mut f)?;
    Ok(EcsDeployParams {
        cluster,
        service,
        artifact,
        file,
        wait_timeout,
        force_new_deployment,
        image_policy,
    })
}

/// Reads and validates the image definitions for `ecs-deploy`.
async fn read_image_definitions<A: ArtifactStore, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &EcsDeployParams,
    step: &Step,
) -> Result<Vec<ImageDefinition>, Failure> {
    let mut archive = open_input(deps, job, params.artifact.as_deref(), step).await?;
    let Some(text) = archive.read_text(&params.file)? else {
        return Err(Failure::job(format!(
            "{} is not in artifact {} (it contains: {}); set \"file\" in UserParameters to its path",
            params.file,
            archive.name(),
            archive.listing()
        )));
    };
    let defs = parse_image_definitions(&text).map_err(|problems| {
        Failure::job(format!(
            "{} in artifact {} is invalid: {}",
            params.file,
            archive.name(),
            problems.join("; ")
        ))
    })?;
    check_policy(&defs, &params.image_policy)?;
    Ok(defs)
}

pub(crate) fn check_policy(defs: &[ImageDefinition], policy: &ImagePolicy) -> Result<(), Failure> {
    let problems: Vec<String> = defs
        .iter()
        .flat_map(|d| {
            violations(&d.image_uri, policy)
                .into_iter()
                .map(move |v| format!("container {}: {v}", d.name))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::job(format!(
            "refusing to deploy: {}",
            problems.join("; ")
        )))
    }
}

/// Runs `ecs-deploy`.
pub async fn run<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &EcsDeployParams,
    step: &Step,
    _deadline: Instant,
) -> Result<JobOutcome, Failure>
where
    A: ArtifactStore,
    E: EcsApi,
    J: JobLiveness,
{
    let limit = params
        .wait_timeout
        .unwrap_or(deps.settings.default_wait_timeout);
    if let Some(raw) = &job.data.continuation_token {
        return poll(deps, raw, limit, step).await;
    }
    let started_at = deps.clock.now();
    let defs = read_image_definitions(deps, job, params, step).await?;

    step.enter(format!(
        "describing ECS service {} in cluster {}",
        params.service, params.cluster
    ));
    let service = deps
        .ecs
        .describe_service(&params.cluster, &params.service)
        .await?;
    check_controller(&service, &params.cluster)?;
    step.enter(format!(
        "describing task definition {}",
        revision_label(&service.task_definition)
    ));
    let current = deps
        .ecs
        .describe_task_definition(&service.task_definition)
        .await?;
    let names: Vec<&str> = current.containers.iter().map(|(n, _)| n.as_str()).collect();
    let unknown: Vec<&str> = defs
        .iter()
        .map(|d| d.name.as_str())
        .filter(|n| !names.contains(n))
        .collect();
    if !unknown.is_empty() {
        return Err(Failure::config(format!(
            "{} names container(s) {} that task definition {} does not have (its containers: {}); \
             the names in imagedefinitions.json must match the task definition's container names",
            params.file,
            unknown.join(", "),
            revision_label(&current.arn),
            names.join(", ")
        )));
    }
    let images: BTreeMap<String, String> = defs
        .iter()
        .map(|d| (d.name.clone(), d.image_uri.clone()))
        .collect();

    let (target, service_after) = if current.tagged_with(&job.id) {
        // A redelivery of this job after the service was already updated.
        tracing::info!(task_definition = %current.arn, "service already on this job's revision (duplicate delivery)");
        (current, service)
    } else {
        // Issue 14.4: nothing changes for a job that is no longer live, and
        // never over a revision a newer job registered.
        step.enter("asking CodePipeline whether this job is still live");
        let started_at_ms = match deps.jobs.liveness(&job.id).await? {
            Liveness::Live { started_at_ms } => started_at_ms,
            Liveness::Gone { why } => return Err(liveness::gone(&job.id, &why)),
        };
        current.refuse_if_newer(&job.id, started_at_ms)?;
        step.enter(format!(
            "checking the latest revision of family {}",
            current.family
        ));
        let latest = deps.ecs.describe_task_definition(&current.family).await?;
        let target = if latest.tagged_with(&job.id) {
            tracing::info!(task_definition = %latest.arn, "reusing the revision an earlier delivery of this job registered");
            latest
        } else {
            step.enter(format!(
                "registering a new revision of {} with {}",
                current.family,
                images
                    .iter()
                    .map(|(n, i)| format!("{n}={i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let registered_at_ms = deps.clock.now_ms();
            let tags = vec![
                (JOB_TAG.to_owned(), job.id.clone()),
                (REGISTERED_AT_TAG.to_owned(), registered_at_ms.to_string()),
            ];
            deps.ecs
                .register_task_definition(&current.arn, &images, &tags)
                .await
                .map_err(|e| pass_role_hint(e, &current))?
        };
        step.enter(format!(
            "updating service {} to {}",
            params.service,
            revision_label(&target.arn)
        ));
        let updated = deps
            .ecs
            .update_service(
                &params.cluster,
                &params.service,
                &target.arn,
                params.force_new_deployment,
            )
            .await?;
        (target, updated)
    };
    let deployment = service_after
        .deployments
        .iter()
        .find(|d| d.status == "PRIMARY" && d.task_definition == target.arn)
        .or_else(|| primary(&service_after))
        .ok_or_else(|| {
            Failure::job(format!(
                "UpdateService answered without a PRIMARY deployment for service {}",
                params.service
            ))
        })?;
    if deployment.task_definition != target.arn {
        tracing::warn!(
            deployment = %deployment.id,
            deployment_task_definition = %deployment.task_definition,
            expected = %target.arn,
            "the PRIMARY deployment does not name the registered revision"
        );
    }
    let token = WaitToken {
        v: 1,
        action: "ecs-deploy".to_owned(),
        cluster: params.cluster.clone(),
        service: params.service.clone(),
        deployment: deployment.id.clone(),
        task_definition: target.arn.clone(),
        started_at,
        polls: 0,
        errors: 0,
    };
    finish(deps, &service_after, token, limit, step).await
}

/// Adds the roles to pass when registration was denied.
fn pass_role_hint(e: EcsError, td: &TaskDefinitionView) -> Failure {
    match e {
        EcsError::Denied {
            operation,
            detail,
            hint: _,
        } => {
            let roles: Vec<&str> = [
                td.task_role_arn.as_deref(),
                td.execution_role_arn.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect();
            let hint = if roles.is_empty() {
                String::new()
            } else {
                format!(
                    ", and iam:PassRole on {} (the task definition's roles)",
                    roles.join(" and ")
                )
            };
            Failure::from(EcsError::Denied {
                operation,
                detail,
                hint,
            })
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests;
