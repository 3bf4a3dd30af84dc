//! pipeline-action: CodePipeline Invoke actions picked by `UserParameters`
//! (`smoke`, `verify-artifact`, `ecs-deploy`, `ecs-wait`). Every job ends in
//! exactly one `PutJobSuccessResult` / `PutJobFailureResult`. The logic lives
//! in `tollgate::actions`.
//!
//! A configuration error does not stop the function: it starts anyway and
//! reports every job it receives as a `ConfigurationError` with the reason
//! (`actions::handle_misconfigured`), so a pipeline never waits out the
//! action's timeout.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use std::sync::Arc;
use tollgate::actions::{Clock, Deps};
use tollgate::aws::codepipeline::CodePipelineReporter;
use tollgate::aws::codepipeline_jobs::CodePipelineJobs;
use tollgate::aws::ecs::EcsClient;
use tollgate::aws::s3::S3Artifacts;
use tollgate::checks::{Engine, EngineConfig};
use tollgate::config::ProcessEnv;
use tollgate::lambda::InitFailure;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let sdk = tollgate::aws::load_sdk_config().await;
    let configured = tollgate::actions::config(&ProcessEnv)
        .map_err(|e| InitFailure::new("pipeline-action", "InvalidConfiguration", e.to_string()))
        .and_then(|(report_cfg, settings)| {
            let engine = Engine::new(EngineConfig::default()).map_err(|e| {
                InitFailure::new("pipeline-action", "CheckEngineInit", e.to_string())
            })?;
            let deps = Deps {
                artifacts: S3Artifacts::new(&sdk),
                ecs: EcsClient::new(&sdk),
                checks: engine,
                jobs: CodePipelineJobs::new(&sdk),
                settings,
                clock: Clock::system(),
            };
            Ok((Arc::new(deps), report_cfg))
        });
    let (configured, report_cfg) = match configured {
        Ok((deps, cfg)) => (Ok(deps), cfg),
        // Misconfigured, the report core still needs its tuning: defaults
        // when even that is invalid (the failure says so).
        Err(f) => (
            Err(Arc::new(f)),
            tollgate::config::report_config(&ProcessEnv).unwrap_or_default(),
        ),
    };
    let reporter = Arc::new(CodePipelineReporter::new(&sdk));
    let report_cfg = Arc::new(report_cfg);

    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let configured = configured.clone();
        let reporter = reporter.clone();
        let cfg = report_cfg.clone();
        async move {
            let budget = tollgate::lambda::budget(&ev.context, &cfg);
            let reporter = reporter.as_ref();
            match configured {
                Ok(deps) => {
                    tollgate::actions::handle(&deps, reporter, ev.payload, budget, &cfg).await
                }
                Err(failure) => {
                    tollgate::actions::handle_misconfigured(
                        &failure, reporter, ev.payload, budget, &cfg,
                    )
                    .await
                }
            }
            .map_err(Diagnostic::from)
        }
    }))
    .await
}
