//! ECS native mode: ECS invokes the function synchronously and reads
//! `hookStatus` from the answer. There is no report call: the answer is the
//! report, so every path (bad payload, panic, deadline) ends in a valid
//! `SUCCEEDED`, `FAILED` or `IN_PROGRESS`, never in a runtime error.
//!
//! A soak (`TOLLGATE_SOAK_ROUNDS` > 1) runs one round of checks per
//! invocation and answers `IN_PROGRESS` with `callBackDelay` between rounds;
//! the progress rides in `hookDetails.tollgate`, which ECS hands back on the
//! next invocation of the same hook.

use super::DeployHook;
use super::codedeploy_mode::CHECKS_MARGIN;
use super::config::{parse_target_url, target_text};
use super::discovery::{DeploymentReader, ListenerReader};
use super::ecs_targets::{self, CARRY_KEY, Carried};
use super::gate_hook::{
    BASELINE_KEY, ECS_BUDGET, HookGateState, VARS_KEY, advance, gate_vars, string_map,
};
use super::rollback::{ServiceDeployments, is_rollback_status};
use super::smoke::{SmokeRunner, SpecTarget};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::time::Instant;
use tollgate_checks::gate::GateSpec;
use tollgate_checks::{RunOptions, Vars};
use tollgate_report::events::ecs_hook::{EcsHookEvent, LifecycleStage};
use tollgate_report::{Budget, Step, WorkEnd, describe_json_error, run_work};

/// The key under which the function keeps its state in `hookDetails`.
pub const DETAILS_KEY: &str = "tollgate";
/// The `hookDetails` key (set in the service's hook configuration) naming
/// the base URL to test; wins over `TARGET_URL`.
pub const TARGET_KEY: &str = "targetUrl";
/// Longest reason text put into `hookDetails` (the full text is logged).
pub const MAX_REASON: usize = 1000;

/// `hookStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EcsHookStatus {
    /// The deployment goes on.
    Succeeded,
    /// The deployment rolls back.
    Failed,
    /// ECS calls again after `callBackDelay` seconds.
    InProgress,
}

/// The answer ECS reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsHookResponse {
    /// What ECS should do.
    pub hook_status: EcsHookStatus,
    /// Seconds until ECS invokes again (only with `IN_PROGRESS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    /// Progress and outcome under `tollgate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Soak progress kept in `hookDetails.tollgate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakState {
    /// The stage the rounds belong to.
    pub stage: String,
    /// Rounds run so far (this one included).
    pub round: u32,
    /// Rounds planned.
    pub rounds: u32,
    /// Rounds that passed.
    pub passed_rounds: u32,
    /// When round 1 started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The last round's one-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_summary: Option<String>,
    /// Why the hook failed (only on `FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl EcsHookResponse {
    /// `FAILED` with a reason in `hookDetails.tollgate.reason`.
    pub fn failed(reason: impl Into<String>, state: Option<SoakState>) -> Self {
        let reason = reason.into();
        tracing::warn!(hook_status = "FAILED", reason = %reason, "ecs hook outcome");
        let mut state = state.unwrap_or(SoakState {
            stage: String::new(),
            round: 0,
            rounds: 0,
            passed_rounds: 0,
            started_at: None,
            last_summary: None,
            reason: None,
        });
        state.reason = Some(clip(&reason, MAX_REASON));
        Self {
            hook_status: EcsHookStatus::Failed,
            call_back_delay: None,
            hook_details: Some(state_details(&state)),
        }
    }
}

fn state_details(state: &SoakState) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert(
        DETAILS_KEY.to_owned(),
        serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
    );
    map
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn now_rfc3339() -> Option<String> {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Handles one ECS lifecycle hook invocation. Always returns an answer ECS
/// accepts.
pub async fn handle<D, L, S, E>(
    app: Arc<DeployHook<D, L, S, E>>,
    raw: serde_json::Value,
    budget: Budget,
) -> EcsHookResponse
where
    D: DeploymentReader + 'static,
    L: ListenerReader + 'static,
    S: SmokeRunner,
    E: ServiceDeployments + 'static,
{
    let event: EcsHookEvent = match serde_json::from_value(raw) {
        Ok(ev) => ev,
        Err(e) => {
            return EcsHookResponse::failed(
                format!(
                    "the payload looks like an ECS lifecycle hook but cannot be read ({}); \
                     expected {{\"executionId\", \"lifecycleStage\", \"executionDetails\": \
                     {{\"serviceArn\", \"targetServiceRevisionArn\", …}}, \"hookDetails\"?}}",
                    describe_json_error(&e)
                ),
                None,
            );
        }
    };
    tracing::info!(
        execution_id = %event.execution_id,
        lifecycle_stage = %event.lifecycle_stage,
        service_arn = %event.execution_details.service_arn,
        "ecs hook invocation received"
    );
    let step = Step::default();
    let work = {
        let app = app.clone();
        let event = event.clone();
        let step = step.clone();
        let deadline = budget.work_deadline;
        async move { work(&app, &event, &step, deadline).await }
    };
    let response = match run_work(work, &step, &budget).await {
        WorkEnd::Done(response) => response,
        end => EcsHookResponse::failed(
            end.failure_text(&budget)
                .unwrap_or_else(|| "internal error".to_owned()),
            None,
        ),
    };
    let response = echo_hook_details(&event, response);
    log_response(&event, &response);
    response
}

/// What the service deployment says about rollback-looking weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RollbackCheck {
    /// `ROLLBACK_*`: the status.
    Confirmed(String),
    /// Another status: why it is no rollback.
    NotRollback(String),
    /// The status could not be read: why.
    Unknown(String),
}

/// Asks ECS whether the service deployment named by the payload is rolling
/// back.
pub(crate) async fn confirm_rollback<E: ServiceDeployments>(
    ecs: &E,
    event: &EcsHookEvent,
) -> RollbackCheck {
    let Some(arn) = event
        .resource_arn
        .as_deref()
        .filter(|a| a.contains(":service-deployment/"))
    else {
        return RollbackCheck::NotRollback(
            "the payload names no service deployment (resourceArn)".to_owned(),
        );
    };
    match ecs.status(arn).await {
        Ok(status) if is_rollback_status(&status) => RollbackCheck::Confirmed(status),
        Ok(status) => RollbackCheck::NotRollback(format!("service deployment {arn} is {status}")),
        Err(why) => RollbackCheck::Unknown(why),
    }
}

/// `hookDetails` key counting the rounds a rollback could not be confirmed.
const ROLLBACK_ASKS_KEY: &str = "tollgateRollbackAsks";
/// Rounds of [`ASK_AGAIN_DELAY_S`] before an unconfirmed rollback fails.
const MAX_ROLLBACK_ASKS: u64 = 10;
/// `callBackDelay` while a rollback cannot be confirmed.
const ASK_AGAIN_DELAY_S: u64 = 30;

/// `IN_PROGRESS` while the service deployment's status cannot be read, at
/// most [`MAX_ROLLBACK_ASKS`] times, then `FAILED` (fail closed).
fn ask_again(event: &EcsHookEvent, why: &str) -> EcsHookResponse {
    let asked = event
        .hook_details
        .get(ROLLBACK_ASKS_KEY)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
        + 1;
    if asked > MAX_ROLLBACK_ASKS {
        return EcsHookResponse::failed(
            format!(
                "the traffic weights look like a rollback, but ECS did not confirm one in \
                 {MAX_ROLLBACK_ASKS} tries ({why}); failing closed rather than letting traffic \
                 reach an unchecked revision. Grant ecs:DescribeServiceDeployments to the \
                 function's role if it is missing"
            ),
            None,
        );
    }
    tracing::warn!(
        why,
        asked,
        "cannot confirm a rollback yet; asking ECS to call again"
    );
    let mut details = serde_json::Map::new();
    details.insert(ROLLBACK_ASKS_KEY.to_owned(), serde_json::json!(asked));
    EcsHookResponse {
        hook_status: EcsHookStatus::InProgress,
        call_back_delay: Some(ASK_AGAIN_DELAY_S),
        hook_details: Some(details),
    }
}

/// An `IN_PROGRESS` answer carries the incoming `hookDetails` keys back
/// (ours win), so the next round keeps its target (`targetUrl`) whether ECS
/// merges the answer into the service's hook details or replaces them
/// (issue 14.8).
fn echo_hook_details(event: &EcsHookEvent, mut response: EcsHookResponse) -> EcsHookResponse {
    if response.hook_status != EcsHookStatus::InProgress {
        return response;
    }
    let mut details: serde_json::Map<String, serde_json::Value> = event
        .hook_details
        .iter()
        .filter(|(k, _)| k.as_str() != DETAILS_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    details.extend(response.hook_details.take().unwrap_or_default());
    response.hook_details = Some(details);
    response
}

fn log_response(event: &EcsHookEvent, response: &EcsHookResponse) {
    let details = response
        .hook_details
        .as_ref()
        .map(|d| serde_json::Value::Object(d.clone()).to_string())
        .unwrap_or_default();
    tracing::info!(
        execution_id = %event.execution_id,
        lifecycle_stage = %event.lifecycle_stage,
        hook_status = ?response.hook_status,
        call_back_delay = response.call_back_delay,
        hook_details = %details,
        "ecs hook answered"
    );
}

async fn work<D, L, S, E>(
    app: &DeployHook<D, L, S, E>,
    event: &EcsHookEvent,
    step: &Step,
    work_deadline: Instant,
) -> EcsHookResponse
where
    D: DeploymentReader,
    L: ListenerReader,
    S: SmokeRunner,
    E: ServiceDeployments,
{
    let cfg = &app.config;
    let stage = &event.lifecycle_stage;
    let details = &event.execution_details;

    if event.is_rollback() {
        // The weights say "rollback"; only the service deployment's status
        // can say so for sure (issue 14.8).
        match confirm_rollback(&app.ecs, event).await {
            RollbackCheck::Confirmed(status) => {
                return succeeded(format!(
                    "{stage} during a rollback (service deployment {status}, traffic returning \
                     to the previous revision): no checks, the rollback is not blocked"
                ));
            }
            // Not a rollback (e.g. a first canary step): check as usual.
            RollbackCheck::NotRollback(why) => tracing::warn!(
                %stage,
                why = %why,
                "the traffic weights look like a rollback, but it is not one: checking as usual"
            ),
            // Neither open the gate untested nor block a rollback: ask again
            // later, a bounded number of times, then fail closed.
            RollbackCheck::Unknown(why) => return ask_again(event, &why),
        }
    }
    if !stage.green_is_up() {
        tracing::warn!(%stage, "the hook runs before the green revision has tasks; nothing to check");
        return succeeded(format!(
            "nothing to check at {stage}: the green revision has no tasks yet; register the hook \
             at POST_TEST_TRAFFIC_SHIFT (or another stage after POST_SCALE_UP)"
        ));
    }

    // Soak progress from an earlier IN_PROGRESS answer of this hook.
    let previous = match event.hook_details.get(DETAILS_KEY) {
        None => None,
        Some(v) => match serde_json::from_value::<SoakState>(v.clone()) {
            Ok(s) if s.stage == stage.as_str() && s.reason.is_none() => Some(s),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %describe_json_error(&e), "ignoring unreadable hookDetails.tollgate; starting the soak over");
                None
            }
        },
    };
    let rounds = cfg.soak_rounds;
    let round = previous.as_ref().map_or(1, |p| p.round + 1);
    let mut state = SoakState {
        stage: stage.as_str().to_owned(),
        round,
        rounds,
        passed_rounds: previous.as_ref().map_or(0, |p| p.passed_rounds),
        started_at: previous
            .as_ref()
            .and_then(|p| p.started_at.clone())
            .or_else(now_rfc3339),
        last_summary: None,
        reason: None,
    };

    // The target: hookDetails.targetUrl, then TARGET_URL.
    let target = match event.hook_details.get(TARGET_KEY) {
        Some(serde_json::Value::String(raw)) => {
            match parse_target_url(&format!("hookDetails.{TARGET_KEY}"), raw) {
                Ok(url) => cfg.pin(url),
                Err(e) => return EcsHookResponse::failed(e.to_string(), Some(state)),
            }
        }
        Some(_) => {
            return EcsHookResponse::failed(
                format!(
                    "hookDetails.{TARGET_KEY} is not a string; set it to a base URL such as \"http://web-test.internal:8080\""
                ),
                Some(state),
            );
        }
        None => match &cfg.target_url {
            Some(url) => url.clone(),
            None => {
                return EcsHookResponse::failed(
                    format!(
                        "no target to check at {stage}: set TARGET_URL on the function, or \
                         \"{TARGET_KEY}\" in the hook's hookDetails (the service's lifecycle hook \
                         configuration), to the address of the {} listener",
                        if stage.is_production() {
                            "production"
                        } else {
                            "test"
                        }
                    ),
                    Some(state),
                );
            }
        },
    };
    let target = target_text(&target);

    let mut vars = Vars::new()
        .with("TARGET", target.as_str())
        .with("EXECUTION_ID", event.execution_id.as_str())
        .with("LIFECYCLE_STAGE", stage.as_str())
        .with("SERVICE_ARN", details.service_arn.as_str())
        .with(
            "TARGET_SERVICE_REVISION_ARN",
            details.target_service_revision_arn.as_str(),
        )
        .with("SOAK_ROUND", round.to_string());
    if let Some(arn) = &event.resource_arn {
        vars.insert("SERVICE_DEPLOYMENT_ARN", arn.as_str());
    }
    if let Some((cluster, service)) = details.cluster_and_service() {
        vars.insert("CLUSTER", cluster);
        vars.insert("SERVICE", service);
    }

    step.enter(format!(
        "running round {round}/{rounds} of the smoke checks against {target} at {stage}"
    ));
    let deadline = work_deadline
        .checked_sub(CHECKS_MARGIN)
        .unwrap_or(work_deadline)
        .max(Instant::now());
    let options = RunOptions {
        skip_initial_delay: round > 1,
        ..RunOptions::default()
    };
    let spec_target = match details.cluster_and_service() {
        Some((cluster, service)) => SpecTarget::Ecs {
            cluster: cluster.to_owned(),
            service: service.to_owned(),
        },
        None => SpecTarget::EcsUnnamed,
    };
    // The metric gate, where green takes production traffic: carried on
    // from an earlier IN_PROGRESS answer of this step, or started below
    // once the smoke checks pass.
    let gate = if gate_stage(event) {
        match app.smoke.gate(&spec_target).await {
            Ok(g) => g,
            Err(e) => return EcsHookResponse::failed(e.to_string(), Some(state)),
        }
    } else {
        None
    };
    let key = gate_key(event);
    if let Some(gate) = &gate
        && let Some(previous) = previous_gate(event, &key)
    {
        state.round = previous_round(event).unwrap_or(state.round);
        return gate_round(app, event, gate, &vars, Some(previous), key, state).await;
    }
    let gate_vars = gate.as_ref().map(|_| vars.clone());
    let report = match app.smoke.run(&spec_target, vars, deadline, options).await {
        Ok(r) => r,
        Err(e) => return EcsHookResponse::failed(e.to_string(), Some(state)),
    };
    if let Ok(json) = serde_json::to_string(&report) {
        tracing::info!(execution_id = %event.execution_id, %stage, round, rounds, outcome = ?report.outcome, checks = %json, "smoke checks finished");
    }
    if !report.is_success() {
        let round_text = if rounds > 1 {
            format!(" (round {round} of {rounds})")
        } else {
            String::new()
        };
        state.last_summary = Some(report.summary_line(300));
        return EcsHookResponse::failed(
            format!(
                "smoke checks against {target} at {stage} did not pass{round_text}: {}",
                report.failure_details(4000)
            ),
            Some(state),
        );
    }
    state.passed_rounds += 1;
    state.last_summary = Some(report.summary_line(300));
    if let (Some(gate), Some(vars)) = (&gate, &gate_vars) {
        return gate_round(app, event, gate, vars, None, key, state).await;
    }
    if round < rounds {
        tracing::info!(
            round,
            rounds,
            delay_s = cfg.soak_interval.as_secs(),
            "soak round passed; asking ECS to call again"
        );
        return EcsHookResponse {
            hook_status: EcsHookStatus::InProgress,
            call_back_delay: Some(cfg.soak_interval.as_secs()),
            hook_details: Some(state_details(&state)),
        };
    }
    EcsHookResponse {
        hook_status: EcsHookStatus::Succeeded,
        call_back_delay: None,
        hook_details: Some(state_details(&state)),
    }
}

/// `hookDetails` key of the metric gate's state.
pub const GATE_KEY: &str = "tollgateGate";

/// Green's share of production traffic, when the payload gives it.
fn green_weight(event: &EcsHookEvent) -> Option<f64> {
    let d = &event.execution_details;
    d.production_traffic_weights
        .get(&d.target_service_revision_arn)
        .copied()
}

/// Whether the stage is one where green takes production traffic: the
/// gate runs at PRODUCTION_TRAFFIC_SHIFT (every step) and
/// POST_PRODUCTION_TRAFFIC_SHIFT (before the bake) unless the weights say
/// green has none, and at PRE_PRODUCTION_TRAFFIC_SHIFT only when they say
/// it has some (a later linear or canary step; before the first shift
/// green has no production traffic to measure).
fn gate_stage(event: &EcsHookEvent) -> bool {
    let weight = green_weight(event);
    match event.lifecycle_stage {
        LifecycleStage::PreProductionTrafficShift => weight.is_some_and(|w| w > 0.0),
        LifecycleStage::ProductionTrafficShift | LifecycleStage::PostProductionTrafficShift => {
            weight.is_none_or(|w| w > 0.0)
        }
        _ => false,
    }
}

/// Which bake a state belongs to: this hook execution, stage and traffic
/// step (a new linear or canary step starts a new bake).
fn gate_key(event: &EcsHookEvent) -> String {
    format!(
        "{}|{}|{}",
        event.execution_id,
        event.lifecycle_stage,
        green_weight(event).map_or_else(|| "-".to_owned(), tollgate_checks::gate::format_value)
    )
}

fn previous_gate(event: &EcsHookEvent, key: &str) -> Option<tollgate_checks::gate::GateState> {
    let v = event.hook_details.get(GATE_KEY)?;
    match serde_json::from_value::<HookGateState>(v.clone()) {
        Ok(g) if g.key == key => Some(g.state),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %describe_json_error(&e), "ignoring unreadable hookDetails.tollgateGate; starting the bake over");
            None
        }
    }
}

fn previous_round(event: &EcsHookEvent) -> Option<u32> {
    let v = event.hook_details.get(DETAILS_KEY)?;
    serde_json::from_value::<SoakState>(v.clone())
        .ok()
        .map(|s| s.round)
}

/// One invocation of the metric gate: start the bake (after the smoke
/// checks passed) or take the measurement that is due, then `IN_PROGRESS`
/// with `callBackDelay` until the next one, or the verdict.
async fn gate_round<D, L: ListenerReader, S, E>(
    app: &DeployHook<D, L, S, E>,
    event: &EcsHookEvent,
    gate: &GateSpec,
    base: &Vars,
    previous: Option<tollgate_checks::gate::GateState>,
    key: String,
    mut state: SoakState,
) -> EcsHookResponse {
    let stage = &event.lifecycle_stage;
    let extra = match string_map(&event.hook_details, VARS_KEY) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => return EcsHookResponse::failed(e, Some(state)),
    };
    let baseline = match string_map(&event.hook_details, BASELINE_KEY) {
        Ok(v) => v,
        Err(e) => return EcsHookResponse::failed(e, Some(state)),
    };
    // Green's and blue's target groups, found from ECS where the spec uses
    // TARGET_GROUP / LOAD_BALANCER and the hook's configuration does not
    // name them (explicit hookDetails variables win).
    let targets = match auto_targets(app, event, gate, base, &extra, baseline.is_some()).await {
        Ok(t) => t,
        Err(e) => return EcsHookResponse::failed(e, Some(state)),
    };
    let mut base = base.clone();
    if let Some(t) = &targets {
        for (k, v) in t.green.pairs() {
            base.insert(k, v);
        }
    }
    let baseline = baseline.or_else(|| targets.as_ref().map(|t| t.blue.pairs()));
    if gate.needs_baseline() && baseline.is_none() {
        return EcsHookResponse::failed(
            format!(
                "the metric gate at {stage} compares green with blue (max_vs_baseline), but the \
                 hook names no baseline; set hookDetails.{BASELINE_KEY} in the service's hook \
                 configuration to blue's variables, e.g. {{\"TARGET_GROUP\": \"targetgroup/web-blue/…\"}}"
            ),
            Some(state),
        );
    }
    let (green, baseline) = gate_vars(&base, &extra, baseline.as_deref());
    let advanced = match advance(
        gate,
        &app.gates,
        &green,
        baseline.as_ref(),
        previous,
        (ECS_BUDGET, "the ECS hook's longest timeout"),
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            return EcsHookResponse::failed(
                format!("the metric gate at {stage} cannot run: {e}"),
                Some(state),
            );
        }
    };
    let summary = advanced.summary(gate);
    state.last_summary = Some(clip(&summary, MAX_REASON));
    if !advanced.verdict.is_final() {
        tracing::info!(%stage, delay_s = advanced.next_in, summary = %summary, "metric gate baking; asking ECS to call again");
        let mut details = state_details(&state);
        details.insert(
            GATE_KEY.to_owned(),
            serde_json::to_value(HookGateState {
                key,
                state: advanced.state,
            })
            .unwrap_or(serde_json::Value::Null),
        );
        if let Some(carried) = targets.as_ref().and_then(|t| Carried::value(event, t)) {
            details.insert(CARRY_KEY.to_owned(), carried);
        }
        return EcsHookResponse {
            hook_status: EcsHookStatus::InProgress,
            call_back_delay: Some(advanced.next_in),
            hook_details: Some(details),
        };
    }
    if advanced.verdict.passes(gate) {
        tracing::info!(%stage, summary = %summary, "metric gate passed");
        return EcsHookResponse {
            hook_status: EcsHookStatus::Succeeded,
            call_back_delay: None,
            hook_details: Some(state_details(&state)),
        };
    }
    EcsHookResponse::failed(
        format!("{stage}: {}", advanced.state.failure_message(gate)),
        Some(state),
    )
}

/// Whether the gate's templates need `TARGET_GROUP` or `LOAD_BALANCER`
/// beyond what `vars` has: they fail without the two and pass with them.
fn uses_target_vars(gate: &GateSpec, vars: &Vars) -> bool {
    let mut without = Vars::new();
    for name in vars.names() {
        if name != "TARGET_GROUP" && name != "LOAD_BALANCER" {
            without.insert(name, vars.get(name).unwrap_or_default());
        }
    }
    let mut with = without.clone();
    with.insert("TARGET_GROUP", "targetgroup/x/0");
    with.insert("LOAD_BALANCER", "app/x/0");
    gate.check_vars(&without).is_err() && gate.check_vars(&with).is_ok()
}

/// The target groups found automatically, when the gate needs them and the
/// hook's `gateVariables` / `gateBaselineVariables` do not name them:
/// carried from the previous invocation of this hook execution when they
/// were verified, else read ([`ecs_targets::resolve`]). `Err` fails the
/// hook (fail closed), naming what to set.
async fn auto_targets<D, L: ListenerReader, S, E>(
    app: &DeployHook<D, L, S, E>,
    event: &EcsHookEvent,
    gate: &GateSpec,
    base: &Vars,
    extra: &[(String, String)],
    has_baseline: bool,
) -> Result<Option<ecs_targets::Resolved>, String> {
    let (explicit, _) = gate_vars(base, extra, None);
    let green_missing = gate.check_vars(&explicit).is_err() && uses_target_vars(gate, &explicit);
    let blue_missing = gate.needs_baseline() && !has_baseline && uses_target_vars(gate, &explicit);
    if !green_missing && !blue_missing {
        return Ok(None);
    }
    if let Some(carried) = Carried::read(event) {
        return Ok(Some(carried));
    }
    let resolved = ecs_targets::resolve(app.gates.targets.as_ref(), &app.elb, event).await?;
    tracing::info!(
        stage = %event.lifecycle_stage,
        green_target_group = %resolved.green.target_group,
        blue_target_group = %resolved.blue.target_group,
        load_balancer = resolved.green.load_balancer.as_deref(),
        verified = resolved.verified,
        note = %resolved.note,
        "metric gate target groups found"
    );
    Ok(Some(resolved))
}

fn succeeded(note: String) -> EcsHookResponse {
    tracing::info!(note = %note, "ecs hook passes without checks");
    let mut map = serde_json::Map::new();
    map.insert(DETAILS_KEY.to_owned(), serde_json::json!({ "note": note }));
    EcsHookResponse {
        hook_status: EcsHookStatus::Succeeded,
        call_back_delay: None,
        hook_details: Some(map),
    }
}

/// The stages ECS documents, comma-separated (for messages).
pub fn known_stages() -> String {
    LifecycleStage::KNOWN
        .iter()
        .map(LifecycleStage::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeployConfig, vars as env};
    use crate::discovery::fakes::{FakeCodeDeploy, FakeElb};
    use crate::rollback::fakes::FakeDeployments;
    use crate::smoke::fakes::{FakeRunner, Script};
    use std::time::Duration;
    use tollgate_report::ReportConfig;

    const SPEC: &str = "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]";

    fn app(
        extra: &[(&str, &str)],
        script: Script,
    ) -> Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>> {
        app_with(extra, script, FakeDeployments::default())
    }

    fn app_with(
        extra: &[(&str, &str)],
        script: Script,
        ecs: FakeDeployments,
    ) -> Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>> {
        let mut env: std::collections::HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.insert(env::CHECK_SPEC.into(), SPEC.into());
        Arc::new(DeployHook {
            config: DeployConfig::from_env(&env).expect("config"),
            codedeploy: FakeCodeDeploy::default(),
            elb: FakeElb::default(),
            ecs,
            smoke: FakeRunner::new(script),
            recorder: None,
            gates: crate::gate_hook::Gates::default(),
        })
    }

    fn budget(ms: u64) -> Budget {
        let cfg = ReportConfig {
            reserve: Duration::from_millis(50),
            safety_margin: Duration::ZERO,
            ..ReportConfig::default()
        };
        Budget::within(Instant::now() + Duration::from_millis(ms), &cfg)
    }

    fn sample(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("sample")
    }

    const POST_TEST: &str =
        include_str!("../../../events/deploy-hook/ecs-post-test-traffic-shift.json");

    fn state(r: &EcsHookResponse) -> SoakState {
        serde_json::from_value(r.hook_details.as_ref().expect("details")[DETAILS_KEY].clone())
            .expect("state")
    }

    #[tokio::test]
    async fn one_round_succeeds_with_the_facts_as_variables() {
        let app = app(
            &[(env::TARGET_URL, "http://web-test.internal:8080")],
            Script::Pass(2),
        );
        let r = handle(app.clone(), sample(POST_TEST), budget(5000)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Succeeded, "{r:?}");
        assert_eq!(r.call_back_delay, None);
        let s = state(&r);
        assert_eq!((s.round, s.rounds, s.passed_rounds), (1, 1, 1));
        let v = |n| app.smoke.var(0, n);
        assert_eq!(
            v("TARGET").as_deref(),
            Some("http://web-test.internal:8080")
        );
        assert_eq!(
            v("LIFECYCLE_STAGE").as_deref(),
            Some("POST_TEST_TRAFFIC_SHIFT")
        );
        assert_eq!(v("CLUSTER").as_deref(), Some("web-cluster"));
        assert_eq!(v("SERVICE").as_deref(), Some("web"));
        assert_eq!(
            v("EXECUTION_ID").as_deref(),
            Some("e27a4d19-c60b-4f8e-9d33-58a1b7c0e6f2")
        );
        assert!(v("TARGET_SERVICE_REVISION_ARN").is_some_and(|a| a.contains("service-revision")));
        assert!(v("SERVICE_DEPLOYMENT_ARN").is_some_and(|a| a.contains("service-deployment")));
    }

    #[tokio::test]
    async fn a_soak_goes_in_progress_then_succeeds_carrying_hook_details() {
        let app = app(
            &[
                (env::TARGET_URL, "http://web-test.internal:8080"),
                (env::SOAK_ROUNDS, "3"),
                (env::SOAK_INTERVAL_S, "20"),
            ],
            Script::Pass(1),
        );
        let mut event = sample(POST_TEST);
        let mut answers = Vec::new();
        for _ in 0..3 {
            let r = handle(app.clone(), event.clone(), budget(5000)).await;
            // ECS merges the returned hookDetails into the next payload.
            if let Some(d) = &r.hook_details {
                let merged = event["hookDetails"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let mut merged = merged;
                for (k, v) in d {
                    merged.insert(k.clone(), v.clone());
                }
                event["hookDetails"] = serde_json::Value::Object(merged);
            }
            answers.push(r);
        }
        let statuses: Vec<_> = answers.iter().map(|a| a.hook_status).collect();
        assert_eq!(
            statuses,
            [
                EcsHookStatus::InProgress,
                EcsHookStatus::InProgress,
                EcsHookStatus::Succeeded
            ]
        );
        assert_eq!(answers[0].call_back_delay, Some(20));
        assert_eq!(state(&answers[1]).round, 2);
        let last = state(&answers[2]);
        assert_eq!((last.round, last.rounds, last.passed_rounds), (3, 3, 3));
        assert_eq!(last.started_at, state(&answers[0]).started_at);
        let runs = app.smoke.runs();
        assert!(!runs[0].1.skip_initial_delay);
        assert!(runs[1].1.skip_initial_delay);
        assert_eq!(app.smoke.var(2, "SOAK_ROUND").as_deref(), Some("3"));
    }

    /// ECS may replace hookDetails with the answer instead of merging it:
    /// the next round still has its target.
    #[tokio::test]
    async fn in_progress_answers_echo_the_incoming_hook_details() {
        let app = app(&[(env::SOAK_ROUNDS, "3")], Script::Pass(1));
        let mut event = sample(include_str!(
            "../../../events/deploy-hook/ecs-post-test-traffic-shift-callback.json"
        ));
        let first = handle(app.clone(), event.clone(), budget(5000)).await;
        assert_eq!(first.hook_status, EcsHookStatus::InProgress);
        let details = first.hook_details.clone().expect("details");
        assert_eq!(
            details.get(TARGET_KEY).and_then(|v| v.as_str()),
            Some("http://web-test.internal.example:8080"),
            "{details:?}"
        );
        // Replaced, not merged.
        event["hookDetails"] = serde_json::Value::Object(details);
        let second = handle(app.clone(), event, budget(5000)).await;
        assert_eq!(state(&second).round, state(&first).round + 1);
        assert_eq!(
            app.smoke.var(1, "TARGET").as_deref(),
            Some("http://web-test.internal.example:8080")
        );
    }

    #[tokio::test]
    async fn the_callback_sample_continues_its_soak() {
        let app = app(&[(env::SOAK_ROUNDS, "3")], Script::Pass(1));
        let r = handle(
            app.clone(),
            sample(include_str!(
                "../../../events/deploy-hook/ecs-post-test-traffic-shift-callback.json"
            )),
            budget(5000),
        )
        .await;
        assert_eq!(r.hook_status, EcsHookStatus::InProgress, "{r:?}");
        assert_eq!(state(&r).round, 2);
        // hookDetails.targetUrl was used.
        assert_eq!(
            app.smoke.var(0, "TARGET").as_deref(),
            Some("http://web-test.internal.example:8080")
        );
    }

    #[tokio::test]
    async fn a_failed_round_fails_with_the_expectation() {
        let app = app(
            &[(env::TARGET_URL, "http://t:1"), (env::SOAK_ROUNDS, "2")],
            Script::Fail("503"),
        );
        let r = handle(app, sample(POST_TEST), budget(5000)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed);
        let reason = state(&r).reason.expect("reason");
        assert!(reason.contains("did not pass (round 1 of 2)"), "{reason}");
        assert!(reason.contains("status 503 (expected 200)"), "{reason}");
    }

    #[tokio::test]
    async fn no_target_fails_naming_both_fixes() {
        let app = app(&[], Script::Pass(1));
        let r = handle(app, sample(POST_TEST), budget(5000)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed);
        let reason = state(&r).reason.expect("reason");
        assert!(reason.contains("set TARGET_URL"), "{reason}");
        assert!(
            reason.contains("\"targetUrl\" in the hook's hookDetails"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_panic_is_failed_with_a_reason() {
        let app = app(&[(env::TARGET_URL, "http://t:1")], Script::Panic);
        let r = handle(app, sample(POST_TEST), budget(5000)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed);
        let reason = state(&r).reason.expect("reason");
        assert!(reason.contains("fake runner exploded"), "{reason}");
        assert!(
            reason.contains("running round 1/1 of the smoke checks"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn the_deadline_is_failed_with_a_reason() {
        let app = app(
            &[(env::TARGET_URL, "http://t:1")],
            Script::Slow(Duration::from_secs(30)),
        );
        // The 30 s run is cut at the 400 ms budget: the reason shows it (a
        // wall-clock bound of the test's own would flake on a busy host).
        let r = handle(app, sample(POST_TEST), budget(400)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed);
        assert!(
            state(&r)
                .reason
                .expect("reason")
                .starts_with("timed out after")
        );
    }

    #[tokio::test]
    async fn a_bad_payload_is_failed_not_an_error() {
        let app = app(&[(env::TARGET_URL, "http://t:1")], Script::Pass(1));
        let r = handle(
            app.clone(),
            serde_json::json!({"executionId": "e-1", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"}),
            budget(5000),
        )
        .await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed);
        let reason = state(&r).reason.expect("reason");
        assert!(
            reason.contains("missing field `executionDetails`"),
            "{reason}"
        );
        assert!(app.smoke.runs().is_empty());
    }

    #[tokio::test]
    async fn early_stages_and_rollbacks_pass_without_checks() {
        let app = app_with(
            &[(env::TARGET_URL, "http://t:1")],
            Script::Fail("503"),
            FakeDeployments::answering(Ok("ROLLBACK_IN_PROGRESS".to_owned())),
        );
        for text in [
            include_str!("../../../events/deploy-hook/ecs-reconcile-service.json"),
            include_str!("../../../events/deploy-hook/ecs-pre-scale-up.json"),
            include_str!("../../../events/deploy-hook/ecs-production-traffic-shift-rollback.json"),
        ] {
            let r = handle(app.clone(), sample(text), budget(5000)).await;
            assert_eq!(r.hook_status, EcsHookStatus::Succeeded, "{r:?}");
        }
        assert!(app.smoke.runs().is_empty());
    }

    /// Issue 14.8: rollback-looking weights (green 0, blue 100) open the
    /// gate without checks only when ECS confirms a rollback. Before a first
    /// canary step, or when the status cannot be read, the checks run and a
    /// failing green fails the hook.
    #[tokio::test]
    async fn unconfirmed_rollback_weights_never_skip_the_checks() {
        let rollback_weights =
            include_str!("../../../events/deploy-hook/ecs-production-traffic-shift-rollback.json");
        // Not a rollback (a first canary step): the checks run, and fail.
        let app = app_with(
            &[(env::TARGET_URL, "http://t:1")],
            Script::Fail("503"),
            FakeDeployments::answering(Ok("IN_PROGRESS".to_owned())),
        );
        let r = handle(app.clone(), sample(rollback_weights), budget(5000)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed, "{r:?}");
        assert_eq!(app.smoke.runs().len(), 1);
        assert_eq!(
            app.ecs.asked.lock().expect("lock").as_slice(),
            [
                "arn:aws:ecs:eu-west-1:111122223333:service-deployment/web-cluster/web/Qk3vT9sLx2Rb7hNc5WmPz"
            ]
        );

        // The status cannot be read: neither open the gate nor block a
        // rollback; ask again, then fail closed after ten tries.
        let app = app_with(
            &[(env::TARGET_URL, "http://t:1")],
            Script::Pass(1),
            FakeDeployments::answering(Err(
                "ecs:DescribeServiceDeployments: access denied".to_owned()
            )),
        );
        let mut event = sample(rollback_weights);
        for round in 1..=10u64 {
            let r = handle(app.clone(), event.clone(), budget(5000)).await;
            assert_eq!(
                r.hook_status,
                EcsHookStatus::InProgress,
                "round {round}: {r:?}"
            );
            assert_eq!(r.call_back_delay, Some(30));
            event["hookDetails"] = serde_json::Value::Object(r.hook_details.expect("details"));
        }
        let r = handle(app.clone(), event, budget(5000)).await;
        assert_eq!(r.hook_status, EcsHookStatus::Failed, "{r:?}");
        assert!(app.smoke.runs().is_empty(), "no checks, no open gate");
    }

    #[tokio::test]
    async fn every_stage_with_green_up_runs_the_checks() {
        let app = app(&[(env::TARGET_URL, "http://t:1")], Script::Pass(1));
        for text in [
            include_str!("../../../events/deploy-hook/ecs-post-scale-up.json"),
            include_str!("../../../events/deploy-hook/ecs-test-traffic-shift.json"),
            POST_TEST,
            include_str!("../../../events/deploy-hook/ecs-pre-production-traffic-shift.json"),
            include_str!("../../../events/deploy-hook/ecs-production-traffic-shift.json"),
            include_str!("../../../events/deploy-hook/ecs-post-production-traffic-shift.json"),
        ] {
            let r = handle(app.clone(), sample(text), budget(5000)).await;
            assert_eq!(r.hook_status, EcsHookStatus::Succeeded, "{r:?}");
        }
        assert_eq!(app.smoke.runs().len(), 6);
    }

    mod gate {
        //! The metric gate at production stages: one measurement per
        //! invocation, IN_PROGRESS + callBackDelay between them.

        use super::*;
        use crate::gate_hook::Gates;
        use crate::gate_hook::fakes::FakeMetrics;
        use std::sync::atomic::{AtomicI64, Ordering};

        const GATE: &str = r#"
checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]
gate:
  interval: 1m
  count: 3
  min_requests: {query: requests, at_least: 10}
  queries:
    - {id: requests, metric: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {TargetGroup: '${TARGET_GROUP}'}}}
    - {id: errors, missing: zero, metric: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {TargetGroup: '${TARGET_GROUP}'}}}
    - {id: error_rate, name: 5xx rate, unit: '%', expression: 100 * errors / requests}
  conditions:
    - {query: error_rate, max: 1}
"#;

        struct Rig {
            app: Arc<DeployHook<FakeCodeDeploy, FakeElb, FakeRunner, FakeDeployments>>,
            metrics: Arc<FakeMetrics>,
            now: Arc<AtomicI64>,
        }

        fn rig(spec: &str) -> Rig {
            let gate = tollgate_checks::gate::GateSpec::from_document(spec)
                .expect("valid")
                .expect("gate");
            let mut runner = FakeRunner::new(Script::Pass(1));
            runner.gate = Some(Arc::new(gate));
            let env: std::collections::HashMap<String, String> = [
                (env::CHECK_SPEC.to_owned(), SPEC.to_owned()),
                (env::TARGET_URL.to_owned(), "http://web.internal".to_owned()),
            ]
            .into();
            let metrics = Arc::new(FakeMetrics::default());
            let now = Arc::new(AtomicI64::new(1_764_000_000));
            let clock = now.clone();
            let app = Arc::new(DeployHook {
                config: DeployConfig::from_env(&env).expect("config"),
                codedeploy: FakeCodeDeploy::default(),
                elb: FakeElb::default(),
                ecs: FakeDeployments::default(),
                smoke: runner,
                recorder: None,
                gates: Gates {
                    metrics: metrics.clone(),
                    queue: None,
                    clock: Arc::new(move || clock.load(Ordering::SeqCst)),
                    targets: Arc::new(crate::ecs_targets::NoTargets),
                },
            });
            Rig { app, metrics, now }
        }

        fn event(stage_sample: &str) -> serde_json::Value {
            let mut e = sample(stage_sample);
            e["hookDetails"] = serde_json::json!({
                "gateVariables": {"TARGET_GROUP": "targetgroup/web-green/1"},
                "gateBaselineVariables": {"TARGET_GROUP": "targetgroup/web-blue/2"}
            });
            e
        }

        /// Invokes, then feeds the answer's hookDetails back the way ECS
        /// does (replacing them) and moves the clock by the delay asked.
        async fn invoke(rig: &Rig, e: &mut serde_json::Value) -> EcsHookResponse {
            let r = handle(rig.app.clone(), e.clone(), budget(5000)).await;
            if let Some(d) = &r.hook_details {
                e["hookDetails"] = serde_json::Value::Object(d.clone());
            }
            if let Some(delay) = r.call_back_delay {
                rig.now
                    .fetch_add(i64::try_from(delay).expect("delay"), Ordering::SeqCst);
            }
            r
        }

        const PROD: &str =
            include_str!("../../../events/deploy-hook/ecs-production-traffic-shift.json");
        const POST_PROD: &str =
            include_str!("../../../events/deploy-hook/ecs-post-production-traffic-shift.json");

        #[tokio::test]
        async fn a_healthy_bake_answers_in_progress_per_measurement_then_succeeds() {
            let rig = rig(GATE);
            for _ in 0..3 {
                rig.metrics.push(FakeMetrics::answer(&[
                    ("requests", 500.0),
                    ("errors", 1.0),
                    ("error_rate", 0.2),
                ]));
            }
            let mut e = event(PROD);
            let mut statuses = Vec::new();
            let mut last = None;
            for _ in 0..4 {
                let r = invoke(&rig, &mut e).await;
                statuses.push((r.hook_status, r.call_back_delay));
                last = Some(r);
            }
            assert_eq!(
                statuses,
                [
                    (EcsHookStatus::InProgress, Some(60)),
                    (EcsHookStatus::InProgress, Some(60)),
                    (EcsHookStatus::InProgress, Some(60)),
                    (EcsHookStatus::Succeeded, None),
                ]
            );
            // The smoke checks ran once, before the bake.
            assert_eq!(rig.app.smoke.runs().len(), 1);
            let calls = rig.metrics.calls();
            assert_eq!(
                calls[..2],
                [
                    "ListMetrics RequestCount",
                    "ListMetrics HTTPCode_Target_5XX_Count"
                ]
            );
            assert_eq!(
                calls
                    .iter()
                    .filter(|c| *c
                        == "GetMetricData TargetGroup=targetgroup/web-green/1;TargetGroup=targetgroup/web-green/1")
                    .count(),
                3,
                "{calls:?}"
            );
            let s = state(&last.expect("answer"));
            assert!(
                s.last_summary
                    .as_deref()
                    .is_some_and(|t| t.starts_with("metric gate successful: 3 of 3")),
                "{s:?}"
            );
        }

        #[tokio::test]
        async fn a_5xx_rise_fails_the_hook_saying_which_measurement_and_by_how_much() {
            let rig = rig(GATE);
            rig.metrics.push(FakeMetrics::answer(&[
                ("requests", 500.0),
                ("errors", 0.0),
                ("error_rate", 0.0),
            ]));
            rig.metrics.push(FakeMetrics::answer(&[
                ("requests", 500.0),
                ("errors", 60.0),
                ("error_rate", 12.0),
            ]));
            let mut e = event(POST_PROD);
            let mut last = None;
            for _ in 0..3 {
                last = Some(invoke(&rig, &mut e).await);
            }
            let r = last.expect("answer");
            assert_eq!(r.hook_status, EcsHookStatus::Failed, "{r:?}");
            assert_eq!(
                state(&r).reason.as_deref(),
                Some(
                    "POST_PRODUCTION_TRAFFIC_SHIFT: metric gate failed: 5xx rate 12 % > 1 % in 1 of 2 measurements\n\
                     last measurement (2 of 3) failed: 5xx rate 12 % > 1 %\n\
                     measurements: 1 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 2 of 3 taken\n\
                     what to do: the new version stays out: fix what the measurements show and release again, or change the gate's conditions if a limit is wrong"
                )
            );
        }

        #[tokio::test]
        async fn a_duplicate_invocation_before_the_next_is_due_measures_nothing() {
            let rig = rig(GATE);
            rig.metrics.push(FakeMetrics::answer(&[
                ("requests", 500.0),
                ("errors", 0.0),
                ("error_rate", 0.0),
            ]));
            let mut e = event(PROD);
            invoke(&rig, &mut e).await; // starts; clock +60
            let first = invoke(&rig, &mut e).await; // measurement 1; clock +60
            rig.now.fetch_sub(60, Ordering::SeqCst);
            // The same payload again (a retry), at the same time.
            let before = rig.metrics.calls().len();
            let mut again = e.clone();
            again["hookDetails"] =
                serde_json::Value::Object(first.hook_details.clone().expect("d"));
            let dup = handle(rig.app.clone(), again, budget(5000)).await;
            assert_eq!(rig.metrics.calls().len(), before, "no second measurement");
            assert_eq!(dup.hook_status, EcsHookStatus::InProgress);
            assert_eq!(
                dup.hook_details.as_ref().map(|d| &d[GATE_KEY]),
                first.hook_details.as_ref().map(|d| &d[GATE_KEY])
            );
        }

        #[tokio::test]
        async fn each_traffic_step_bakes_anew_and_test_stages_have_no_gate() {
            let rig = rig(GATE);
            let mut e = event(PROD);
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::InProgress);
            // The next canary step: green at 50 % now; ECS hands back the
            // old state, which belongs to another step.
            let green = e["executionDetails"]["targetServiceRevisionArn"]
                .as_str()
                .expect("arn")
                .to_owned();
            e["executionDetails"]["productionTrafficWeights"][&green] = serde_json::json!(50);
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::InProgress);
            assert_eq!(rig.app.smoke.runs().len(), 2, "a new step checks again");
            assert!(
                !rig.metrics
                    .calls()
                    .iter()
                    .any(|c| c.starts_with("GetMetricData")),
                "a new bake starts without a measurement"
            );
            // Test-traffic stages, and PRE_PRODUCTION_TRAFFIC_SHIFT before
            // green has production traffic (weight 0, or no weights at
            // all), run the smoke checks only.
            const PRE_PROD: &str =
                include_str!("../../../events/deploy-hook/ecs-pre-production-traffic-shift.json");
            for (text, no_weights) in [(POST_TEST, false), (PRE_PROD, false), (PRE_PROD, true)] {
                let mut e = event(text);
                if no_weights {
                    e["executionDetails"]["productionTrafficWeights"] = serde_json::json!({});
                }
                let r = invoke(&rig, &mut e).await;
                assert_eq!(r.hook_status, EcsHookStatus::Succeeded, "{r:?}");
            }
        }

        #[tokio::test]
        async fn a_later_steps_pre_production_shift_bakes_too() {
            let rig = rig(GATE);
            let mut e = event(include_str!(
                "../../../events/deploy-hook/ecs-pre-production-traffic-shift.json"
            ));
            let green = e["executionDetails"]["targetServiceRevisionArn"]
                .as_str()
                .expect("arn")
                .to_owned();
            e["executionDetails"]["productionTrafficWeights"][&green] = serde_json::json!(25);
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::InProgress, "{r:?}");
            assert_eq!(r.call_back_delay, Some(60));
        }

        #[tokio::test]
        async fn a_relative_condition_without_a_baseline_fails_naming_the_fix() {
            let rig = rig(&GATE.replace(
                "- {query: error_rate, max: 1}",
                "- {query: error_rate, max_vs_baseline: {plus: 0.5}}",
            ));
            let mut e = sample(PROD);
            e["hookDetails"] =
                serde_json::json!({"gateVariables": {"TARGET_GROUP": "targetgroup/web-green/1"}});
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::Failed);
            let reason = state(&r).reason.expect("reason");
            assert!(
                reason.contains("hookDetails.gateBaselineVariables"),
                "{reason}"
            );
        }

        #[tokio::test]
        async fn green_against_blue_queries_both_target_groups() {
            let rig = rig(&GATE.replace(
                "- {query: error_rate, max: 1}",
                "- {query: error_rate, max_vs_baseline: {plus: 0.5}}",
            ));
            rig.metrics.push(FakeMetrics::answer(&[
                ("requests", 500.0),
                ("errors", 10.0),
                ("error_rate", 2.0),
            ]));
            rig.metrics.push(FakeMetrics::answer(&[
                ("requests", 900.0),
                ("errors", 9.0),
                ("error_rate", 1.0),
            ]));
            let mut e = event(PROD);
            invoke(&rig, &mut e).await;
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::Failed, "{r:?}");
            let reason = state(&r).reason.expect("reason");
            assert!(
                reason.contains("5xx rate 2 % > 1.5 % (baseline 1 % + 0.5)"),
                "{reason}"
            );
            let calls = rig.metrics.calls();
            assert!(
                calls.iter().any(|c| c.contains("targetgroup/web-blue/2")),
                "{calls:?}"
            );
        }

        /// A rig whose ECS / ELB reads find the target groups themselves.
        fn rig_finding(
            spec: &str,
            weights: Option<Vec<(String, f64)>>,
        ) -> (Rig, Arc<crate::ecs_targets::tests::FakeTargets>) {
            use crate::ecs_targets::tests::{BLUE, FakeTargets, GREEN, OLD, revision};
            let e = sample(PROD);
            let green = e["executionDetails"]["targetServiceRevisionArn"]
                .as_str()
                .expect("arn")
                .to_owned();
            let targets = Arc::new(FakeTargets {
                revisions: vec![
                    revision(&green, Some(GREEN), (BLUE, GREEN)),
                    revision(OLD, Some(BLUE), (BLUE, GREEN)),
                ],
                weights,
                ..FakeTargets::default()
            });
            let rig = rig(spec);
            let mut app = Arc::try_unwrap(rig.app).expect("sole");
            app.gates.targets = targets.clone();
            (
                Rig {
                    app: Arc::new(app),
                    metrics: rig.metrics,
                    now: rig.now,
                },
                targets,
            )
        }

        const VS_BLUE: &str = "- {query: error_rate, max_vs_baseline: {plus: 0.5}}";

        #[tokio::test]
        async fn the_gate_finds_green_and_blue_once_per_execution_and_measures_both() {
            let (rig, targets) = rig_finding(
                &GATE.replace("- {query: error_rate, max: 1}", VS_BLUE),
                // A linear step at 10 %: the rule has moved; only green in
                // the recorded group fits.
                Some(crate::ecs_targets::tests::weights(10.0, 90.0)),
            );
            let mut e = sample(PROD);
            let green = e["executionDetails"]["targetServiceRevisionArn"]
                .as_str()
                .expect("arn")
                .to_owned();
            e["executionDetails"]["productionTrafficWeights"] =
                serde_json::json!({green: 10, crate::ecs_targets::tests::OLD: 90});
            for _ in 0..2 {
                rig.metrics.push(FakeMetrics::answer(&[
                    ("requests", 500.0),
                    ("errors", 1.0),
                    ("error_rate", 0.2),
                ]));
            }
            let r = invoke(&rig, &mut e).await; // checks, then the bake starts
            assert_eq!(r.hook_status, EcsHookStatus::InProgress, "{r:?}");
            let carried = &r.hook_details.as_ref().expect("details")[CARRY_KEY];
            assert_eq!(
                carried["green"]["TARGET_GROUP"],
                "targetgroup/web-green/2222222222222222"
            );
            let r = invoke(&rig, &mut e).await; // measurement 1
            assert_eq!(r.hook_status, EcsHookStatus::InProgress, "{r:?}");
            assert_eq!(
                targets.calls.lock().expect("lock").len(),
                2,
                "DescribeServiceRevisions and DescribeRules once, not per measurement"
            );
            let calls = rig.metrics.calls();
            let gets: Vec<&String> = calls
                .iter()
                .filter(|c| c.starts_with("GetMetricData"))
                .collect();
            assert_eq!(
                gets,
                [
                    "GetMetricData TargetGroup=targetgroup/web-green/2222222222222222;TargetGroup=targetgroup/web-green/2222222222222222",
                    "GetMetricData TargetGroup=targetgroup/web-blue/1111111111111111;TargetGroup=targetgroup/web-blue/1111111111111111"
                ]
            );
        }

        #[tokio::test]
        async fn explicit_hook_variables_win_and_nothing_is_read() {
            let (rig, targets) = rig_finding(
                &GATE.replace("- {query: error_rate, max: 1}", VS_BLUE),
                None,
            );
            let mut e = event(PROD);
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::InProgress, "{r:?}");
            assert!(targets.calls.lock().expect("lock").is_empty());
            assert!(
                r.hook_details
                    .as_ref()
                    .is_some_and(|d| !d.contains_key(CARRY_KEY))
            );
        }

        #[tokio::test]
        async fn a_rule_read_refused_fails_the_hook_naming_the_fix() {
            let (rig, _) = rig_finding(GATE, None);
            let mut e = sample(PROD);
            let r = invoke(&rig, &mut e).await;
            assert_eq!(r.hook_status, EcsHookStatus::Failed, "{r:?}");
            let reason = state(&r).reason.expect("reason");
            assert!(reason.contains("DescribeRules was denied"), "{reason}");
            assert!(reason.contains("set hookDetails.gateVariables"), "{reason}");
            assert!(rig.metrics.calls().is_empty(), "nothing measured");
        }

        #[tokio::test]
        async fn without_cloudwatch_the_gate_fails_never_passes() {
            let rig = rig(GATE);
            let app = {
                let mut a = Arc::try_unwrap(rig.app).expect("sole");
                a.gates = Gates::default();
                Arc::new(a)
            };
            let r = handle(app, event(PROD), budget(5000)).await;
            assert_eq!(r.hook_status, EcsHookStatus::Failed);
            let reason = state(&r).reason.expect("reason");
            assert!(
                reason.contains("the metric gate at PRODUCTION_TRAFFIC_SHIFT cannot run"),
                "{reason}"
            );
            assert!(reason.contains("no CloudWatch client"), "{reason}");
        }
    }

    #[test]
    fn the_answer_has_the_documented_shape() {
        let r = EcsHookResponse {
            hook_status: EcsHookStatus::InProgress,
            call_back_delay: Some(30),
            hook_details: None,
        };
        assert_eq!(
            serde_json::to_value(&r).expect("json"),
            serde_json::json!({"hookStatus": "IN_PROGRESS", "callBackDelay": 30})
        );
        assert!(known_stages().contains("POST_TEST_TRAFFIC_SHIFT"));
    }
}
