//! [`ServiceDeployments`] over `aws-sdk-ecs`: `DescribeServiceDeployments`
//! (is the deployment in progress, does that very hook wait?) and
//! `ContinueServiceDeployment` (`CONTINUE` / `ROLLBACK`). SDK retries: 2
//! attempts for the read; `ContinueServiceDeployment` is sent once (a
//! retry of an attempt that ECS applied but whose answer was lost would be
//! refused and read as "someone else decided"). A timeout, a lost
//! connection, an unreadable answer or a 5xx is [`ResumeAnswer::Unsure`]:
//! ECS may have acted, and the caller reads the state again. The endpoint
//! bounds the whole request to Slack's 3 seconds anyway. Errors carry the
//! service's code and what to do.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::DeploymentLifecycleHookAction;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tollgate_approvals::ecs_hook::{BoxFuture, PauseState, ResumeAnswer, ServiceDeployments};
use tollgate_approvals::ports::PortError;
use tollgate_aws::SdkConfig;

/// ECS service deployments.
#[derive(Debug, Clone)]
pub struct EcsDeployments {
    client: Client,
    /// The same, with one attempt: for `ContinueServiceDeployment`.
    once: Client,
}

impl EcsDeployments {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        let with_attempts = |n: u32| {
            Client::from_conf(
                aws_sdk_ecs::config::Builder::from(sdk)
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(n))
                    .build(),
            )
        };
        Self {
            client: with_attempts(2),
            once: with_attempts(1),
        }
    }
}

fn port_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    call: &str,
    code: &str,
    e: &E,
) -> PortError {
    match code {
        "AccessDeniedException" => PortError::Denied(format!(
            "{call}: AccessDenied: grant ecs:{call} on the service's deployments to the approvals function's role (ApprovalEcsServices)"
        )),
        "ServiceDeploymentNotFoundException"
        | "ServiceNotFoundException"
        | "ClusterNotFoundException" => PortError::NotFound(format!(
            "{call}: {code}: ECS has no such service deployment"
        )),
        _ => PortError::Failed(format!(
            "{call}: {}",
            tollgate_core::text::ellipsize(&DisplayErrorContext(e).to_string(), 300)
        )),
    }
}

impl EcsDeployments {
    async fn describe(&self, deployment: &str, hook: &str) -> Result<PauseState, PortError> {
        let out = self
            .client
            .describe_service_deployments()
            .service_deployment_arns(deployment)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or_default().to_owned();
                port_error("DescribeServiceDeployments", &code, &e)
            })?;
        let Some(d) = out
            .service_deployments()
            .iter()
            .find(|d| d.service_deployment_arn() == Some(deployment))
        else {
            return Ok(PauseState::default());
        };
        let mut state = PauseState {
            deployment_status: Some(
                d.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|| "UNKNOWN".to_owned()),
            ),
            updated_at: d.updated_at().map(|t| t.secs()),
            ..PauseState::default()
        };
        if let Some(h) = d
            .lifecycle_hook_details()
            .iter()
            .find(|h| h.hook_id() == Some(hook))
        {
            state.hook_status = h.status().map(|s| s.as_str().to_owned());
            state.expires_at = h.expires_at().map(|t| t.secs());
            state.timeout_action = h.timeout_action().map(|a| a.as_str().to_owned());
        }
        Ok(state)
    }

    async fn resume_hook(
        &self,
        deployment: &str,
        hook: &str,
        rollback: bool,
    ) -> Result<ResumeAnswer, PortError> {
        let action = if rollback {
            DeploymentLifecycleHookAction::Rollback
        } else {
            DeploymentLifecycleHookAction::Continue
        };
        let sent = self
            .once
            .continue_service_deployment()
            .service_deployment_arn(deployment)
            .hook_id(hook)
            .action(action)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(ResumeAnswer::Accepted),
            Err(e) => {
                use aws_sdk_ecs::error::SdkError;
                let code = e.code().unwrap_or_default().to_owned();
                let unsure = match &e {
                    SdkError::TimeoutError(_) => Some("did not answer in time".to_owned()),
                    SdkError::DispatchFailure(_) => {
                        Some("the connection failed while sending".to_owned())
                    }
                    SdkError::ResponseError(_) => Some("its answer could not be read".to_owned()),
                    SdkError::ServiceError(s) if s.raw().status().is_server_error() => Some(
                        format!("ECS answered {} ({code})", s.raw().status().as_u16()),
                    ),
                    _ => None,
                };
                if let Some(why) = unsure {
                    return Ok(ResumeAnswer::Unsure(format!(
                        "ContinueServiceDeployment: {why}"
                    )));
                }
                match code.as_str() {
                    // ECS's answer to a hook that is not AWAITING_ACTION
                    // (or a deployment no longer IN_PROGRESS).
                    "ClientException" | "InvalidParameterException" => {
                        Ok(ResumeAnswer::NotPaused(code))
                    }
                    _ => Err(port_error("ContinueServiceDeployment", &code, &e)),
                }
            }
        }
    }
}

impl ServiceDeployments for EcsDeployments {
    fn pause_state<'a>(
        &'a self,
        deployment: &'a str,
        hook: &'a str,
    ) -> BoxFuture<'a, Result<PauseState, PortError>> {
        Box::pin(self.describe(deployment, hook))
    }

    fn resume<'a>(
        &'a self,
        deployment: &'a str,
        hook: &'a str,
        rollback: bool,
    ) -> BoxFuture<'a, Result<ResumeAnswer, PortError>> {
        Box::pin(self.resume_hook(deployment, hook, rollback))
    }
}
