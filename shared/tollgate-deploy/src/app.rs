//! deploy-hook as a Lambda function ([`HookFunction`]): a CodeDeploy or an
//! ECS native hook in, exactly one answer out. A configuration error found
//! at init is kept and every hook is reported Failed with it; a transient
//! one (SSM throttled or unreachable) is retried on the next event.

use crate::rollback::ServiceDeployments;
use crate::{DeployHook, DeploymentReader, InitError, ListenerReader, SpecRunner, dispatch};
use lambda_runtime::Diagnostic;
use std::future::Future;
use std::time::Duration;
use tollgate_core::config::Env;
use tollgate_report::lambda::{Configured, Function, InitFailure, Invocation};
use tollgate_report::{HookReporter, ReportConfig};

/// How long a retried init may take inside an event (the hook's report
/// waits for it).
pub const INIT_RETRY_WITHIN: Duration = Duration::from_secs(5);

/// The function: the app (or why there is none), how to build it again,
/// the reporter, and ECS for the rollbacks a misconfigured ECS hook asks.
#[derive(Debug)]
pub struct HookFunction<R, D, L, E, B> {
    app: Configured<DeployHook<D, L, SpecRunner, E>>,
    build: B,
    reporter: R,
    ecs: E,
    fallback: ReportConfig,
}

fn failure(e: InitError) -> InitFailure {
    let failure = InitFailure::new("deploy-hook", e.error_type(), e.to_string());
    if e.is_transient() {
        failure.transient()
    } else {
        failure
    }
}

impl<R, D, L, E, B, Fut> HookFunction<R, D, L, E, B>
where
    B: Fn() -> Fut,
    Fut: Future<Output = Result<DeployHook<D, L, SpecRunner, E>, InitError>>,
{
    /// Builds the app once with `build` (configuration, spec, adapters);
    /// `build` runs again on the next event after a transient failure.
    pub async fn init(env: &impl Env, reporter: R, ecs: E, build: B) -> Self {
        let app = Configured::new(build().await.map_err(failure));
        // Misconfigured, the report core still needs its tuning: the
        // defaults when even that is invalid (the failure says so).
        let fallback = tollgate_report::config::report_config(env).unwrap_or_default();
        Self {
            app,
            build,
            reporter,
            ecs,
            fallback,
        }
    }
}

impl<R, D, L, E, B, Fut> Function for HookFunction<R, D, L, E, B>
where
    R: HookReporter + 'static,
    D: DeploymentReader + 'static,
    L: ListenerReader + 'static,
    E: ServiceDeployments + 'static,
    B: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<DeployHook<D, L, SpecRunner, E>, InitError>> + Send,
{
    type Event = serde_json::Value;
    type Output = serde_json::Value;

    async fn handle(
        &self,
        event: Self::Event,
        invocation: Invocation,
    ) -> Result<Self::Output, Diagnostic> {
        let rebuild = || async { (self.build)().await.map_err(failure) };
        match self.app.get(INIT_RETRY_WITHIN, rebuild).await {
            Ok(app) => {
                let budget = invocation.budget(&app.config.report);
                dispatch::handle(&app, &self.reporter, event, budget).await
            }
            Err(f) => {
                let budget = invocation.budget(&self.fallback);
                dispatch::handle_misconfigured(
                    &f,
                    &self.reporter,
                    &self.ecs,
                    event,
                    budget,
                    &self.fallback,
                )
                .await
            }
        }
    }
}
