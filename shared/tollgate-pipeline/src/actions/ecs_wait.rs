//! `ecs-wait`: waits for a service's current rollout, without deploying.
//!
//! The first invocation takes the service's PRIMARY deployment; then every
//! invocation polls once ([`crate::ecs`]) until the rollout completes, fails
//! or runs out of its wait limit.
//!
//! Owns the action whole: [`EcsWaitParams`] and their parsing ([`parse`]),
//! and the execution ([`run`]).

use crate::ecs::{
    EcsApi, MAX_WAIT_MINUTES, WaitToken, check_controller, finish, poll, primary,
};
use crate::params::{Fields, ParamError};
use crate::{Deps, Failure};
use serde_json::{Map, Value};
use std::time::Duration;
use tokio::time::Instant;
use tollgate_report::events::codepipeline::Job;
use tollgate_report::{JobOutcome, Step};

/// The action's name, as written in `"action"`.
pub const NAME: &str = "ecs-wait";

/// Valid `UserParameters`, shown in every error about this action (and in
/// errors before any action is known).
pub const EXAMPLE: &str = r#"{"action":"ecs-wait","cluster":"prod","service":"web"}"#;

/// `ecs-wait` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsWaitParams {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
    /// Overall limit for the wait.
    pub wait_timeout: Option<Duration>,
}

/// Parses `ecs-wait`'s fields.
pub fn parse(map: &Map<String, Value>) -> Result<EcsWaitParams, ParamError> {
    let ex = EXAMPLE;
    let mut f = Fields::new("", map, ex);
    f.known(&["action", "cluster", "service", "wait_timeout_minutes"])?;
    let cluster = f.string("cluster", "the ECS cluster name or ARN")?;
    let service = f.string("service", "the ECS service name or ARN")?;
    let wait_timeout = f
        .opt_u64("wait_timeout_minutes", 1, MAX_WAIT_MINUTES)?
        .map(|m| Duration::from_secs(m * 60));
    Ok(EcsWaitParams {
        cluster,
        service,
        wait_timeout,
    })
}

/// Runs `ecs-wait`.
pub async fn run<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &EcsWaitParams,
    step: &Step,
    _deadline: Instant,
) -> Result<JobOutcome, Failure>
where
    E: EcsApi,
{
    let limit = params
        .wait_timeout
        .unwrap_or(deps.settings.default_wait_timeout);
    if let Some(raw) = &job.data.continuation_token {
        return poll(deps, raw, limit, step).await;
    }
    step.enter(format!(
        "describing ECS service {} in cluster {}",
        params.service, params.cluster
    ));
    let service = deps
        .ecs
        .describe_service(&params.cluster, &params.service)
        .await?;
    check_controller(&service, &params.cluster)?;
    let Some(d) = primary(&service) else {
        return Err(Failure::job(format!(
            "service {} has no PRIMARY deployment to wait for",
            service.name
        )));
    };
    let token = WaitToken {
        v: 1,
        action: "ecs-wait".to_owned(),
        cluster: params.cluster.clone(),
        service: params.service.clone(),
        deployment: d.id.clone(),
        task_definition: d.task_definition.clone(),
        started_at: deps.clock.now(),
        polls: 0,
        errors: 0,
    };
    finish(deps, &service, token, limit, step).await
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::testing::assert_rejected;
    use crate::fakes::rollouts::{SHA_IMAGE, failure, rollout, setup, success};
    use crate::fakes::{self, TestDeps};
    use tollgate_report::FailureKind;

    const WAIT: &str =
        r#"{"action":"ecs-wait","cluster":"prod","service":"web","wait_timeout_minutes":30}"#;

    async fn wait(deps: &TestDeps, job: &Job) -> Result<JobOutcome, Failure> {
        let crate::params::Params::EcsWait(p) = crate::params::parse(
            job.data
                .action_configuration
                .configuration
                .user_parameters
                .as_deref(),
        )
        .expect("params") else {
            panic!("ecs-wait params")
        };
        run(deps, job, &p, &Step::default(), Instant::now()).await
    }

    #[tokio::test]
    async fn wait_on_a_settled_service_succeeds_at_once() {
        let (deps, _) = setup(SHA_IMAGE);
        let s = success(wait(&deps, &fakes::job(WAIT, None)).await);
        assert_eq!(s.continuation_token, None);
        assert_eq!(
            s.summary.as_deref(),
            Some("web: 4/4 tasks on new revision web:12; rollout completed after 0s (1 poll)")
        );
        assert_eq!(deps.ecs.calls(), ["DescribeServices"]);
    }

    #[tokio::test]
    async fn wait_follows_the_primary_deployment() {
        let (deps, _) = setup(SHA_IMAGE);
        let base = deps.ecs.service("web");
        deps.ecs.script(vec![
            Ok(rollout(&base, "ecs-svc/1000", "IN_PROGRESS", 2, "")),
            Ok(rollout(&base, "ecs-svc/1000", "COMPLETED", 4, "")),
        ]);
        let s = success(wait(&deps, &fakes::job(WAIT, None)).await);
        assert_eq!(s.percent_complete, Some(50));
        let t = WaitToken::decode(s.continuation_token.as_deref().expect("token")).expect("ours");
        assert_eq!(
            (t.action.as_str(), t.deployment.as_str()),
            ("ecs-wait", "ecs-svc/1000")
        );
        let done = success(
            wait(
                &deps,
                &fakes::job_with_id("job-2", WAIT, s.continuation_token.as_deref()),
            )
            .await,
        );
        assert_eq!(done.percent_complete, Some(100));
    }

    #[tokio::test]
    async fn wait_for_a_missing_service_is_a_configuration_error() {
        let (deps, _) = setup(SHA_IMAGE);
        let job = fakes::job(
            r#"{"action":"ecs-wait","cluster":"prod","service":"nope"}"#,
            None,
        );
        let f = failure(wait(&deps, &job).await);
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(
            f.message.contains("service nope was not found"),
            "{}",
            f.message
        );
    }

    #[test]
    fn the_example_parses() {
        let crate::params::Params::EcsWait(w) =
            crate::params::parse(Some(EXAMPLE)).expect("valid")
        else {
            panic!("ecs-wait")
        };
        assert_eq!(w.wait_timeout, None);
    }

    #[test]
    fn malformed_parameters_name_the_field() {
        assert_rejected(&[
            (
                r#"{"action":"ecs-wait","cluster":"c","service":""}"#,
                "service",
                "is empty",
            ),
            (
                r#"{"action":"ecs-wait","clustr":"c","service":"s"}"#,
                "clustr",
                "did you mean \"cluster\"",
            ),
            (
                r#"{"action":"ecs-wait","cluster":"c","service":"s","wait_timeout_minutes":0}"#,
                "wait_timeout_minutes",
                "from 1 to 1440",
            ),
            (
                r#"{"action":"ecs-wait","cluster":"c","service":"s","wait_timeout_minutes":"30"}"#,
                "wait_timeout_minutes",
                "got a string",
            ),
        ]);
    }
}
