//! CodeDeploy mode: the event is `{DeploymentId, LifecycleEventHookExecutionId}`
//! and nothing else, so everything is looked up:
//!
//! 1. `GetDeployment` (application, group, platform);
//! 2. for ECS: `ListDeploymentTargets` / `GetDeploymentTarget` (the running
//!    hook when `TOLLGATE_HOOK=auto`, and the GREEN task set, which must be
//!    steady);
//! 3. the target: `TARGET_URL`, or `GetDeploymentGroup` → listener →
//!    `DescribeListeners` / `DescribeLoadBalancers` → URL;
//! 4. the checks, with `${TARGET}` and the facts found as variables.
//!
//! The report core reports the outcome exactly once ([`tollgate_report::hook::run_hook`]).

use super::DeployHook;
use super::config::{HookName, HookSetting, target_text};
use super::discovery::{
    DeploymentReader, DiscoveryError, ListenerReader, discover_target, read_deployment, read_group,
};
use super::green::{GreenError, read_targets, verify_green};
use super::smoke::{SmokeRunner, SpecTarget};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_checks::{RunOptions, Vars};
use tollgate_core::hook_failures::{HookFailureRecord, WRITE_TIMEOUT, now_rfc3339};
use tollgate_report::events::CodeDeployHookEvent;
use tollgate_report::{HookOutcome, Step};

/// Time kept between the checks' deadline and the work deadline, so the
/// engine's partial results (unfinished checks marked) make it into the report.
pub const CHECKS_MARGIN: Duration = Duration::from_millis(300);

/// Longest failure text kept in the outcome (CodeDeploy takes only the
/// status; the text goes to the log and to notifications).
pub const MAX_MESSAGE: usize = 5000;

/// How a CodeDeploy hook invocation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEnd {
    /// Report this outcome now.
    Report(HookOutcome),
    /// The smoke checks passed and the spec's metric gate is baking: its
    /// next measurement is queued, and the hook is reported when the
    /// verdict is in ([`crate::codedeploy_gate`]). Carries the summary.
    Baking(String),
}

impl HookEnd {
    /// The outcome to report, if this invocation reports.
    pub fn outcome(&self) -> Option<&HookOutcome> {
        match self {
            Self::Report(o) => Some(o),
            Self::Baking(_) => None,
        }
    }
}

/// The hook's work for one CodeDeploy invocation. Never panics on bad
/// answers: every problem becomes a `Failed` outcome naming the step and
/// the fix.
///
/// With a [`crate::failure_records::FailureRecorder`], a `Failed` outcome is
/// first written to SSM for the notifier (bounded, best effort), so the
/// record exists before the report lets CodeDeploy roll back and emit its
/// FAILURE event.
pub async fn run<D, L, S, E>(
    app: Arc<DeployHook<D, L, S, E>>,
    event: CodeDeployHookEvent,
    step: Step,
    work_deadline: Instant,
) -> HookEnd
where
    D: DeploymentReader,
    L: ListenerReader,
    S: SmokeRunner,
{
    let id = event.deployment_id.clone();
    // Time kept at the end of the work for the record, so slow checks do
    // not leave it none.
    let record_time = match &app.recorder {
        Some(_) => WRITE_TIMEOUT.min(work_deadline.saturating_duration_since(Instant::now()) / 4),
        None => Duration::ZERO,
    };
    let checks_deadline = work_deadline
        .checked_sub(record_time)
        .unwrap_or(work_deadline);
    let mut group: Option<(String, String)> = None;
    let (outcome, hook) = match work(&app, &event, &step, checks_deadline, &mut group).await {
        Ok(end) => return end,
        Err(Problem { hook, text }) => {
            let name = hook.map_or_else(|| "hook".to_owned(), |h| h.to_string());
            (
                HookOutcome::failed(clip(format!("{name} failed for {id}: {text}"))),
                hook,
            )
        }
    };
    record_failure(
        &app,
        &id,
        group.as_ref(),
        hook,
        &outcome,
        &step,
        work_deadline,
    )
    .await;
    HookEnd::Report(outcome)
}

/// Leaves a `Failed` outcome in SSM for the notifier (bounded, best
/// effort), before the report lets CodeDeploy roll back.
pub(crate) async fn record_failure<D, L, S, E>(
    app: &DeployHook<D, L, S, E>,
    id: &str,
    group: Option<&(String, String)>,
    hook: Option<HookName>,
    outcome: &HookOutcome,
    step: &Step,
    work_deadline: Instant,
) {
    if let Some(recorder) = &app.recorder {
        match group {
            Some((application, group)) => {
                step.enter("recording the failed checks for the notifier (ssm:PutParameter)");
                let record = HookFailureRecord::from_message(
                    id,
                    hook.map(HookName::as_str),
                    &outcome.message,
                    &now_rfc3339(),
                );
                // Ends before the work deadline, so the guard never cuts
                // it off and the report reserve stays whole.
                let deadline = work_deadline
                    .checked_sub(RECORD_MARGIN)
                    .unwrap_or(work_deadline);
                match recorder.record(application, group, &record, deadline).await {
                    Ok(name) => tracing::info!(
                        deployment_id = %id,
                        parameter = %name,
                        "failed checks recorded for the notifier"
                    ),
                    Err(e) => tracing::warn!(
                        deployment_id = %id,
                        error = %e,
                        "could not record the failed checks for the notifier; reporting Failed without them"
                    ),
                }
            }
            None => tracing::warn!(
                deployment_id = %id,
                "the deployment's application and group are unknown, so its failure is not recorded for the notifier"
            ),
        }
    }
}

/// Kept between the end of the record write and the work deadline.
const RECORD_MARGIN: Duration = Duration::from_millis(100);

struct Problem {
    hook: Option<HookName>,
    text: String,
}

impl Problem {
    fn new(hook: Option<HookName>, text: impl ToString) -> Self {
        Self {
            hook,
            text: text.to_string(),
        }
    }
}

async fn work<D, L, S, E>(
    app: &DeployHook<D, L, S, E>,
    event: &CodeDeployHookEvent,
    step: &Step,
    work_deadline: Instant,
    group: &mut Option<(String, String)>,
) -> Result<HookEnd, Problem>
where
    D: DeploymentReader,
    L: ListenerReader,
    S: SmokeRunner,
{
    let cfg = &app.config;
    let id = &event.deployment_id;
    let fixed = match cfg.hook {
        HookSetting::Fixed(h) => Some(h),
        HookSetting::Auto => None,
    };

    step.enter(format!(
        "looking up deployment {id} (codedeploy:GetDeployment)"
    ));
    let deployment = read_deployment(&app.codedeploy, id)
        .await
        .map_err(|e| Problem::new(fixed, e))?;
    *group = Some((deployment.application.clone(), deployment.group.clone()));

    let mut vars = Vars::new()
        .with("DEPLOYMENT_ID", id.as_str())
        .with("APPLICATION_NAME", deployment.application.as_str())
        .with("DEPLOYMENT_GROUP_NAME", deployment.group.as_str());
    let mut notes: Vec<String> = Vec::new();

    // The ECS targets: which hook is running, and the green task set.
    let wants_targets = deployment.is_ecs() && (cfg.verify_green || fixed.is_none());
    let targets = if wants_targets {
        step.enter(format!(
            "reading the ECS targets of {id} (codedeploy:ListDeploymentTargets, GetDeploymentTarget)"
        ));
        match read_targets(&app.codedeploy, id).await {
            Ok(t) => Some(t),
            Err(e) if cfg.verify_green => return Err(Problem::new(fixed, e)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the deployment targets to tell which hook runs");
                None
            }
        }
    } else {
        None
    };
    let running = targets
        .as_ref()
        .and_then(|t| t.iter().find_map(|t| t.running_hook()));
    let hook = match (fixed, running) {
        (Some(h), Some(r)) if h != r => {
            tracing::warn!(configured = %h, in_progress = %r, "TOLLGATE_HOOK differs from the hook CodeDeploy shows in progress; using the configured one");
            h
        }
        (Some(h), _) => h,
        (None, Some(r)) => r,
        (None, None) => {
            notes.push(if targets.is_some() {
                "assumed BeforeAllowTraffic: CodeDeploy showed no hook in progress (set TOLLGATE_HOOK to say which)"
                    .to_owned()
            } else {
                format!(
                    "assumed BeforeAllowTraffic for this {} deployment (set TOLLGATE_HOOK to say which)",
                    deployment.compute_platform
                )
            });
            HookName::BeforeAllowTraffic
        }
    };
    let hook_opt = Some(hook);
    vars.insert("HOOK", hook.as_str());
    if let Some((cluster, service)) = targets
        .as_ref()
        .and_then(|t| t.first())
        .and_then(|t| t.id.split_once(':'))
    {
        vars.insert("CLUSTER", cluster);
        vars.insert("SERVICE", service);
    }

    // The green task set must be steady before anything is sent to it.
    if let Some(targets) = targets.as_ref().filter(|_| cfg.verify_green) {
        if hook.green_exists() {
            step.enter("verifying the green task set");
            let greens =
                verify_green(targets).map_err(|e: GreenError| Problem::new(hook_opt, e))?;
            if let Some((_, green)) = greens.first() {
                vars.insert("TASK_SET_ID", green.id.as_str());
                if let Some(tg) = &green.target_group {
                    vars.insert("TARGET_GROUP", tg.as_str());
                }
            }
            let counts: Vec<String> = greens
                .iter()
                .map(|(_, g)| format!("green {} {}/{} running", g.id, g.running, g.desired))
                .collect();
            notes.push(counts.join(", "));
        } else {
            notes.push(format!("no green task set to verify at {hook}"));
        }
    }

    // The target.
    let target = match &cfg.target_url {
        Some(url) => url.clone(),
        None => {
            step.enter(format!(
                "looking up deployment group '{}' (codedeploy:GetDeploymentGroup)",
                deployment.group
            ));
            let group = read_group(&app.codedeploy, &deployment)
                .await
                .map_err(|e| Problem::new(hook_opt, e))?;
            if !vars.contains("CLUSTER")
                && let Some(svc) = group.ecs_services.first()
            {
                vars.insert("CLUSTER", svc.cluster.as_str());
                vars.insert("SERVICE", svc.service.as_str());
            }
            step.enter(
                "finding the listener's address (elasticloadbalancing:DescribeListeners, DescribeLoadBalancers)",
            );
            let found = discover_target(&app.elb, &deployment, &group, hook)
                .await
                .map_err(|e: DiscoveryError| Problem::new(hook_opt, e))?;
            cfg.pin(found.url)
        }
    };
    let target = target_text(&target);
    vars.insert("TARGET", target.as_str());
    let gate_base = vars.clone();

    step.enter(format!("running the smoke checks against {target}"));
    let deadline = work_deadline
        .checked_sub(CHECKS_MARGIN)
        .unwrap_or(work_deadline)
        .max(Instant::now());
    let spec_target = SpecTarget::CodeDeploy {
        application: deployment.application.clone(),
        group: deployment.group.clone(),
    };
    let report = app
        .smoke
        .run(&spec_target, vars, deadline, RunOptions::default())
        .await
        .map_err(|e| Problem::new(hook_opt, e))?;
    match serde_json::to_string(&report) {
        Ok(json) => tracing::info!(
            deployment_id = %id,
            hook = %hook,
            target = %target,
            outcome = ?report.outcome,
            checks = %json,
            "smoke checks finished"
        ),
        Err(e) => tracing::warn!(error = %e, "could not serialise the check report"),
    }

    let notes = notes
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| format!("; {n}"))
        .collect::<String>();
    if report.is_success() {
        let summary = format!(
            "{hook} passed for {id} against {target}: {}{notes}",
            report.summary_line(1000)
        );
        // The metric gate, once production traffic is on green.
        if hook == HookName::AfterAllowTraffic
            && let Some(gate) = app
                .smoke
                .gate(&spec_target)
                .await
                .map_err(|e| Problem::new(hook_opt, e))?
        {
            step.enter("starting the metric gate's bake");
            let ticket = crate::codedeploy_gate::Start {
                deployment_id: id.clone(),
                hook_execution_id: event.lifecycle_event_hook_execution_id.clone(),
                hook,
                application: deployment.application.clone(),
                group: deployment.group.clone(),
            };
            return crate::codedeploy_gate::start(
                app,
                ticket,
                &gate,
                &gate_base,
                targets.as_deref(),
            )
            .await
            .map(|gate_summary| HookEnd::Baking(format!("{summary}; {gate_summary}")))
            .map_err(|text| Problem::new(hook_opt, text));
        }
        Ok(HookEnd::Report(HookOutcome::succeeded(summary)))
    } else {
        let context = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.trim_start_matches("; "))
        };
        Err(Problem::new(
            hook_opt,
            format!(
                "smoke checks against {target} did not pass{context}: {}",
                report.failure_details(MAX_MESSAGE - 300)
            ),
        ))
    }
}

fn clip(text: String) -> String {
    if text.chars().count() <= MAX_MESSAGE {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeployConfig, vars as env};
    use crate::discovery::ReadError;
    use crate::discovery::fakes::{FakeCodeDeploy, FakeElb, deployment, elb, group};
    use crate::green::fixtures::target;
    use crate::rollback::fakes::FakeDeployments;
    use crate::smoke::fakes::{FakeRunner, Script};
    use tollgate_report::HookStatus;

    const SPEC: &str = "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]";

    fn app(
        extra: &[(&str, &str)],
        green: Option<(i64, i64, i64)>,
        running_hook: &str,
        test_listener: bool,
        script: Script,
    ) -> Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>> {
        let mut env: std::collections::HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.insert(env::CHECK_SPEC.into(), SPEC.into());
        let config = DeployConfig::from_env(&env).expect("config");
        let mut cd = FakeCodeDeploy::default();
        cd.deployments
            .insert("d-TOLLGATE1".into(), deployment("ECS"));
        cd.groups.insert("web-dg".into(), group(test_listener));
        cd.targets
            .insert("d-TOLLGATE1".into(), vec![target(green, running_hook)]);
        Arc::new(DeployHook {
            config,
            codedeploy: cd,
            elb: elb(),
            ecs: FakeDeployments::default(),
            smoke: FakeRunner::new(script),
            recorder: None,
            gates: crate::gate_hook::Gates::default(),
        })
    }

    fn event() -> CodeDeployHookEvent {
        serde_json::from_str(include_str!(
            "../../../events/deploy-hook/codedeploy-after-allow-test-traffic.json"
        ))
        .expect("sample")
    }

    async fn go(
        app: &Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>>,
    ) -> HookOutcome {
        match run(
            app.clone(),
            event(),
            Step::default(),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        {
            HookEnd::Report(o) => o,
            HookEnd::Baking(s) => panic!("no gate in these tests, yet baking: {s}"),
        }
    }

    #[tokio::test]
    async fn a_healthy_green_succeeds_with_discovered_facts() {
        let app = app(
            &[],
            Some((2, 2, 0)),
            "AfterAllowTestTraffic",
            true,
            Script::Pass(3),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Succeeded, "{}", out.message);
        assert!(
            out.message.starts_with(
                "AfterAllowTestTraffic passed for d-TOLLGATE1 against http://web-1234567890.eu-west-1.elb.amazonaws.com:8080: 3/3 passed"
            ),
            "{}",
            out.message
        );
        assert!(
            out.message.contains("green ecs-svc/2222 2/2 running"),
            "{}",
            out.message
        );
        let r = &app.smoke;
        assert_eq!(
            r.var(0, "TARGET").as_deref(),
            Some("http://web-1234567890.eu-west-1.elb.amazonaws.com:8080")
        );
        assert_eq!(r.var(0, "DEPLOYMENT_ID").as_deref(), Some("d-TOLLGATE1"));
        assert_eq!(r.var(0, "TASK_SET_ID").as_deref(), Some("ecs-svc/2222"));
        assert_eq!(r.var(0, "TARGET_GROUP").as_deref(), Some("web-green"));
        assert_eq!(r.var(0, "CLUSTER").as_deref(), Some("web-cluster"));
        assert_eq!(r.var(0, "SERVICE").as_deref(), Some("web"));
        assert_eq!(r.var(0, "HOOK").as_deref(), Some("AfterAllowTestTraffic"));
        assert_eq!(
            app.codedeploy.calls(),
            [
                "GetDeployment",
                "ListDeploymentTargets",
                "GetDeploymentTarget",
                "GetDeploymentGroup"
            ]
        );
        assert_eq!(
            app.elb.calls(),
            ["DescribeListeners", "DescribeLoadBalancers"]
        );
    }

    #[tokio::test]
    async fn after_allow_traffic_tests_the_production_listener() {
        let app = app(
            &[],
            Some((2, 2, 0)),
            "AfterAllowTraffic",
            false,
            Script::Pass(1),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Succeeded, "{}", out.message);
        assert_eq!(
            app.smoke.var(0, "TARGET").as_deref(),
            Some("https://web-1234567890.eu-west-1.elb.amazonaws.com")
        );
    }

    #[tokio::test]
    async fn failed_checks_list_the_expectation() {
        let app = app(
            &[],
            Some((2, 2, 0)),
            "BeforeAllowTraffic",
            true,
            Script::Fail("503"),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Failed);
        assert!(out.message.starts_with("BeforeAllowTraffic failed for d-TOLLGATE1: smoke checks against http://web-1234567890"), "{}", out.message);
        assert!(
            out.message.contains("status 503 (expected 200)"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn pending_green_tasks_fail_before_any_check() {
        let app = app(
            &[],
            Some((2, 1, 1)),
            "BeforeAllowTraffic",
            true,
            Script::Pass(1),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Failed);
        assert!(
            out.message.contains("running 1 of desired 2, pending 1"),
            "{}",
            out.message
        );
        assert!(app.smoke.runs().is_empty());
    }

    #[tokio::test]
    async fn no_test_listener_and_no_target_url_names_the_fix() {
        let app = app(
            &[],
            Some((2, 2, 0)),
            "BeforeAllowTraffic",
            false,
            Script::Pass(1),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Failed);
        assert_eq!(
            out.message,
            "BeforeAllowTraffic failed for d-TOLLGATE1: deployment group 'web-dg' has no test traffic route; set TARGET_URL or add a test listener"
        );
    }

    #[tokio::test]
    async fn target_url_wins_over_discovery() {
        let app = app(
            &[(env::TARGET_URL, "http://green.internal:9000/")],
            Some((2, 2, 0)),
            "BeforeAllowTraffic",
            false,
            Script::Pass(1),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Succeeded, "{}", out.message);
        assert_eq!(
            app.smoke.var(0, "TARGET").as_deref(),
            Some("http://green.internal:9000")
        );
        assert!(app.elb.calls().is_empty());
        assert!(
            !app.codedeploy
                .calls()
                .contains(&"GetDeploymentGroup".to_owned())
        );
    }

    #[tokio::test]
    async fn a_fixed_hook_and_no_verification_skip_the_target_reads() {
        let app = app(
            &[
                (env::TARGET_URL, "http://green.internal:9000"),
                (env::HOOK, "BeforeAllowTraffic"),
                (env::VERIFY_GREEN, "false"),
            ],
            Some((2, 0, 2)),
            "BeforeAllowTraffic",
            false,
            Script::Pass(1),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Succeeded, "{}", out.message);
        assert_eq!(app.codedeploy.calls(), ["GetDeployment"]);
    }

    #[tokio::test]
    async fn an_unknown_running_hook_falls_back_and_says_so() {
        let app = app(&[], Some((2, 2, 0)), "AllowTraffic", true, Script::Pass(1));
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Succeeded, "{}", out.message);
        assert!(
            out.message.contains("assumed BeforeAllowTraffic"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn a_pinned_host_is_connected_by_address() {
        let app = app(
            &[(
                env::RESOLVE,
                "web-1234567890.eu-west-1.elb.amazonaws.com=127.0.0.1",
            )],
            Some((1, 1, 0)),
            "BeforeAllowTraffic",
            true,
            Script::Pass(1),
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Succeeded, "{}", out.message);
        assert_eq!(
            app.smoke.var(0, "TARGET").as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }

    #[tokio::test]
    async fn read_failures_name_the_step_and_the_permission() {
        let app = {
            let mut a = Arc::try_unwrap(app(
                &[],
                Some((1, 1, 0)),
                "BeforeAllowTraffic",
                true,
                Script::Pass(1),
            ))
            .expect("sole owner");
            a.codedeploy.fail.insert(
                "GetDeployment",
                ReadError::Denied {
                    action: "codedeploy:GetDeployment",
                    detail: "AccessDeniedException: not authorized".into(),
                },
            );
            Arc::new(a)
        };
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Failed);
        assert!(
            out.message.starts_with("hook failed for d-TOLLGATE1: looking up deployment d-TOLLGATE1: codedeploy:GetDeployment was denied"),
            "{}",
            out.message
        );
        assert!(
            out.message
                .contains("add \"codedeploy:GetDeployment\" to the function's execution role")
        );
    }

    #[tokio::test]
    async fn a_spec_variable_the_invocation_lacks_fails_clearly() {
        let app = app(
            &[],
            Some((1, 1, 0)),
            "BeforeAllowTraffic",
            true,
            Script::BadVariable,
        );
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Failed);
        assert!(
            out.message.contains(
                "the check spec cannot run: checks[0].url: unknown variable ${DEPLOYMENT_ID}"
            ),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn a_lambda_deployment_needs_a_target_url() {
        let app = {
            let mut a =
                Arc::try_unwrap(app(&[], None, "BeforeAllowTraffic", true, Script::Pass(1)))
                    .expect("sole owner");
            a.codedeploy
                .deployments
                .insert("d-TOLLGATE1".into(), deployment("Lambda"));
            Arc::new(a)
        };
        let out = go(&app).await;
        assert_eq!(out.status, HookStatus::Failed);
        assert!(
            out.message.contains("is a Lambda deployment"),
            "{}",
            out.message
        );
        assert!(out.message.contains("set TARGET_URL"), "{}", out.message);
        // Lambda deployments have no ECS targets to read.
        assert_eq!(
            app.codedeploy.calls(),
            ["GetDeployment", "GetDeploymentGroup"]
        );
    }
}
