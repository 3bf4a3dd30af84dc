//! deploy-hook: smoke-tests a blue/green deployment's new version before it
//! takes production traffic. Serves CodeDeploy lifecycle hooks (reported
//! through `PutLifecycleEventHookExecutionStatus`) and Amazon ECS native
//! lifecycle hooks (answered with `hookStatus`). The logic lives in
//! `tollgate::deploy`; configuration is in `tollgate::deploy::config`.
//!
//! A configuration error does not stop the function: it starts anyway and
//! reports every hook it receives as failed with the reason
//! (`dispatch::handle_misconfigured`), so a deployment never waits out the
//! hook's hour.

use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use tollgate::aws::codedeploy::CodeDeployReporter;
use tollgate::aws::codedeploy_read::CodeDeployReader;
use tollgate::aws::ecs_deployments::EcsServiceDeployments;
use tollgate::aws::elbv2::ElbReader;
use tollgate::aws::ssm::SsmParameters;
use tollgate::aws::ssm_write::SsmParameterWriter;
use tollgate::config::ProcessEnv;
use tollgate::deploy::{DeployHook, dispatch};
use tollgate::lambda::InitFailure;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let sdk = tollgate::aws::load_sdk_config().await;
    let app = DeployHook::init(
        &ProcessEnv,
        &SsmParameters::new(&sdk),
        CodeDeployReader::new(&sdk),
        ElbReader::new(&sdk),
        EcsServiceDeployments::new(&sdk),
    )
    .await
    // Hook-failure records for the notifier, when the prefix is set.
    .map(|app| Arc::new(app.with_failure_records(SsmParameterWriter::new(&sdk))))
    .map_err(|e| {
        Arc::new(InitFailure::new(
            "deploy-hook",
            e.error_type(),
            e.to_string(),
        ))
    });
    // Misconfigured, the report core still needs its tuning: defaults when
    // even that is invalid (the failure says so).
    let fallback_cfg = Arc::new(tollgate::config::report_config(&ProcessEnv).unwrap_or_default());
    let reporter = Arc::new(CodeDeployReporter::new(&sdk));

    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        let reporter = reporter.clone();
        let fallback_cfg = fallback_cfg.clone();
        async move {
            match app {
                Ok(app) => {
                    let budget = tollgate::lambda::budget(&ev.context, &app.config.report);
                    dispatch::handle(&app, reporter.as_ref(), ev.payload, budget).await
                }
                Err(failure) => {
                    let budget = tollgate::lambda::budget(&ev.context, &fallback_cfg);
                    dispatch::handle_misconfigured(
                        &failure,
                        reporter.as_ref(),
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
