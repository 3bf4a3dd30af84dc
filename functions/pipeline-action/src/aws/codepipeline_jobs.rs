//! CodePipeline read adapter: implements [`JobLiveness`] with the SDK
//! client (`GetJobDetails`, `ListActionExecutions`). Apart from the
//! reporter ([`super::codepipeline`]) so a function that only reports gets
//! no read permission.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::ActionExecutionFilter;
use tollgate_aws::{SdkConfig, classify};
use tollgate_pipeline::Failure;
use tollgate_pipeline::liveness::{JobLiveness, Liveness};
use tollgate_report::ReportError;

/// Asks CodePipeline whether a job is still live
/// ([`tollgate_pipeline::liveness`]): `GetJobDetails` for its pipeline context,
/// then `ListActionExecutions` of that pipeline execution. Only the context
/// is read from `GetJobDetails`; its answer also carries the job's artifact
/// credentials, which are never kept, logged or shown.
#[derive(Debug, Clone)]
pub struct CodePipelineJobs {
    client: tollgate_aws::Lazy<Client>,
}

impl CodePipelineJobs {
    /// Builds the client (the SDK's standard retries: these are reads).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
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
