//! The metric gate of a CodeDeploy hook (`AfterAllowTraffic`), without
//! ever holding an invocation idle.
//!
//! CodeDeploy invokes the hook once and waits up to an hour for
//! `PutLifecycleEventHookExecutionStatus`. The pattern:
//!
//! 1. The hook's own invocation runs the smoke checks; when they pass and
//!    the spec has a `gate:`, it checks the gate (metrics and alarms exist,
//!    the bake fits [`CODEDEPLOY_BUDGET`]), and queues a [`GateTicket`] on
//!    the gate queue (SQS, `DelaySeconds` = the time to the first
//!    measurement, at most 900 s) instead of reporting. It returns at once.
//! 2. The function consumes the queue. Each ticket first checks that the
//!    work is still wanted: the deployment is `InProgress` and, for ECS,
//!    the hook's lifecycle event is still `InProgress`
//!    (`GetDeployment`, `GetDeploymentTarget`). A stale ticket reports
//!    nothing. Then it takes the measurement that is due (none when a
//!    ticket is early), and either queues the next ticket or reports the
//!    verdict: `Succeeded`, or `Failed` with the failed measurements in
//!    the notifier's record.
//! 3. Fail closed: anything that stops the chain (the queue refuses the
//!    next ticket, CloudWatch refuses the gate, the spec lost its gate, the
//!    deployment cannot be read, a ticket arrives more than 55 minutes
//!    after the bake started, a panic or the deadline in a measurement)
//!    reports `Failed` at once with the reason. A ticket whose verdict
//!    could not be delivered is received again after the queue's
//!    visibility timeout (11 minutes, three receives; the queue keeps
//!    tickets 4 hours so every retry happens); then it goes to the
//!    unreported queue, and CodeDeploy's own hook timeout fails the
//!    deployment at the hour.
//!
//! A duplicated delivery of a ticket forks the chain: both copies measure
//! on the same schedule and the second report of the same hook is refused
//! by CodeDeploy (`LifecycleEventAlreadyCompletedException`, which the
//! report core treats as done), so nothing is reported twice.

use super::DeployHook;
use super::codedeploy_mode::record_failure;
use super::config::{HookName, vars as env_vars};
use super::discovery::{
    DeploymentReader, DeploymentTarget, ListenerReader, load_balancer_dimension, read_deployment,
};
use super::gate_hook::{
    CODEDEPLOY_BUDGET, GateTicket, MAX_QUEUE_DELAY_S, TICKET_KIND, advance, map_vars, vars_map,
};
use super::green::read_targets;
use super::smoke::{SmokeRunner, SpecTarget};
use std::sync::Arc;
use tollgate_checks::Vars;
use tollgate_checks::gate::GateSpec;
use tollgate_report::events::CodeDeployHookEvent;
use tollgate_report::hook::report_hook;
use tollgate_report::{Budget, HookOutcome, HookReporter, Step, WorkEnd, run_work};

/// What [`start`] needs to know about the hook.
#[derive(Debug, Clone)]
pub struct Start {
    /// `d-…`.
    pub deployment_id: String,
    /// The hook execution to report.
    pub hook_execution_id: String,
    /// The hook.
    pub hook: HookName,
    /// CodeDeploy application.
    pub application: String,
    /// Deployment group.
    pub group: String,
}

/// A ticket taken this long after its bake started fails the hook: the
/// bake fits 50 minutes, CodeDeploy gives up at 60.
const LATE_AFTER_S: i64 = 55 * 60;

const BUDGET_TEXT: &str =
    "CodeDeploy's hook timeout (1 hour, less 10 minutes for the checks and the report)";

/// The target group of the task set labelled `label`, by name.
fn task_set_group(targets: Option<&[DeploymentTarget]>, label: &str) -> Option<String> {
    targets?
        .iter()
        .flat_map(|t| t.task_sets.iter())
        .find(|t| {
            t.label
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(label))
        })?
        .target_group
        .clone()
}

/// The gate's variables, found from the deployment: green's with
/// `TARGET_GROUP` and `LOAD_BALANCER` as CloudWatch's dimensions
/// (`targetgroup/<name>/<id>`, `app/<name>/<id>`, from
/// `DescribeTargetGroups`) of the GREEN task set's target group, and the
/// baseline's with the BLUE one's.
async fn gate_vars<L: ListenerReader>(
    elb: &L,
    base: &Vars,
    targets: Option<&[DeploymentTarget]>,
) -> Result<(Vars, Option<Vars>), String> {
    let green_name = task_set_group(targets, "GREEN");
    let blue_name = task_set_group(targets, "BLUE");
    let names: Vec<String> = green_name.iter().chain(blue_name.iter()).cloned().collect();
    let mut green = base.clone();
    if names.is_empty() {
        return Ok((green, None));
    }
    let groups = elb.describe_target_groups(&names).await.map_err(|e| {
        format!("the metric gate could not read the blue and green target groups: {e}")
    })?;
    let find = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| groups.iter().find(|g| &g.name == n))
    };
    if let Some(g) = find(&green_name) {
        if let Some(d) = g.dimension() {
            green.insert("TARGET_GROUP", d);
        }
        if let Some(lb) = g
            .load_balancer_arns
            .first()
            .and_then(|a| load_balancer_dimension(a))
        {
            green.insert("LOAD_BALANCER", lb);
        }
    }
    let baseline = find(&blue_name).and_then(|b| {
        let mut v = green.clone();
        v.insert("TARGET_GROUP", b.dimension()?);
        Some(v)
    });
    Ok((green, baseline))
}

/// Starts the bake of `gate` after the smoke checks passed: preflight,
/// then the first ticket. `Ok` is the summary (the hook is not reported
/// now); `Err` is why the hook fails.
pub async fn start<D, L: ListenerReader, S, E>(
    app: &DeployHook<D, L, S, E>,
    hook: Start,
    gate: &GateSpec,
    base: &Vars,
    targets: Option<&[DeploymentTarget]>,
) -> Result<String, String> {
    if app.gates.queue.is_none() {
        return Err(format!(
            "the check spec has a metric gate (gate:), but {} is not set, so the bake cannot be \
             carried from one measurement to the next; deploy the stack's gate queue (template.yaml \
             sets it) or remove gate: from the spec",
            env_vars::GATE_QUEUE_URL
        ));
    }
    let (green, baseline) = gate_vars(&app.elb, base, targets).await?;
    let green = &green;
    if gate.needs_baseline() && baseline.is_none() {
        return Err(
            "the metric gate compares green with blue (max_vs_baseline), but the deployment's \
             targets name no BLUE task set with a target group; use max / min conditions, or \
             check the deployment group's load balancer info"
                .to_owned(),
        );
    }
    let advanced = advance(
        gate,
        &app.gates,
        green,
        baseline.as_ref(),
        None,
        (CODEDEPLOY_BUDGET, BUDGET_TEXT),
    )
    .await
    .map_err(|e| format!("the metric gate cannot run: {e}"))?;
    let summary = advanced.summary(gate);
    let ticket = GateTicket {
        v: 1,
        kind: TICKET_KIND.to_owned(),
        deployment_id: hook.deployment_id,
        hook_execution_id: hook.hook_execution_id,
        hook: hook.hook.as_str().to_owned(),
        application: hook.application,
        group: hook.group,
        green: vars_map(green),
        baseline: baseline.as_ref().map(vars_map),
        state: advanced.state,
    };
    queue(app, &ticket, advanced.next_in).await?;
    Ok(summary)
}

/// Queues `ticket` for `delay_s` (capped at SQS's 900 s: an early ticket
/// only queues the next one).
async fn queue<D, L, S, E>(
    app: &DeployHook<D, L, S, E>,
    ticket: &GateTicket,
    delay_s: u64,
) -> Result<(), String> {
    let Some(queue) = &app.gates.queue else {
        return Err(format!("{} is not set", env_vars::GATE_QUEUE_URL));
    };
    let body = serde_json::to_string(ticket)
        .map_err(|e| format!("the gate's state could not be serialised: {e}"))?;
    let delay = u32::try_from(delay_s)
        .unwrap_or(MAX_QUEUE_DELAY_S)
        .min(MAX_QUEUE_DELAY_S);
    queue.send(&body, delay).await.map_err(|e| {
        format!("the next measurement could not be queued ({e}); failing closed rather than leaving the hook unreported")
    })?;
    tracing::info!(
        deployment_id = %ticket.deployment_id,
        measurements = ticket.state.taken(),
        delay_s = delay,
        "metric gate: next measurement queued"
    );
    Ok(())
}

/// How one ticket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketEnd {
    /// Stale (the deployment or the hook is over): nothing reported.
    Dropped(String),
    /// The next ticket is queued.
    Queued(String),
    /// The verdict (or a failure): reported.
    Report(HookOutcome),
}

/// Whether `raw` is an SQS event (the gate queue's).
pub fn is_queue_event(raw: &serde_json::Value) -> bool {
    raw.get("Records")
        .and_then(serde_json::Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(serde_json::Value::as_str)
        == Some("aws:sqs")
}

/// The tickets of an SQS event; a body that is not one is logged and
/// skipped (there is nothing to report it to).
pub fn tickets(raw: &serde_json::Value) -> Vec<GateTicket> {
    let records = raw
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    records
        .iter()
        .filter_map(|r| {
            let body = r.get("body").and_then(serde_json::Value::as_str)?;
            match serde_json::from_str::<GateTicket>(body) {
                Ok(t) if t.v == 1 && t.kind == TICKET_KIND => Some(t),
                Ok(_) => {
                    tracing::error!("a gate-queue message of another version or kind; dropped");
                    None
                }
                Err(e) => {
                    tracing::error!(error = %tollgate_report::describe_json_error(&e), "a gate-queue message that is not a metric gate ticket; dropped");
                    None
                }
            }
        })
        .collect()
}

/// Takes one ticket: liveness first, then the measurement that is due,
/// then the next ticket or the verdict.
pub async fn take<D, L, S, E>(app: &DeployHook<D, L, S, E>, ticket: GateTicket) -> TicketEnd
where
    D: DeploymentReader,
    L: ListenerReader,
    S: SmokeRunner,
{
    let id = ticket.deployment_id.clone();
    let hook = ticket.hook.clone();
    let fail = |text: String| {
        TicketEnd::Report(HookOutcome::failed(format!(
            "{hook} failed for {id}: {text}"
        )))
    };

    // Still wanted?
    let deployment = match read_deployment(&app.codedeploy, &id).await {
        Ok(d) => d,
        Err(e) => {
            return fail(format!(
                "the metric gate could not check that the deployment is still in progress: {e}"
            ));
        }
    };
    if !deployment.status.eq_ignore_ascii_case("InProgress") {
        return TicketEnd::Dropped(format!(
            "deployment {id} is {}; the metric gate's ticket is stale",
            deployment.status
        ));
    }
    if deployment.is_ecs() {
        match read_targets(&app.codedeploy, &id).await {
            Ok(targets) => {
                let running = targets.iter().find_map(DeploymentTarget::running_hook);
                if running.map(HookName::as_str) != Some(ticket.hook.as_str()) {
                    return TicketEnd::Dropped(format!(
                        "{} of deployment {id} is no longer in progress ({}); the metric gate's ticket is stale",
                        ticket.hook,
                        running.map_or_else(|| "no hook is".to_owned(), |h| format!("{h} is"))
                    ));
                }
            }
            Err(e) => {
                return fail(format!(
                    "the metric gate could not check that the hook is still in progress: {e}"
                ));
            }
        }
    }

    let target = SpecTarget::CodeDeploy {
        application: ticket.application.clone(),
        group: ticket.group.clone(),
    };
    let gate = match app.smoke.gate(&target).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            return fail(
                "the check spec no longer has a metric gate (gate:) in the middle of its bake; \
                 retry the deployment"
                    .to_owned(),
            );
        }
        Err(e) => return fail(e.to_string()),
    };
    // Tickets that arrive too late (SQS delays, retries) end the bake with
    // a Failed report before CodeDeploy's hour is up.
    let elapsed = app.gates.now() - ticket.state.started_at;
    if elapsed > LATE_AFTER_S {
        return fail(format!(
            "the metric gate ran out of the hook's hour: {} after the bake started, {} of {} measurements taken; {}",
            tollgate_core::text::human_duration(u64::try_from(elapsed).unwrap_or(0)),
            ticket.state.taken(),
            gate.count,
            ticket.state.summary(&gate)
        ));
    }
    let green = map_vars(&ticket.green);
    let baseline = ticket.baseline.as_ref().map(map_vars);
    let advanced = match advance(
        &gate,
        &app.gates,
        &green,
        baseline.as_ref(),
        Some(ticket.state.clone()),
        (CODEDEPLOY_BUDGET, BUDGET_TEXT),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return fail(format!("the metric gate cannot run: {e}")),
    };
    let summary = advanced.summary(&gate);
    if !advanced.verdict.is_final() {
        let next = GateTicket {
            state: advanced.state,
            ..ticket
        };
        return match queue(app, &next, advanced.next_in).await {
            Ok(()) => TicketEnd::Queued(summary),
            Err(e) => fail(e),
        };
    }
    if advanced.verdict.passes(&gate) {
        TicketEnd::Report(HookOutcome::succeeded(format!(
            "{hook} passed for {id}: {summary}"
        )))
    } else {
        fail(advanced.state.failure_message(&gate))
    }
}

/// Handles an SQS event of the gate queue: each ticket taken, its verdict
/// reported (and a `Failed` one recorded for the notifier first).
pub async fn handle<R, D, L, S, E>(
    app: &Arc<DeployHook<D, L, S, E>>,
    reporter: &R,
    raw: &serde_json::Value,
    budget: Budget,
) -> serde_json::Value
where
    R: HookReporter,
    D: DeploymentReader + 'static,
    L: ListenerReader + 'static,
    S: SmokeRunner,
    E: Send + Sync + 'static,
{
    let mut out = Vec::new();
    for ticket in tickets(raw) {
        let event: CodeDeployHookEvent = match serde_json::from_value(serde_json::json!({
            "DeploymentId": ticket.deployment_id,
            "LifecycleEventHookExecutionId": ticket.hook_execution_id,
        })) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "a metric gate ticket's ids do not make a hook event; dropped");
                continue;
            }
        };
        let group = (ticket.application.clone(), ticket.group.clone());
        let hook = HookName::parse(&ticket.hook);
        // The same guard as the hook path: a panic or the function's
        // deadline in a measurement reports Failed now, rather than leave
        // the hook to CodeDeploy's hour (fail closed, fast).
        let step = Step::new("taking a metric gate measurement");
        let hook_text = ticket.hook.clone();
        let work = {
            let app = Arc::clone(app);
            async move { take(&*app, ticket).await }
        };
        let guarded = run_work(work, &step, &budget).await;
        let end = match guarded.failure_text(&budget) {
            Some(text) => TicketEnd::Report(HookOutcome::failed(format!(
                "{hook_text} failed for {}: {text}",
                event.deployment_id
            ))),
            None => match guarded {
                WorkEnd::Done(end) => end,
                WorkEnd::Panicked { .. } | WorkEnd::TimedOut { .. } => {
                    TicketEnd::Report(HookOutcome::failed("internal error"))
                }
            },
        };
        match end {
            TicketEnd::Dropped(why) => {
                tracing::warn!(deployment_id = %event.deployment_id, why = %why, "metric gate ticket dropped; nothing reported");
                out.push(serde_json::json!({"gate": "dropped", "why": why}));
            }
            TicketEnd::Queued(summary) => {
                tracing::info!(deployment_id = %event.deployment_id, summary = %summary, "metric gate baking");
                out.push(serde_json::json!({"gate": "baking", "summary": summary}));
            }
            TicketEnd::Report(outcome) => {
                if outcome.status == tollgate_report::HookStatus::Failed {
                    record_failure(
                        &**app,
                        &event.deployment_id,
                        Some(&group),
                        hook,
                        &outcome,
                        &Step::default(),
                        budget.work_deadline,
                    )
                    .await;
                }
                match report_hook(reporter, &event, outcome, budget, &app.config.report).await {
                    Ok(c) => out.push(serde_json::json!({"gate": "reported", "report": c.report})),
                    Err(e) => {
                        tracing::error!(deployment_id = %event.deployment_id, error = %e, "metric gate verdict not delivered");
                        out.push(
                            serde_json::json!({"gate": "undelivered", "error": e.to_string()}),
                        );
                    }
                }
            }
        }
    }
    serde_json::Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeployConfig, vars as env};
    use crate::discovery::fakes::{FakeCodeDeploy, FakeElb, deployment, elb, group};
    use crate::dispatch;
    use crate::gate_hook::Gates;
    use crate::gate_hook::fakes::{FakeMetrics, FakeQueue};
    use crate::green::fixtures::target;
    use crate::rollback::fakes::FakeDeployments;
    use crate::smoke::fakes::{FakeRunner, Script};
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;
    use tokio::time::Instant;
    use tollgate_report::{HookStatus, ReportConfig};
    use tollgate_test_support::reporters::FakeHookReporter;

    const GATE: &str = r#"
checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]
gate:
  interval: 1m
  count: 2
  queries:
    - {id: requests, metric: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {TargetGroup: '${TARGET_GROUP}'}}}
    - {id: errors, missing: zero, metric: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {TargetGroup: '${TARGET_GROUP}'}}}
    - {id: error_rate, name: 5xx rate, unit: '%', expression: 100 * errors / requests}
  conditions:
    - {query: error_rate, max_vs_baseline: {plus: 0.5}}
"#;

    type App = DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>;

    struct Rig {
        app: Arc<App>,
        metrics: Arc<FakeMetrics>,
        queue: Arc<FakeQueue>,
        now: Arc<AtomicI64>,
        reports: FakeHookReporter,
    }

    fn rig(status: &str, running_hook: &str, queue: Option<FakeQueue>) -> Rig {
        let gate = GateSpec::from_document(GATE).expect("valid").expect("gate");
        let mut runner = FakeRunner::new(Script::Pass(1));
        runner.gate = Some(Arc::new(gate));
        let env: std::collections::HashMap<String, String> = [(
            env::CHECK_SPEC.to_owned(),
            "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]".to_owned(),
        )]
        .into();
        let mut cd = FakeCodeDeploy::default();
        let mut d = deployment("ECS");
        d.status = status.into();
        cd.deployments.insert("d-TOLLGATE1".into(), d);
        cd.groups.insert("web-dg".into(), group(false));
        cd.targets.insert(
            "d-TOLLGATE1".into(),
            vec![target(Some((2, 2, 0)), running_hook)],
        );
        let metrics = Arc::new(FakeMetrics::default());
        let has_queue = queue.is_some();
        let queue = Arc::new(queue.unwrap_or_default());
        let now = Arc::new(AtomicI64::new(1_764_000_000));
        let clock = now.clone();
        let app = Arc::new(DeployHook {
            config: DeployConfig::from_env(&env).expect("config"),
            codedeploy: cd,
            elb: elb(),
            ecs: FakeDeployments::default(),
            smoke: runner,
            recorder: None,
            gates: Gates {
                metrics: metrics.clone(),
                queue: has_queue.then(|| queue.clone() as Arc<dyn crate::gate_hook::GateQueue>),
                clock: Arc::new(move || clock.load(Ordering::SeqCst)),
                targets: Arc::new(crate::ecs_targets::NoTargets),
            },
        });
        Rig {
            app,
            metrics,
            queue,
            now,
            reports: FakeHookReporter::default(),
        }
    }

    fn budget() -> Budget {
        let cfg = ReportConfig {
            reserve: Duration::from_millis(100),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        Budget::within(Instant::now() + Duration::from_secs(5), &cfg)
    }

    fn hook_event() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../../events/deploy-hook/codedeploy-after-allow-traffic.json"
        ))
        .expect("sample")
    }

    /// The SQS event SQS delivers for the last ticket queued.
    fn delivery(rig: &Rig) -> serde_json::Value {
        let (body, _) = rig
            .queue
            .sent
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a ticket");
        serde_json::json!({"Records": [{"messageId": "m-1", "eventSource": "aws:sqs", "body": body}]})
    }

    fn healthy(rig: &Rig, green_rate: f64) {
        // Green's answer, then blue's.
        rig.metrics.push(FakeMetrics::answer(&[
            ("requests", 500.0),
            ("errors", 5.0 * green_rate),
            ("error_rate", green_rate),
        ]));
        rig.metrics.push(FakeMetrics::answer(&[
            ("requests", 500.0),
            ("errors", 1.0),
            ("error_rate", 0.2),
        ]));
    }

    async fn handle(rig: &Rig, event: serde_json::Value) -> serde_json::Value {
        dispatch::handle(&rig.app, &rig.reports, event, budget())
            .await
            .expect("handled")
    }

    #[tokio::test]
    async fn after_allow_traffic_bakes_through_the_queue_then_reports_once() {
        let rig = rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue::default()),
        );
        let out = handle(&rig, hook_event()).await;
        assert_eq!(out["report"], "baking", "{out}");
        assert!(rig.reports.calls().is_empty(), "not reported while baking");
        let tickets = rig.queue.tickets();
        assert_eq!(tickets.len(), 1);
        let (ticket, delay) = &tickets[0];
        assert_eq!(*delay, 60);
        assert_eq!(ticket.hook, "AfterAllowTraffic");
        assert_eq!(
            ticket.green["TARGET_GROUP"],
            "targetgroup/web-green/2222222222222222"
        );
        assert_eq!(ticket.green["LOAD_BALANCER"], "app/web/50dc6c495c0c9188");
        assert_eq!(
            ticket.baseline.as_ref().map(|b| b["TARGET_GROUP"].as_str()),
            Some("targetgroup/web-blue/1111111111111111"),
            "blue found from the deployment's task sets"
        );

        healthy(&rig, 0.4);
        rig.now.fetch_add(60, Ordering::SeqCst);
        let out = handle(&rig, delivery(&rig)).await;
        assert_eq!(out[0]["gate"], "baking", "{out}");
        assert!(rig.reports.calls().is_empty());
        assert_eq!(rig.queue.tickets().len(), 2);

        healthy(&rig, 0.3);
        rig.now.fetch_add(60, Ordering::SeqCst);
        let out = handle(&rig, delivery(&rig)).await;
        assert_eq!(out[0]["gate"], "reported", "{out}");
        let calls = rig.reports.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].2, HookStatus::Succeeded);
        let gets = rig
            .metrics
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("GetMetricData"))
            .collect::<Vec<_>>();
        assert_eq!(gets.len(), 4, "green and blue per measurement: {gets:?}");
        assert!(
            gets[0].contains("targetgroup/web-green/2222222222222222"),
            "{gets:?}"
        );
        assert!(
            gets[1].contains("targetgroup/web-blue/1111111111111111"),
            "{gets:?}"
        );
    }

    #[tokio::test]
    async fn a_5xx_rise_reports_failed_saying_by_how_much() {
        let rig = rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue::default()),
        );
        handle(&rig, hook_event()).await;
        healthy(&rig, 12.0);
        rig.now.fetch_add(60, Ordering::SeqCst);
        let ticket = rig.queue.tickets()[0].0.clone();
        let end = take(&*rig.app, ticket).await;
        let TicketEnd::Report(outcome) = end else {
            panic!("{end:?}")
        };
        assert_eq!(outcome.status, HookStatus::Failed);
        assert_eq!(
            outcome.message,
            "AfterAllowTraffic failed for d-TOLLGATE1: metric gate failed: 5xx rate 12 % > 0.7 % (baseline 0.2 % + 0.5) in 1 of 1 measurements\n\
             last measurement (1 of 2) failed: 5xx rate 12 % > 0.7 % (baseline 0.2 % + 0.5)\n\
             measurements: 0 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 1 of 2 taken\n\
             what to do: the new version stays out: fix what the measurements show and release again, or change the gate's conditions if a limit is wrong"
        );
    }

    #[tokio::test]
    async fn a_panic_in_a_measurement_reports_failed_at_once() {
        let rig = rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue::default()),
        );
        handle(&rig, hook_event()).await;
        rig.metrics.panics.store(true, Ordering::SeqCst);
        rig.now.fetch_add(60, Ordering::SeqCst);
        let out = handle(&rig, delivery(&rig)).await;
        assert_eq!(out[0]["gate"], "reported", "{out}");
        let calls = rig.reports.calls();
        assert_eq!(
            calls.len(),
            1,
            "reported once, not left to CodeDeploy's hour"
        );
        assert_eq!(calls[0].2, HookStatus::Failed);
        let text = out[0].to_string();
        assert_eq!(
            rig.queue.tickets().len(),
            1,
            "no next ticket after a failure"
        );
        assert!(!text.contains("baking"), "{text}");
    }

    #[tokio::test]
    async fn an_early_or_duplicate_ticket_measures_nothing_and_queues_the_next() {
        let rig = rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue::default()),
        );
        handle(&rig, hook_event()).await;
        rig.now.fetch_add(30, Ordering::SeqCst);
        let out = handle(&rig, delivery(&rig)).await;
        assert_eq!(out[0]["gate"], "baking", "{out}");
        assert!(
            !rig.metrics
                .calls()
                .iter()
                .any(|c| c.starts_with("GetMetricData")),
            "not due yet"
        );
        let tickets = rig.queue.tickets();
        assert_eq!(tickets[1].1, 30, "queued for the rest of the interval");
        assert_eq!(tickets[1].0.state, tickets[0].0.state);
    }

    #[tokio::test]
    async fn stale_tickets_report_nothing() {
        // The deployment is over, or the hook is no longer the one running.
        for (status, running) in [
            ("Stopped", "AfterAllowTraffic"),
            ("InProgress", "AllowTraffic"),
        ] {
            let rig = rig(status, running, Some(FakeQueue::default()));
            let ticket = {
                let start = self::rig(
                    "InProgress",
                    "AfterAllowTraffic",
                    Some(FakeQueue::default()),
                );
                handle(&start, hook_event()).await;
                delivery(&start)
            };
            let out = handle(&rig, ticket).await;
            assert_eq!(out[0]["gate"], "dropped", "{status} {running}: {out}");
            assert!(rig.reports.calls().is_empty());
            assert!(rig.metrics.calls().is_empty());
        }
    }

    #[tokio::test]
    async fn without_a_queue_or_when_it_refuses_the_hook_fails_at_once() {
        let rig = rig("InProgress", "AfterAllowTraffic", None);
        let out = handle(&rig, hook_event()).await;
        assert_eq!(out["report"], "failed", "{out}");
        let rig = rig_refusing();
        let out = handle(&rig, hook_event()).await;
        assert_eq!(out["report"], "failed", "{out}");
        assert_eq!(rig.reports.calls().len(), 1);
    }

    fn rig_refusing() -> Rig {
        rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue {
                fail: true,
                ..FakeQueue::default()
            }),
        )
    }

    #[tokio::test]
    async fn a_ticket_arriving_near_the_hour_fails_the_hook_before_codedeploy_does() {
        let rig = rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue::default()),
        );
        handle(&rig, hook_event()).await;
        rig.now.fetch_add(56 * 60, Ordering::SeqCst);
        let out = handle(&rig, delivery(&rig)).await;
        assert_eq!(out[0]["gate"], "reported", "{out}");
        let calls = rig.reports.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].2, HookStatus::Failed);
        assert!(
            !rig.metrics
                .calls()
                .iter()
                .any(|c| c.starts_with("GetMetricData")),
            "nothing measured that late"
        );
    }

    #[tokio::test]
    async fn a_bake_longer_than_the_hook_hour_fails_naming_the_limit() {
        let rig = rig(
            "InProgress",
            "AfterAllowTraffic",
            Some(FakeQueue::default()),
        );
        let long = GateSpec::from_document(&GATE.replace("count: 2", "count: 55"))
            .expect("valid")
            .expect("gate");
        let err = start(
            &*rig.app,
            Start {
                deployment_id: "d-TOLLGATE1".into(),
                hook_execution_id: "h".into(),
                hook: HookName::AfterAllowTraffic,
                application: "web-app".into(),
                group: "web-dg".into(),
            },
            &long,
            &Vars::new().with("TARGET_GROUP", "web-green"),
            Some(&[target(Some((2, 2, 0)), "AfterAllowTraffic")]),
        )
        .await
        .expect_err("too long");
        assert!(
            err.contains("lasts 55m, longer than CodeDeploy's hook timeout"),
            "{err}"
        );
    }
}
