//! CodePipeline job reports: `PutJobSuccessResult` / `PutJobFailureResult`.

use super::deliver::{Undelivered, deliver};
use super::guard::{Budget, Step, WorkEnd, run_work};
use super::{Completion, ReportConfig, ReportError, ReportFailure, describe_json_error, limits};
use crate::events::codepipeline::{CodePipelineEvent, Job, salvage_job_id};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;

/// `failureDetails.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailureKind {
    /// The work ran and found a problem (a failed check, a failed rollout).
    JobFailed,
    /// The action is configured wrongly (bad `UserParameters`, bad spec).
    ConfigurationError,
    /// Access to something the action needs was denied.
    PermissionError,
    /// The revision is out of sync.
    RevisionOutOfSync,
    /// The revision is unavailable.
    RevisionUnavailable,
    /// A dependency was unavailable.
    SystemUnavailable,
}

impl FailureKind {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobFailed => "JobFailed",
            Self::ConfigurationError => "ConfigurationError",
            Self::PermissionError => "PermissionError",
            Self::RevisionOutOfSync => "RevisionOutOfSync",
            Self::RevisionUnavailable => "RevisionUnavailable",
            Self::SystemUnavailable => "SystemUnavailable",
        }
    }
}

/// Fields of `PutJobSuccessResult`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSuccess {
    /// `executionDetails.summary`.
    pub summary: Option<String>,
    /// `executionDetails.percentComplete` (0–100).
    pub percent_complete: Option<u8>,
    /// `executionDetails.externalExecutionId`.
    pub external_execution_id: Option<String>,
    /// `outputVariables` (not allowed with a continuation token).
    pub output_variables: BTreeMap<String, String>,
    /// Keeps the action in progress; CodePipeline re-invokes with it.
    pub continuation_token: Option<String>,
}

/// Fields of `PutJobFailureResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// `failureDetails.type`.
    pub kind: FailureKind,
    /// `failureDetails.message`: what broke and what to do.
    pub message: String,
    /// `failureDetails.externalExecutionId`.
    pub external_execution_id: Option<String>,
}

/// The result of a job's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// `PutJobSuccessResult`, final or with a continuation token.
    Success(JobSuccess),
    /// `PutJobFailureResult`.
    Failure(JobFailure),
}

impl JobOutcome {
    /// A final success with a summary.
    pub fn succeeded(summary: impl Into<String>) -> Self {
        Self::Success(JobSuccess {
            summary: Some(summary.into()),
            ..JobSuccess::default()
        })
    }

    /// An in-progress answer: CodePipeline calls again with `token`.
    pub fn in_progress(token: impl Into<String>, summary: impl Into<String>, percent: u8) -> Self {
        Self::Success(JobSuccess {
            summary: Some(summary.into()),
            percent_complete: Some(percent),
            continuation_token: Some(token.into()),
            ..JobSuccess::default()
        })
    }

    /// A failure of the given kind.
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> Self {
        Self::Failure(JobFailure {
            kind,
            message: message.into(),
            external_execution_id: None,
        })
    }

    /// The outcome made acceptable to the API: limits applied, empty fields
    /// dropped or filled, invalid variable keys renamed, variables dropped
    /// when a continuation token is present (the API rejects the pair).
    pub fn fitted(self) -> Self {
        match self {
            Self::Failure(f) => Self::Failure(JobFailure {
                kind: f.kind,
                message: limits::failure_message(&f.message),
                external_execution_id: limits::optional_field(
                    f.external_execution_id.as_deref(),
                    limits::EXTERNAL_EXECUTION_ID_MAX,
                ),
            }),
            Self::Success(s) => {
                let continuation_token = match s.continuation_token.as_deref() {
                    Some(t) if t.chars().count() > limits::CONTINUATION_TOKEN_MAX => {
                        // A cut token would be useless on the next call: fail instead.
                        return Self::failed(
                            FailureKind::JobFailed,
                            format!(
                                "internal error: the continuation token is {} chars, over the \
                                 API's {} limit; this is a bug in tollgate",
                                t.chars().count(),
                                limits::CONTINUATION_TOKEN_MAX
                            ),
                        );
                    }
                    Some("") | None => None,
                    Some(t) => Some(t.to_owned()),
                };
                let mut output_variables = BTreeMap::new();
                if continuation_token.is_some() && !s.output_variables.is_empty() {
                    tracing::warn!(
                        count = s.output_variables.len(),
                        "output variables dropped: the API does not accept them with a continuation token"
                    );
                } else {
                    let mut total = 0usize;
                    for (k, v) in s.output_variables {
                        let key = if limits::is_valid_variable_key(&k) {
                            k
                        } else {
                            let fixed = limits::sanitize_variable_key(&k);
                            tracing::warn!(key = %k, renamed = %fixed, "output variable key renamed to match [A-Za-z0-9@-_]+");
                            fixed
                        };
                        // An oversized value is dropped, never cut: a later
                        // stage would consume a corrupt value, while a
                        // missing one fails where it is referenced.
                        if v.chars().count() > limits::OUTPUT_VARIABLE_VALUE_MAX {
                            tracing::warn!(key = %key, chars = v.chars().count(), max = limits::OUTPUT_VARIABLE_VALUE_MAX, "output variable dropped: its value is over the limit");
                            continue;
                        }
                        if total + key.len() + v.len() > limits::OUTPUT_VARIABLES_TOTAL_MAX {
                            tracing::warn!(key = %key, max_bytes = limits::OUTPUT_VARIABLES_TOTAL_MAX, "output variable dropped: the variables' total would be over the limit");
                            continue;
                        }
                        total += key.len() + v.len();
                        output_variables.insert(key, v);
                    }
                }
                Self::Success(JobSuccess {
                    summary: limits::optional_field(s.summary.as_deref(), limits::SUMMARY_MAX),
                    percent_complete: s.percent_complete.map(|p| p.min(100)),
                    external_execution_id: limits::optional_field(
                        s.external_execution_id.as_deref(),
                        limits::EXTERNAL_EXECUTION_ID_MAX,
                    ),
                    output_variables,
                    continuation_token,
                })
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Success(s) if s.continuation_token.is_some() => "in-progress",
            Self::Success(_) => "success",
            Self::Failure(_) => "failure",
        }
    }
}

/// Port: sends CodePipeline job results. Adapters wrap the SDK client; tests
/// use fakes.
pub trait JobReporter: Send + Sync {
    /// `PutJobSuccessResult`.
    fn put_job_success(
        &self,
        job_id: &str,
        success: &JobSuccess,
    ) -> impl Future<Output = Result<(), ReportError>> + Send;
    /// `PutJobFailureResult`.
    fn put_job_failure(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> impl Future<Output = Result<(), ReportError>> + Send;
}

/// Runs `work` for one job and reports its outcome exactly once.
///
/// The work is cut off at the budget's work deadline; a panic or timeout is
/// reported as `JobFailed` naming the step.
pub async fn finish_job<R, F>(
    reporter: &R,
    job_id: &str,
    budget: Budget,
    step: Step,
    cfg: &ReportConfig,
    work: F,
) -> Result<Completion, ReportFailure>
where
    R: JobReporter,
    F: Future<Output = JobOutcome> + Send + 'static,
{
    let end = run_work(work, &step, &budget).await;
    let outcome = match end.failure_text(&budget) {
        Some(text) => JobOutcome::failed(FailureKind::JobFailed, text),
        None => match end {
            WorkEnd::Done(outcome) => outcome,
            // failure_text is Some for every other variant
            WorkEnd::Panicked { .. } | WorkEnd::TimedOut { .. } => {
                JobOutcome::failed(FailureKind::JobFailed, limits::EMPTY_FAILURE_MESSAGE)
            }
        },
    };
    report_job(reporter, job_id, outcome, budget, cfg).await
}

/// Reports an outcome that is already known (no work to run).
pub async fn report_job<R: JobReporter>(
    reporter: &R,
    job_id: &str,
    outcome: JobOutcome,
    budget: Budget,
    cfg: &ReportConfig,
) -> Result<Completion, ReportFailure> {
    let outcome = outcome.fitted();
    log_outcome(job_id, &outcome);
    let label = outcome.label();
    let (operation, (attempts, result)) = match &outcome {
        JobOutcome::Success(s) => {
            let op = "codepipeline:PutJobSuccessResult";
            (
                op,
                deliver(op, budget.hard_deadline, cfg, || {
                    reporter.put_job_success(job_id, s)
                })
                .await,
            )
        }
        JobOutcome::Failure(f) => {
            let op = "codepipeline:PutJobFailureResult";
            (
                op,
                deliver(op, budget.hard_deadline, cfg, || {
                    reporter.put_job_failure(job_id, f)
                })
                .await,
            )
        }
    };
    match result {
        Ok(delivery) => {
            tracing::info!(job_id, report = label, delivery = ?delivery, attempts, "job reported");
            Ok(Completion {
                report: label,
                delivery,
                attempts,
                id: job_id.to_owned(),
            })
        }
        // CodePipeline refused the success itself (e.g. its output
        // variables): left there, the action would wait out its 20 minutes.
        // Report the failure instead, with why (issue 14.7).
        Err(Undelivered::Permanent(rejected @ ReportError::Rejected { .. }))
            if matches!(outcome, JobOutcome::Success(_)) =>
        {
            tracing::error!(job_id, error = %rejected, "the success report was rejected; reporting a failure instead");
            let failure = JobOutcome::failed(
                FailureKind::JobFailed,
                format!(
                    "CodePipeline rejected this action's result ({rejected}), so the action is \
                     failed rather than left to time out; what the action did before reporting \
                     stays done. Check its output variables (size, names) and retry the stage"
                ),
            );
            Box::pin(report_job(reporter, job_id, failure, budget, cfg)).await
        }
        Err(undelivered) => Err(to_failure(operation, "pipeline action", undelivered)),
    }
}

pub(super) fn to_failure(
    operation: &'static str,
    waiting: &'static str,
    u: Undelivered,
) -> ReportFailure {
    let failure = match u {
        Undelivered::Permanent(ReportError::AccessDenied { code, message }) => {
            ReportFailure::Denied {
                operation,
                detail: format!("{code}: {message}"),
                waiting,
            }
        }
        Undelivered::Permanent(e) => ReportFailure::Rejected {
            operation,
            detail: e.to_string(),
        },
        Undelivered::OutOfTime { attempts, last } => ReportFailure::OutOfTime {
            operation,
            attempts,
            last: last.to_string(),
        },
    };
    tracing::error!(error = %failure, "report not delivered");
    failure
}

fn log_outcome(job_id: &str, outcome: &JobOutcome) {
    match outcome {
        JobOutcome::Success(s) => tracing::info!(
            job_id,
            outcome = if s.continuation_token.is_some() { "in-progress" } else { "success" },
            summary = s.summary.as_deref().unwrap_or(""),
            percent_complete = s.percent_complete,
            output_variables = ?s.output_variables,
            "job outcome"
        ),
        JobOutcome::Failure(f) => tracing::warn!(
            job_id,
            outcome = "failure",
            failure_type = f.kind.as_str(),
            message = %f.message,
            "job outcome"
        ),
    }
}

/// The whole invocation path for a CodePipeline job: parse the raw event,
/// run `work` under the guard, report once.
///
/// A payload that is not a job but still carries `CodePipeline.job.id` is
/// reported as a `ConfigurationError`; one without an id cannot be reported
/// and ends in a Lambda error naming the accepted shape.
pub async fn run_job<R, W, F>(
    reporter: &R,
    raw: serde_json::Value,
    budget: Budget,
    cfg: &ReportConfig,
    work: W,
) -> Result<Completion, ReportFailure>
where
    R: JobReporter,
    W: FnOnce(Job, Step) -> F,
    F: Future<Output = JobOutcome> + Send + 'static,
{
    let event: CodePipelineEvent = match serde_json::from_value::<CodePipelineEvent>(raw.clone()) {
        Ok(ev) => ev,
        Err(err) => {
            let detail = describe_json_error(&err);
            return match salvage_job_id(&raw) {
                Some(id) => {
                    let outcome = JobOutcome::failed(
                        FailureKind::ConfigurationError,
                        format!(
                            "the CodePipeline job event could not be read ({detail}); expected \
                             {{\"CodePipeline.job\": {{\"id\": …, \"data\": {{\"actionConfiguration\": …}}}}}}"
                        ),
                    );
                    report_job(reporter, id, outcome, budget, cfg).await
                }
                None => Err(ReportFailure::NotAnEvent(format!(
                    "the event is not a CodePipeline job ({detail}): expected a top-level \
                     \"CodePipeline.job\" object with an \"id\"; nothing was reported"
                ))),
            };
        }
    };
    let job_id = event.job.id.clone();
    tracing::info!(
        job_id = %job_id,
        continuation = event.job.data.continuation_token.is_some(),
        inputs = event.job.data.input_artifacts.len(),
        "job received"
    );
    let step = Step::default();
    let fut = work(event.job, step.clone());
    finish_job(reporter, &job_id, budget, step, cfg, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;

    #[derive(Default)]
    struct FakeReporter {
        sent: Mutex<Vec<(String, JobOutcome)>>,
    }

    impl JobReporter for FakeReporter {
        async fn put_job_success(
            &self,
            job_id: &str,
            success: &JobSuccess,
        ) -> Result<(), ReportError> {
            self.sent
                .lock()
                .expect("lock")
                .push((job_id.into(), JobOutcome::Success(success.clone())));
            Ok(())
        }
        async fn put_job_failure(
            &self,
            job_id: &str,
            failure: &JobFailure,
        ) -> Result<(), ReportError> {
            self.sent
                .lock()
                .expect("lock")
                .push((job_id.into(), JobOutcome::Failure(failure.clone())));
            Ok(())
        }
    }

    fn budget(ms: u64) -> Budget {
        let cfg = ReportConfig {
            reserve: Duration::from_millis(50),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        Budget::within(Instant::now() + Duration::from_millis(ms), &cfg)
    }

    fn job_event(user_parameters: &str) -> serde_json::Value {
        serde_json::json!({"CodePipeline.job": {"id": "job-1", "accountId": "111111111111",
            "data": {"actionConfiguration": {"configuration": {"FunctionName": "f", "UserParameters": user_parameters}},
                     "inputArtifacts": [], "outputArtifacts": []}}})
    }

    #[tokio::test]
    async fn success_is_reported_once() {
        let r = FakeReporter::default();
        let c = run_job(
            &r,
            job_event("{}"),
            budget(2000),
            &ReportConfig::default(),
            |_job, _step| async { JobOutcome::succeeded("all good") },
        )
        .await
        .expect("delivered");
        assert_eq!(c.report, "success");
        let sent = r.sent.lock().expect("lock");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "job-1");
    }

    #[tokio::test]
    async fn a_malformed_job_with_an_id_gets_a_configuration_error() {
        let r = FakeReporter::default();
        let raw = serde_json::json!({"CodePipeline.job": {"id": "job-9", "data": "nope"}});
        run_job(
            &r,
            raw,
            budget(2000),
            &ReportConfig::default(),
            |_j, _s| async { JobOutcome::succeeded("never") },
        )
        .await
        .expect("delivered");
        let sent = r.sent.lock().expect("lock");
        assert_eq!(sent.len(), 1);
        match &sent[0].1 {
            JobOutcome::Failure(f) => {
                assert_eq!(f.kind, FailureKind::ConfigurationError);
                assert!(f.message.contains("could not be read"), "{}", f.message);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_payload_without_a_job_is_a_lambda_error() {
        let r = FakeReporter::default();
        let err = run_job(
            &r,
            serde_json::json!({"hello": 1}),
            budget(2000),
            &ReportConfig::default(),
            |_j, _s| async { JobOutcome::succeeded("never") },
        )
        .await
        .expect_err("not a job");
        assert_eq!(err.error_type(), "UnrecognisedEvent");
        assert!(err.to_string().contains("CodePipeline.job"));
        assert!(r.sent.lock().expect("lock").is_empty());
    }

    #[test]
    fn fitting_applies_every_limit() {
        let mut vars = BTreeMap::new();
        vars.insert("image uri".to_owned(), "x".to_owned());
        let s = JobOutcome::Success(JobSuccess {
            summary: Some("s".repeat(3000)),
            percent_complete: Some(150),
            external_execution_id: Some("e".repeat(2000)),
            output_variables: vars,
            continuation_token: None,
        })
        .fitted();
        let JobOutcome::Success(s) = s else {
            panic!("still a success")
        };
        assert_eq!(
            s.summary.map(|x| x.chars().count()),
            Some(limits::SUMMARY_MAX)
        );
        assert_eq!(s.percent_complete, Some(100));
        assert_eq!(
            s.external_execution_id.map(|x| x.chars().count()),
            Some(limits::EXTERNAL_EXECUTION_ID_MAX)
        );
        assert!(s.output_variables.contains_key("image_uri"));
    }

    #[test]
    fn variables_are_dropped_with_a_continuation_token() {
        let mut s = JobSuccess {
            continuation_token: Some("t".into()),
            ..JobSuccess::default()
        };
        s.output_variables.insert("a".into(), "b".into());
        let JobOutcome::Success(s) = JobOutcome::Success(s).fitted() else {
            panic!("success")
        };
        assert!(s.output_variables.is_empty());
        assert_eq!(s.continuation_token.as_deref(), Some("t"));
    }

    #[test]
    fn an_oversized_token_becomes_a_failure() {
        let out = JobOutcome::in_progress("t".repeat(3000), "waiting", 10).fitted();
        assert!(matches!(out, JobOutcome::Failure(f) if f.message.contains("continuation token")));
    }

    /// CodePipeline refuses the success itself (its output variables): the
    /// job is reported failed with why, instead of waiting 20 minutes.
    #[tokio::test]
    async fn a_rejected_success_becomes_a_failure_report() {
        struct RejectsSuccess(FakeReporter);
        impl JobReporter for RejectsSuccess {
            async fn put_job_success(&self, _: &str, _: &JobSuccess) -> Result<(), ReportError> {
                Err(ReportError::Rejected {
                    code: "OutputVariablesSizeExceededException".into(),
                    message: "Exceeded the total size limit for all variables".into(),
                })
            }
            async fn put_job_failure(
                &self,
                job_id: &str,
                failure: &JobFailure,
            ) -> Result<(), ReportError> {
                self.0.put_job_failure(job_id, failure).await
            }
        }
        let fake = RejectsSuccess(FakeReporter::default());
        let mut success = JobSuccess {
            summary: Some("done".into()),
            ..JobSuccess::default()
        };
        success.output_variables.insert("image".into(), "x".into());
        let c = report_job(
            &fake,
            "job-1",
            JobOutcome::Success(success),
            budget(2000),
            &ReportConfig::default(),
        )
        .await
        .expect("the failure was delivered");
        assert_eq!(c.report, "failure");
        let sent = fake.0.sent.lock().expect("lock").clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let JobOutcome::Failure(f) = &sent[0].1 else {
            panic!("{sent:?}");
        };
        assert_eq!(f.kind, FailureKind::JobFailed);
        assert!(
            f.message
                .contains("CodePipeline rejected this action's result")
                && f.message.contains("OutputVariablesSizeExceededException"),
            "{}",
            f.message
        );
    }

    #[test]
    fn output_variables_are_capped() {
        let mut success = JobSuccess::default();
        success
            .output_variables
            .insert("a_long".into(), "v".repeat(10_000));
        for i in 0..40 {
            success
                .output_variables
                .insert(format!("k{i:02}"), "w".repeat(3_000));
        }
        success
            .output_variables
            .insert("zz_small".into(), "ok".into());
        let JobOutcome::Success(s) = JobOutcome::Success(success).fitted() else {
            panic!("still a success");
        };
        assert!(
            !s.output_variables.contains_key("a_long"),
            "an oversized value is dropped, never cut"
        );
        assert_eq!(
            s.output_variables.get("zz_small").map(String::as_str),
            Some("ok"),
            "a small variable after a dropped one still fits"
        );
        let total: usize = s
            .output_variables
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        assert!(total <= limits::OUTPUT_VARIABLES_TOTAL_MAX, "{total}");
        assert!(s.output_variables.len() < 41);
    }
}
