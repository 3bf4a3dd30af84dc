//! # tollgate-aws
//!
//! What every AWS adapter shares, and no service client: the one
//! [`SdkConfig`] loaded at init, the HTTP client every SDK request goes
//! through (reqwest with the process's one TLS configuration,
//! [`http_client`]), service clients
//! built on first use ([`Lazy`]), and the mapping of SDK errors onto the
//! report core's [`ReportError`] ([`classify`]).
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
///
/// Credentials: when the environment holds an access key and its secret, as
/// Lambda's always does, the environment provider alone. That is what the
/// default chain would pick (the environment comes first in it), without
/// building the rest of the chain at init: its web-identity provider builds
/// an STS client, about 1 M instructions of every cold start (issue 21,
/// BENCHMARKS.md). Anywhere else (a laptop with a profile, a container with
/// a role), the default chain as before.
pub async fn load_sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        // reqwest, built on the first request, with the process's one TLS
        // configuration: see [`http_client`].
        .http_client(http_client::shared());
    let loader = if env_has_credentials(|name| std::env::var_os(name)) {
        loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
    } else {
        loader
    };
    loader.load().await
}

/// Whether the environment provider would find credentials: an access key
/// id and a secret key, both non-empty (an empty one makes the default chain
/// go on to its next provider, so it must here too).
fn env_has_credentials(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|name| var(name).is_some_and(|v| !v.is_empty()))
}

/// An SDK client built on its first use, not at init (issue 21): building
/// one costs about half a million instructions (its endpoint partitions are
/// parsed and their regions' patterns compiled), and most invocations use
/// only some of a function's clients. Derefs to the client, so adapters call
/// it as before; clones share the one client. Building a client checks
/// nothing a request would not.
pub struct Lazy<C>(std::sync::Arc<std::sync::LazyLock<C, Box<dyn FnOnce() -> C + Send>>>);

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C> std::fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lazy(sdk client)")
    }
}

impl<C> std::ops::Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

/// A [`Lazy`] client: `make` runs on the first use.
pub fn lazy<C>(make: impl FnOnce() -> C + Send + 'static) -> Lazy<C> {
    Lazy(std::sync::Arc::new(std::sync::LazyLock::new(Box::new(
        make,
    ))))
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
    fn environment_credentials_need_both_keys_non_empty() {
        let env = tollgate_test_support::fake_env;
        assert!(env_has_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret")
        ])));
        assert!(!env_has_credentials(env(&[("AWS_ACCESS_KEY_ID", "AKID")])));
        assert!(!env_has_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", "secret")
        ])));
        assert!(!env_has_credentials(env(&[])));
    }

    #[test]
    fn a_lazy_client_is_built_once_on_first_use() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        let client: Lazy<String> = lazy(|| {
            BUILT.fetch_add(1, Ordering::SeqCst);
            "client".to_owned()
        });
        let clone = client.clone();
        assert_eq!(BUILT.load(Ordering::SeqCst), 0, "not built before use");
        assert_eq!(client.len(), 6);
        assert_eq!(clone.as_str(), "client", "clones share the one client");
        assert_eq!(BUILT.load(Ordering::SeqCst), 1);
    }

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
