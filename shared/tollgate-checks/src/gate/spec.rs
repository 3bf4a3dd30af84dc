//! The metric gate spec: the `gate` section of a check spec document (or a
//! document of its own), parsed once and validated field by field against
//! CloudWatch's limits. Errors name the field and never quote the document
//! beyond a short value ([`crate::SpecError`], as for checks).

use crate::error::SpecError;
use crate::parse::{
    child, duration, expected, index, integer, number, object, shown_in_doc, string,
};
use crate::template::{Template, Vars, quote};
use serde_json::Value;
use std::time::Duration;

/// GetMetricData: metrics and expressions per call.
pub const MAX_QUERIES: usize = 500;
/// GetMetricData: datapoints per call.
pub const MAX_DATAPOINTS: u64 = 100_800;
/// Measurements per gate (the running verdict travels in a 2048-character
/// continuation token or ECS `hookDetails`).
pub const MAX_MEASUREMENTS: u64 = 200;
/// Conditions per gate (same reason).
pub const MAX_CONDITIONS: usize = 20;
/// Alarms per gate (one DescribeAlarms page).
pub const MAX_ALARMS: usize = 100;

const GATE_FIELDS: &[&str] = &[
    "interval",
    "count",
    "window",
    "period",
    "failure_limit",
    "inconclusive_limit",
    "consecutive_error_limit",
    "no_data",
    "inconclusive",
    "min_requests",
    "queries",
    "conditions",
    "alarms",
];
const QUERY_FIELDS: &[&str] = &[
    "id",
    "name",
    "metric",
    "expression",
    "unit",
    "scale",
    "reduce",
    "missing",
];
const METRIC_FIELDS: &[&str] = &["namespace", "name", "dimensions", "stat"];
const CONDITION_FIELDS: &[&str] = &["query", "max", "min", "max_vs_baseline"];
const RELATIVE_FIELDS: &[&str] = &["plus", "times"];
const MIN_REQUESTS_FIELDS: &[&str] = &["query", "at_least"];
const SIMPLE_STATS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// A parsed, validated metric gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSpec {
    /// Time between measurements.
    pub interval: Duration,
    /// Number of measurements; the bake lasts `interval × count`.
    pub count: u32,
    /// How far back each measurement looks.
    pub window: Duration,
    /// CloudWatch period of every query (default: the window, one datapoint).
    pub period: Duration,
    /// Failed measurements tolerated (Argo Rollouts `failureLimit`, default 0).
    pub failure_limit: u32,
    /// Inconclusive measurements tolerated (default 0).
    pub inconclusive_limit: u32,
    /// Consecutive errored measurements tolerated (default 4, as Argo).
    pub consecutive_error_limit: u32,
    /// What a measurement without data is (default inconclusive).
    pub no_data: NoData,
    /// Whether an inconclusive analysis passes the gate (default: it fails).
    pub inconclusive_passes: bool,
    /// Below this many requests a measurement is inconclusive.
    pub min_requests: Option<MinRequests>,
    /// The queries, in order.
    pub queries: Vec<Query>,
    /// The conditions every measurement must meet.
    pub conditions: Vec<Condition>,
    /// Alarms that must stay OK throughout.
    pub alarms: Vec<Template>,
}

/// What a measurement whose query returned no datapoint counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoData {
    /// Inconclusive (the default: missing data is never a pass).
    Inconclusive,
    /// Failed.
    Failed,
    /// The condition is skipped (explicitly chosen: "no data is fine").
    Successful,
}

/// How a series of datapoints becomes one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// The newest datapoint.
    Latest,
    /// The mean of the datapoints.
    Average,
    /// The largest (the default: the worst period decides).
    Max,
    /// The smallest.
    Min,
    /// The total.
    Sum,
}

/// One metric query or metric-math expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// GetMetricData id (`[a-z][A-Za-z0-9_]*`), referenced by expressions
    /// and conditions.
    pub id: String,
    /// How results name it (default: the id).
    pub name: String,
    /// Unit shown after values (`ms`, `%`).
    pub unit: Option<String>,
    /// Factor applied to values before conditions (`1000`: seconds to ms).
    pub scale: f64,
    /// How the window's datapoints become one value.
    pub reduce: Reduce,
    /// A missing value counts as 0 (ALB emits no 5xx count when there is
    /// none).
    pub missing_is_zero: bool,
    /// The metric or the expression.
    pub kind: QueryKind,
    pub(crate) path: String,
}

/// What a query asks CloudWatch.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryKind {
    /// A metric statistic.
    Metric {
        /// `AWS/ApplicationELB`.
        namespace: String,
        /// `TargetResponseTime`.
        name: String,
        /// Dimension name and value (values may use `${VARS}`).
        dimensions: Vec<(String, Template)>,
        /// `Sum`, `Average`, `p99`, `tm90`, ….
        stat: String,
    },
    /// A metric-math expression over other queries' ids.
    Expression(String),
}

/// A condition on one query's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Index into [`GateSpec::queries`].
    pub query: usize,
    /// The rule.
    pub rule: Rule,
    pub(crate) path: String,
}

/// The rule of a condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// value ≤ limit.
    Max(f64),
    /// value ≥ limit.
    Min(f64),
    /// green ≤ baseline × times + plus.
    MaxVsBaseline {
        /// Added to the baseline (points).
        plus: f64,
        /// Multiplies the baseline.
        times: f64,
    },
}

/// Minimum request count for a measurement to count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinRequests {
    /// Index into [`GateSpec::queries`].
    pub query: usize,
    /// The least number of requests.
    pub at_least: f64,
}

impl GateSpec {
    /// Reads the `gate` section of a spec document (YAML or JSON): `None`
    /// when the document has none. The document's other sections are the
    /// check spec's ([`crate::Spec`]); a gate-only document is `{gate: …}`.
    pub fn from_document(text: &str) -> Result<Option<GateSpec>, SpecError> {
        let value = crate::spec::parse_document(text)?;
        match value.get("gate") {
            None => Ok(None),
            Some(v) => GateSpec::from_value(v, "gate").map(Some),
        }
    }

    /// Builds a gate from its mapping; `path` prefixes error paths (`gate`).
    pub fn from_value(value: &Value, path: &str) -> Result<GateSpec, SpecError> {
        let root = object(value, path, GATE_FIELDS)?;
        let field = |k: &str| child(path, k);
        let interval = match root.get("interval") {
            Some(v) => positive_duration(v, &field("interval"), Duration::from_secs(24 * 3600))?,
            None => Duration::from_secs(60),
        };
        let count = match root.get("count") {
            Some(v) => {
                u32::try_from(integer(v, &field("count"), 1, MAX_MEASUREMENTS)?).unwrap_or(1)
            }
            None => {
                return Err(SpecError::invalid(
                    &field("count"),
                    "missing; give the number of measurements, e.g. count: 5 (with interval: 1m, a 5-minute bake)",
                ));
            }
        };
        let window = match root.get("window") {
            Some(v) => positive_duration(v, &field("window"), Duration::from_secs(24 * 3600))?,
            None => interval,
        };
        let period = match root.get("period") {
            Some(v) => {
                let p = field("period");
                let d = positive_duration(v, &p, Duration::from_secs(24 * 3600))?;
                check_period(d, &p, v)?;
                d
            }
            None => {
                // One datapoint for the window, rounded up to a whole minute.
                Duration::from_secs(window.as_secs().div_ceil(60).max(1) * 60)
            }
        };
        check_period(period, &field("period"), &Value::Null)?;
        let window = if root.contains_key("window") || root.contains_key("period") {
            if window < period {
                return Err(SpecError::invalid(
                    &field("window"),
                    format!(
                        "shorter than the period ({}s); make the window at least one period",
                        period.as_secs()
                    ),
                ));
            }
            window
        } else {
            period
        };
        let limit =
            |k: &str, default: u32| -> Result<u32, SpecError> {
                match root.get(k) {
                    Some(v) => Ok(u32::try_from(integer(v, &field(k), 0, MAX_MEASUREMENTS)?)
                        .unwrap_or(default)),
                    None => Ok(default),
                }
            };
        let failure_limit = limit("failure_limit", 0)?;
        let inconclusive_limit = limit("inconclusive_limit", 0)?;
        let consecutive_error_limit = limit("consecutive_error_limit", 4)?;
        let no_data = match root.get("no_data") {
            None => NoData::Inconclusive,
            Some(v) => match v.as_str() {
                Some("inconclusive") => NoData::Inconclusive,
                Some("failed") => NoData::Failed,
                Some("successful") => NoData::Successful,
                _ => {
                    return Err(expected(
                        &field("no_data"),
                        "one of inconclusive (the default), failed, successful",
                        v,
                    ));
                }
            },
        };
        let inconclusive_passes = match root.get("inconclusive") {
            None => false,
            Some(v) => match v.as_str() {
                Some("fail") => false,
                Some("pass") => true,
                _ => {
                    return Err(expected(
                        &field("inconclusive"),
                        "fail (the default) or pass",
                        v,
                    ));
                }
            },
        };

        let queries = parse_queries(root.get("queries"), &field("queries"))?;
        let conditions = parse_conditions(root.get("conditions"), &field("conditions"), &queries)?;
        let min_requests = match root.get("min_requests") {
            None => None,
            Some(v) => {
                let p = field("min_requests");
                let m = object(v, &p, MIN_REQUESTS_FIELDS)?;
                let qp = child(&p, "query");
                let query = match m.get("query") {
                    Some(q) => query_ref(q, &qp, &queries)?,
                    None => {
                        return Err(SpecError::invalid(
                            &qp,
                            "missing; name the query that counts requests",
                        ));
                    }
                };
                let ap = child(&p, "at_least");
                let at_least = match m.get("at_least") {
                    Some(a) => number(a, &ap, 0.0, 1e12)?,
                    None => {
                        return Err(SpecError::invalid(
                            &ap,
                            "missing; give the least number of requests, e.g. 100",
                        ));
                    }
                };
                Some(MinRequests { query, at_least })
            }
        };
        let alarms = match root.get("alarms") {
            None => Vec::new(),
            Some(v) => {
                let p = field("alarms");
                let Value::Array(items) = v else {
                    return Err(expected(&p, "a list of alarm names", v));
                };
                if items.len() > MAX_ALARMS {
                    return Err(SpecError::invalid(
                        &p,
                        format!(
                            "{} alarms; at most {MAX_ALARMS} (one DescribeAlarms page)",
                            items.len()
                        ),
                    ));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let ip = index(&p, i);
                        let s = string(item, &ip)?;
                        if s.trim().is_empty() || s.chars().count() > 255 {
                            return Err(expected(
                                &ip,
                                "an alarm name of 1 to 255 characters",
                                item,
                            ));
                        }
                        Template::parse(s, &ip)
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        if conditions.is_empty() && alarms.is_empty() {
            return Err(SpecError::invalid(
                path,
                "has neither conditions nor alarms; add conditions: [{query: error_rate, max: 1}] or alarms: [name]",
            ));
        }
        let spec = GateSpec {
            interval,
            count,
            window,
            period,
            failure_limit,
            inconclusive_limit,
            consecutive_error_limit,
            no_data,
            inconclusive_passes,
            min_requests,
            queries,
            conditions,
            alarms,
        };
        spec.check_limits(path)?;
        Ok(spec)
    }

    /// GetMetricData's limits: at most 500 queries and 100,800 datapoints
    /// per call (one call per target group per measurement).
    fn check_limits(&self, path: &str) -> Result<(), SpecError> {
        if self.queries.len() > MAX_QUERIES {
            return Err(SpecError::invalid(
                &child(path, "queries"),
                format!(
                    "{} queries; GetMetricData takes at most {MAX_QUERIES} metrics and expressions per call",
                    self.queries.len()
                ),
            ));
        }
        let points = self.datapoints();
        if points > MAX_DATAPOINTS {
            return Err(SpecError::invalid(
                &child(path, "period"),
                format!(
                    "{} queries × {} periods of {}s in a {}s window = {points} datapoints; GetMetricData returns at most {MAX_DATAPOINTS}: lengthen the period, shorten the window or drop queries",
                    self.queries.len(),
                    self.window.as_secs().div_ceil(self.period.as_secs().max(1)),
                    self.period.as_secs(),
                    self.window.as_secs(),
                ),
            ));
        }
        Ok(())
    }

    /// Datapoints one GetMetricData call of a measurement returns at most.
    pub fn datapoints(&self) -> u64 {
        let per_query = self.window.as_secs().div_ceil(self.period.as_secs().max(1));
        per_query * self.queries.len() as u64
    }

    /// The whole bake: `interval × count`.
    pub fn bake(&self) -> Duration {
        self.interval * self.count
    }

    /// Checks that the bake fits the entry point's time budget (the
    /// pipeline action's wait limit, the hook's hour).
    pub fn check_budget(&self, budget: Duration, what: &str) -> Result<(), SpecError> {
        if self.bake() > budget {
            return Err(SpecError::invalid(
                "gate",
                format!(
                    "the bake (count {} × interval {}) lasts {}, longer than {what} ({}); lower count or interval",
                    self.count,
                    tollgate_core::text::human_duration(self.interval.as_secs()),
                    tollgate_core::text::human_duration(self.bake().as_secs()),
                    tollgate_core::text::human_duration(budget.as_secs()),
                ),
            ));
        }
        Ok(())
    }

    /// True when a condition compares green with the baseline.
    pub fn needs_baseline(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c.rule, Rule::MaxVsBaseline { .. }))
    }

    /// Checks that `vars` fill every template (dimensions, alarm names).
    pub fn check_vars(&self, vars: &Vars) -> Result<(), SpecError> {
        for q in &self.queries {
            if let QueryKind::Metric { dimensions, .. } = &q.kind {
                for (name, t) in dimensions {
                    t.render(vars, &child(&child(&q.path, "metric.dimensions"), name))?;
                }
            }
        }
        for (i, a) in self.alarms.iter().enumerate() {
            a.render(vars, &index("gate.alarms", i))?;
        }
        Ok(())
    }

    /// The alarm names with `vars` applied.
    pub fn alarm_names(&self, vars: &Vars) -> Result<Vec<String>, SpecError> {
        self.alarms
            .iter()
            .enumerate()
            .map(|(i, a)| a.render(vars, &index("gate.alarms", i)))
            .collect()
    }
}

fn positive_duration(v: &Value, path: &str, max: Duration) -> Result<Duration, SpecError> {
    let d = duration(v, path)?;
    if d.is_zero() {
        return Err(SpecError::invalid(path, "must be above 0s, e.g. \"1m\""));
    }
    if d > max {
        return Err(SpecError::invalid(
            path,
            format!("{} is too long; the maximum is 24h", shown_in_doc(v)),
        ));
    }
    Ok(d)
}

/// CloudWatch periods: 1, 5, 10, 30 or a multiple of 60 seconds.
fn check_period(d: Duration, path: &str, v: &Value) -> Result<(), SpecError> {
    let s = d.as_secs();
    let whole = d.subsec_nanos() == 0;
    if whole && (matches!(s, 1 | 5 | 10 | 30) || (s >= 60 && s.is_multiple_of(60))) {
        return Ok(());
    }
    let got = if v.is_null() {
        format!("{}s (from the window)", d.as_secs_f64())
    } else {
        shown_in_doc(v)
    };
    Err(SpecError::invalid(
        path,
        format!("CloudWatch periods are 1s, 5s, 10s, 30s or a multiple of 60s, got {got}"),
    ))
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255
}

fn valid_stat(stat: &str) -> bool {
    if SIMPLE_STATS.contains(&stat) {
        return true;
    }
    // p99, p99.9, tm90, wm90, tc90, ts90, pr(…), TM(10%:90%) …
    let lower = stat.to_ascii_lowercase();
    for prefix in ["p", "tm", "wm", "tc", "ts"] {
        if let Some(rest) = lower.strip_prefix(prefix)
            && let Ok(n) = rest.parse::<f64>()
            && n > 0.0
            && n <= 100.0
        {
            return true;
        }
    }
    ["pr(", "tm(", "wm(", "tc(", "ts("]
        .iter()
        .any(|p| lower.starts_with(p) && lower.ends_with(')'))
}

fn parse_queries(v: Option<&Value>, path: &str) -> Result<Vec<Query>, SpecError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(expected(path, "a list of queries", v));
    };
    let mut out: Vec<Query> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        let map = object(item, &p, QUERY_FIELDS)?;
        let ip = child(&p, "id");
        let id = match map.get("id") {
            Some(v) => string(v, &ip)?.to_owned(),
            None => {
                return Err(SpecError::invalid(
                    &ip,
                    "missing; give an id like error_rate (expressions and conditions refer to it)",
                ));
            }
        };
        if !valid_id(&id) {
            return Err(expected(
                &ip,
                "an id that starts with a lowercase letter and has only letters, digits and _ (CloudWatch's rule)",
                &Value::String(id),
            ));
        }
        if let Some(prev) = out.iter().position(|q| q.id == id) {
            return Err(SpecError::invalid(
                &ip,
                format!(
                    "duplicate id {} (also {}); ids must be unique",
                    quote(&id),
                    index(path, prev)
                ),
            ));
        }
        let kind = match (map.get("metric"), map.get("expression")) {
            (Some(_), Some(_)) => {
                return Err(SpecError::invalid(
                    &p,
                    "set either metric or expression, not both",
                ));
            }
            (None, None) => {
                return Err(SpecError::invalid(
                    &p,
                    "needs a metric ({namespace, name, dimensions, stat}) or an expression over other ids",
                ));
            }
            (Some(m), None) => parse_metric(m, &child(&p, "metric"))?,
            (None, Some(e)) => {
                let ep = child(&p, "expression");
                let text = string(e, &ep)?.trim().to_owned();
                check_expression(&text, &ep, &out, &id)?;
                QueryKind::Expression(text)
            }
        };
        let name = match map.get("name") {
            Some(v) => {
                let np = child(&p, "name");
                let n = string(v, &np)?.trim().to_owned();
                if n.is_empty() || n.chars().count() > 60 {
                    return Err(expected(&np, "a name of 1 to 60 characters", v));
                }
                n
            }
            None => id.clone(),
        };
        let unit = match map.get("unit") {
            Some(v) => {
                let up = child(&p, "unit");
                let u = string(v, &up)?.trim().to_owned();
                if u.chars().count() > 12 {
                    return Err(expected(
                        &up,
                        "a unit of at most 12 characters, like ms or %",
                        v,
                    ));
                }
                Some(u)
            }
            None => None,
        };
        let scale = match map.get("scale") {
            Some(v) => number(v, &child(&p, "scale"), 1e-9, 1e9)?,
            None => 1.0,
        };
        let reduce = match map.get("reduce") {
            None => Reduce::Max,
            Some(v) => match v.as_str() {
                Some("latest") => Reduce::Latest,
                Some("average") => Reduce::Average,
                Some("max") => Reduce::Max,
                Some("min") => Reduce::Min,
                Some("sum") => Reduce::Sum,
                _ => {
                    return Err(expected(
                        &child(&p, "reduce"),
                        "one of max (the default), min, average, sum, latest",
                        v,
                    ));
                }
            },
        };
        let missing_is_zero = match map.get("missing") {
            None => false,
            Some(v) => match v.as_str() {
                Some("zero") => true,
                Some("no_data") => false,
                _ => {
                    return Err(expected(
                        &child(&p, "missing"),
                        "no_data (the default: the gate's no_data policy) or zero",
                        v,
                    ));
                }
            },
        };
        out.push(Query {
            id,
            name,
            unit,
            scale,
            reduce,
            missing_is_zero,
            kind,
            path: p,
        });
    }
    Ok(out)
}

fn parse_metric(v: &Value, path: &str) -> Result<QueryKind, SpecError> {
    let map = object(v, path, METRIC_FIELDS)?;
    let text = |k: &str, what: &str| -> Result<String, SpecError> {
        let p = child(path, k);
        match map.get(k) {
            Some(v) => {
                let s = string(v, &p)?.trim().to_owned();
                if s.is_empty() || s.chars().count() > 255 {
                    return Err(expected(&p, what, v));
                }
                Ok(s)
            }
            None => Err(SpecError::invalid(&p, format!("missing; give {what}"))),
        }
    };
    let namespace = text("namespace", "a namespace like AWS/ApplicationELB")?;
    let name = text("name", "a metric name like TargetResponseTime")?;
    let stat = text("stat", "a statistic like Sum, Average or p99")?;
    if !valid_stat(&stat) {
        return Err(expected(
            &child(path, "stat"),
            "SampleCount, Average, Sum, Minimum, Maximum or a percentile like p99 / tm90",
            &Value::String(stat),
        ));
    }
    let mut dimensions = Vec::new();
    if let Some(d) = map.get("dimensions") {
        let dp = child(path, "dimensions");
        let Value::Object(dims) = d else {
            return Err(expected(&dp, "a mapping of dimension name to value", d));
        };
        if dims.len() > 30 {
            return Err(SpecError::invalid(
                &dp,
                "more than 30 dimensions; CloudWatch allows 30",
            ));
        }
        for (k, val) in dims {
            let kp = child(&dp, k);
            let s = crate::parse::scalar_text(val, &kp)?;
            dimensions.push((k.clone(), Template::parse(&s, &kp)?));
        }
    }
    Ok(QueryKind::Metric {
        namespace,
        name,
        dimensions,
        stat,
    })
}

/// What can be checked of a metric-math expression without CloudWatch:
/// balanced parentheses, and every lowercase identifier that is not a
/// function is the id of an earlier query (CloudWatch rejects the rest at
/// the first measurement, reported as a configuration error).
fn check_expression(text: &str, path: &str, earlier: &[Query], own: &str) -> Result<(), SpecError> {
    if text.is_empty() || text.chars().count() > 1024 {
        return Err(SpecError::invalid(
            path,
            "expected an expression of 1 to 1024 characters, like 100 * errors / requests",
        ));
    }
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SpecError::invalid(
                        path,
                        "a \")\" closes nothing; check the parentheses",
                    ));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SpecError::invalid(
            path,
            "a \"(\" is never closed; check the parentheses",
        ));
    }
    // Identifiers outside string literals.
    let mut in_string = false;
    let mut word = String::new();
    let mut words = Vec::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
            continue;
        }
        if in_string {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || (c == '.' && !word.is_empty()) {
            word.push(c);
        } else if !word.is_empty() {
            words.push((std::mem::take(&mut word), c == '('));
        }
    }
    for (w, is_call) in words {
        let first = w.chars().next().unwrap_or('0');
        if is_call || !first.is_ascii_lowercase() {
            continue; // functions (FILL, METRICS, …), numbers, constants
        }
        if w == own {
            return Err(SpecError::invalid(
                path,
                format!("refers to its own id {}", shown_in_doc(&Value::String(w))),
            ));
        }
        if !earlier.iter().any(|q| q.id == w) {
            let ids: Vec<&str> = earlier.iter().map(|q| q.id.as_str()).collect();
            let known = if ids.is_empty() {
                "no query comes before it".to_owned()
            } else {
                format!("ids before it: {}", ids.join(", "))
            };
            return Err(SpecError::invalid(
                path,
                format!(
                    "refers to {}, which is not the id of an earlier query ({known})",
                    shown_in_doc(&Value::String(w))
                ),
            ));
        }
    }
    Ok(())
}

fn query_ref(v: &Value, path: &str, queries: &[Query]) -> Result<usize, SpecError> {
    let id = string(v, path)?;
    queries.iter().position(|q| q.id == id).ok_or_else(|| {
        let ids: Vec<&str> = queries.iter().map(|q| q.id.as_str()).collect();
        let mut msg = format!(
            "{} is not a query id; ids: {}",
            shown_in_doc(v),
            if ids.is_empty() {
                "none (add queries)".to_owned()
            } else {
                ids.join(", ")
            }
        );
        if let Some(near) = tollgate_core::text::did_you_mean(id, &ids) {
            msg = format!("{msg} (did you mean \"{near}\"?)");
        }
        SpecError::invalid(path, msg)
    })
}

fn parse_conditions(
    v: Option<&Value>,
    path: &str,
    queries: &[Query],
) -> Result<Vec<Condition>, SpecError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(expected(path, "a list of conditions", v));
    };
    if items.len() > MAX_CONDITIONS {
        return Err(SpecError::invalid(
            path,
            format!("{} conditions; at most {MAX_CONDITIONS}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        let map = object(item, &p, CONDITION_FIELDS)?;
        let qp = child(&p, "query");
        let query = match map.get("query") {
            Some(q) => query_ref(q, &qp, queries)?,
            None => {
                return Err(SpecError::invalid(
                    &qp,
                    "missing; name the query this condition tests",
                ));
            }
        };
        let rules: Vec<&str> = ["max", "min", "max_vs_baseline"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect();
        let rule = match rules.as_slice() {
            ["max"] => Rule::Max(number(&map["max"], &child(&p, "max"), f64::MIN, f64::MAX)?),
            ["min"] => Rule::Min(number(&map["min"], &child(&p, "min"), f64::MIN, f64::MAX)?),
            ["max_vs_baseline"] => {
                let rp = child(&p, "max_vs_baseline");
                let r = object(&map["max_vs_baseline"], &rp, RELATIVE_FIELDS)?;
                if r.is_empty() {
                    return Err(SpecError::invalid(
                        &rp,
                        "give plus (points above the baseline) and/or times (a factor), e.g. {times: 1.2}",
                    ));
                }
                let plus = match r.get("plus") {
                    Some(v) => number(v, &child(&rp, "plus"), 0.0, 1e12)?,
                    None => 0.0,
                };
                let times = match r.get("times") {
                    Some(v) => number(v, &child(&rp, "times"), 0.0, 1e6)?,
                    None => 1.0,
                };
                Rule::MaxVsBaseline { plus, times }
            }
            [] => {
                return Err(SpecError::invalid(
                    &p,
                    "has no rule; add max: N, min: N or max_vs_baseline: {plus: N, times: N}",
                ));
            }
            _ => {
                return Err(SpecError::invalid(
                    &p,
                    format!("sets {}; give one rule per condition", rules.join(" and ")),
                ));
            }
        };
        out.push(Condition {
            query,
            rule,
            path: p,
        });
    }
    Ok(out)
}
