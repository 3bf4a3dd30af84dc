//! deploy-hook: smoke-tests a blue/green deployment's new version before it
//! takes production traffic. Serves CodeDeploy lifecycle hooks (reported
//! through `PutLifecycleEventHookExecutionStatus`) and Amazon ECS native
//! lifecycle hooks (answered with `hookStatus`). The logic lives in
//! `tollgate::deploy`; configuration is in `tollgate::deploy::config`.

use lambda_runtime::{LambdaEvent, service_fn};
use std::sync::Arc;
use tollgate::aws::codedeploy::CodeDeployReporter;
use tollgate::aws::codedeploy_read::CodeDeployReader;
use tollgate::aws::elbv2::ElbReader;
use tollgate::aws::ssm::SsmParameters;
use tollgate::aws::ssm_write::SsmParameterWriter;
use tollgate::config::ProcessEnv;
use tollgate::deploy::{DeployHook, dispatch};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let sdk = tollgate::aws::load_sdk_config().await;
    let app = match DeployHook::init(
        &ProcessEnv,
        &SsmParameters::new(&sdk),
        CodeDeployReader::new(&sdk),
        ElbReader::new(&sdk),
    )
    .await
    {
        // Hook-failure records for the notifier, when the prefix is set.
        Ok(app) => Arc::new(app.with_failure_records(SsmParameterWriter::new(&sdk))),
        Err(e) => {
            tollgate::lambda::report_init_error(e.error_type(), &e.to_string()).await;
            std::process::exit(1);
        }
    };
    let reporter = Arc::new(CodeDeployReporter::new(&sdk));

    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        let reporter = reporter.clone();
        async move {
            let budget = tollgate::lambda::budget(&ev.context, &app.config.report);
            dispatch::handle(&app, reporter.as_ref(), ev.payload, budget).await
        }
    }))
    .await
}
