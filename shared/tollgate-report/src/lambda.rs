//! Glue between the Lambda runtime and the report core.

pub use crate::deadline_from_epoch_ms;
use crate::{Budget, ReportConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The invocation budget from the runtime's context (`Lambda-Runtime-Deadline-Ms`).
pub fn budget(ctx: &lambda_runtime::Context, cfg: &ReportConfig) -> Budget {
    Budget::from_epoch_ms(ctx.deadline, cfg)
}

/// One invocation: the runtime's context (request id, deadline).
#[derive(Debug)]
pub struct Invocation {
    /// `Lambda-Runtime-*` headers of this invocation.
    pub context: lambda_runtime::Context,
}

impl Invocation {
    /// The report core's budget for this invocation.
    pub fn budget(&self, cfg: &ReportConfig) -> Budget {
        budget(&self.context, cfg)
    }

    /// The deadline (`Lambda-Runtime-Deadline-Ms`) as an instant.
    pub fn deadline(&self) -> tokio::time::Instant {
        deadline_from_epoch_ms(self.context.deadline)
    }
}

/// A Lambda function: one event type in, one answer out. The one entry
/// signature of every Tollgate function; `tollgate_runtime::run` serves it.
pub trait Function: Send + Sync + 'static {
    /// The payload Lambda delivers.
    type Event: serde::de::DeserializeOwned + Send + 'static;
    /// The answer.
    type Output: serde::Serialize + Send + 'static;

    /// Handles one event. An `Err` is the invocation's error, which Lambda
    /// retries for async events.
    fn handle(
        &self,
        event: Self::Event,
        invocation: Invocation,
    ) -> impl std::future::Future<Output = Result<Self::Output, lambda_runtime::Diagnostic>> + Send;
}

/// Reports a failed init to the Runtime API (`POST /runtime/init/error`), so
/// Lambda shows the reason instead of a bare exit, then logs it. The caller
/// exits afterwards. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) it only logs.
pub async fn report_init_error(error_type: &str, message: &str) {
    tracing::error!(
        alert = CONFIGURATION_ERROR_ALERT,
        error_type,
        error = %message,
        "init failed"
    );
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({
        "errorType": error_type,
        "errorMessage": message,
        "stackTrace": [],
    })
    .to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = async {
        let mut stream = tokio::net::TcpStream::connect(&api).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), sent).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not post the init error to the runtime API")
        }
        Err(_) => tracing::error!("posting the init error to the runtime API timed out"),
    }
}

/// `alert` field of the log line written for a configuration error, at init
/// and again for every event refused because of it. The template's metric
/// filter counts these lines (`ConfigurationErrors`) and alarms on them.
pub const CONFIGURATION_ERROR_ALERT: &str = "ConfigurationError";

/// A configuration error found at init by a function that reports (issue
/// 14.1: fail closed, fast, never silent).
///
/// Exiting at init would leave the work hanging: Lambda retries the async
/// event, parks it in the failure queue, and CodeDeploy waits out the hook's
/// hour (CodePipeline its 20 minutes). Instead the function starts its
/// runtime anyway and reports every job or hook it receives as failed, at
/// once, with [`InitFailure::reason`]. The message is the configuration
/// error's own text, which never carries secret values
/// ([`tollgate_core::config::ConfigError::invalid_secret`] redacts them, spec errors
/// quote no source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFailure {
    /// The function, e.g. `deploy-hook`.
    pub function: &'static str,
    /// A failure that may pass (SSM throttled or unreachable): init is
    /// tried again on the next event instead of failing it for the life of
    /// the execution environment ([`Configured`]).
    pub transient: bool,
    /// Short error type, e.g. `InvalidCheckSpec`.
    pub error_type: String,
    /// What is wrong and what to change.
    pub message: String,
}

impl InitFailure {
    /// Records the failure: an ERROR log line carrying
    /// [`CONFIGURATION_ERROR_ALERT`], so it is visible and counted.
    pub fn new(function: &'static str, error_type: &str, message: impl Into<String>) -> Self {
        let failure = Self {
            function,
            transient: false,
            error_type: error_type.to_owned(),
            message: message.into(),
        };
        tracing::error!(
            alert = CONFIGURATION_ERROR_ALERT,
            error_type = %failure.error_type,
            error = %failure.message,
            "configuration error at init: every event will be reported failed until the \
             configuration is fixed"
        );
        failure
    }

    /// Marks the failure as one that may pass (init is tried again).
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// The failure text for a report: what is wrong and what to do.
    pub fn reason(&self) -> String {
        format!(
            "{} is misconfigured ({}): {}. Nothing was run; fix the function's configuration \
             (its environment variables or the parameters and secrets they name), then retry",
            self.function, self.error_type, self.message
        )
    }

    /// Logs one event refused because of this failure (counted like the
    /// init line).
    pub fn log_refused(&self, id: &str) {
        tracing::error!(
            alert = CONFIGURATION_ERROR_ALERT,
            error_type = %self.error_type,
            id,
            "event reported failed: the function is misconfigured"
        );
    }
}

/// A function's state after init: ready, or failed. A transient failure is
/// tried again (at most once per event, within `retry_within`) before the
/// event is failed with it, so one throttled read at a cold start does not
/// fail every event of that execution environment.
#[derive(Debug)]
pub struct Configured<T> {
    state: tokio::sync::Mutex<Result<std::sync::Arc<T>, std::sync::Arc<InitFailure>>>,
}

impl<T> Configured<T> {
    /// The state init left.
    pub fn new(init: Result<T, InitFailure>) -> Self {
        Self {
            state: tokio::sync::Mutex::new(
                init.map(std::sync::Arc::new).map_err(std::sync::Arc::new),
            ),
        }
    }

    /// The ready value, or the failure to report the event with; a
    /// transient failure is retried first with `rebuild`.
    pub async fn get<F, Fut>(
        &self,
        retry_within: std::time::Duration,
        rebuild: F,
    ) -> Result<std::sync::Arc<T>, std::sync::Arc<InitFailure>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, InitFailure>>,
    {
        let mut state = self.state.lock().await;
        if let Err(failure) = &*state
            && failure.transient
        {
            tracing::warn!(error = %failure.message, "retrying init after a transient failure");
            *state = match tokio::time::timeout(retry_within, rebuild()).await {
                Ok(Ok(value)) => Ok(std::sync::Arc::new(value)),
                Ok(Err(again)) => Err(std::sync::Arc::new(again)),
                // Still transient: the next event tries again.
                Err(_) => Err(failure.clone()),
            };
        }
        state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transient_init_failure_is_retried_and_a_permanent_one_is_not() {
        let failed = InitFailure::new("deploy-hook", "SpecUnavailable", "throttled").transient();
        let c: Configured<u32> = Configured::new(Err(failed));
        let got = c
            .get(std::time::Duration::from_secs(1), || async { Ok(7) })
            .await;
        assert_eq!(got.as_deref().copied().ok(), Some(7));

        let c: Configured<u32> = Configured::new(Err(InitFailure::new(
            "deploy-hook",
            "InvalidCheckSpec",
            "bad",
        )));
        let got = c
            .get(std::time::Duration::from_secs(1), || async { Ok(7) })
            .await;
        assert!(
            got.is_err(),
            "a wrong configuration stays wrong until fixed"
        );
    }

    #[test]
    fn the_reason_names_the_function_the_error_and_what_to_do() {
        let f = InitFailure::new(
            "deploy-hook",
            "InvalidConfiguration",
            "TOLLGATE_CHECK_SPEC is not set; set it",
        );
        let r = f.reason();
        assert!(r.starts_with("deploy-hook is misconfigured (InvalidConfiguration): TOLLGATE_CHECK_SPEC is not set"), "{r}");
        assert!(r.contains("fix the function's configuration"), "{r}");
    }
}
