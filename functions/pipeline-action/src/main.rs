//! pipeline-action: CodePipeline Invoke actions picked by `UserParameters`
//! (`smoke`, `verify-artifact`, `ecs-deploy`, `ecs-wait`, `gate`, `run-task`). Every job
//! ends in exactly one `PutJobSuccessResult` / `PutJobFailureResult`. The logic is
//! `tollgate-pipeline` (the function is `app::PipelineAction`); the adapters
//! only this function uses are in [`aws`].

mod aws;

use aws::{
    codepipeline_jobs::CodePipelineJobs, ecs::EcsClient, logs::CloudWatchLogs, s3::S3Artifacts,
};
use std::sync::Arc;
use tollgate_aws_cloudwatch::CloudWatchMetrics;
use tollgate_aws_codepipeline::CodePipelineReporter;
use tollgate_core::config::ProcessEnv;
use tollgate_pipeline::app::{Adapters, PipelineAction};
use tollgate_runtime::Init;

type App = PipelineAction<CodePipelineReporter, S3Artifacts, EcsClient, CodePipelineJobs>;

async fn init(init: Init) -> App {
    let sdk = &init.sdk;
    PipelineAction::init(&ProcessEnv, CodePipelineReporter::new(sdk), || Adapters {
        artifacts: S3Artifacts::new(sdk),
        ecs: EcsClient::new(sdk),
        jobs: CodePipelineJobs::new(sdk),
        metrics: Box::new(CloudWatchMetrics::new(sdk)),
        logs: Arc::new(CloudWatchLogs::new(sdk)),
    })
}

fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_runtime::run(init)
}
