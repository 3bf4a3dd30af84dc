//! A Lambda function that exists only for the integration tests: it runs the
//! real report core (real SDK clients, real Lambda runtime) with work whose
//! behaviour the test chooses, so each failure mode of the core can be driven
//! through a real process.
//!
//! CodePipeline jobs: `UserParameters` = `{"probe": "succeed" | "fail" |
//! "panic" | "sleep" | "continue", "message": "…", "ms": 1000}`.
//! CodeDeploy hooks: the `PROBE_HOOK` env var = `succeed` | `fail` | `panic` |
//! `sleep:<ms>`.

#![recursion_limit = "256"]

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tollgate_aws_codedeploy::CodeDeployReporter;
use tollgate_aws_codepipeline::CodePipelineReporter;
use tollgate_core::config::ProcessEnv;
use tollgate_report::config::report_config;
use tollgate_report::{FailureKind, HookOutcome, JobOutcome, ReportConfig, Step, hook, pipeline};

struct App {
    cfg: ReportConfig,
    jobs: CodePipelineReporter,
    hooks: CodeDeployReporter,
    hook_behaviour: String,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_core::telemetry::init();
    let cfg = match report_config(&ProcessEnv) {
        Ok(cfg) => cfg,
        Err(e) => {
            tollgate_report::lambda::report_init_error("ConfigError", &e.to_string()).await;
            std::process::exit(1);
        }
    };
    let sdk = tollgate_aws::load_sdk_config().await;
    let app = Arc::new(App {
        cfg,
        jobs: CodePipelineReporter::new(&sdk),
        hooks: CodeDeployReporter::new(&sdk),
        hook_behaviour: std::env::var("PROBE_HOOK").unwrap_or_else(|_| "succeed".into()),
    });
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| {
        let app = app.clone();
        async move { handle(&app, ev).await }
    }))
    .await
}

async fn handle(app: &App, ev: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let budget = tollgate_report::lambda::budget(&ev.context, &app.cfg);
    let done = if ev.payload.get("DeploymentId").is_some() {
        let behaviour = app.hook_behaviour.clone();
        hook::run_hook(
            &app.hooks,
            ev.payload,
            budget,
            &app.cfg,
            move |_ev, step| hook_work(behaviour, step),
        )
        .await
    } else {
        pipeline::run_job(&app.jobs, ev.payload, budget, &app.cfg, |job, step| {
            tracing::info!(job = ?job, "probe received job");
            let params: Value = job
                .data
                .action_configuration
                .configuration
                .user_parameters
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(Value::Null);
            job_work(params, step)
        })
        .await
    }?;
    Ok(serde_json::to_value(done).unwrap_or(Value::Null))
}

async fn job_work(params: Value, step: Step) -> JobOutcome {
    let message = params["message"].as_str().unwrap_or("").to_owned();
    let ms = params["ms"].as_u64().unwrap_or(0);
    match params["probe"].as_str().unwrap_or("succeed") {
        "fail" => JobOutcome::failed(FailureKind::JobFailed, message),
        "panic" => {
            step.enter("probing the panic path");
            panic!("probe panic: {message}");
        }
        "sleep" => {
            step.enter("sleeping past the deadline on purpose");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            JobOutcome::succeeded("woke up")
        }
        "continue" => JobOutcome::in_progress("probe-token-1", "still going", 40),
        _ => {
            let mut outcome = JobOutcome::succeeded("probe succeeded");
            if let JobOutcome::Success(s) = &mut outcome {
                s.output_variables.insert("probe".into(), "ok".into());
            }
            outcome
        }
    }
}

async fn hook_work(behaviour: String, step: Step) -> HookOutcome {
    match behaviour.as_str() {
        "fail" => HookOutcome::failed("probe hook failed on purpose"),
        "panic" => {
            step.enter("probing the hook panic path");
            panic!("probe hook panic");
        }
        b if b.starts_with("sleep:") => {
            step.enter("sleeping in the hook on purpose");
            let ms = b.trim_start_matches("sleep:").parse().unwrap_or(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            HookOutcome::succeeded("woke up")
        }
        _ => HookOutcome::succeeded("probe hook passed"),
    }
}
