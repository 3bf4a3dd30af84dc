//! # tollgate-aws-codedeploy
//!
//! CodeDeploy adapter for the report core's [`HookReporter`] port
//! (`PutLifecycleEventHookExecutionStatus`), shared by deploy-hook and
//! dead-letter. Invariant: SDK retries are off (the report core owns retries
//! and the deadline); an already completed hook maps to
//! [`ReportError::AlreadyReported`].

use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::types::LifecycleEventStatus;
use tollgate_aws::{SdkConfig, classify, no_sdk_retries};
use tollgate_report::{HookReporter, HookStatus, ReportError};

const ALREADY_DONE: &[&str] = &["LifecycleEventAlreadyCompletedException"];

/// Sends lifecycle hook statuses to CodeDeploy.
#[derive(Debug, Clone)]
pub struct CodeDeployReporter {
    client: Client,
}

impl CodeDeployReporter {
    /// Builds the client (SDK retries off: the report core retries).
    pub fn new(sdk: &SdkConfig) -> Self {
        let conf = aws_sdk_codedeploy::config::Builder::from(sdk)
            .retry_config(no_sdk_retries())
            .build();
        Self {
            client: Client::from_conf(conf),
        }
    }
}

impl HookReporter for CodeDeployReporter {
    async fn put_hook_status(
        &self,
        deployment_id: &str,
        execution_id: &str,
        status: HookStatus,
    ) -> Result<(), ReportError> {
        let status = match status {
            HookStatus::Succeeded => LifecycleEventStatus::Succeeded,
            HookStatus::Failed => LifecycleEventStatus::Failed,
        };
        self.client
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(deployment_id)
            .lifecycle_event_hook_execution_id(execution_id)
            .status(status)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, ALREADY_DONE))
    }
}
