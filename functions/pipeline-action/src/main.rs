//! pipeline-action: CodePipeline Invoke actions picked by `UserParameters`
//! (`smoke`, `verify-artifact`, `ecs-deploy`, `ecs-wait`). Every job ends in
//! exactly one `PutJobSuccessResult` / `PutJobFailureResult`. The logic lives
//! in `tollgate::actions`.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use std::sync::Arc;
use tollgate::actions::{Clock, Deps};
use tollgate::aws::codepipeline::CodePipelineReporter;
use tollgate::aws::ecs::EcsClient;
use tollgate::aws::s3::S3Artifacts;
use tollgate::checks::{Engine, EngineConfig};
use tollgate::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let (report_cfg, settings) = match tollgate::actions::config(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            tollgate::lambda::report_init_error("InvalidConfiguration", &e.to_string()).await;
            std::process::exit(1);
        }
    };
    let engine = match Engine::new(EngineConfig::default()) {
        Ok(engine) => engine,
        Err(e) => {
            tollgate::lambda::report_init_error("CheckEngineInit", &e.to_string()).await;
            std::process::exit(1);
        }
    };
    let sdk = tollgate::aws::load_sdk_config().await;
    let deps = Arc::new(Deps {
        artifacts: S3Artifacts::new(&sdk),
        ecs: EcsClient::new(&sdk),
        checks: engine,
        settings,
        clock: Clock::system(),
    });
    let reporter = Arc::new(CodePipelineReporter::new(&sdk));
    let report_cfg = Arc::new(report_cfg);

    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        let reporter = reporter.clone();
        let cfg = report_cfg.clone();
        async move {
            let budget = tollgate::lambda::budget(&ev.context, &cfg);
            tollgate::actions::handle(&deps, reporter.as_ref(), ev.payload, budget, &cfg)
                .await
                .map_err(Diagnostic::from)
        }
    }))
    .await
}
