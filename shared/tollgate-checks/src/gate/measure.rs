//! One measurement: the port ([`MetricSource`]), the queries it sends, and
//! the classification of what comes back.

use super::spec::{GateSpec, NoData, Query, QueryKind, Reduce, Rule};
use crate::error::SpecError;
use crate::template::Vars;
use std::future::Future;

/// One GetMetricData call.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRequest {
    /// Window start, epoch seconds.
    pub start: i64,
    /// Window end, epoch seconds.
    pub end: i64,
    /// The queries, variables applied.
    pub queries: Vec<RequestQuery>,
}

/// One query of a [`MetricRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct RequestQuery {
    /// The id (`[a-z][A-Za-z0-9_]*`).
    pub id: String,
    /// Metric or expression.
    pub kind: RequestKind,
    /// Period in seconds.
    pub period: u32,
}

/// What a [`RequestQuery`] asks.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// A metric statistic.
    Metric {
        /// Namespace.
        namespace: String,
        /// Metric name.
        name: String,
        /// Dimensions, rendered.
        dimensions: Vec<(String, String)>,
        /// Statistic.
        stat: String,
    },
    /// A metric-math expression.
    Expression(String),
}

/// How CloudWatch marked one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesStatus {
    /// All data returned.
    Complete,
    /// More data than one page (the spec's limits keep measurements below).
    PartialData,
    /// CloudWatch failed computing it (e.g. a metric-math runtime error).
    InternalError,
    /// The caller may not read it.
    Forbidden,
}

/// One query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The query id.
    pub id: String,
    /// Datapoints: epoch seconds and value, any order.
    pub points: Vec<(i64, f64)>,
    /// Status.
    pub status: SeriesStatus,
    /// CloudWatch's messages about this result (code: text).
    pub messages: Vec<String>,
}

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmValue {
    /// OK.
    Ok,
    /// ALARM.
    Alarm,
    /// INSUFFICIENT_DATA.
    InsufficientData,
}

/// One alarm as DescribeAlarms returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmState {
    /// Alarm name.
    pub name: String,
    /// State.
    pub state: AlarmValue,
}

/// What kind of failure a [`SourceError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// Will not get better by itself: access denied, a rejected query or
    /// expression. Stops the gate with the message.
    Configuration,
    /// Throttling, 5xx, network: this measurement is an error.
    Transient,
}

/// A failed call to CloudWatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// Kind.
    pub kind: SourceErrorKind,
    /// What failed and what to do, without credentials.
    pub message: String,
}

/// Port: CloudWatch reads (the adapter is `tollgate-aws-cloudwatch`).
pub trait MetricSource: Send + Sync {
    /// GetMetricData for one window.
    fn metric_data(
        &self,
        request: &MetricRequest,
    ) -> impl Future<Output = Result<Vec<Series>, SourceError>> + Send;
    /// DescribeAlarms by name; alarms that do not exist are absent.
    fn alarm_states(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<AlarmState>, SourceError>> + Send;
    /// ListMetrics: whether CloudWatch knows the metric at all (any
    /// dimensions, data in the past two weeks).
    fn metric_exists(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, SourceError>> + Send;
}

/// Why a gate cannot go on: reported as a configuration error at once.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    /// The spec does not fit the variables or the entry point.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// An alarm the spec names does not exist.
    #[error(
        "gate.alarms: no alarm named {names} exists in this account and region; fix the name or create the alarm"
    )]
    UnknownAlarm {
        /// The missing names, quoted.
        names: String,
    },
    /// A metric the spec names has no data at all.
    #[error(
        "{path}: CloudWatch has no metric {namespace} {name} (with any dimensions) in the past two weeks; check the namespace and the metric name"
    )]
    UnknownMetric {
        /// The query's field path.
        path: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// CloudWatch rejected the queries or denied access.
    #[error("gate: CloudWatch refused the measurement: {0}")]
    Refused(String),
}

/// How one measurement came out (Argo Rollouts' phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every condition met, every alarm OK.
    Successful,
    /// A condition missed or an alarm fired.
    Failed,
    /// Not enough data to decide.
    Inconclusive,
    /// CloudWatch could not be read.
    Error,
}

impl Outcome {
    /// One letter, as kept in the state.
    pub(crate) fn letter(self) -> char {
        match self {
            Outcome::Successful => 'S',
            Outcome::Failed => 'F',
            Outcome::Inconclusive => 'I',
            Outcome::Error => 'E',
        }
    }

    /// Lowercase word.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Successful => "successful",
            Outcome::Failed => "failed",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Error => "error",
        }
    }
}

/// One condition's check in one measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct CondCheck {
    /// Index of the condition.
    pub condition: usize,
    /// Green's value (scaled), when there was one.
    pub value: Option<f64>,
    /// The baseline's value, for relative conditions.
    pub baseline: Option<f64>,
    /// The limit the value was held to.
    pub limit: Option<f64>,
    /// Met, missed, or not decided (no data).
    pub passed: Option<bool>,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Its outcome.
    pub outcome: Outcome,
    /// Per condition.
    pub checks: Vec<CondCheck>,
    /// Alarms not OK: name and state word.
    pub alarms: Vec<(String, &'static str)>,
    /// Why, in one sentence: the values and what they were held to.
    pub reason: String,
}

/// The window a measurement at `now` covers: it ends at the last whole
/// minute and lasts the spec's window.
pub fn window(spec: &GateSpec, now: i64) -> (i64, i64) {
    let end = now - now.rem_euclid(60);
    let window = i64::try_from(spec.window.as_secs()).unwrap_or(i64::MAX);
    (end - window, end)
}

fn request(spec: &GateSpec, vars: &Vars, now: i64) -> Result<MetricRequest, SpecError> {
    let period = u32::try_from(spec.period.as_secs()).unwrap_or(u32::MAX);
    let queries = spec
        .queries
        .iter()
        .map(|q| {
            let kind = match &q.kind {
                QueryKind::Metric {
                    namespace,
                    name,
                    dimensions,
                    stat,
                } => RequestKind::Metric {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    dimensions: dimensions
                        .iter()
                        .map(|(k, t)| {
                            let p = format!("{}.metric.dimensions.{k}", q.path);
                            t.render(vars, &p).map(|v| (k.clone(), v))
                        })
                        .collect::<Result<_, _>>()?,
                    stat: stat.clone(),
                },
                QueryKind::Expression(e) => RequestKind::Expression(e.clone()),
            };
            Ok(RequestQuery {
                id: q.id.clone(),
                kind,
                period,
            })
        })
        .collect::<Result<_, SpecError>>()?;
    let (start, end) = window(spec, now);
    Ok(MetricRequest {
        start,
        end,
        queries,
    })
}

/// One query's value from its series: scaled and reduced; `Err` when
/// CloudWatch failed computing it.
fn value_of(q: &Query, series: &[Series]) -> Result<Option<f64>, String> {
    let Some(s) = series.iter().find(|s| s.id == q.id) else {
        return Ok(q.missing_is_zero.then_some(0.0));
    };
    match s.status {
        SeriesStatus::InternalError | SeriesStatus::Forbidden => {
            let detail = if s.messages.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    tollgate_core::text::ellipsize(&s.messages.join("; "), 200)
                )
            };
            return Err(format!("CloudWatch could not compute {}{detail}", q.name));
        }
        SeriesStatus::Complete | SeriesStatus::PartialData => {}
    }
    let mut points: Vec<(i64, f64)> = s
        .points
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if points.is_empty() {
        return Ok(q.missing_is_zero.then_some(0.0));
    }
    points.sort_by_key(|(t, _)| *t);
    let values = points.iter().map(|(_, v)| *v);
    let n = points.len() as f64;
    let raw = match q.reduce {
        Reduce::Latest => points.last().map_or(0.0, |(_, v)| *v),
        Reduce::Average => values.sum::<f64>() / n,
        Reduce::Sum => values.sum::<f64>(),
        Reduce::Max => values.fold(f64::MIN, f64::max),
        Reduce::Min => values.fold(f64::MAX, f64::min),
    };
    Ok(Some(raw * q.scale))
}

async fn values<M: MetricSource>(
    spec: &GateSpec,
    source: &M,
    vars: &Vars,
    now: i64,
) -> Result<Result<Vec<Result<Option<f64>, String>>, String>, GateError> {
    let req = request(spec, vars, now)?;
    let series = match source.metric_data(&req).await {
        Ok(s) => s,
        Err(e) if e.kind == SourceErrorKind::Configuration => {
            return Err(GateError::Refused(e.message));
        }
        Err(e) => return Ok(Err(e.message)),
    };
    if let Some(s) = series.iter().find(|s| s.status == SeriesStatus::Forbidden) {
        return Err(GateError::Refused(format!(
            "access to the data of query {} is forbidden{}; grant cloudwatch:GetMetricData on it",
            s.id,
            if s.messages.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.messages.join("; "))
            }
        )));
    }
    Ok(Ok(spec
        .queries
        .iter()
        .map(|q| value_of(q, &series))
        .collect()))
}

/// Baseline variables when a condition needs them; a configuration error
/// when it does and there are none.
fn baseline_vars<'v>(
    spec: &GateSpec,
    baseline: Option<&'v Vars>,
) -> Result<Option<&'v Vars>, GateError> {
    if !spec.needs_baseline() {
        return Ok(None);
    }
    let Some(b) = baseline else {
        return Err(GateError::Spec(SpecError::invalid(
            "gate.conditions",
            "a max_vs_baseline condition needs a baseline (the blue target group), and this entry point has none; give baseline variables or use max / min",
        )));
    };
    spec.check_vars(b)?;
    Ok(Some(b))
}

/// Before the first measurement: the variables fill every template, the
/// metrics exist (ListMetrics: a misspelt name never has data), the alarms
/// exist. `Err` says what to change.
pub async fn preflight<M: MetricSource>(
    spec: &GateSpec,
    source: &M,
    green: &Vars,
    baseline: Option<&Vars>,
) -> Result<(), GateError> {
    spec.check_vars(green)?;
    baseline_vars(spec, baseline)?;
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for q in &spec.queries {
        if let QueryKind::Metric {
            namespace, name, ..
        } = &q.kind
        {
            if seen.contains(&(namespace.as_str(), name.as_str())) {
                continue;
            }
            seen.push((namespace, name));
            match source.metric_exists(namespace, name).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(GateError::UnknownMetric {
                        path: format!("{}.metric", q.path),
                        namespace: namespace.clone(),
                        name: name.clone(),
                    });
                }
                Err(e) if e.kind == SourceErrorKind::Configuration => {
                    return Err(GateError::Refused(e.message));
                }
                // A passing failure: the measurements decide.
                Err(_) => {}
            }
        }
    }
    if !spec.alarms.is_empty() {
        let names = spec.alarm_names(green)?;
        match source.alarm_states(&names).await {
            Ok(states) => missing_alarms(&names, &states)?,
            Err(e) if e.kind == SourceErrorKind::Configuration => {
                return Err(GateError::Refused(e.message));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

fn missing_alarms(names: &[String], states: &[AlarmState]) -> Result<(), GateError> {
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !states.iter().any(|s| &s.name == *n))
        .map(|n| crate::template::quote(n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GateError::UnknownAlarm {
            names: missing.join(", "),
        })
    }
}

/// Takes one measurement at `now` (epoch seconds): green's queries with
/// `green`, the baseline's with `baseline` when a condition is relative,
/// the alarms. `Err` is a configuration problem that stops the gate.
pub async fn measure<M: MetricSource>(
    spec: &GateSpec,
    source: &M,
    green: &Vars,
    baseline: Option<&Vars>,
    now: i64,
) -> Result<Measurement, GateError> {
    spec.check_vars(green)?;
    let baseline = baseline_vars(spec, baseline)?;

    // Alarms.
    let mut alarms = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut alarm_no_data = Vec::new();
    if !spec.alarms.is_empty() {
        let names = spec.alarm_names(green)?;
        match source.alarm_states(&names).await {
            Ok(states) => {
                missing_alarms(&names, &states)?;
                for s in states {
                    match s.state {
                        AlarmValue::Ok => {}
                        AlarmValue::Alarm => alarms.push((s.name, "ALARM")),
                        AlarmValue::InsufficientData => alarm_no_data.push(s.name),
                    }
                }
            }
            Err(e) if e.kind == SourceErrorKind::Configuration => {
                return Err(GateError::Refused(e.message));
            }
            Err(e) => errors.push(e.message),
        }
    }

    // Metrics.
    let mut green_values = vec![None; spec.queries.len()];
    let mut base_values = vec![None; spec.queries.len()];
    if !spec.queries.is_empty() {
        match values(spec, source, green, now).await? {
            Ok(vs) => {
                for (i, v) in vs.into_iter().enumerate() {
                    match v {
                        Ok(v) => green_values[i] = v,
                        Err(e) => errors.push(e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if let Some(b) = baseline {
            match values(spec, source, b, now).await? {
                Ok(vs) => {
                    for (i, v) in vs.into_iter().enumerate() {
                        match v {
                            Ok(v) => base_values[i] = v,
                            Err(e) => errors.push(format!("baseline: {e}")),
                        }
                    }
                }
                Err(e) => errors.push(format!("baseline: {e}")),
            }
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        return Ok(Measurement {
            outcome: Outcome::Error,
            checks: Vec::new(),
            alarms,
            reason: format!("could not read CloudWatch: {}", errors.join("; ")),
        });
    }

    let show = |i: usize, v: f64| -> String {
        let q = &spec.queries[i];
        super::state::with_unit(v, q.unit.as_deref())
    };
    // Conditions.
    let mut checks = Vec::with_capacity(spec.conditions.len());
    let mut failed = Vec::new();
    let mut no_data = Vec::new();
    for (ci, c) in spec.conditions.iter().enumerate() {
        let q = &spec.queries[c.query];
        let value = green_values[c.query];
        let base = base_values[c.query];
        let limit = match c.rule {
            Rule::Max(l) | Rule::Min(l) => Some(l),
            Rule::MaxVsBaseline { plus, times } => base.map(|b| b * times + plus),
        };
        let passed = match (value, limit) {
            (Some(v), Some(l)) => Some(match c.rule {
                Rule::Min(_) => v >= l,
                Rule::Max(_) | Rule::MaxVsBaseline { .. } => v <= l,
            }),
            _ => None,
        };
        match (passed, value, limit) {
            (Some(false), Some(v), Some(l)) => failed.push(match c.rule {
                Rule::Min(_) => format!("{} {} < {}", q.name, show(c.query, v), show(c.query, l)),
                Rule::Max(_) => format!("{} {} > {}", q.name, show(c.query, v), show(c.query, l)),
                Rule::MaxVsBaseline { plus, times } => format!(
                    "{} {} > {} (baseline {}{})",
                    q.name,
                    show(c.query, v),
                    show(c.query, l),
                    show(c.query, base.unwrap_or(0.0)),
                    relative_text(plus, times),
                ),
            }),
            (None, None, _) => no_data.push(q.name.clone()),
            (None, Some(_), None) => no_data.push(format!("{} (baseline)", q.name)),
            _ => {}
        }
        checks.push(CondCheck {
            condition: ci,
            value,
            baseline: base,
            limit,
            passed,
        });
    }
    let values_text = spec
        .queries
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            spec.conditions.iter().any(|c| c.query == *i)
                || spec.min_requests.is_some_and(|m| m.query == *i)
        })
        .map(|(i, q)| match green_values[i] {
            Some(v) => format!("{} {}", q.name, show(i, v)),
            None => format!("{} no data", q.name),
        })
        .collect::<Vec<_>>()
        .join(", ");

    // Alarms decide before data.
    if !alarms.is_empty() || !failed.is_empty() {
        let mut parts: Vec<String> = alarms
            .iter()
            .map(|(n, s)| format!("alarm {n} is {s}"))
            .collect();
        parts.extend(failed);
        return Ok(Measurement {
            outcome: Outcome::Failed,
            checks,
            alarms,
            reason: parts.join("; "),
        });
    }
    if let Some(m) = spec.min_requests {
        let q = &spec.queries[m.query];
        let low = |v: Option<f64>| v.is_none_or(|v| v < m.at_least);
        let who = if low(green_values[m.query]) {
            Some(("", green_values[m.query]))
        } else if baseline.is_some() && low(base_values[m.query]) {
            Some(("the baseline's ", base_values[m.query]))
        } else {
            None
        };
        if let Some((whose, v)) = who {
            return Ok(Measurement {
                outcome: Outcome::Inconclusive,
                checks,
                alarms,
                reason: format!(
                    "{whose}{} {} is below the minimum {} for a measurement to count ({values_text})",
                    q.name,
                    v.map_or_else(|| "(no data)".to_owned(), |v| show(m.query, v)),
                    show(m.query, m.at_least),
                ),
            });
        }
    }
    let mut missing: Vec<String> = no_data;
    missing.extend(
        alarm_no_data
            .into_iter()
            .map(|n| format!("alarm {n} (INSUFFICIENT_DATA)")),
    );
    if !missing.is_empty() {
        let text = format!("no data for {}", missing.join(", "));
        let outcome = match spec.no_data {
            NoData::Inconclusive => Outcome::Inconclusive,
            NoData::Failed => Outcome::Failed,
            NoData::Successful => Outcome::Successful,
        };
        let reason = match spec.no_data {
            NoData::Successful => format!("{values_text}; {text} (no_data: successful)"),
            _ => format!("{text} (no_data: {}); {values_text}", outcome.word()),
        };
        return Ok(Measurement {
            outcome,
            checks,
            alarms,
            reason,
        });
    }
    Ok(Measurement {
        outcome: Outcome::Successful,
        checks,
        alarms,
        reason: if values_text.is_empty() {
            "every alarm OK".to_owned()
        } else {
            values_text
        },
    })
}

/// ` × 1.2 + 0.5`, as written.
pub(crate) fn relative_text(plus: f64, times: f64) -> String {
    let mut out = String::new();
    if (times - 1.0).abs() > f64::EPSILON {
        out.push_str(&format!(" × {}", super::state::format_value(times)));
    }
    if plus != 0.0 {
        out.push_str(&format!(" + {}", super::state::format_value(plus)));
    }
    out
}
