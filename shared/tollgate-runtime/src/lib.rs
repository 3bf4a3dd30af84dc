//! # tollgate-runtime
//!
//! One way to start a function. Every `main.rs` is
//! `tollgate_runtime::run(init)`, where `init` builds the function's
//! [`Function`] (each logic crate's app) from an [`Init`] (configuration read and validated once,
//! clients built once), and [`run`] does the rest in one order for all:
//! logging, the panic hook the report core relies on, the SDK
//! configuration, `init`, then the Lambda loop.
//!
//! Configuration errors: a function that reports (pipeline-action,
//! deploy-hook) keeps its failure and reports every event Failed with it
//! (`tollgate_report::lambda::InitFailure`), so nothing waits out a
//! timeout; a function with nothing to report to (the notifier) stops at
//! init with [`fail_init`], which Lambda shows as the init error.
//!
//! Invariant: the only place that chooses the async runtime and calls
//! `lambda_runtime::run`; depends on `tollgate-core`, `tollgate-report` and
//! `tollgate-aws`, never on a function's logic.

use lambda_runtime::{LambdaEvent, service_fn};
use std::future::Future;
use std::sync::Arc;

pub use tollgate_aws::SdkConfig;
pub use tollgate_report::lambda::{Function, Invocation};

/// What a function's `init` gets. Its `Debug` shows nothing of the SDK
/// configuration (which can hold cached credentials).
pub struct Init {
    /// The one SDK configuration, for every client the function builds.
    pub sdk: SdkConfig,
}

impl std::fmt::Debug for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Init").finish_non_exhaustive()
    }
}

/// Starts the function: logging and the panic hook, the SDK configuration,
/// `init` once, then the Lambda loop until the process ends.
///
/// The runtime is tokio's multi-threaded one for every function: the report
/// core runs the work in its own task, and its deadline timer and the report
/// itself must keep running while a worker thread is busy in synchronous
/// code (a large document parse, a regex over a body).
pub fn run<F, Fut>(init: impl FnOnce(Init) -> Fut) -> Result<(), lambda_runtime::Error>
where
    F: Function,
    Fut: Future<Output = F>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(async {
        tollgate_core::telemetry::init();
        tollgate_report::install_panic_hook();
        let sdk = tollgate_aws::load_sdk_config().await;
        let function = Arc::new(init(Init { sdk }).await);
        lambda_runtime::run(service_fn(move |ev: LambdaEvent<F::Event>| {
            let function = Arc::clone(&function);
            async move {
                let invocation = Invocation {
                    context: ev.context,
                };
                function.handle(ev.payload, invocation).await
            }
        }))
        .await
    })
}

/// Stops a function that cannot start: the init error goes to the Runtime
/// API (Lambda shows it, and counts the event failed), then the process
/// exits. For functions with nothing to report to; those that report keep
/// the failure and report each event with it instead.
pub async fn fail_init(error_type: &str, message: &str) -> ! {
    tollgate_report::lambda::report_init_error(error_type, message).await;
    std::process::exit(1)
}
