//! deploy-hook: smoke-tests a blue/green deployment's new version before it
//! takes production traffic, and gates it on its metrics while it does:
//! CodeDeploy lifecycle hooks and Amazon ECS native lifecycle hooks. The logic is `tollgate-deploy` (the function is
//! `app::HookFunction`); the adapters only this function uses are in
//! [`aws`].

mod aws;

use aws::ssm_write::SsmParameterWriter;
use aws::{codedeploy_read::CodeDeployReader, ecs_deployments::EcsServiceDeployments};
use aws::{ecs_targets::EcsTargetReader, elbv2::ElbReader, sqs_gate::SqsGateQueue};
use tollgate_aws_cloudwatch::CloudWatchMetrics;
use tollgate_aws_codedeploy::CodeDeployReporter;
use tollgate_aws_secretsmanager::SecretsManagerSecrets;
use tollgate_aws_ssm::SsmParameters;
use tollgate_core::config::ProcessEnv;
use tollgate_deploy::reuse::{ReusingDeployments, ReusingListeners};
use tollgate_deploy::{DeployHook, app::HookFunction};
use tollgate_runtime::{Function, Init};

async fn init(init: Init) -> impl Function {
    let sdk = init.sdk;
    let ecs = EcsServiceDeployments::new(&sdk);
    let reporter = CodeDeployReporter::new(&sdk);
    // Runs at init, and again on the next event after a transient failure.
    let build = move || {
        let sdk = sdk.clone();
        async move {
            let (reader, elb, ecs) = (
                ReusingDeployments::new(CodeDeployReader::new(&sdk)),
                ReusingListeners::new(ElbReader::new(&sdk)),
                EcsServiceDeployments::new(&sdk),
            );
            let app = DeployHook::init(
                &ProcessEnv,
                SsmParameters::new(&sdk),
                SecretsManagerSecrets::new(&sdk),
                reader,
                elb,
                ecs,
            )
            .await?;
            // Reads reused: tollgate_deploy::reuse. Failure records; metric gates' reads, queue.
            let queue = (app.config.gate_queue_url.clone()).map(|u| SqsGateQueue::new(&sdk, u));
            Ok(app
                .with_failure_records(SsmParameterWriter::new(&sdk))
                .with_metrics(CloudWatchMetrics::new(&sdk))
                .with_target_reader(EcsTargetReader::new(&sdk))
                .with_gate_queue(queue))
        }
    };
    HookFunction::init(&ProcessEnv, reporter, ecs, build).await
}

fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_runtime::run(init)
}
