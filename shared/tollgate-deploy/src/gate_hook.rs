//! Metric gates in deploy-hook: the `gate:` section of a hook's check spec
//! (`tollgate_checks::gate`, the same spec, verdicts and sentences as the
//! pipeline action's `gate`), run one measurement per invocation and never
//! by sleeping.
//!
//! - [`HookMetrics`]: the object-safe form of the CloudWatch port, so
//!   [`crate::DeployHook`] holds one without another type parameter; the
//!   function wires `tollgate-aws-cloudwatch` in, tests a fake.
//! - [`Gates`]: the port and the clock (epoch seconds) the measurements use.
//! - [`advance`]: one invocation's worth of a bake: start it (preflight:
//!   the metrics and alarms exist, the bake fits the entry point's budget),
//!   or take the measurement that is due, then the running verdict and how
//!   long until the next one. Re-running it with the same state before the
//!   next measurement is due changes nothing, so a duplicated or retried
//!   invocation never counts twice.
//! - [`gate_vars`]: the variables the gate's templates are filled with.
//!
//! The ECS native entry point (`ecs_native`) keeps the state in
//! `hookDetails` and answers `IN_PROGRESS` with `callBackDelay` until the
//! verdict is final.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tollgate_checks::Vars;
use tollgate_checks::gate::{
    AlarmState, GateError, GateSpec, GateState, MetricRequest, MetricSource, Series, SourceError,
    SourceErrorKind, Verdict, measure, preflight,
};

use tollgate_checks::gate::AsSource;
/// A boxed future, for the object-safe ports.
pub use tollgate_checks::gate::BoxFuture;
/// The object-safe form of [`MetricSource`] (one definition, in
/// `tollgate_checks::gate`); every `MetricSource` is one.
pub use tollgate_checks::gate::DynMetricSource as HookMetrics;

/// No CloudWatch client: every call is a configuration error (a function
/// built without one fails a gate at once, it never passes it).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl NoMetrics {
    fn refused() -> SourceError {
        SourceError {
            kind: SourceErrorKind::Configuration,
            message: "this deploy-hook has no CloudWatch client, so it cannot run a metric gate"
                .to_owned(),
        }
    }
}

impl MetricSource for NoMetrics {
    async fn metric_data(&self, _request: &MetricRequest) -> Result<Vec<Series>, SourceError> {
        Err(Self::refused())
    }
    async fn alarm_states(&self, _names: &[String]) -> Result<Vec<AlarmState>, SourceError> {
        Err(Self::refused())
    }
    async fn metric_exists(&self, _namespace: &str, _name: &str) -> Result<bool, SourceError> {
        Err(Self::refused())
    }
}

/// The clock: epoch seconds.
pub type EpochClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Port: the queue that carries a CodeDeploy hook's bake from one
/// measurement to the next (SQS `SendMessage` with `DelaySeconds`; the
/// function consumes the queue).
pub trait GateQueue: Send + Sync + fmt::Debug {
    /// Sends `body`, delivered after `delay_s` seconds (at most
    /// [`MAX_QUEUE_DELAY_S`]). `Err` says what failed and what to do.
    fn send<'a>(&'a self, body: &'a str, delay_s: u32) -> BoxFuture<'a, Result<(), String>>;
}

/// SQS's longest `DelaySeconds`.
pub const MAX_QUEUE_DELAY_S: u32 = 900;

/// What the gates need: CloudWatch, the queue of CodeDeploy bakes and the
/// time.
#[derive(Clone)]
pub struct Gates {
    /// CloudWatch reads.
    pub metrics: Arc<dyn HookMetrics>,
    /// The bake queue (`TOLLGATE_GATE_QUEUE_URL`); `None`: a CodeDeploy
    /// hook with a gate fails, naming the setting.
    pub queue: Option<Arc<dyn GateQueue>>,
    /// Epoch seconds now.
    pub clock: EpochClock,
    /// ECS and ELB reads for an ECS native hook's target groups
    /// ([`crate::ecs_targets`]); the default refuses.
    pub targets: Arc<dyn crate::ecs_targets::TargetReader>,
}

impl fmt::Debug for Gates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gates")
            .field("metrics", &self.metrics)
            .field("queue", &self.queue)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Default for Gates {
    /// No CloudWatch client, the system clock.
    fn default() -> Self {
        Self::new(NoMetrics)
    }
}

impl Gates {
    /// `metrics` with the system clock.
    pub fn new(metrics: impl HookMetrics + 'static) -> Self {
        Self {
            metrics: Arc::new(metrics),
            queue: None,
            clock: Arc::new(system_now),
            targets: Arc::new(crate::ecs_targets::NoTargets),
        }
    }

    /// Epoch seconds now.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

fn system_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The longest bake an ECS hook can wait for (its timeout is at most
/// 1,440 minutes).
pub const ECS_BUDGET: Duration = Duration::from_secs(24 * 3600);

/// The longest bake a CodeDeploy hook can run: CodeDeploy fails a hook
/// nobody reports within an hour; ten minutes are kept for the smoke
/// checks, a late delivery and the report.
pub const CODEDEPLOY_BUDGET: Duration = Duration::from_secs(50 * 60);

/// A CodeDeploy hook's bake between two measurements: what the next
/// invocation (an SQS message from [`GateQueue`]) needs to take the next
/// measurement and report the hook. Holds no secret: the spec's secret
/// `variables:` are never in the gate's variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateTicket {
    /// Format version (1).
    pub v: u8,
    /// What the message is, so a stray message is told apart.
    pub kind: String,
    /// `d-…`.
    pub deployment_id: String,
    /// The hook execution to report.
    pub hook_execution_id: String,
    /// The hook (`AfterAllowTraffic`).
    pub hook: String,
    /// CodeDeploy application (names the spec).
    pub application: String,
    /// Deployment group (names the spec).
    pub group: String,
    /// Green's variables.
    pub green: std::collections::BTreeMap<String, String>,
    /// The baseline's variables (blue), for `max_vs_baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<std::collections::BTreeMap<String, String>>,
    /// The measurements so far.
    pub state: GateState,
}

/// [`GateTicket::kind`].
pub const TICKET_KIND: &str = "tollgate-codedeploy-gate";

/// Plain variables as a map (the ticket's form).
pub fn vars_map(vars: &Vars) -> std::collections::BTreeMap<String, String> {
    vars.names()
        .map(|n| (n.to_owned(), vars.get(n).unwrap_or_default().to_owned()))
        .collect()
}

/// A ticket's map as variables.
pub fn map_vars(map: &std::collections::BTreeMap<String, String>) -> Vars {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `hookDetails` key (set in the service's hook configuration) with extra
/// variables for the gate's templates, e.g. `{"LOAD_BALANCER": "app/web/…",
/// "TARGET_GROUP": "targetgroup/web-green/…"}`.
pub const VARS_KEY: &str = "gateVariables";
/// `hookDetails` key with the baseline's variables (those that differ from
/// green's, e.g. the blue `TARGET_GROUP`), for `max_vs_baseline`.
pub const BASELINE_KEY: &str = "gateBaselineVariables";

/// Green's variables (`base` plus `extra`) and the baseline's (green's with
/// `baseline` over them, when given).
pub fn gate_vars(
    base: &Vars,
    extra: &[(String, String)],
    baseline: Option<&[(String, String)]>,
) -> (Vars, Option<Vars>) {
    let mut green = base.clone();
    for (k, v) in extra {
        green.insert(k.clone(), v.clone());
    }
    let baseline = baseline.map(|over| {
        let mut b = green.clone();
        for (k, v) in over {
            b.insert(k.clone(), v.clone());
        }
        b
    });
    (green, baseline)
}

/// Reads a `hookDetails` object of string values (`gateVariables`); `Err`
/// names the key and what is expected, never the values.
pub fn string_map(
    details: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<Vec<(String, String)>>, String> {
    let Some(v) = details.get(key) else {
        return Ok(None);
    };
    let bad = || {
        format!(
            "hookDetails.{key} must be an object of variable names to strings, like {{\"TARGET_GROUP\": \"targetgroup/web-green/0123456789abcdef\"}}"
        )
    };
    let serde_json::Value::Object(map) = v else {
        return Err(bad());
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// One invocation's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Advanced {
    /// The state after this invocation.
    pub state: GateState,
    /// The verdict so far.
    pub verdict: Verdict,
    /// Whether this invocation took a measurement.
    pub measured: bool,
    /// Seconds until the next measurement is due (at least 1).
    pub next_in: u64,
}

impl Advanced {
    /// The running line ("metric gate running: 2 of 5 measurements …").
    pub fn summary(&self, spec: &GateSpec) -> String {
        if self.state.taken() == 0 {
            format!(
                "metric gate baking: 0 of {} measurements; the first is due in {}",
                spec.count,
                tollgate_core::text::human_duration(self.next_in)
            )
        } else {
            self.state.summary(spec)
        }
    }
}

/// Starts the bake (`state` is `None`: preflight, then a new state at now)
/// or carries it on, taking the measurement that is due, if one is. `Err`
/// is a configuration problem: the gate cannot run, and says what to
/// change.
pub async fn advance(
    spec: &GateSpec,
    gates: &Gates,
    green: &Vars,
    baseline: Option<&Vars>,
    state: Option<GateState>,
    budget: (Duration, &str),
) -> Result<Advanced, GateError> {
    let source = AsSource(gates.metrics.as_ref());
    spec.check_budget(budget.0, budget.1)?;
    let now = gates.now();
    let mut state = match state {
        Some(s) => s,
        None => {
            preflight(spec, &source, green, baseline).await?;
            GateState::new(spec, now)
        }
    };
    let mut measured = false;
    if !state.verdict(spec).is_final() && now >= state.next_due(spec) {
        let m = measure(spec, &source, green, baseline, now).await?;
        tracing::info!(
            outcome = m.outcome.word(),
            measurement = state.taken() + 1,
            count = spec.count,
            reason = %m.reason,
            "metric gate measurement"
        );
        state.record(&m);
        measured = true;
    }
    let verdict = state.verdict(spec);
    let next_in = u64::try_from(state.next_due(spec) - now)
        .unwrap_or(0)
        .max(1);
    Ok(Advanced {
        state,
        verdict,
        measured,
        next_in,
    })
}

/// The gate's state as ECS carries it in `hookDetails`: which hook
/// execution, stage and traffic step it belongs to, and the measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookGateState {
    /// `executionId|stage|green's production weight`: a new step of a
    /// linear or canary deployment starts a new bake.
    #[serde(rename = "k")]
    pub key: String,
    /// The measurements.
    #[serde(rename = "s")]
    pub state: GateState,
}

#[cfg(test)]
pub(crate) mod fakes {
    //! A scripted CloudWatch and a recording queue.

    use super::*;

    /// Records what is sent; `fail` makes every send fail.
    #[derive(Debug, Default)]
    pub struct FakeQueue {
        pub sent: std::sync::Mutex<Vec<(String, u32)>>,
        pub fail: bool,
    }

    impl GateQueue for FakeQueue {
        fn send<'a>(&'a self, body: &'a str, delay_s: u32) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                if self.fail {
                    return Err("sqs:SendMessage was denied; grant it on the gate queue".to_owned());
                }
                self.sent
                    .lock()
                    .expect("lock")
                    .push((body.to_owned(), delay_s));
                Ok(())
            })
        }
    }

    impl FakeQueue {
        /// The tickets sent, parsed.
        pub fn tickets(&self) -> Vec<(GateTicket, u32)> {
            self.sent
                .lock()
                .expect("lock")
                .iter()
                .map(|(b, d)| (serde_json::from_str(b).expect("ticket"), *d))
                .collect()
        }
    }
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use tollgate_checks::gate::SeriesStatus;

    /// Answers GetMetricData from `script` (then no data), alarms from
    /// `alarms`, and knows every metric.
    #[derive(Debug, Default)]
    pub struct FakeMetrics {
        pub script: Mutex<VecDeque<Result<Vec<Series>, SourceError>>>,
        pub alarms: Vec<AlarmState>,
        pub calls: Mutex<Vec<String>>,
        /// Makes the next GetMetricData panic (a bug in a measurement).
        pub panics: std::sync::atomic::AtomicBool,
    }

    impl FakeMetrics {
        /// One value per query id, as one GetMetricData answer.
        pub fn answer(values: &[(&str, f64)]) -> Result<Vec<Series>, SourceError> {
            Ok(values
                .iter()
                .map(|(id, v)| Series {
                    id: (*id).to_owned(),
                    points: vec![(0, *v)],
                    status: SeriesStatus::Complete,
                    messages: Vec::new(),
                })
                .collect())
        }

        pub fn push(&self, answer: Result<Vec<Series>, SourceError>) {
            self.script.lock().expect("lock").push_back(answer);
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("lock").clone()
        }
    }

    impl MetricSource for FakeMetrics {
        async fn metric_data(&self, r: &MetricRequest) -> Result<Vec<Series>, SourceError> {
            assert!(
                !self.panics.load(std::sync::atomic::Ordering::SeqCst),
                "the fake metric source exploded"
            );
            let dims: Vec<String> = r
                .queries
                .iter()
                .filter_map(|q| match &q.kind {
                    tollgate_checks::gate::RequestKind::Metric { dimensions, .. } => Some(
                        dimensions
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    tollgate_checks::gate::RequestKind::Expression(_) => None,
                })
                .collect();
            self.calls
                .lock()
                .expect("lock")
                .push(format!("GetMetricData {}", dims.join(";")));
            self.script
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or(Ok(Vec::new()))
        }
        async fn alarm_states(&self, _names: &[String]) -> Result<Vec<AlarmState>, SourceError> {
            self.calls
                .lock()
                .expect("lock")
                .push("DescribeAlarms".into());
            Ok(self.alarms.clone())
        }
        async fn metric_exists(&self, _ns: &str, name: &str) -> Result<bool, SourceError> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("ListMetrics {name}"));
            Ok(true)
        }
    }
}
