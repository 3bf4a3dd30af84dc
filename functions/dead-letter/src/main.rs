//! dead-letter: the last line of defence. Reads the on-failure SQS queues of
//! pipeline-action and deploy-hook (Lambda's records of events whose every
//! attempt failed: out of memory, timed out, crashed, or a report that
//! could not be delivered) and reports each job or hook Failed with what
//! happened. The logic is `tollgate-deadletter`.
//!
//! It has no configuration that can be wrong: the log groups it names are
//! optional, and an odd value is ignored.

use tollgate_aws_codedeploy::CodeDeployReporter;
use tollgate_aws_codepipeline::CodePipelineReporter;
use tollgate_core::config::ProcessEnv;
use tollgate_deadletter::{DeadLetter, FailuresOnly, LogGroups};
use tollgate_runtime::{Function, Init};

async fn init(init: Init) -> impl Function {
    let report = tollgate_report::config::report_config(&ProcessEnv).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "report tuning is invalid; the defaults are used");
        Default::default()
    });
    DeadLetter {
        jobs: FailuresOnly(CodePipelineReporter::new(&init.sdk)),
        hooks: CodeDeployReporter::new(&init.sdk),
        log_groups: LogGroups::from_env(&ProcessEnv),
        report,
    }
}

fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_runtime::run(init)
}
