//! CodePipeline adapter: implements [`JobReporter`] and [`JobLiveness`] with
//! the SDK client.

use super::{SdkConfig, classify, no_sdk_retries};
use crate::actions::Failure;
use crate::actions::liveness::{JobLiveness, Liveness};
use crate::report::{JobFailure, JobReporter, JobSuccess, ReportError};
use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{
    ActionExecutionFilter, ExecutionDetails, FailureDetails, FailureType,
};

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

fn failure_type(kind: crate::report::FailureKind) -> FailureType {
    use crate::report::FailureKind as K;
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

/// Asks CodePipeline whether a job is still live
/// ([`crate::actions::liveness`]): `GetJobDetails` for its pipeline context,
/// then `ListActionExecutions` of that pipeline execution. Only the context
/// is read from `GetJobDetails`; its answer also carries the job's artifact
/// credentials, which are never kept, logged or shown.
#[derive(Debug, Clone)]
pub struct CodePipelineJobs {
    client: Client,
}

impl CodePipelineJobs {
    /// Builds the client (the SDK's standard retries: these are reads).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: Client::new(sdk),
        }
    }
}

/// Pages of `ListActionExecutions` read at most (100 executions each).
const MAX_PAGES: usize = 5;

fn read_failure(operation: &str, e: ReportError) -> Failure {
    match e {
        ReportError::AccessDenied { code, .. } => Failure::permission(format!(
            "{operation} was denied ({code}); add \"{operation}\" to the function's execution \
             role (pipeline-action asks CodePipeline whether a job is still live before it \
             changes anything)"
        )),
        other => Failure::unavailable(format!(
            "could not ask CodePipeline whether this job is still live ({operation}: {other}); \
             nothing was changed; retry the stage"
        )),
    }
}

impl JobLiveness for CodePipelineJobs {
    async fn liveness(&self, job_id: &str) -> Result<Liveness, Failure> {
        let details = match self.client.get_job_details().job_id(job_id).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = classify(e, &[]);
                if let ReportError::Rejected { code, .. } = &e
                    && code == "JobNotFoundException"
                {
                    return Ok(Liveness::Gone {
                        why: format!("CodePipeline no longer knows job {job_id}"),
                    });
                }
                return Err(read_failure("codepipeline:GetJobDetails", e));
            }
        };
        let context = details
            .job_details
            .and_then(|d| d.data)
            .and_then(|d| d.pipeline_context);
        let Some(context) = context else {
            return Err(Failure::unavailable(
                "GetJobDetails answered without the job's pipeline context; nothing was changed; \
                 retry the stage",
            ));
        };
        let pipeline = context.pipeline_name.unwrap_or_default();
        let execution = context.pipeline_execution_id.unwrap_or_default();
        let stage = context.stage.and_then(|s| s.name).unwrap_or_default();
        let (action, action_execution) = context
            .action
            .map(|a| (a.name.unwrap_or_default(), a.action_execution_id))
            .unwrap_or_default();
        let Some(action_execution) = action_execution.filter(|_| !pipeline.is_empty()) else {
            return Err(Failure::unavailable(
                "GetJobDetails named no pipeline or action execution for this job; nothing was \
                 changed; retry the stage",
            ));
        };
        let filter = ActionExecutionFilter::builder()
            .pipeline_execution_id(&execution)
            .build();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .list_action_executions()
                .pipeline_name(&pipeline)
                .filter(filter.clone())
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| read_failure("codepipeline:ListActionExecutions", classify(e, &[])))?;
            let found = out
                .action_execution_details
                .unwrap_or_default()
                .into_iter()
                .find(|d| d.action_execution_id.as_deref() == Some(action_execution.as_str()));
            if let Some(d) = found {
                let status = d.status.as_ref().map(|s| s.as_str().to_owned());
                return Ok(match status.as_deref() {
                    Some("InProgress") => Liveness::Live {
                        started_at_ms: d.start_time.and_then(|t| t.to_millis().ok()),
                    },
                    other => Liveness::Gone {
                        why: format!(
                            "action execution {action_execution} of {pipeline}/{stage}/{action} \
                             is {}",
                            other.unwrap_or("in an unknown state")
                        ),
                    },
                });
            }
            next = out.next_token;
            if next.is_none() {
                break;
            }
        }
        // Not listed (yet): it cannot be confirmed either way. Nothing is
        // changed; the job fails with a retryable reason.
        Err(Failure::unavailable(format!(
            "could not confirm that this job is still live: action execution \
             {action_execution} of {pipeline}/{stage}/{action} is not (yet) listed for pipeline \
             execution {execution}; nothing was changed; retry the stage"
        )))
    }
}
