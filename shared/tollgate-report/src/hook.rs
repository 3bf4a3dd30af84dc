//! CodeDeploy lifecycle hook reports: `PutLifecycleEventHookExecutionStatus`.

use super::deliver::deliver;
use super::guard::{Budget, Step, WorkEnd, run_work};
use super::pipeline::to_failure;
use super::{Completion, ReportConfig, ReportError, ReportFailure, describe_json_error};
use crate::events::codedeploy::CodeDeployHookEvent;
use serde::Serialize;
use std::future::Future;

/// The two statuses the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookStatus {
    /// The hook passed; the deployment continues.
    Succeeded,
    /// The hook failed; the deployment stops and rolls back if configured.
    Failed,
}

impl HookStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// Result of a hook's work. The API takes only the status; the message goes
/// to the structured log (and to notifications) so a failure says what broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// Succeeded or Failed.
    pub status: HookStatus,
    /// One line on success, every failed expectation on failure.
    pub message: String,
}

impl HookOutcome {
    /// A pass.
    pub fn succeeded(message: impl Into<String>) -> Self {
        Self {
            status: HookStatus::Succeeded,
            message: message.into(),
        }
    }

    /// A failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            status: HookStatus::Failed,
            message: message.into(),
        }
    }
}

/// Port: sends CodeDeploy hook statuses.
pub trait HookReporter: Send + Sync {
    /// `PutLifecycleEventHookExecutionStatus`.
    fn put_hook_status(
        &self,
        deployment_id: &str,
        execution_id: &str,
        status: HookStatus,
    ) -> impl Future<Output = Result<(), ReportError>> + Send;
}

const OPERATION: &str = "codedeploy:PutLifecycleEventHookExecutionStatus";

/// Runs `work` for one hook invocation and reports its status exactly once.
pub async fn finish_hook<R, F>(
    reporter: &R,
    event: &CodeDeployHookEvent,
    budget: Budget,
    step: Step,
    cfg: &ReportConfig,
    work: F,
) -> Result<Completion, ReportFailure>
where
    R: HookReporter,
    F: Future<Output = HookOutcome> + Send + 'static,
{
    let end = run_work(work, &step, &budget).await;
    let outcome = match end.failure_text(&budget) {
        Some(text) => HookOutcome::failed(text),
        None => match end {
            WorkEnd::Done(outcome) => outcome,
            WorkEnd::Panicked { .. } | WorkEnd::TimedOut { .. } => {
                HookOutcome::failed("internal error")
            }
        },
    };
    report_hook(reporter, event, outcome, budget, cfg).await
}

/// Reports a known outcome.
pub async fn report_hook<R: HookReporter>(
    reporter: &R,
    event: &CodeDeployHookEvent,
    outcome: HookOutcome,
    budget: Budget,
    cfg: &ReportConfig,
) -> Result<Completion, ReportFailure> {
    let status = outcome.status;
    match status {
        HookStatus::Succeeded => tracing::info!(
            deployment_id = %event.deployment_id,
            hook_execution_id = %event.lifecycle_event_hook_execution_id,
            outcome = status.as_str(),
            message = %outcome.message,
            "hook outcome"
        ),
        HookStatus::Failed => tracing::warn!(
            deployment_id = %event.deployment_id,
            hook_execution_id = %event.lifecycle_event_hook_execution_id,
            outcome = status.as_str(),
            message = %outcome.message,
            "hook outcome"
        ),
    }
    let (attempts, result) = deliver(OPERATION, budget.hard_deadline, cfg, || {
        reporter.put_hook_status(
            &event.deployment_id,
            &event.lifecycle_event_hook_execution_id,
            status,
        )
    })
    .await;
    let label = match status {
        HookStatus::Succeeded => "succeeded",
        HookStatus::Failed => "failed",
    };
    match result {
        Ok(delivery) => {
            tracing::info!(deployment_id = %event.deployment_id, report = label, delivery = ?delivery, attempts, "hook reported");
            Ok(Completion {
                report: label,
                delivery,
                attempts,
                id: event.lifecycle_event_hook_execution_id.clone(),
            })
        }
        Err(u) => Err(to_failure(
            OPERATION,
            "deployment (up to one hour, then it rolls back)",
            u,
        )),
    }
}

/// The invocation path for a CodeDeploy hook: parse, guard, report once.
/// A payload without both ids cannot be reported and ends in a Lambda error.
pub async fn run_hook<R, W, F>(
    reporter: &R,
    raw: serde_json::Value,
    budget: Budget,
    cfg: &ReportConfig,
    work: W,
) -> Result<Completion, ReportFailure>
where
    R: HookReporter,
    W: FnOnce(CodeDeployHookEvent, Step) -> F,
    F: Future<Output = HookOutcome> + Send + 'static,
{
    let event: CodeDeployHookEvent = serde_json::from_value(raw).map_err(|e| {
        ReportFailure::NotAnEvent(format!(
            "the event is not a CodeDeploy lifecycle hook ({}): expected \
             {{\"DeploymentId\": \"d-…\", \"LifecycleEventHookExecutionId\": \"…\"}}; nothing was reported",
            describe_json_error(&e)
        ))
    })?;
    tracing::info!(deployment_id = %event.deployment_id, "hook invocation received");
    let step = Step::default();
    let fut = work(event.clone(), step.clone());
    finish_hook(reporter, &event, budget, step, cfg, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;

    #[derive(Default)]
    struct Fake(Mutex<Vec<(String, HookStatus)>>);

    impl HookReporter for Fake {
        async fn put_hook_status(
            &self,
            _d: &str,
            e: &str,
            status: HookStatus,
        ) -> Result<(), ReportError> {
            self.0.lock().expect("lock").push((e.to_owned(), status));
            Ok(())
        }
    }

    fn budget(ms: u64) -> Budget {
        let cfg = ReportConfig {
            reserve: Duration::from_millis(50),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        Budget::within(Instant::now() + Duration::from_millis(ms), &cfg)
    }

    fn event() -> serde_json::Value {
        serde_json::json!({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "h-1"})
    }

    #[tokio::test]
    async fn a_panic_is_reported_failed_once() {
        let fake = Fake::default();
        let c = run_hook(
            &fake,
            event(),
            budget(2000),
            &ReportConfig::default(),
            |_e, _s| async { panic!("kaput") },
        )
        .await
        .expect("delivered");
        assert_eq!(c.report, "failed");
        assert_eq!(
            *fake.0.lock().expect("lock"),
            vec![("h-1".to_owned(), HookStatus::Failed)]
        );
    }

    #[tokio::test]
    async fn a_timeout_is_reported_failed_once() {
        let fake = Fake::default();
        let c = run_hook(
            &fake,
            event(),
            budget(300),
            &ReportConfig::default(),
            |_e, step| async move {
                step.enter("probing the green target");
                tokio::time::sleep(Duration::from_secs(10)).await;
                HookOutcome::succeeded("late")
            },
        )
        .await
        .expect("delivered");
        assert_eq!(c.report, "failed");
        assert_eq!(fake.0.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_foreign_payload_is_a_lambda_error() {
        let fake = Fake::default();
        let err = run_hook(
            &fake,
            serde_json::json!({"foo": 1}),
            budget(300),
            &ReportConfig::default(),
            |_e, _s| async { HookOutcome::succeeded("never") },
        )
        .await
        .expect_err("not a hook");
        assert!(err.to_string().contains("LifecycleEventHookExecutionId"));
        assert!(fake.0.lock().expect("lock").is_empty());
    }
}
