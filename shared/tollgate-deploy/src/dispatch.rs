//! Tells the two payloads apart and routes them:
//!
//! - CodeDeploy: `{"DeploymentId", "LifecycleEventHookExecutionId"}` → the
//!   report core (`PutLifecycleEventHookExecutionStatus`, exactly once);
//! - ECS native: `{"executionId", "lifecycleStage", "executionDetails", …}` →
//!   a synchronous `hookStatus` answer.
//!
//! Anything else is a Lambda error that names both accepted shapes (and the
//! keys that were seen, never the values).

use super::DeployHook;
use super::codedeploy_mode::HookEnd;
use super::discovery::{DeploymentReader, ListenerReader};
use super::rollback::ServiceDeployments;
use super::smoke::SmokeRunner;
use super::{codedeploy_gate, codedeploy_mode, ecs_native};
use lambda_runtime::Diagnostic;
use std::sync::Arc;
use tollgate_report::events::CodeDeployHookEvent;
use tollgate_report::events::ecs_hook::SHAPE_KEYS;
use tollgate_report::hook::report_hook;
use tollgate_report::hook::run_hook;
use tollgate_report::lambda::InitFailure;
use tollgate_report::{Budget, HookOutcome, HookReporter, ReportConfig};
use tollgate_report::{ReportFailure, Step, WorkEnd, describe_json_error, run_work};

/// The payload kinds deploy-hook accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A CodeDeploy lifecycle hook.
    CodeDeploy,
    /// An ECS native lifecycle hook.
    EcsNative,
    /// An SQS event of the gate queue: CodeDeploy metric gate tickets.
    GateQueue,
    /// Neither; carries a description of what was seen.
    Unrecognised(String),
}

const CODEDEPLOY_KEYS: [&str; 2] = ["DeploymentId", "LifecycleEventHookExecutionId"];

/// The accepted shapes, for error messages.
pub const ACCEPTED: &str = "deploy-hook accepts a CodeDeploy lifecycle hook \
    {\"DeploymentId\": \"d-…\", \"LifecycleEventHookExecutionId\": \"…\"} or an Amazon ECS \
    lifecycle hook {\"executionId\": \"…\", \"lifecycleStage\": \"POST_TEST_TRAFFIC_SHIFT\", \
    \"executionDetails\": {\"serviceArn\": \"…\", \"targetServiceRevisionArn\": \"…\"}, \
    \"hookDetails\": {…}}";

/// Recognises a payload by its keys.
pub fn recognise(raw: &serde_json::Value) -> Shape {
    let Some(obj) = raw.as_object() else {
        let kind = match raw {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        return Shape::Unrecognised(format!("the payload is {kind}"));
    };
    if codedeploy_gate::is_queue_event(raw) {
        return Shape::GateQueue;
    }
    if CODEDEPLOY_KEYS.iter().any(|k| obj.contains_key(*k)) {
        return Shape::CodeDeploy;
    }
    if SHAPE_KEYS.iter().any(|k| obj.contains_key(*k)) {
        return Shape::EcsNative;
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(10).collect();
    keys.sort_unstable();
    let seen = if keys.is_empty() {
        "the payload is an empty object".to_owned()
    } else {
        format!(
            "the payload has the keys {}{}",
            keys.join(", "),
            if obj.len() > 10 { ", …" } else { "" }
        )
    };
    Shape::Unrecognised(seen)
}

/// The Lambda error for an unrecognised payload.
pub fn unrecognised(seen: &str) -> Diagnostic {
    Diagnostic {
        error_type: "UnrecognisedEvent".to_owned(),
        error_message: format!(
            "{seen}, which is not a lifecycle hook event: {ACCEPTED}. Nothing was reported"
        ),
    }
}

/// Handles one invocation of any accepted shape.
///
/// CodeDeploy: `Ok` with the report core's `Completion` as JSON, or the
/// report core's error when nothing could be delivered. ECS: always `Ok`
/// with the `hookStatus` answer.
pub async fn handle<R, D, L, S, E>(
    app: &Arc<DeployHook<D, L, S, E>>,
    reporter: &R,
    raw: serde_json::Value,
    budget: Budget,
) -> Result<serde_json::Value, Diagnostic>
where
    R: HookReporter,
    D: DeploymentReader + 'static,
    L: ListenerReader + 'static,
    S: SmokeRunner,
    E: ServiceDeployments + 'static,
{
    match recognise(&raw) {
        Shape::CodeDeploy => {
            let event: CodeDeployHookEvent = serde_json::from_value(raw).map_err(|e| {
                Diagnostic::from(ReportFailure::NotAnEvent(format!(
                    "the event is not a CodeDeploy lifecycle hook ({}): expected \
                     {{\"DeploymentId\": \"d-…\", \"LifecycleEventHookExecutionId\": \"…\"}}; nothing was reported",
                    describe_json_error(&e)
                )))
            })?;
            tracing::info!(deployment_id = %event.deployment_id, "hook invocation received");
            let step = Step::default();
            let work = {
                let (app, event, step) = (app.clone(), event.clone(), step.clone());
                let work_deadline = budget.work_deadline;
                async move { codedeploy_mode::run(app, event, step, work_deadline).await }
            };
            let end = run_work(work, &step, &budget).await;
            let outcome = match end.failure_text(&budget) {
                Some(text) => HookOutcome::failed(text),
                None => match end {
                    WorkEnd::Done(HookEnd::Report(outcome)) => outcome,
                    // The metric gate's bake is queued: the hook is
                    // reported when its verdict is in.
                    WorkEnd::Done(HookEnd::Baking(summary)) => {
                        tracing::info!(deployment_id = %event.deployment_id, summary = %summary, "hook handed to the metric gate; not reported yet");
                        return Ok(serde_json::json!({"report": "baking", "summary": summary}));
                    }
                    WorkEnd::Panicked { .. } | WorkEnd::TimedOut { .. } => {
                        HookOutcome::failed("internal error")
                    }
                },
            };
            let completion = report_hook(reporter, &event, outcome, budget, &app.config.report)
                .await
                .map_err(Diagnostic::from)?;
            serde_json::to_value(&completion).map_err(|e| Diagnostic {
                error_type: "InternalError".to_owned(),
                error_message: format!(
                    "the hook was reported, but its summary could not be serialised: {e}"
                ),
            })
        }
        Shape::GateQueue => {
            let out = codedeploy_gate::handle(app, reporter, &raw, budget).await;
            let undelivered = out
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["gate"] == "undelivered"));
            if undelivered {
                // SQS delivers the ticket again: its verdict is reported
                // then, or the hook's hour runs out (fail closed).
                return Err(Diagnostic {
                    error_type: "ReportUndelivered".to_owned(),
                    error_message: format!("a metric gate verdict could not be delivered: {out}"),
                });
            }
            Ok(out)
        }
        Shape::EcsNative => {
            let answer = ecs_native::handle(app.clone(), raw, budget).await;
            serde_json::to_value(&answer).map_err(|e| Diagnostic {
                error_type: "InternalError".to_owned(),
                error_message: format!("the ECS hook answer could not be serialised: {e}"),
            })
        }
        Shape::Unrecognised(seen) => {
            tracing::error!(seen = %seen, "unrecognised payload");
            Err(unrecognised(&seen))
        }
    }
}

/// Handles one invocation while the function is misconfigured (its
/// configuration failed at init): a CodeDeploy hook is reported `Failed` at
/// once, an ECS native hook is answered `FAILED` with the reason in
/// `hookDetails`; nothing is looked up or checked. An unrecognised payload is
/// the same Lambda error as when configured.
pub async fn handle_misconfigured<R: HookReporter, E: ServiceDeployments>(
    failure: &InitFailure,
    reporter: &R,
    ecs: &E,
    raw: serde_json::Value,
    budget: Budget,
    cfg: &ReportConfig,
) -> Result<serde_json::Value, Diagnostic> {
    let reason = failure.reason();
    let answer = match recognise(&raw) {
        Shape::CodeDeploy => {
            let completion = run_hook(reporter, raw, budget, cfg, move |event, _step| {
                failure.log_refused(&event.lifecycle_event_hook_execution_id);
                async move { HookOutcome::failed(reason) }
            })
            .await
            .map_err(Diagnostic::from)?;
            serde_json::to_value(&completion)
        }
        Shape::GateQueue => {
            let mut out = Vec::new();
            for ticket in codedeploy_gate::tickets(&raw) {
                let Ok(event) = serde_json::from_value::<CodeDeployHookEvent>(serde_json::json!({
                    "DeploymentId": ticket.deployment_id,
                    "LifecycleEventHookExecutionId": ticket.hook_execution_id,
                })) else {
                    continue;
                };
                failure.log_refused(&event.lifecycle_event_hook_execution_id);
                let completion = report_hook(
                    reporter,
                    &event,
                    HookOutcome::failed(reason.clone()),
                    budget,
                    cfg,
                )
                .await
                .map_err(Diagnostic::from)?;
                out.push(completion);
            }
            serde_json::to_value(&out)
        }
        Shape::EcsNative => {
            let id = raw
                .get("executionId")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("(no executionId)")
                .to_owned();
            // A confirmed rollback is never blocked, configured or not.
            let event =
                serde_json::from_value::<tollgate_report::events::ecs_hook::EcsHookEvent>(raw).ok();
            let rollback = match &event {
                Some(ev) if ev.is_rollback() => ecs_native::confirm_rollback(ecs, ev).await,
                _ => ecs_native::RollbackCheck::NotRollback(String::new()),
            };
            if let ecs_native::RollbackCheck::Confirmed(status) = rollback {
                tracing::warn!(status = %status, "misconfigured, but a confirmed rollback passes");
                serde_json::to_value(ecs_native::EcsHookResponse {
                    hook_status: ecs_native::EcsHookStatus::Succeeded,
                    call_back_delay: None,
                    hook_details: None,
                })
            } else {
                failure.log_refused(&id);
                serde_json::to_value(ecs_native::EcsHookResponse::failed(reason, None))
            }
        }
        Shape::Unrecognised(seen) => {
            tracing::error!(seen = %seen, "unrecognised payload");
            return Err(unrecognised(&seen));
        }
    };
    answer.map_err(|e| Diagnostic {
        error_type: "InternalError".to_owned(),
        error_message: format!("the answer could not be serialised: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeployConfig, vars as env};
    use crate::discovery::fakes::{FakeCodeDeploy, FakeElb, deployment, elb, group};
    use crate::green::fixtures::target;
    use crate::rollback::fakes::FakeDeployments;
    use crate::smoke::fakes::{FakeRunner, Script};
    use std::time::Duration;
    use tokio::time::Instant;
    use tollgate_core::hook_failures::{HookFailureRecord, PREFIX_VAR, WRITE_TIMEOUT};
    use tollgate_report::{HookStatus, ReportConfig};
    use tollgate_test_support::parameters::{FakeWriter, Log, Mode};
    use tollgate_test_support::reporters::FakeHookReporter;

    const CODEDEPLOY_SAMPLES: [(&str, &str); 5] = [
        (
            "BeforeInstall",
            include_str!("../../../events/deploy-hook/codedeploy-before-install.json"),
        ),
        (
            "AfterInstall",
            include_str!("../../../events/deploy-hook/codedeploy-after-install.json"),
        ),
        (
            "AfterAllowTestTraffic",
            include_str!("../../../events/deploy-hook/codedeploy-after-allow-test-traffic.json"),
        ),
        (
            "BeforeAllowTraffic",
            include_str!("../../../events/deploy-hook/codedeploy-before-allow-traffic.json"),
        ),
        (
            "AfterAllowTraffic",
            include_str!("../../../events/deploy-hook/codedeploy-after-allow-traffic.json"),
        ),
    ];

    fn app(
        target_url: Option<&str>,
        script: Script,
    ) -> Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>> {
        let mut vars = vec![(
            env::CHECK_SPEC.to_owned(),
            "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]".to_owned(),
        )];
        if let Some(t) = target_url {
            vars.push((env::TARGET_URL.to_owned(), t.to_owned()));
        }
        let env: std::collections::HashMap<String, String> = vars.into_iter().collect();
        let mut cd = FakeCodeDeploy::default();
        cd.deployments
            .insert("d-TOLLGATE1".into(), deployment("ECS"));
        cd.groups.insert("web-dg".into(), group(true));
        Arc::new(DeployHook {
            config: DeployConfig::from_env(&env).expect("config"),
            codedeploy: cd,
            elb: elb(),
            ecs: FakeDeployments::default(),
            smoke: FakeRunner::new(script),
            recorder: None,
            gates: crate::gate_hook::Gates::default(),
        })
    }

    fn budget() -> Budget {
        let cfg = ReportConfig {
            reserve: Duration::from_millis(100),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        Budget::within(Instant::now() + Duration::from_secs(5), &cfg)
    }

    #[test]
    fn shapes_are_recognised() {
        for (hook, text) in CODEDEPLOY_SAMPLES {
            let v: serde_json::Value = serde_json::from_str(text).expect(hook);
            assert_eq!(recognise(&v), Shape::CodeDeploy, "{hook}");
        }
        let ecs: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/deploy-hook/ecs-post-test-traffic-shift.json"
        ))
        .expect("ecs");
        assert_eq!(recognise(&ecs), Shape::EcsNative);
        assert_eq!(
            recognise(&serde_json::json!({"lifecycleStage": "X"})),
            Shape::EcsNative
        );
        assert!(matches!(
            recognise(&serde_json::json!({"CodePipeline.job": {}})),
            Shape::Unrecognised(s) if s == "the payload has the keys CodePipeline.job"
        ));
        assert!(
            matches!(recognise(&serde_json::json!([1])), Shape::Unrecognised(s) if s == "the payload is an array")
        );
    }

    #[tokio::test]
    async fn every_codedeploy_hook_sample_is_reported_once() {
        // Each sample as its own hook (fixed by the target's in-progress
        // event); BeforeInstall and AfterInstall need TARGET_URL.
        for (hook, text) in CODEDEPLOY_SAMPLES {
            let app = {
                let mut a =
                    Arc::try_unwrap(app(Some("http://green.internal:9000"), Script::Pass(1)))
                        .expect("sole");
                let green = (hook != "BeforeInstall").then_some((2, 2, 0));
                a.codedeploy
                    .targets
                    .insert("d-TOLLGATE1".into(), vec![target(green, hook)]);
                Arc::new(a)
            };
            let reports = FakeHookReporter::default();
            let raw: serde_json::Value = serde_json::from_str(text).expect(hook);
            let out = handle(&app, &reports, raw.clone(), budget())
                .await
                .expect(hook);
            assert_eq!(out["report"], "succeeded", "{hook}: {out}");
            let got = reports.calls();
            assert_eq!(got.len(), 1, "{hook}");
            assert_eq!(
                got[0].1,
                raw["LifecycleEventHookExecutionId"].as_str().expect("id")
            );
            assert_eq!(got[0].2, HookStatus::Succeeded);
            assert_eq!(app.smoke.var(0, "HOOK").as_deref(), Some(hook));
        }
    }

    #[tokio::test]
    async fn before_install_without_target_url_fails_naming_the_fix() {
        let app = {
            let mut a = Arc::try_unwrap(app(None, Script::Pass(1))).expect("sole");
            a.codedeploy
                .targets
                .insert("d-TOLLGATE1".into(), vec![target(None, "BeforeInstall")]);
            Arc::new(a)
        };
        let reports = FakeHookReporter::default();
        let raw: serde_json::Value = serde_json::from_str(CODEDEPLOY_SAMPLES[0].1).expect("sample");
        let out = handle(&app, &reports, raw, budget())
            .await
            .expect("reported");
        assert_eq!(out["report"], "failed");
        assert_eq!(reports.calls().len(), 1);
    }

    #[tokio::test]
    async fn ecs_payloads_get_a_synchronous_answer_and_no_report() {
        let app = app(Some("http://web-test.internal:8080"), Script::Pass(1));
        let reports = FakeHookReporter::default();
        let raw: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/deploy-hook/ecs-test-traffic-shift.json"
        ))
        .expect("sample");
        let out = handle(&app, &reports, raw, budget()).await.expect("answer");
        assert_eq!(out["hookStatus"], "SUCCEEDED");
        assert!(reports.calls().is_empty());
    }

    #[tokio::test]
    async fn unrecognised_payloads_name_the_accepted_shapes() {
        let app = app(None, Script::Pass(1));
        let reports = FakeHookReporter::default();
        let err = handle(
            &app,
            &reports,
            serde_json::json!({"detail-type": "x", "secret": "hunter2"}),
            budget(),
        )
        .await
        .expect_err("unrecognised");
        assert_eq!(err.error_type, "UnrecognisedEvent");
        assert!(
            err.error_message.contains("detail-type, secret"),
            "{}",
            err.error_message
        );
        assert!(!err.error_message.contains("hunter2"));
        assert!(err.error_message.contains("LifecycleEventHookExecutionId"));
        assert!(err.error_message.contains("lifecycleStage"));
        assert!(reports.calls().is_empty());
    }

    #[tokio::test]
    async fn a_half_codedeploy_payload_is_an_error_without_a_report() {
        let app = app(None, Script::Pass(1));
        let reports = FakeHookReporter::default();
        let err = handle(
            &app,
            &reports,
            serde_json::json!({"DeploymentId": "d-1"}),
            budget(),
        )
        .await
        .expect_err("no execution id");
        assert_eq!(err.error_type, "UnrecognisedEvent");
        assert!(reports.calls().is_empty());
    }

    /// The app with a recorder under `/tollgate/t/hook-failures`, writing
    /// through `writer`; the green task set is steady and the hook is
    /// AfterAllowTestTraffic.
    fn recording_app(
        script: Script,
        writer: FakeWriter,
    ) -> Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>> {
        let env: std::collections::HashMap<String, String> = [
            (
                env::CHECK_SPEC.to_owned(),
                "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]".to_owned(),
            ),
            (
                PREFIX_VAR.to_owned(),
                "/tollgate/t/hook-failures".to_owned(),
            ),
        ]
        .into();
        let mut cd = FakeCodeDeploy::default();
        cd.deployments
            .insert("d-TOLLGATE1".into(), deployment("ECS"));
        cd.groups.insert("web-dg".into(), group(true));
        cd.targets.insert(
            "d-TOLLGATE1".into(),
            vec![target(Some((2, 2, 0)), "AfterAllowTestTraffic")],
        );
        let app = DeployHook {
            config: DeployConfig::from_env(&env).expect("config"),
            codedeploy: cd,
            elb: elb(),
            ecs: FakeDeployments::default(),
            smoke: FakeRunner::new(script),
            recorder: None,
            gates: crate::gate_hook::Gates::default(),
        }
        .with_failure_records(writer);
        Arc::new(app)
    }

    fn hook_event() -> serde_json::Value {
        serde_json::from_str(CODEDEPLOY_SAMPLES[2].1).expect("sample")
    }

    #[tokio::test]
    async fn a_failed_hook_is_recorded_before_it_is_reported() {
        let log = Log::default();
        let writer = FakeWriter {
            log: log.clone(),
            ..FakeWriter::default()
        };
        let app = recording_app(Script::Fail("503"), writer.clone());
        let reports = FakeHookReporter::logging_to(log.clone());
        let out = handle(&app, &reports, hook_event(), budget())
            .await
            .expect("reported");
        assert_eq!(out["report"], "failed");
        assert_eq!(
            *log.lock().expect("lock"),
            [
                "PutParameter /tollgate/t/hook-failures/web-app/web-dg",
                "PutLifecycleEventHookExecutionStatus Failed"
            ]
        );
        let puts = writer.puts.lock().expect("lock").clone();
        let record = HookFailureRecord::decode(&puts[0].1).expect("json");
        assert_eq!(record.deployment_id, "d-TOLLGATE1");
        assert_eq!(record.hook.as_deref(), Some("AfterAllowTestTraffic"));
        assert!(
            record
                .summary
                .starts_with("AfterAllowTestTraffic failed for d-TOLLGATE1: smoke checks against"),
            "{}",
            record.summary
        );
        assert!(
            record
                .failures
                .iter()
                .any(|l| l.contains("status: expected 200, got 503")),
            "{:?}",
            record.failures
        );
    }

    #[tokio::test]
    async fn a_failure_before_the_group_is_known_is_reported_without_a_record() {
        let writer = FakeWriter::default();
        let app = {
            let mut a = Arc::try_unwrap(recording_app(Script::Pass(1), writer.clone()))
                .expect("sole owner");
            a.codedeploy.fail.insert(
                "GetDeployment",
                crate::ReadError::Denied {
                    action: "codedeploy:GetDeployment",
                    detail: "AccessDeniedException".into(),
                },
            );
            Arc::new(a)
        };
        let reports = FakeHookReporter::default();
        let out = handle(&app, &reports, hook_event(), budget())
            .await
            .expect("reported");
        assert_eq!(out["report"], "failed");
        assert_eq!(reports.calls().len(), 1);
        assert!(writer.log.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_passing_hook_writes_nothing() {
        let writer = FakeWriter::default();
        let app = recording_app(Script::Pass(1), writer.clone());
        let reports = FakeHookReporter::default();
        let out = handle(&app, &reports, hook_event(), budget())
            .await
            .expect("reported");
        assert_eq!(out["report"], "succeeded");
        assert!(writer.log.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_denied_write_changes_nothing_in_the_report() {
        let writer = FakeWriter {
            mode: Mode::Denied,
            ..FakeWriter::default()
        };
        let app = recording_app(Script::Fail("503"), writer.clone());
        let reports = FakeHookReporter::default();
        let out = handle(&app, &reports, hook_event(), budget())
            .await
            .expect("reported");
        assert_eq!(out["report"], "failed");
        assert_eq!(writer.log.lock().expect("lock").len(), 1);
        let got = reports.calls();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, HookStatus::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_costs_at_most_its_bound_and_the_report_still_goes() {
        let writer = FakeWriter {
            mode: Mode::Stall,
            ..FakeWriter::default()
        };
        let app = recording_app(Script::Fail("503"), writer.clone());
        let reports = FakeHookReporter::default();
        let cfg = ReportConfig {
            reserve: Duration::from_millis(500),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        let started = Instant::now();
        let budget = Budget::within(started + Duration::from_secs(60), &cfg);
        let out = handle(&app, &reports, hook_event(), budget)
            .await
            .expect("reported");
        assert_eq!(out["report"], "failed");
        assert_eq!(reports.calls().len(), 1);
        let spent = started.elapsed();
        assert!(
            spent >= WRITE_TIMEOUT && spent < WRITE_TIMEOUT + Duration::from_millis(200),
            "{spent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_never_eats_the_report_reserve() {
        // 1.5 s of work time: the write gets what is left before the work
        // deadline, the work is not cut off (its message is the checks'),
        // and the report is made inside the reserve.
        let writer = FakeWriter {
            mode: Mode::Stall,
            ..FakeWriter::default()
        };
        let app = recording_app(Script::Fail("503"), writer.clone());
        let reports = FakeHookReporter::default();
        let cfg = ReportConfig {
            reserve: Duration::from_millis(500),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        let started = Instant::now();
        let budget = Budget::within(started + Duration::from_secs(2), &cfg);
        let out = handle(&app, &reports, hook_event(), budget)
            .await
            .expect("reported");
        assert_eq!(out["report"], "failed");
        assert_eq!(reports.calls().len(), 1);
        assert!(
            started.elapsed() < budget.work_deadline - started,
            "{:?}",
            started.elapsed()
        );
    }

    /// Misconfigured, deploy-hook fails ECS hooks, but never blocks a
    /// rollback that ECS confirms.
    #[tokio::test]
    async fn misconfigured_still_passes_a_confirmed_rollback_only() {
        let failure = InitFailure::new("deploy-hook", "InvalidCheckSpec", "checks[0]: bad");
        let reports = FakeHookReporter::default();
        let rollback: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/deploy-hook/ecs-production-traffic-shift-rollback.json"
        ))
        .expect("sample");
        let cfg = ReportConfig::default();
        let budget = Budget::within(Instant::now() + Duration::from_secs(5), &cfg);
        let confirmed = FakeDeployments::answering(Ok("ROLLBACK_IN_PROGRESS".to_owned()));
        let out = handle_misconfigured(
            &failure,
            &reports,
            &confirmed,
            rollback.clone(),
            budget,
            &cfg,
        )
        .await
        .expect("answer");
        assert_eq!(out["hookStatus"], "SUCCEEDED", "{out}");
        let unconfirmed = FakeDeployments::answering(Ok("IN_PROGRESS".to_owned()));
        let out = handle_misconfigured(&failure, &reports, &unconfirmed, rollback, budget, &cfg)
            .await
            .expect("answer");
        assert_eq!(out["hookStatus"], "FAILED", "{out}");
        let reason = out["hookDetails"]["tollgate"]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(
            reason.starts_with("deploy-hook is misconfigured (InvalidCheckSpec)"),
            "{reason}"
        );
        assert!(reports.calls().is_empty(), "ECS hooks answer, never report");
    }
}
