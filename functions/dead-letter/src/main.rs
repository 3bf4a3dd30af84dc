//! dead-letter: the last line of defence. Reads the on-failure SQS queues of
//! pipeline-action and deploy-hook (Lambda's destination records of events
//! whose every attempt failed: killed out of memory, timed out, crashed, or
//! with a report that could not be delivered) and reports each job or hook
//! Failed with what happened, so nothing waits out its timeout. Answers with
//! partial batch failures. The logic lives in `tollgate::deadletter`.
//!
//! It has no configuration that can be wrong: the log groups it names are
//! optional, and an odd value is ignored.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use std::sync::Arc;
use tollgate::aws::codedeploy::CodeDeployReporter;
use tollgate::aws::codepipeline::CodePipelineReporter;
use tollgate::config::ProcessEnv;
use tollgate::deadletter::{DeadLetter, FailuresOnly, LogGroups};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let sdk = tollgate::aws::load_sdk_config().await;
    let report = tollgate::config::report_config(&ProcessEnv).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "report tuning is invalid; the defaults are used");
        Default::default()
    });
    let consumer = Arc::new(DeadLetter {
        jobs: FailuresOnly(CodePipelineReporter::new(&sdk)),
        hooks: CodeDeployReporter::new(&sdk),
        log_groups: LogGroups::from_env(&ProcessEnv),
        report,
    });

    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move {
            let budget = tollgate::lambda::budget(&ev.context, &consumer.report);
            Ok::<SqsBatchResponse, Diagnostic>(consumer.handle(ev.payload, budget).await)
        }
    }))
    .await
}
