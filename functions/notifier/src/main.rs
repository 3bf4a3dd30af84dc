//! notifier: EventBridge events (CodePipeline, CodeDeploy, CodeBuild, ECS) to
//! Slack, Microsoft Teams, a generic JSON webhook and SNS.
//!
//! Thin main: logging, configuration validated once (secrets and the rules
//! document resolved and cached for the life of the execution environment),
//! clients built once, then the Lambda loop. The logic is in
//! `tollgate::notify`.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use std::sync::Arc;
use std::time::Duration;
use tollgate::aws::dynamodb_ledger::DynamoLedger;
use tollgate::aws::notify_sources::NotifySources;
use tollgate::aws::secretsmanager::SecretsManagerSecrets;
use tollgate::aws::sns::SnsPublisher;
use tollgate::aws::ssm::SsmParameters;
use tollgate::config::ProcessEnv;
use tollgate::notify::Notifier;
use tollgate::notify::config;
use tollgate::notify::deliver::ReqwestTransport;
use tollgate::notify::handler::deadline_from_epoch_ms;

async fn fail_init(error_type: &str, message: &str) -> ! {
    tollgate::lambda::report_init_error(error_type, message).await;
    std::process::exit(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::telemetry::init();
    let settings = match config::settings(&ProcessEnv) {
        Ok(s) => s,
        Err(e) => fail_init("InvalidConfiguration", &e.to_string()).await,
    };
    let sdk = tollgate::aws::load_sdk_config().await;
    let resolved = match config::resolve(
        &settings,
        &SecretsManagerSecrets::new(&sdk),
        &SsmParameters::new(&sdk),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => fail_init(e.error_type(), &e.to_string()).await,
    };
    let http = match ReqwestTransport::new(Duration::from_secs(3)) {
        Ok(h) => h,
        Err(e) => fail_init("HttpClient", &e).await,
    };
    let names: Vec<String> = resolved
        .destinations
        .iter()
        .map(|d| format!("{}:{}", d.name, d.kind().as_str()))
        .collect();
    tracing::info!(
        destinations = %names.join(","),
        enrich = resolved.enrich,
        hook_failure_parameter_prefix = resolved.hook_failure_prefix.as_deref(),
        dedupe_table = settings.dedupe_table.as_deref(),
        "notifier ready"
    );
    let notifier = Arc::new(
        Notifier::new(
            resolved,
            NotifySources::new(&sdk),
            http,
            SnsPublisher::new(&sdk),
        )
        .with_ledger({
            let ledger = DynamoLedger::new(&sdk, settings.dedupe_table.clone());
            ledger.warm().await;
            ledger
        }),
    );
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| {
        let notifier = Arc::clone(&notifier);
        async move {
            let deadline = deadline_from_epoch_ms(ev.context.deadline);
            notifier
                .handle(ev.payload, deadline)
                .await
                .map_err(Diagnostic::from)
        }
    }))
    .await
}
