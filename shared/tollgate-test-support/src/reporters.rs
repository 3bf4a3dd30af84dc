//! Fakes of the report core's ports (`tollgate_report::JobReporter` and
//! `tollgate_report::HookReporter`): one per port. Each records every call
//! and answers from a script: accept, already reported, throttled `n` times
//! then accept, denied, or any list of answers.
//!
//! A crate's own unit tests cannot use these for its own traits (the fake
//! would implement another instance of the trait), so `tollgate-report`'s
//! unit tests keep their in-crate fakes.

use crate::parameters::Log;
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Mutex;
use tollgate_report::ReportError;
use tollgate_report::{HookReporter, HookStatus, JobFailure, JobOutcome, JobReporter, JobSuccess};

/// The answers a fake reporter gives, in order; once they run out, every
/// call gets `then` (accept unless set).
#[derive(Debug)]
pub struct Script {
    answers: Mutex<VecDeque<Result<(), ReportError>>>,
    then: Result<(), ReportError>,
}

impl Default for Script {
    fn default() -> Self {
        Self::accept()
    }
}

impl Script {
    /// Accepts every report.
    pub fn accept() -> Self {
        Self {
            answers: Mutex::default(),
            then: Ok(()),
        }
    }

    /// Answers `answers` in order, then accepts.
    pub fn answers(answers: impl IntoIterator<Item = Result<(), ReportError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            then: Ok(()),
        }
    }

    /// Answers `error` to every call.
    pub fn always(error: ReportError) -> Self {
        Self {
            answers: Mutex::default(),
            then: Err(error),
        }
    }

    /// Throttles the first `n` calls, then accepts.
    pub fn throttled(n: usize) -> Self {
        Self::answers((0..n).map(|_| Err(throttled())))
    }

    /// Says the first call was already reported (a duplicate), then accepts.
    pub fn already_reported(code: &str) -> Self {
        Self::answers([Err(already_reported(code))])
    }

    /// Denies every call (`AccessDeniedException`).
    pub fn denied() -> Self {
        Self::always(denied())
    }

    /// Adds answers after the ones still queued.
    pub fn push(&self, answers: impl IntoIterator<Item = Result<(), ReportError>>) {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(answers);
    }

    /// The next answer.
    pub fn answer(&self) -> Result<(), ReportError> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or_else(|| self.then.clone())
    }
}

/// `ThrottlingException`, retryable.
pub fn throttled() -> ReportError {
    ReportError::Throttled {
        code: "ThrottlingException".to_owned(),
        message: "Rate exceeded".to_owned(),
    }
}

/// An "already reported" answer with the service's `code`
/// (`InvalidJobStateException`, `LifecycleEventAlreadyCompletedException`).
pub fn already_reported(code: &str) -> ReportError {
    ReportError::AlreadyReported {
        code: code.to_owned(),
        message: String::new(),
    }
}

/// `AccessDeniedException`, permanent.
pub fn denied() -> ReportError {
    ReportError::AccessDenied {
        code: "AccessDeniedException".to_owned(),
        message: String::new(),
    }
}

/// A permanent rejection with `code` (e.g. `JobNotFoundException`).
pub fn rejected(code: &str) -> ReportError {
    ReportError::Rejected {
        code: code.to_owned(),
        message: String::new(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// In-memory [`JobReporter`]: records every call (answered or not) in
/// [`FakeJobReporter::sent`] and answers from its [`Script`].
#[derive(Debug, Default)]
pub struct FakeJobReporter {
    /// Every report, in order: the job id and what was sent.
    pub sent: Mutex<Vec<(String, JobOutcome)>>,
    /// The answers.
    pub script: Script,
    /// Shared log of calls (`PutJobSuccessResult <job>` /
    /// `PutJobFailureResult <job>`), for ordering against other fakes.
    pub log: Log,
    discard: bool,
}

impl FakeJobReporter {
    /// A reporter answering from `script`.
    pub fn answering(script: Script) -> Self {
        Self {
            script,
            ..Self::default()
        }
    }

    /// A reporter that accepts and keeps nothing (benchmarks: the core is
    /// measured, not the fake).
    pub fn discarding() -> Self {
        Self {
            discard: true,
            ..Self::default()
        }
    }

    /// Reports sent so far.
    pub fn sent(&self) -> Vec<(String, JobOutcome)> {
        lock(&self.sent).clone()
    }

    /// Reports sent so far, one line each: `success`, `in-progress` or
    /// `<FailureKind>: <message>`.
    pub fn calls(&self) -> Vec<(String, String)> {
        lock(&self.sent)
            .iter()
            .map(|(id, outcome)| {
                let what = match outcome {
                    JobOutcome::Success(s) if s.continuation_token.is_some() => {
                        "in-progress".to_owned()
                    }
                    JobOutcome::Success(_) => "success".to_owned(),
                    JobOutcome::Failure(f) => format!("{}: {}", f.kind.as_str(), f.message),
                };
                (id.clone(), what)
            })
            .collect()
    }

    fn record(&self, operation: &str, job_id: &str, outcome: impl FnOnce() -> JobOutcome) {
        if self.discard {
            black_box(job_id);
            return;
        }
        lock(&self.log).push(format!("{operation} {job_id}"));
        lock(&self.sent).push((job_id.to_owned(), outcome()));
    }
}

impl JobReporter for FakeJobReporter {
    async fn put_job_success(&self, job_id: &str, success: &JobSuccess) -> Result<(), ReportError> {
        black_box(success);
        self.record("PutJobSuccessResult", job_id, || {
            JobOutcome::Success(success.clone())
        });
        self.script.answer()
    }

    async fn put_job_failure(&self, job_id: &str, failure: &JobFailure) -> Result<(), ReportError> {
        black_box(failure);
        self.record("PutJobFailureResult", job_id, || {
            JobOutcome::Failure(failure.clone())
        });
        self.script.answer()
    }
}

/// One hook report: deployment id, lifecycle event hook execution id, status.
pub type HookCall = (String, String, HookStatus);

/// In-memory [`HookReporter`]: records every call in
/// [`FakeHookReporter::sent`] and answers from its [`Script`].
#[derive(Debug, Default)]
pub struct FakeHookReporter {
    /// Every report, in order.
    pub sent: Mutex<Vec<HookCall>>,
    /// The answers.
    pub script: Script,
    /// Shared log of calls (`PutLifecycleEventHookExecutionStatus <status>`),
    /// for ordering against other fakes.
    pub log: Log,
}

impl FakeHookReporter {
    /// A reporter answering from `script`.
    pub fn answering(script: Script) -> Self {
        Self {
            script,
            ..Self::default()
        }
    }

    /// A reporter writing its calls to the shared `log` too.
    pub fn logging_to(log: Log) -> Self {
        Self {
            log,
            ..Self::default()
        }
    }

    /// Reports sent so far.
    pub fn calls(&self) -> Vec<HookCall> {
        lock(&self.sent).clone()
    }
}

impl HookReporter for FakeHookReporter {
    async fn put_hook_status(
        &self,
        deployment_id: &str,
        execution_id: &str,
        status: HookStatus,
    ) -> Result<(), ReportError> {
        lock(&self.log).push(format!(
            "PutLifecycleEventHookExecutionStatus {}",
            status.as_str()
        ));
        lock(&self.sent).push((deployment_id.to_owned(), execution_id.to_owned(), status));
        self.script.answer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripts_answer_in_order_then_fall_back() {
        let r = FakeJobReporter::answering(Script::throttled(2));
        let failure = JobFailure {
            kind: tollgate_report::FailureKind::JobFailed,
            message: "m".to_owned(),
            external_execution_id: None,
        };
        assert_eq!(r.put_job_failure("j", &failure).await, Err(throttled()));
        assert_eq!(r.put_job_failure("j", &failure).await, Err(throttled()));
        assert_eq!(r.put_job_failure("j", &failure).await, Ok(()));
        assert_eq!(
            r.calls(),
            vec![("j".to_owned(), "JobFailed: m".to_owned()); 3]
        );

        let h = FakeHookReporter::answering(Script::denied());
        for _ in 0..2 {
            assert_eq!(
                h.put_hook_status("d", "e", HookStatus::Failed).await,
                Err(denied())
            );
        }
        assert_eq!(h.log.lock().expect("log").len(), 2);
    }
}
