//! # tollgate-aws
//!
//! What every AWS adapter shares, and no service client: the one
//! [`SdkConfig`] loaded at init, the lazily built HTTPS client that trusts
//! the process's one decoded CA bundle ([`http_client`]), and the mapping of
//! SDK errors onto the report core's [`ReportError`] ([`classify`]).
//!
//! The adapters themselves are one crate per service for the ports several
//! functions share (`tollgate-aws-codepipeline`, `-codedeploy`, `-ssm`,
//! `-secretsmanager`) and an `aws` module in each function for the ports
//! only it uses, so a function links exactly the SDK crates its IAM policy
//! covers. The SDK honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`,
//! which is how the tests point real clients at the local stand-in.

pub mod http_client;

pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use tollgate_report::ReportError;

/// Loads the shared SDK configuration (region, credentials, endpoint
/// overrides) from the environment. Called once at init.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        // Built on the first request, with the process's one decoded CA
        // bundle: see [`http_client`].
        .http_client(http_client::shared())
        .load()
        .await
}

/// The retry configuration for report clients: the SDK's own retries are off,
/// because the report core retries within the invocation's deadline itself.
pub fn no_sdk_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::disabled()
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

const DENIED_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnauthorizedException",
];

/// Sorts an SDK error into the report core's classes. `already_done` lists
/// the error codes meaning "this was already reported".
pub fn classify<E>(err: SdkError<E, HttpResponse>, already_done: &[&str]) -> ReportError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default().to_owned();
            let message = ctx.err().message().unwrap_or_default().to_owned();
            classify_answer(status, code, message, already_done)
        }
        SdkError::ResponseError(ctx) => {
            let status = ctx.raw().status().as_u16();
            if status >= 500 {
                ReportError::Server {
                    status,
                    code: String::new(),
                    message: DisplayErrorContext(&err).to_string(),
                }
            } else {
                ReportError::Transport(DisplayErrorContext(&err).to_string())
            }
        }
        SdkError::TimeoutError(_) => {
            ReportError::Transport(format!("timed out: {}", DisplayErrorContext(&err)))
        }
        SdkError::DispatchFailure(_) => {
            ReportError::Transport(DisplayErrorContext(&err).to_string())
        }
        SdkError::ConstructionFailure(_) => ReportError::Rejected {
            code: "RequestConstructionFailure".to_owned(),
            message: DisplayErrorContext(&err).to_string(),
        },
        _ => ReportError::Transport(DisplayErrorContext(&err).to_string()),
    }
}

/// Classifies a service's error answer by code and HTTP status.
pub fn classify_answer(
    status: u16,
    code: String,
    message: String,
    already_done: &[&str],
) -> ReportError {
    if already_done.contains(&code.as_str()) {
        ReportError::AlreadyReported { code, message }
    } else if DENIED_CODES.contains(&code.as_str()) {
        ReportError::AccessDenied { code, message }
    } else if status == 429 || THROTTLING_CODES.contains(&code.as_str()) {
        ReportError::Throttled { code, message }
    } else if status >= 500 {
        ReportError::Server {
            status,
            code,
            message,
        }
    } else {
        ReportError::Rejected { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let done = &["InvalidJobStateException"];
        let c = |s: u16, code: &str| classify_answer(s, code.into(), String::new(), done);
        assert!(matches!(
            c(400, "InvalidJobStateException"),
            ReportError::AlreadyReported { .. }
        ));
        assert!(matches!(
            c(400, "AccessDeniedException"),
            ReportError::AccessDenied { .. }
        ));
        assert!(matches!(
            c(400, "ThrottlingException"),
            ReportError::Throttled { .. }
        ));
        assert!(matches!(c(429, ""), ReportError::Throttled { .. }));
        assert!(matches!(
            c(503, "ServiceUnavailableException"),
            ReportError::Server { .. }
        ));
        assert!(matches!(
            c(400, "ValidationException"),
            ReportError::Rejected { .. }
        ));
    }
}
