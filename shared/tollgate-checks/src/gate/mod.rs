//! Metric gates: analysis of what production does, measured in CloudWatch,
//! during a bake and at every canary step.
//!
//! - [`GateSpec`]: the `gate` section of a spec document (queries, metric
//!   math, conditions absolute and relative to a baseline, alarms,
//!   interval × count, limits), validated against GetMetricData's limits.
//! - [`MetricSource`]: the port an adapter implements (GetMetricData,
//!   DescribeAlarms, ListMetrics); this crate knows no SDK.
//! - [`measure`]: one measurement, classified the way Argo Rollouts does:
//!   successful, failed, inconclusive or error.
//! - [`GateState`]: the running verdict, small enough for a continuation
//!   token or ECS `hookDetails`; [`GateState::verdict`] applies
//!   `failure_limit`, `inconclusive_limit` and `consecutive_error_limit`, and
//!   [`GateState::summary`] / [`GateState::failure_message`] say it in
//!   sentences ("p99 812 ms > 600 ms in 3 of 5 measurements").
//!
//! No entry point sleeps: each invocation takes one measurement and hands
//! the state back to whoever calls again (CodePipeline's continuation token,
//! ECS's `callBackDelay`).

mod dyn_source;
mod measure;
mod spec;
mod state;

pub use dyn_source::{AsSource, BoxFuture, DynMetricSource};
pub use measure::{
    AlarmState, AlarmValue, CondCheck, GateError, Measurement, MetricRequest, MetricSource,
    Outcome, RequestKind, RequestQuery, Series, SeriesStatus, SourceError, SourceErrorKind,
    measure, preflight, window,
};
pub use spec::{
    Condition, GateSpec, MAX_ALARMS, MAX_CONDITIONS, MAX_DATAPOINTS, MAX_MEASUREMENTS, MAX_QUERIES,
    MinRequests, NoData, Query, QueryKind, Reduce, Rule,
};
pub use state::{
    CondStat, GateState, STATE_ALARM_CHARS, STATE_ALARMS, STATE_REASON_CHARS, STATE_REASON_RESERVE,
    Verdict, format_value,
};

#[cfg(test)]
mod tests;
