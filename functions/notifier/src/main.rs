//! notifier: EventBridge events (CodePipeline, CodeDeploy, CodeBuild, ECS) to
//! Slack, Microsoft Teams, a generic JSON webhook and SNS. The logic is
//! `tollgate-notify` (the function is `Notifier`); the adapters only this
//! function uses are in [`aws`]. Secrets and the rules document are resolved
//! once at init; a bad one stops init with the reason (there is no job or
//! hook to report it to).

mod aws;

use aws::{
    dynamodb_ledger::DynamoLedger, dynamodb_releases::DynamoReleases,
    notify_sources::NotifySources, sns::SnsPublisher,
};
use std::time::Duration;
use tollgate_aws_secretsmanager::SecretsManagerSecrets;
use tollgate_aws_ssm::SsmParameters;
use tollgate_core::config::ProcessEnv;
use tollgate_notify::{Notifier, config, deliver::ReqwestTransport, destinations::slackbot};
use tollgate_runtime::{Function, Init, fail_init};

async fn init(init: Init) -> impl Function {
    let sdk = &init.sdk;
    let settings = match config::settings(&ProcessEnv) {
        Ok(s) => s,
        Err(e) => fail_init("InvalidConfiguration", &e.to_string()).await,
    };
    let resolved = config::resolve(
        &settings,
        &SecretsManagerSecrets::new(sdk),
        &SsmParameters::new(sdk),
    )
    .await;
    let resolved = match resolved {
        Ok(c) => c,
        Err(e) => fail_init(e.error_type(), &e.to_string()).await,
    };
    let http = match ReqwestTransport::new(Duration::from_secs(3)) {
        Ok(h) => h,
        Err(e) => fail_init("HttpClient", &e).await,
    };
    // A bot token Slack refuses fails init, with the reason (auth.test).
    let check = resolved.request_timeout.min(Duration::from_secs(4));
    let checked = slackbot::check_tokens(&resolved.destinations, &http, check).await;
    if let Err(e) = checked {
        fail_init("SlackTokenRejected", &e.to_string()).await;
    }
    config::log_ready(&resolved, &settings);
    let ledger = DynamoLedger::new(sdk, settings.dedupe_table.clone());
    ledger.warm().await;
    let releases = DynamoReleases::shared(sdk, settings.dedupe_table.as_deref());
    let (sources, sns) = (NotifySources::new(sdk), SnsPublisher::new(sdk));
    Notifier::new(resolved, sources, http, sns)
        .with_releases(releases)
        .with_ledger(ledger)
}

fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_runtime::run(init)
}
