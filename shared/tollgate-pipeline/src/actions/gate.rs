//! `gate`: a metric gate over a bake. Each invocation takes at most one
//! measurement (when one is due) and answers IN PROGRESS with the
//! percentage and the running verdict in the summary, carrying the state in
//! the continuation token, until the verdict is final. Never sleeps.
//!
//! Owns the action whole: [`GateParams`] and their parsing ([`parse`]), the
//! execution ([`run`]) and the object-safe form of the metric port
//! ([`Metrics`]) that [`crate::Deps`] holds.

use crate::params::{Fields, ParamError};
use crate::{Deps, Failure};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_checks::Vars;
use tollgate_checks::gate::{GateError, GateSpec, GateState, measure, preflight};
use tollgate_core::gate_report::GateOutcome;
use tollgate_report::events::codepipeline::Job;
use tollgate_report::limits::SUMMARY_MAX;
use tollgate_report::{JobOutcome, JobSuccess, Step};

/// The action's name, as written in `"action"`.
pub const NAME: &str = "gate";

/// Valid `UserParameters`, shown in every error about this action.
pub const EXAMPLE: &str = r#"{"action":"gate","gate":{"interval":"1m","count":10,"queries":[{"id":"p99","unit":"ms","scale":1000,"metric":{"namespace":"AWS/ApplicationELB","name":"TargetResponseTime","stat":"p99","dimensions":{"LoadBalancer":"${LOAD_BALANCER}","TargetGroup":"${TARGET_GROUP}"}}}],"conditions":[{"query":"p99","max":600}]},"vars":{"LOAD_BALANCER":"app/web/0123456789abcdef","TARGET_GROUP":"targetgroup/web-green/0123456789abcdef"}}"#;

/// The longest time budget of a bake: 23 hours. CodePipeline ends an
/// action that is still in progress after 24 hours, and the gate must fail
/// with its own message (what was measured, what failed) before that; the
/// hour between leaves room for CodePipeline's own re-invocation schedule.
/// A `wait_timeout_minutes` above it is refused, and a longer function
/// default (`TOLLGATE_ECS_WAIT_TIMEOUT_MINUTES`) is capped to it.
pub const MAX_BAKE_MINUTES: u64 = 23 * 60;

/// CodePipeline's limit on a continuation token (characters).
pub const TOKEN_MAX: usize = 2048;

/// `gate` parameters. `Debug` shows variable names, not values.
#[derive(Clone, PartialEq)]
pub struct GateParams {
    /// The gate.
    pub gate: GateSpec,
    /// Variables for green (the new version's target group…).
    pub vars: BTreeMap<String, String>,
    /// Variables for the baseline, for `max_vs_baseline` conditions.
    pub baseline_vars: Option<BTreeMap<String, String>>,
    /// The time budget of the bake (default: the function's wait limit).
    pub wait_timeout: Option<Duration>,
}

impl fmt::Debug for GateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateParams")
            .field("count", &self.gate.count)
            .field("interval", &self.gate.interval)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field(
                "baseline_vars",
                &self.baseline_vars.as_ref().map(|b| b.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// Parses `gate`'s fields; the gate spec is validated here, so a bad spec
/// fails the first invocation as a configuration error.
pub fn parse(map: &Map<String, Value>) -> Result<GateParams, ParamError> {
    let ex = EXAMPLE;
    let mut f = Fields::new("", map, ex);
    f.known(&["action", "gate", "vars", "baseline_vars", "wait_timeout_minutes"])?;
    let gate = match map.get("gate") {
        None => {
            return Err(ParamError::new(
                "gate",
                "is missing: give the metric gate (interval, count, queries, conditions, alarms) as an object or a YAML/JSON string",
                ex,
            ));
        }
        Some(Value::String(text)) => {
            let doc = format!("gate:\n{}", indent(text));
            let parsed = if text.trim_start().starts_with('{') {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| tollgate_report::describe_json_error(&e))
                    .and_then(|v| GateSpec::from_value(&v, "gate").map_err(|e| e.to_string()))
            } else {
                GateSpec::from_document(&doc)
                    .map_err(|e| e.to_string())
                    .and_then(|g| g.ok_or_else(|| "is empty".to_owned()))
            };
            parsed.map_err(|e| ParamError::new("gate", format!("is not a valid metric gate: {e}"), ex))?
        }
        Some(v @ Value::Object(_)) => GateSpec::from_value(v, "gate")
            .map_err(|e| ParamError::new("gate", format!("is not a valid metric gate: {e}"), ex))?,
        Some(_) => {
            return Err(ParamError::new(
                "gate",
                "must be a metric gate object (or a YAML/JSON string)",
                ex,
            ));
        }
    };
    let vars = f
        .opt_string_map("vars", "template variables such as TARGET_GROUP")?
        .unwrap_or_default();
    let baseline_vars =
        f.opt_string_map("baseline_vars", "the baseline's variables, e.g. the blue TARGET_GROUP")?;
    if gate.needs_baseline() && baseline_vars.is_none() {
        return Err(ParamError::new(
            "baseline_vars",
            "is missing: a max_vs_baseline condition compares green with a baseline; give the baseline's variables (e.g. {\"TARGET_GROUP\": \"targetgroup/web-blue/…\"})",
            ex,
        ));
    }
    let wait_timeout = f
        .opt_u64("wait_timeout_minutes", 1, MAX_BAKE_MINUTES)?
        .map(|m| Duration::from_secs(m * 60));
    Ok(GateParams {
        gate,
        vars,
        baseline_vars,
        wait_timeout,
    })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The object-safe form of [`tollgate_checks::gate::MetricSource`], so [`Deps`] holds one without
/// another type parameter (one definition, in `tollgate_checks::gate`);
/// every `MetricSource` is one.
pub use tollgate_checks::gate::DynMetricSource as Metrics;
use tollgate_checks::gate::AsSource;

/// The continuation token: format version, action, the running state.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Token {
    v: u8,
    action: String,
    s: GateState,
}

fn decode(raw: &str) -> Result<GateState, Failure> {
    let t: Token = serde_json::from_str(raw).map_err(|e| {
        Failure::job(format!(
            "the continuation token is not one tollgate's metric gate produced ({}); retry the stage to start the bake again",
            tollgate_report::describe_json_error(&e)
        ))
    })?;
    if t.v != 1 || t.action != NAME {
        return Err(Failure::job(
            "the continuation token is not version 1 of tollgate's metric gate; retry the stage to start the bake again",
        ));
    }
    Ok(t.s)
}

fn encode(state: &GateState) -> String {
    serde_json::json!({"v": 1, "action": NAME, "s": state.to_json()}).to_string()
}

/// The token for `state`, within [`TOKEN_MAX`]: the last measurement's
/// reason is shortened when the room is needed. The preflight's
/// [`GateState::check_fits`] makes the failure branch unreachable for a
/// spec that passed it; it still fails the job with what to do.
fn token(state: &GateState) -> Result<String, Failure> {
    state.encode_within(TOKEN_MAX, encode).ok_or_else(|| {
        Failure::config(
            "the metric gate's running verdict does not fit CodePipeline's 2,048-character continuation token; lower count, or split the conditions and alarms over two gates",
        )
    })
}

fn gate_failure(e: &GateError) -> Failure {
    Failure::config(format!("the metric gate cannot run: {e}"))
}

fn to_vars(map: &BTreeMap<String, String>) -> Vars {
    let mut vars = Vars::new();
    for (k, v) in map {
        vars.insert(k.clone(), v.clone());
    }
    vars
}

/// Runs `gate`: the first invocation checks the spec against CloudWatch
/// (metrics and alarms exist, the bake fits the time budget) and starts the
/// bake; each later one takes the measurement that is due, if any.
pub async fn run<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &GateParams,
    step: &Step,
    _deadline: Instant,
) -> Result<JobOutcome, Failure> {
    let spec = &params.gate;
    let limit = params
        .wait_timeout
        .unwrap_or(deps.settings.default_wait_timeout)
        .min(Duration::from_secs(MAX_BAKE_MINUTES * 60));
    spec.check_budget(
        limit,
        "the action's time budget (wait_timeout_minutes, default TOLLGATE_ECS_WAIT_TIMEOUT_MINUTES, at most 23h: CodePipeline ends an action at 24h)",
    )
    .map_err(|e| Failure::config(format!("the metric gate cannot run: {e}")))?;
    GateState::check_fits(spec, TOKEN_MAX, "CodePipeline's continuation token", encode)
        .map_err(|e| Failure::config(format!("the metric gate cannot run: {e}")))?;
    let green = to_vars(&params.vars);
    let baseline = params.baseline_vars.as_ref().map(to_vars);
    let source = AsSource(deps.metrics.as_ref());
    let now = i64::try_from(deps.clock.now()).unwrap_or(i64::MAX);
    let mut state = match &job.data.continuation_token {
        None => {
            step.enter("checking the metric gate's metrics and alarms");
            preflight(spec, &source, &green, baseline.as_ref())
                .await
                .map_err(|e| gate_failure(&e))?;
            GateState::new(spec, now)
        }
        Some(raw) => decode(raw)?,
    };
    if now >= state.next_due(spec) {
        step.enter(format!(
            "taking measurement {} of {}",
            state.taken() + 1,
            spec.count
        ));
        let m = measure(spec, &source, &green, baseline.as_ref(), now)
            .await
            .map_err(|e| gate_failure(&e))?;
        tracing::info!(outcome = m.outcome.word(), measurement = state.taken() + 1, "metric gate measurement");
        state.record(&m);
    }
    // The measurement that was due counts even when CodePipeline called
    // late (a bake that fills its budget exactly ends with one); past the
    // budget, a bake that still needs more fails with what it measured.
    let overdue = state.started_at + i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
    if now > overdue && !state.verdict(spec).is_final() {
        let mut report = state.failure_report(spec);
        report.outcome = GateOutcome::OutOfTime;
        report.headline = format!(
            "{} of {} measurements taken within the time budget ({}): CodePipeline invoked the action too rarely",
            state.taken(),
            spec.count,
            tollgate_core::text::human_duration(limit.as_secs()),
        );
        report.findings = state.condition_sentences(spec);
        report.advice = Some(
            "retry the stage; if it happens again, lengthen wait_timeout_minutes or the interval".to_owned(),
        );
        return Err(Failure::job(report.to_text()));
    }
    let verdict = state.verdict(spec);
    let summary = if state.taken() == 0 {
        format!(
            "metric gate baking: 0 of {} measurements; the first is due at {}s into the bake (every {})",
            spec.count,
            spec.interval.as_secs(),
            tollgate_core::text::human_duration(spec.interval.as_secs())
        )
    } else {
        state.summary(spec)
    };
    if !verdict.is_final() {
        return Ok(JobOutcome::Success(JobSuccess {
            summary: Some(tollgate_core::text::ellipsize(&summary, SUMMARY_MAX)),
            percent_complete: Some(state.percent(spec)),
            continuation_token: Some(token(&state)?),
            ..JobSuccess::default()
        }));
    }
    if !verdict.passes(spec) {
        return Err(Failure::job(state.failure_message(spec)));
    }
    let mut vars = BTreeMap::new();
    vars.insert("verdict".to_owned(), verdict.word().to_owned());
    vars.insert("measurements".to_owned(), state.taken().to_string());
    let tally = |c: char| state.outcomes.chars().filter(|o| *o == c).count().to_string();
    vars.insert("successful".to_owned(), tally('S'));
    vars.insert("failed".to_owned(), tally('F'));
    vars.insert("inconclusive".to_owned(), tally('I'));
    vars.insert("errors".to_owned(), tally('E'));
    vars.insert("last".to_owned(), tollgate_core::text::ellipsize(&state.last_reason, 1000));
    Ok(JobOutcome::Success(JobSuccess {
        summary: Some(tollgate_core::text::ellipsize(&summary, SUMMARY_MAX)),
        percent_complete: Some(100),
        output_variables: vars,
        ..JobSuccess::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_checks::gate::{MetricRequest, MetricSource, Series, SourceError};
    use crate::fakes::rollouts::{failure, success};
    use crate::fakes::{self, FakeArtifacts, FakeEcs, FakeMetrics, TestDeps};
    use crate::params::testing::assert_rejected;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tollgate_checks::gate::{AlarmState, AlarmValue, SourceErrorKind};
    use tollgate_report::FailureKind;

    /// Shares a [`FakeMetrics`] between the deps and the test.
    #[derive(Debug)]
    struct Shared(Arc<FakeMetrics>);

    impl MetricSource for Shared {
        async fn metric_data(&self, r: &MetricRequest) -> Result<Vec<Series>, SourceError> {
            MetricSource::metric_data(&*self.0, r).await
        }
        async fn alarm_states(&self, n: &[String]) -> Result<Vec<AlarmState>, SourceError> {
            MetricSource::alarm_states(&*self.0, n).await
        }
        async fn metric_exists(&self, ns: &str, n: &str) -> Result<bool, SourceError> {
            MetricSource::metric_exists(&*self.0, ns, n).await
        }
    }

    const GATE: &str = r#"{"action":"gate","vars":{"TARGET_GROUP":"targetgroup/green/1"},
      "gate":{"interval":"1m","count":3,
        "min_requests":{"query":"requests","at_least":100},
        "queries":[
          {"id":"requests","metric":{"namespace":"AWS/ApplicationELB","name":"RequestCount","stat":"Sum","dimensions":{"TargetGroup":"${TARGET_GROUP}"}}},
          {"id":"p99","unit":"ms","scale":1000,"metric":{"namespace":"AWS/ApplicationELB","name":"TargetResponseTime","stat":"p99","dimensions":{"TargetGroup":"${TARGET_GROUP}"}}}],
        "conditions":[{"query":"p99","max":600}],
        "alarms":["web-5xx"]}}"#;

    fn setup(metrics: FakeMetrics) -> (Arc<TestDeps>, Arc<AtomicU64>, Arc<FakeMetrics>) {
        let (mut deps, now) = fakes::deps(FakeArtifacts::default(), FakeEcs::default());
        let shared = Arc::new(metrics);
        Arc::get_mut(&mut deps).expect("unique").metrics = Box::new(Shared(shared.clone()));
        (deps, now, shared)
    }

    fn ok_alarm() -> Vec<AlarmState> {
        vec![AlarmState {
            name: "web-5xx".into(),
            state: AlarmValue::Ok,
        }]
    }

    async fn gate(deps: &TestDeps, raw: &str, token: Option<&str>) -> Result<JobOutcome, Failure> {
        let crate::params::Params::Gate(p) = crate::params::parse(Some(raw)).expect("params")
        else {
            panic!("gate params")
        };
        run(deps, &fakes::job(raw, token), &p, &Step::default(), Instant::now()).await
    }

    /// Runs invocations one minute apart until the job ends; returns the
    /// summaries of the in-progress answers and the end.
    async fn bake(deps: &TestDeps, now: &AtomicU64, raw: &str) -> (Vec<String>, Result<JobOutcome, Failure>) {
        let mut token: Option<String> = None;
        let mut summaries = Vec::new();
        for _ in 0..20 {
            let out = gate(deps, raw, token.as_deref()).await;
            match &out {
                Ok(JobOutcome::Success(s)) if s.continuation_token.is_some() => {
                    summaries.push(format!(
                        "{}% {}",
                        s.percent_complete.unwrap_or(0),
                        s.summary.clone().unwrap_or_default()
                    ));
                    token = s.continuation_token.clone();
                    now.fetch_add(60, Ordering::SeqCst);
                }
                _ => return (summaries, out),
            }
        }
        panic!("the bake never ended: {summaries:?}")
    }

    #[tokio::test]
    async fn a_healthy_bake_passes_with_output_variables() {
        let m = FakeMetrics { alarms: ok_alarm(), ..FakeMetrics::default() };
        for _ in 0..3 {
            m.script.lock().expect("lock").push_back(FakeMetrics::answer(&[("requests", 500.0), ("p99", 0.31)]));
        }
        let (deps, now, shared) = setup(m);
        let (progress, end) = bake(&deps, &now, GATE).await;
        assert_eq!(progress.len(), 3, "{progress:?}");
        assert!(progress[0].starts_with("0% metric gate baking: 0 of 3 measurements"), "{}", progress[0]);
        assert!(
            progress[1].starts_with("33% metric gate running: 1 of 3 measurements (33%): 1 successful, 0 failed (limit 0)"),
            "{}",
            progress[1]
        );
        assert!(progress[1].ends_with("last measurement successful: requests 500, p99 310 ms"), "{}", progress[1]);
        let s = success(end);
        assert_eq!(s.percent_complete, Some(100));
        assert_eq!(s.output_variables["verdict"], "successful");
        assert_eq!(s.output_variables["measurements"], "3");
        assert_eq!(s.output_variables["failed"], "0");
        let calls = shared.calls.lock().expect("lock").clone();
        assert_eq!(calls[..3], ["ListMetrics RequestCount", "ListMetrics TargetResponseTime", "DescribeAlarms"]);
        assert_eq!(calls.iter().filter(|c| *c == "GetMetricData").count(), 3);
    }

    #[tokio::test]
    async fn a_slow_release_fails_saying_by_how_much() {
        let m = FakeMetrics { alarms: ok_alarm(), ..FakeMetrics::default() };
        m.script.lock().expect("lock").push_back(FakeMetrics::answer(&[("requests", 500.0), ("p99", 0.812)]));
        let (deps, now, _) = setup(m);
        let (_, end) = bake(&deps, &now, GATE).await;
        let f = failure(end);
        assert_eq!(f.kind, FailureKind::JobFailed);
        assert_eq!(
            f.message,
            "metric gate failed: p99 812 ms > 600 ms in 1 of 1 measurements\n\
             last measurement (1 of 3) failed: p99 812 ms > 600 ms\n\
             measurements: 0 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 1 of 3 taken\n\
             what to do: the new version stays out: fix what the measurements show and release again, or change the gate's conditions if a limit is wrong"
        );
    }

    /// The sample event `events/pipeline-action/gate-continuation.json`: a
    /// bake one measurement in, in the token form older versions wrote.
    const CONTINUATION: &str =
        include_str!("../../../../events/pipeline-action/gate-continuation.json");

    #[tokio::test]
    async fn the_continuation_sample_finishes_its_bake() {
        let ev: tollgate_report::events::codepipeline::CodePipelineEvent =
            serde_json::from_str(CONTINUATION).expect("the sample parses");
        let raw = ev.job.data.action_configuration.configuration.user_parameters.clone().expect("UserParameters");
        let token = ev.job.data.continuation_token.clone().expect("the sample carries a token");
        let t0 = decode(&token).expect("the sample's token is one the gate reads").started_at;
        let m = FakeMetrics {
            alarms: vec![AlarmState { name: "web-5xx-high".into(), state: AlarmValue::Ok }],
            ..FakeMetrics::default()
        };
        m.script.lock().expect("lock").push_back(FakeMetrics::answer(&[("requests", 640.0), ("latency", 0.25)]));
        let (deps, now, shared) = setup(m);
        // The second measurement is due two intervals into the bake.
        now.store(u64::try_from(t0 + 125).expect("epoch"), Ordering::SeqCst);
        let crate::params::Params::Gate(p) = crate::params::parse(Some(&raw)).expect("params") else {
            panic!("gate params")
        };
        let out = run(&deps, &ev.job, &p, &Step::default(), Instant::now()).await;
        let s = success(out);
        assert_eq!(s.percent_complete, Some(100));
        assert_eq!(s.output_variables["verdict"], "successful");
        assert_eq!(s.output_variables["measurements"], "2");
        assert_eq!(s.output_variables["last"], "requests 640, average latency 250 ms");
        let calls = shared.calls.lock().expect("lock").clone();
        assert_eq!(calls, ["DescribeAlarms", "GetMetricData"], "no preflight on a continuation");
    }

    #[tokio::test]
    async fn the_time_limit_stays_below_codepipelines_and_a_late_bake_says_what_it_measured() {
        // A function default above the cap is capped: a 23h bake is
        // allowed, a 23h 01m one is not.
        let (mut deps, _, _) = setup(FakeMetrics { alarms: ok_alarm(), ..FakeMetrics::default() });
        Arc::get_mut(&mut deps).expect("unique").settings.default_wait_timeout = Duration::from_secs(24 * 3600);
        let raw = GATE.replace("\"interval\":\"1m\",\"count\":3", "\"interval\":\"23m\",\"count\":60");
        assert!(gate(&deps, &raw, None).await.is_ok());
        let raw = GATE.replace("\"interval\":\"1m\",\"count\":3", "\"interval\":\"1381m\",\"count\":1");
        let f = failure(gate(&deps, &raw, None).await);
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(f.message.contains("lasts 23h 01m, longer than the action's time budget (wait_timeout_minutes, default TOLLGATE_ECS_WAIT_TIMEOUT_MINUTES, at most 23h: CodePipeline ends an action at 24h) (23h)"), "{}", f.message);

        // Called too rarely: past the budget with measurements missing.
        let m = FakeMetrics { alarms: ok_alarm(), ..FakeMetrics::default() };
        m.script.lock().expect("lock").push_back(FakeMetrics::answer(&[("requests", 500.0), ("p99", 0.2)]));
        let (deps, now, _) = setup(m);
        let raw = GATE.replace("\"action\":\"gate\",", "\"action\":\"gate\",\"wait_timeout_minutes\":3,");
        let first = success(gate(&deps, &raw, None).await);
        now.fetch_add(4 * 60, Ordering::SeqCst);
        let f = failure(gate(&deps, &raw, first.continuation_token.as_deref()).await);
        assert_eq!(f.kind, FailureKind::JobFailed);
        assert!(
            f.message.starts_with("metric gate ran out of time: 1 of 3 measurements taken within the time budget (3m): CodePipeline invoked the action too rarely\n"),
            "{}",
            f.message
        );
        assert!(f.message.contains("\nwhat to do: retry the stage"), "{}", f.message);
    }

    #[test]
    fn a_token_never_exceeds_codepipelines_limit() {
        let spec = GateSpec::from_value(&serde_json::json!({"count": 2, "alarms": ["a"]}), "gate").expect("spec");
        let mut state = GateState::new(&spec, 1);
        state.last_reason = "\"".repeat(2000);
        let t = token(&state).expect("fits");
        assert!(t.chars().count() <= TOKEN_MAX, "{}", t.chars().count());
        assert!(decode(&t).is_ok());
    }

    #[tokio::test]
    async fn no_traffic_is_inconclusive_and_fails_by_default() {
        let (deps, now, _) = setup(FakeMetrics { alarms: ok_alarm(), ..FakeMetrics::default() });
        let (_, end) = bake(&deps, &now, GATE).await;
        let f = failure(end);
        assert!(f.message.starts_with("metric gate inconclusive: requests (no data) is below the minimum 100"), "{}", f.message);
    }

    #[tokio::test]
    async fn throttling_is_an_error_measurement_not_a_verdict() {
        let m = FakeMetrics { alarms: ok_alarm(), ..FakeMetrics::default() };
        m.script.lock().expect("lock").push_back(Err(SourceError {
            kind: SourceErrorKind::Transient,
            message: "GetMetricData failed: throttled".into(),
        }));
        for _ in 0..2 {
            m.script.lock().expect("lock").push_back(FakeMetrics::answer(&[("requests", 500.0), ("p99", 0.2)]));
        }
        let (deps, now, _) = setup(m);
        // An unread measurement counts as inconclusive at the end: one is
        // tolerated here.
        let tolerant = GATE.replace("\"count\":3", "\"count\":3,\"inconclusive_limit\":1");
        let (progress, end) = bake(&deps, &now, &tolerant).await;
        assert!(progress[1].contains("1 errors; last measurement error: could not read CloudWatch: GetMetricData failed: throttled"), "{}", progress[1]);
        assert_eq!(success(end).output_variables["errors"], "1");
    }

    #[tokio::test]
    async fn unknown_metrics_and_alarms_fail_the_first_invocation() {
        let (deps, _, _) = setup(FakeMetrics {
            alarms: ok_alarm(),
            unknown_metric: Some("TargetResponseTime".into()),
            ..FakeMetrics::default()
        });
        let f = failure(gate(&deps, GATE, None).await);
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert_eq!(f.message, "the metric gate cannot run: gate.queries[1].metric: CloudWatch has no metric AWS/ApplicationELB TargetResponseTime (with any dimensions) in the past two weeks; check the namespace and the metric name");
        let (deps, _, _) = setup(FakeMetrics::default());
        let f = failure(gate(&deps, GATE, None).await);
        assert_eq!(f.message, "the metric gate cannot run: gate.alarms: no alarm named \"web-5xx\" exists in this account and region; fix the name or create the alarm");
    }

    #[tokio::test]
    async fn a_bake_longer_than_the_budget_is_a_configuration_error() {
        let (deps, _, _) = setup(FakeMetrics::default());
        let raw = GATE.replace("\"count\":3", "\"count\":90").replace("\"action\":\"gate\",", "\"action\":\"gate\",\"wait_timeout_minutes\":60,");
        let f = failure(gate(&deps, &raw, None).await);
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(f.message.contains("gate: the bake (count 90 × interval 1m) lasts 1h 30m, longer than the action's time budget"), "{}", f.message);
    }

    #[tokio::test]
    async fn a_foreign_token_is_refused() {
        let (deps, _, _) = setup(FakeMetrics::default());
        let f = failure(gate(&deps, GATE, Some(r#"{"v":1,"action":"ecs-wait"}"#)).await);
        assert!(f.message.contains("continuation token"), "{}", f.message);
    }

    #[test]
    fn the_example_parses() {
        let crate::params::Params::Gate(g) = crate::params::parse(Some(EXAMPLE)).expect("valid") else {
            panic!("gate")
        };
        assert_eq!((g.gate.count, g.gate.interval.as_secs()), (10, 60));
    }

    #[test]
    fn malformed_parameters_name_the_field() {
        assert_rejected(&[
            (r#"{"action":"gate"}"#, "gate", "is missing"),
            (r#"{"action":"gate","gate":{"count":0,"alarms":["a"]}}"#, "gate", "gate.count: expected a whole number from 1 to 200, got 0"),
            (r#"{"action":"gate","gate":"count: 2\nalarms: [a]\nno_data: maybe"}"#, "gate", "gate.no_data: expected one of"),
            (
                r#"{"action":"gate","gate":{"count":2,"queries":[{"id":"p","metric":{"namespace":"N","name":"M","stat":"p99"}}],"conditions":[{"query":"p","max_vs_baseline":{"times":1.2}}]}}"#,
                "baseline_vars",
                "is missing",
            ),
            (r#"{"action":"gate","gate":{"count":2,"alarms":["a"]},"wait_timeout_minutes":2000}"#, "wait_timeout_minutes", ""),
            (r#"{"action":"gate","gate":{"count":2,"alarms":["a"]},"wait_timeout_minutes":1381}"#, "wait_timeout_minutes", "1380"),
        ]);
    }
}
