//! deploy-hook: smoke-tests a blue/green deployment's new version before it
//! takes production traffic. Serves CodeDeploy lifecycle hooks (reported
//! through `PutLifecycleEventHookExecutionStatus`) and Amazon ECS native
//! lifecycle hooks (answered with `hookStatus`). The logic lives in
//! `tollgate::deploy`; configuration is in `tollgate::deploy::config`.
//!
//! A configuration error does not stop the function: it starts anyway and
//! reports every hook it receives as failed with the reason
//! (`dispatch::handle_misconfigured`), so a deployment never waits out the
//! hook's hour. A transient one (SSM throttled) is retried on the next event.

use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::Duration;
use tollgate::aws::SdkConfig;
use tollgate::aws::codedeploy::CodeDeployReporter;
use tollgate::aws::codedeploy_read::CodeDeployReader;
use tollgate::aws::ecs_deployments::EcsServiceDeployments;
use tollgate::aws::elbv2::ElbReader;
use tollgate::aws::ssm::SsmParameters;
use tollgate::aws::ssm_write::SsmParameterWriter;
use tollgate::config::ProcessEnv;
use tollgate::deploy::smoke::SpecRunner;
use tollgate::deploy::{DeployHook, dispatch};
use tollgate::lambda::{Configured, InitFailure};

type App = DeployHook<CodeDeployReader, ElbReader, SpecRunner, EcsServiceDeployments>;

/// Builds the app; a failure is reported for every hook (transient ones are
/// retried on the next event).
async fn build(sdk: &SdkConfig) -> Result<App, InitFailure> {
    DeployHook::init(
        &ProcessEnv,
        &SsmParameters::new(sdk),
        CodeDeployReader::new(sdk),
        ElbReader::new(sdk),
        EcsServiceDeployments::new(sdk),
    )
    .await
    // Hook-failure records for the notifier, when the prefix is set.
    .map(|app| app.with_failure_records(SsmParameterWriter::new(sdk)))
    .map_err(|e| {
        let failure = InitFailure::new("deploy-hook", e.error_type(), e.to_string());
        if e.is_transient() {
            failure.transient()
        } else {
            failure
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let sdk = Arc::new(tollgate::aws::load_sdk_config().await);
    let app = Arc::new(Configured::new(build(&sdk).await));
    // Misconfigured, the report core still needs its tuning: defaults when
    // even that is invalid (the failure says so).
    let fallback_cfg = Arc::new(tollgate::config::report_config(&ProcessEnv).unwrap_or_default());
    let reporter = Arc::new(CodeDeployReporter::new(&sdk));
    let ecs = Arc::new(EcsServiceDeployments::new(&sdk));

    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let (app, sdk, reporter, ecs) = (app.clone(), sdk.clone(), reporter.clone(), ecs.clone());
        let fallback_cfg = fallback_cfg.clone();
        async move {
            match app.get(INIT_RETRY_WITHIN, || build(&sdk)).await {
                Ok(app) => {
                    let budget = tollgate::lambda::budget(&ev.context, &app.config.report);
                    dispatch::handle(&app, reporter.as_ref(), ev.payload, budget).await
                }
                Err(failure) => {
                    let budget = tollgate::lambda::budget(&ev.context, &fallback_cfg);
                    dispatch::handle_misconfigured(
                        &failure,
                        reporter.as_ref(),
                        ecs.as_ref(),
                        ev.payload,
                        budget,
                        &fallback_cfg,
                    )
                    .await
                }
            }
        }
    }))
    .await
}

/// How long a retried init may take inside an event (the hook's report
/// waits for it).
const INIT_RETRY_WITHIN: Duration = Duration::from_secs(5);
