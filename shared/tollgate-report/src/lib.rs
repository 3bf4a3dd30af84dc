//! # tollgate-report
//!
//! The exactly-once report core, the payload types the reporting functions
//! receive ([`events`]), the report tuning read at init ([`config`]) and the
//! glue to the Lambda runtime ([`lambda`]).
//!
//! Invariant: names no AWS SDK crate (reports go through the
//! [`JobReporter`] / [`HookReporter`] ports) and depends only on
//! `tollgate-core`.
//!
//!
//! Every CodePipeline job and every CodeDeploy hook invocation must end in
//! exactly one result report, whatever happens in the work: bad input, a panic,
//! a slow API, the Lambda deadline. This module owns that promise:
//!
//! 1. The work runs in its own task under `deadline − reserve`
//!    ([`ReportConfig::reserve`]). A panic is caught (the task's `JoinError`)
//!    and a timeout is enforced; both become a failure naming the [`Step`]
//!    that was running.
//! 2. The outcome is fitted to the API limits ([`limits`]).
//! 3. The report is delivered with jittered retries on throttling, 5xx,
//!    connection errors and slow answers, inside the time left.
//! 4. "Already reported" answers (`InvalidJobStateException`,
//!    `LifecycleEventAlreadyCompletedException`) count as done: a duplicate
//!    delivery of the event must not turn into a failure.
//! 5. If the report cannot be delivered at all, the invocation ends in a
//!    Lambda error ([`ReportFailure`]) that names the missing permission.

pub mod config;
mod deliver;
pub mod events;
mod guard;
pub mod hook;
pub mod lambda;
pub mod limits;
pub mod pipeline;

pub use guard::{Budget, Step, WorkEnd, deadline_from_epoch_ms, install_panic_hook, run_work};
pub use hook::{HookOutcome, HookReporter, HookStatus};
pub use pipeline::{FailureKind, JobFailure, JobOutcome, JobReporter, JobSuccess};

use serde::Serialize;
use std::time::Duration;

/// Tuning of the report core, read once at init (see [`tollgate_core::config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    /// Time kept back from the Lambda deadline for delivering the report.
    /// The work is cut off at `deadline − reserve`.
    pub reserve: Duration,
    /// Upper bound for one report attempt (a slow answer is abandoned and retried).
    pub attempt_timeout: Duration,
    /// Kept free before the hard Lambda deadline so the invocation can still
    /// post its own result.
    pub safety_margin: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            reserve: Duration::from_secs(5),
            // Three attempts and the backoff between them fit in the
            // reserve, so one hung attempt cannot use it all (issue 14.7);
            // a report normally answers in well under 100 ms.
            attempt_timeout: Duration::from_millis(1300),
            safety_margin: Duration::from_millis(250),
        }
    }
}

impl ReportConfig {
    /// Attempts that must fit in the reserve.
    pub const MIN_ATTEMPTS_IN_RESERVE: u32 = 3;

    /// The shortest attempt timeout: a report needs some time to answer.
    pub const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);

    /// The longest attempt timeout that still lets
    /// [`Self::MIN_ATTEMPTS_IN_RESERVE`] attempts fit in the reserve (the
    /// backoff between them may shorten the last one's window; never below
    /// [`Self::MIN_ATTEMPT_TIMEOUT`]: with a tiny reserve fewer attempts fit).
    pub fn max_attempt_timeout(&self) -> Duration {
        let room = self.reserve.saturating_sub(self.safety_margin);
        let third = room.as_millis() / u128::from(Self::MIN_ATTEMPTS_IN_RESERVE);
        Duration::from_millis(u64::try_from(third).unwrap_or(u64::MAX))
            .max(Self::MIN_ATTEMPT_TIMEOUT)
    }
}

/// Why one report attempt failed, classified for the retry loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The service throttled the call (retryable).
    #[error("throttled ({code}): {message}")]
    Throttled {
        /// Error code, e.g. `ThrottlingException`.
        code: String,
        /// Service message.
        message: String,
    },
    /// The service answered 5xx (retryable).
    #[error("service error (HTTP {status}, {code}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Error code, possibly empty.
        code: String,
        /// Service message.
        message: String,
    },
    /// No answer: connection refused, reset, DNS or TLS failure (retryable).
    #[error("could not reach the service: {0}")]
    Transport(String),
    /// The answer did not arrive in time (retryable).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The job or hook was already reported (or timed out): counts as done.
    #[error("already reported ({code}): {message}")]
    AlreadyReported {
        /// `InvalidJobStateException` or `LifecycleEventAlreadyCompletedException`.
        code: String,
        /// Service message.
        message: String,
    },
    /// The function's role may not make the call (permanent).
    #[error("access denied ({code}): {message}")]
    AccessDenied {
        /// e.g. `AccessDeniedException`.
        code: String,
        /// Service message.
        message: String,
    },
    /// Any other rejection (validation, unknown job, …): permanent.
    #[error("rejected ({code}): {message}")]
    Rejected {
        /// Error code.
        code: String,
        /// Service message.
        message: String,
    },
}

impl ReportError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Server { .. } | Self::Transport(_) | Self::Timeout(_)
        )
    }
}

/// How a report ended when the invocation itself succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// The service accepted our report.
    Delivered,
    /// The service said it already had a result (duplicate delivery, or a
    /// report that landed on an earlier attempt whose answer was lost).
    AlreadyReported,
}

/// What the invocation returns to Lambda after a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    /// `success`, `in-progress`, `failure`, `succeeded` or `failed`.
    pub report: &'static str,
    /// Delivered, or already reported.
    pub delivery: Delivery,
    /// Number of report calls made.
    pub attempts: u32,
    /// Job id or hook execution id the report was for.
    pub id: String,
}

/// The report could not be delivered: the invocation ends in a Lambda error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportFailure {
    /// The role lacks the permission for the report call.
    #[error(
        "{operation} was denied ({detail}); add \"{operation}\" to the function's execution role. \
         Until then nothing can be reported and the {waiting} waits for its timeout"
    )]
    Denied {
        /// IAM action, e.g. `codepipeline:PutJobFailureResult`.
        operation: &'static str,
        /// What the service said.
        detail: String,
        /// `pipeline action` or `deployment`.
        waiting: &'static str,
    },
    /// The service rejected the report permanently.
    #[error("{operation} was rejected: {detail}")]
    Rejected {
        /// IAM action.
        operation: &'static str,
        /// What the service said.
        detail: String,
    },
    /// Retries ran out of time.
    #[error(
        "{operation} could not be delivered before the deadline ({attempts} attempts; last error: {last}); \
         Lambda will retry the invocation"
    )]
    OutOfTime {
        /// IAM action.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last error seen.
        last: String,
    },
    /// The payload was not an event of this protocol and carried no id to report on.
    #[error("{0}")]
    NotAnEvent(String),
}

impl ReportFailure {
    /// Short error type for the Lambda error payload.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Denied { .. } => "ReportDenied",
            Self::Rejected { .. } => "ReportRejected",
            Self::OutOfTime { .. } => "ReportUndelivered",
            Self::NotAnEvent(_) => "UnrecognisedEvent",
        }
    }
}

impl From<ReportFailure> for lambda_runtime::Diagnostic {
    fn from(value: ReportFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: value.error_type().to_owned(),
            error_message: value.to_string(),
        }
    }
}

pub use tollgate_core::text::describe_json_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Creds {
            key: u32,
        }
        let err =
            serde_json::from_str::<Creds>(r#"{"key": "SECRETVALUE"}"#).expect_err("wrong type");
        let text = describe_json_error(&err);
        assert!(!text.contains("SECRETVALUE"), "{text}");
        assert!(text.contains("invalid type: string"), "{text}");
        assert!(text.contains("expected u32"), "{text}");
    }

    #[test]
    fn retryable_classes() {
        assert!(ReportError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(ReportError::Transport("refused".into()).is_retryable());
        assert!(
            !ReportError::AccessDenied {
                code: "AccessDeniedException".into(),
                message: String::new()
            }
            .is_retryable()
        );
    }

    #[test]
    fn denied_names_the_permission() {
        let f = ReportFailure::Denied {
            operation: "codepipeline:PutJobFailureResult",
            detail: "AccessDeniedException".into(),
            waiting: "pipeline action",
        };
        let d: lambda_runtime::Diagnostic = f.into();
        assert_eq!(d.error_type, "ReportDenied");
        assert!(d.error_message.contains("codepipeline:PutJobFailureResult"));
    }
}
