//! # tollgate-aws-codepipeline
//!
//! CodePipeline adapter for the report core's [`JobReporter`] port
//! (`PutJobSuccessResult` / `PutJobFailureResult`), shared by pipeline-action
//! and dead-letter. Invariant: SDK retries are off (the report core owns
//! retries and the deadline); "already done" answers map to
//! [`ReportError::AlreadyReported`]. Job liveness, a read only pipeline-action
//! makes, is that function's own adapter.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ExecutionDetails, FailureDetails, FailureType};
use tollgate_aws::{SdkConfig, classify, no_sdk_retries};
use tollgate_report::{JobFailure, JobReporter, JobSuccess, ReportError};

const ALREADY_DONE: &[&str] = &["InvalidJobStateException"];

/// Sends job results to CodePipeline.
#[derive(Debug, Clone)]
pub struct CodePipelineReporter {
    client: Client,
}

impl CodePipelineReporter {
    /// Builds the client (SDK retries off: the report core retries).
    pub fn new(sdk: &SdkConfig) -> Self {
        let conf = aws_sdk_codepipeline::config::Builder::from(sdk)
            .retry_config(no_sdk_retries())
            .build();
        Self {
            client: Client::from_conf(conf),
        }
    }
}

fn failure_type(kind: tollgate_report::FailureKind) -> FailureType {
    use tollgate_report::FailureKind as K;
    match kind {
        K::JobFailed => FailureType::JobFailed,
        K::ConfigurationError => FailureType::ConfigurationError,
        K::PermissionError => FailureType::PermissionError,
        K::RevisionOutOfSync => FailureType::RevisionOutOfSync,
        K::RevisionUnavailable => FailureType::RevisionUnavailable,
        K::SystemUnavailable => FailureType::SystemUnavailable,
    }
}

impl JobReporter for CodePipelineReporter {
    async fn put_job_success(&self, job_id: &str, success: &JobSuccess) -> Result<(), ReportError> {
        let details = (success.summary.is_some()
            || success.percent_complete.is_some()
            || success.external_execution_id.is_some())
        .then(|| {
            ExecutionDetails::builder()
                .set_summary(success.summary.clone())
                .set_percent_complete(success.percent_complete.map(i32::from))
                .set_external_execution_id(success.external_execution_id.clone())
                .build()
        });
        let variables = (!success.output_variables.is_empty()).then(|| {
            success
                .output_variables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        self.client
            .put_job_success_result()
            .job_id(job_id)
            .set_execution_details(details)
            .set_output_variables(variables)
            .set_continuation_token(success.continuation_token.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, ALREADY_DONE))
    }

    async fn put_job_failure(&self, job_id: &str, failure: &JobFailure) -> Result<(), ReportError> {
        let details = FailureDetails::builder()
            .r#type(failure_type(failure.kind))
            .message(failure.message.clone())
            .set_external_execution_id(failure.external_execution_id.clone())
            .build()
            .map_err(|e| ReportError::Rejected {
                code: "RequestConstructionFailure".to_owned(),
                message: e.to_string(),
            })?;
        self.client
            .put_job_failure_result()
            .job_id(job_id)
            .failure_details(details)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, ALREADY_DONE))
    }
}
