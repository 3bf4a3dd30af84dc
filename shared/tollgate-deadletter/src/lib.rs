//! # tollgate-deadletter
//!
//! The logic of the dead-letter consumer: the last line of defence (issue 14 §2).
//!
//! Invariant: may fail jobs and hooks but never pass them
//! ([`FailuresOnly`]); names no AWS SDK crate; depends on `tollgate-core`
//! and `tollgate-report` only.
//!
//! An out-of-memory kill, a Lambda timeout, a crash or a report that could
//! not be delivered ends an invocation with no report, and Lambda, after its
//! retries, drops the event into the function's on-failure SQS queue. This
//! consumer reads those queues (pipeline-action's and deploy-hook's) and
//! reports each job or hook **Failed** with what happened
//! ([`record::DestinationRecord::what_happened`]), so the pipeline or the
//! deployment stops at once instead of waiting out its timeout.
//!
//! - "Already reported" answers (the job or hook has a result) are success:
//!   the report core ([`tollgate_report`]) treats them as done.
//! - The answer is a partial batch response: a record that could not be
//!   reported (throttled to the end, denied, not a destination record) is
//!   returned to the queue alone; after the queue's `maxReceiveCount` it
//!   moves to the unreported queue, which alarms. A permanent rejection
//!   (the service does not know the job or hook) is logged with
//!   [`UNREPORTABLE_ALERT`] and dropped: no retry can change it.
//! - A record with nothing to report to (an ECS native hook, which ECS
//!   invokes synchronously; an event of no known kind) is logged and
//!   dropped.
//! - Nothing it writes quotes the event or the error message.

pub mod record;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use record::{DestinationRecord, Subject};
use tollgate_report::pipeline::run_job;
use tollgate_report::{
    Budget, Completion, FailureKind, HookOutcome, HookReporter, JobOutcome, JobReporter,
    ReportConfig, ReportFailure,
};

/// `alert` field of the log line written for every job or hook this
/// consumer reported failed; the template's metric filter counts them.
pub const DEAD_LETTER_ALERT: &str = "DeadLetterReported";

/// `alert` field of the log line written for a record whose job or hook
/// the service rejected permanently (unknown id): counted by the template's
/// `DeadLetterUnreportable` metric.
pub const UNREPORTABLE_ALERT: &str = "DeadLetterUnreportable";

/// Environment variables the consumer reads.
pub mod vars {
    /// pipeline-action's log group, named in its failure reports.
    pub const PIPELINE_ACTION_LOG_GROUP: &str = "TOLLGATE_PIPELINE_ACTION_LOG_GROUP";
    /// deploy-hook's log group, named in its failure logs.
    pub const DEPLOY_HOOK_LOG_GROUP: &str = "TOLLGATE_DEPLOY_HOOK_LOG_GROUP";
}

/// Where the failed functions log (named in what the consumer reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogGroups {
    /// pipeline-action's log group.
    pub pipeline_action: Option<String>,
    /// deploy-hook's log group.
    pub deploy_hook: Option<String>,
}

impl LogGroups {
    /// Reads the log groups (optional; absent ones fall back to
    /// `/aws/lambda/<function>`). A value that is not a log group name is
    /// ignored rather than echoed.
    pub fn from_env(env: &impl tollgate_core::config::Env) -> Self {
        let read = |name: &str| {
            env.get(name).filter(|v| {
                !v.is_empty()
                    && v.len() <= 512
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c))
            })
        };
        Self {
            pipeline_action: read(vars::PIPELINE_ACTION_LOG_GROUP),
            deploy_hook: read(vars::DEPLOY_HOOK_LOG_GROUP),
        }
    }
}

/// A job reporter that can only fail jobs: the consumer never passes one,
/// and its role is not allowed to (`codepipeline:PutJobSuccessResult` is
/// not granted; tests/tests/iam_policy.rs relies on this wrapper).
#[derive(Debug)]
pub struct FailuresOnly<J>(pub J);

impl<J: JobReporter> JobReporter for FailuresOnly<J> {
    async fn put_job_success(
        &self,
        _job_id: &str,
        _success: &tollgate_report::JobSuccess,
    ) -> Result<(), tollgate_report::ReportError> {
        Err(tollgate_report::ReportError::Rejected {
            code: "FailuresOnly".to_owned(),
            message: "the dead-letter consumer reports failures only".to_owned(),
        })
    }

    async fn put_job_failure(
        &self,
        job_id: &str,
        failure: &tollgate_report::JobFailure,
    ) -> Result<(), tollgate_report::ReportError> {
        self.0.put_job_failure(job_id, failure).await
    }
}

/// The consumer: one reporter per protocol.
#[derive(Debug)]
pub struct DeadLetter<J, H> {
    /// Reports CodePipeline jobs (failures only).
    pub jobs: FailuresOnly<J>,
    /// Reports CodeDeploy hooks.
    pub hooks: H,
    /// Named in reports.
    pub log_groups: LogGroups,
    /// Report tuning.
    pub report: ReportConfig,
}

/// How one record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEnd {
    /// Reported failed (or already reported): delete the message.
    Reported(Completion),
    /// Nothing to report to: delete the message.
    Dropped(&'static str),
    /// Could not be reported: return it to the queue.
    Retry(String),
}

impl<J: JobReporter, H: HookReporter> DeadLetter<J, H> {
    /// Handles one SQS batch; records run concurrently (a batch is at most
    /// the event source mapping's `BatchSize`, ten in the template). The
    /// answer lists the records to return to the queue.
    pub async fn handle(&self, event: SqsEvent, budget: Budget) -> SqsBatchResponse {
        let ends = futures::future::join_all(
            event
                .records
                .iter()
                .map(|message| self.handle_record(message, budget)),
        )
        .await;
        let mut answer = SqsBatchResponse::default();
        for (message, end) in event.records.iter().zip(ends) {
            if let RecordEnd::Retry(_) = end {
                // Without an id the whole batch must be retried: an empty
                // identifier makes Lambda treat the batch as failed.
                answer.add_failure(message.message_id.clone().unwrap_or_default());
            }
        }
        answer
    }

    /// Handles one record.
    pub async fn handle_record(&self, message: &SqsMessage, budget: Budget) -> RecordEnd {
        let message_id = message.message_id.as_deref().unwrap_or("(none)");
        let Some(body) = message.body.as_deref() else {
            tracing::error!(message_id, "the message has no body; returned to the queue");
            return RecordEnd::Retry("no body".to_owned());
        };
        let record: DestinationRecord = match serde_json::from_str(body) {
            Ok(r) => r,
            Err(e) => {
                // The body may be anything: describe the error, quote nothing.
                let detail = tollgate_report::describe_json_error(&e);
                tracing::error!(
                    message_id,
                    error = %detail,
                    "not a Lambda destination record; returned to the queue (it moves to the \
                     unreported queue after the queue's maxReceiveCount)"
                );
                return RecordEnd::Retry(format!("not a destination record: {detail}"));
            }
        };
        let request_id = record.request_context.request_id.clone();
        let end = match record.subject() {
            Subject::PipelineJob => {
                let reason = record.what_happened(
                    "pipeline-action",
                    self.log_groups.pipeline_action.as_deref(),
                );
                let payload = record.request_payload;
                let outcome = JobOutcome::failed(FailureKind::JobFailed, reason.clone());
                run_job(
                    &self.jobs,
                    payload,
                    budget,
                    &self.report,
                    move |_, _| async move { outcome },
                )
                .await
                .map(|c| (c, reason))
            }
            Subject::CodeDeployHook => {
                let reason =
                    record.what_happened("deploy-hook", self.log_groups.deploy_hook.as_deref());
                let payload = record.request_payload;
                let outcome = HookOutcome::failed(reason.clone());
                tollgate_report::hook::run_hook(
                    &self.hooks,
                    payload,
                    budget,
                    &self.report,
                    move |_, _| async move { outcome },
                )
                .await
                .map(|c| (c, reason))
            }
            Subject::Unreportable(why) => {
                tracing::warn!(
                    message_id,
                    request_id = %request_id,
                    function = record.function_name().unwrap_or("(unknown)"),
                    "nothing to report: the failed event is {why}; dropped"
                );
                return RecordEnd::Dropped(why);
            }
        };
        match end {
            Ok((completion, reason)) => {
                tracing::error!(
                    alert = DEAD_LETTER_ALERT,
                    message_id,
                    id = %completion.id,
                    delivery = ?completion.delivery,
                    reason = %reason,
                    "a job or hook whose invocations all failed was reported failed"
                );
                RecordEnd::Reported(completion)
            }
            Err(failure) if is_permanent(&failure) => {
                // No retry can help (the job or hook is unknown, the record
                // names no id): returning it would only delay the alarm.
                tracing::error!(
                    alert = UNREPORTABLE_ALERT,
                    message_id,
                    request_id = %request_id,
                    error_type = failure.error_type(),
                    error = %failure,
                    "the failure cannot be reported (a permanent rejection); dropped"
                );
                RecordEnd::Dropped("the service rejected the report permanently")
            }
            Err(failure) => {
                let retry = retry_note(&failure);
                tracing::error!(
                    message_id,
                    request_id = %request_id,
                    error_type = failure.error_type(),
                    error = %failure,
                    "the failure could not be reported; {retry}"
                );
                RecordEnd::Retry(failure.to_string())
            }
        }
    }
}

/// A rejection no retry can change: the service does not know the job or
/// hook (or the record names none). Denials and timeouts can pass.
fn is_permanent(failure: &ReportFailure) -> bool {
    matches!(
        failure,
        ReportFailure::Rejected { .. } | ReportFailure::NotAnEvent(_)
    )
}

fn retry_note(failure: &ReportFailure) -> &'static str {
    match failure {
        ReportFailure::Denied { .. } => {
            "returned to the queue: grant the permission to the dead-letter consumer's role"
        }
        _ => "returned to the queue (it moves to the unreported queue after maxReceiveCount)",
    }
}

/// The consumer as a Lambda function: an SQS batch in, the records to
/// retry out (partial batch response).
impl<J, H> tollgate_report::lambda::Function for DeadLetter<J, H>
where
    J: JobReporter + 'static,
    H: HookReporter + 'static,
{
    type Event = SqsEvent;
    type Output = SqsBatchResponse;

    async fn handle(
        &self,
        event: SqsEvent,
        invocation: tollgate_report::lambda::Invocation,
    ) -> Result<SqsBatchResponse, lambda_runtime::Diagnostic> {
        Ok(DeadLetter::handle(self, event, invocation.budget(&self.report)).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;
    use tokio::time::Instant;
    use tollgate_report::{Delivery, HookStatus, JobSuccess, ReportError};
    use tollgate_test_support::reporters::{
        FakeHookReporter, FakeJobReporter, already_reported, denied, rejected, throttled,
    };

    fn consumer() -> DeadLetter<FakeJobReporter, FakeHookReporter> {
        DeadLetter {
            jobs: FailuresOnly(FakeJobReporter::default()),
            hooks: FakeHookReporter::default(),
            log_groups: LogGroups {
                pipeline_action: Some("/tollgate/tg/pipeline-action".into()),
                deploy_hook: None,
            },
            report: ReportConfig {
                reserve: Duration::from_millis(500),
                attempt_timeout: Duration::from_millis(100),
                safety_margin: Duration::from_millis(10),
            },
        }
    }

    fn budget() -> Budget {
        Budget::within(Instant::now() + Duration::from_secs(5), &consumer().report)
    }

    fn message(id: &str, body: Value) -> SqsMessage {
        serde_json::from_value(json!({
            "messageId": id, "receiptHandle": "rh", "body": body.to_string(),
            "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:111111111111:q",
            "awsRegion": "eu-west-1"
        }))
        .expect("message")
    }

    use serde_json::Value;

    fn destination(payload: Value) -> Value {
        json!({
            "version": "1.0",
            "requestContext": {"requestId": "r-1", "functionArn":
                "arn:aws:lambda:eu-west-1:111111111111:function:f", "condition": "RetriesExhausted",
                "approximateInvokeCount": 3},
            "requestPayload": payload,
            "responseContext": {"functionError": "Unhandled"},
            "responsePayload": {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out"}
        })
    }

    fn job(id: &str) -> Value {
        json!({"CodePipeline.job": {"id": id, "accountId": "111111111111", "data": {
            "actionConfiguration": {"configuration": {"FunctionName": "f", "UserParameters": "smoke"}},
            "inputArtifacts": [], "outputArtifacts": [],
            "artifactCredentials": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "SECRETKEY", "sessionToken": "t"}
        }}})
    }

    #[tokio::test]
    async fn jobs_and_hooks_are_reported_failed_and_bad_records_retried_alone() {
        let c = consumer();
        let mut event = SqsEvent::default();
        event.records = vec![
            message("m1", destination(job("job-1"))),
            message(
                "m2",
                destination(json!({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "e-1"})),
            ),
            message("m3", json!({"not": "a record"})),
            message(
                "m4",
                destination(json!({"executionId": "x", "lifecycleStage": "PRE_SCALE_UP"})),
            ),
        ];
        let answer = c.handle(event, budget()).await;
        let failed: Vec<_> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m3"]);
        let jobs = c.jobs.0.calls();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].0, "job-1");
        assert!(
            jobs[0].1.starts_with(
                "JobFailed: pipeline-action failed 3 times (RetriesExhausted): Sandbox.Timedout"
            ),
            "{jobs:?}"
        );
        assert!(
            jobs[0]
                .1
                .contains("logs: /tollgate/tg/pipeline-action, search for job-1."),
            "{jobs:?}"
        );
        assert!(!jobs[0].1.contains("SECRETKEY") && !jobs[0].1.contains("Task timed out"));
        assert_eq!(
            c.hooks.calls(),
            [("d-1".to_owned(), "e-1".to_owned(), HookStatus::Failed)]
        );
    }

    #[tokio::test]
    async fn already_reported_is_done_and_a_denied_report_is_retried() {
        let c = consumer();
        c.jobs.0.script.push([
            Err(already_reported("InvalidJobStateException")),
            Err(denied()),
        ]);
        let first = c
            .handle_record(&message("m1", destination(job("j1"))), budget())
            .await;
        assert!(
            matches!(&first, RecordEnd::Reported(done) if done.delivery == Delivery::AlreadyReported),
            "{first:?}"
        );
        let second = c
            .handle_record(&message("m2", destination(job("j2"))), budget())
            .await;
        assert!(
            matches!(&second, RecordEnd::Retry(why) if why.contains("codepipeline:PutJobFailureResult")),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn a_permanent_rejection_is_dropped_not_retried() {
        let c = consumer();
        c.jobs
            .0
            .script
            .push([Err(rejected("JobNotFoundException"))]);
        let end = c
            .handle_record(&message("m", destination(job("gone"))), budget())
            .await;
        assert!(matches!(end, RecordEnd::Dropped(_)), "{end:?}");
        let no_id = c
            .handle_record(
                &message("m2", destination(json!({"CodePipeline.job": {}}))),
                budget(),
            )
            .await;
        assert!(matches!(no_id, RecordEnd::Dropped(_)), "{no_id:?}");
    }

    #[tokio::test]
    async fn the_consumer_cannot_pass_a_job() {
        let c = consumer();
        let e = c.jobs.put_job_success("j", &JobSuccess::default()).await;
        assert!(matches!(e, Err(ReportError::Rejected { .. })), "{e:?}");
        assert!(c.jobs.0.calls().is_empty());
    }

    #[tokio::test]
    async fn a_throttled_report_is_retried_within_the_budget() {
        let c = consumer();
        c.hooks.script.push([Err(throttled())]);
        let end = c
            .handle_record(
                &message(
                    "m",
                    destination(json!({"DeploymentId": "d", "LifecycleEventHookExecutionId": "e"})),
                ),
                budget(),
            )
            .await;
        assert!(matches!(end, RecordEnd::Reported(_)), "{end:?}");
        assert_eq!(c.hooks.calls().len(), 2);
    }
}
