//! # tollgate-aws-cloudwatch
//!
//! The CloudWatch adapter of the metric gate's port,
//! `tollgate_checks::gate::MetricSource`: GetMetricData (metric stats and
//! metric-math expressions), DescribeAlarms (metric and composite alarms, by
//! name) and ListMetrics (does a metric exist at all). Used by the two
//! functions that run gates (pipeline-action's `gate` action, deploy-hook).
//! Invariant: reads only (`cloudwatch:GetMetricData`,
//! `cloudwatch:DescribeAlarms`, `cloudwatch:ListMetrics`, none of which has
//! resource-level permissions); an error says whether it is a
//! configuration problem (stops the gate) or a passing one (one errored
//! measurement).
//!
//! The SDK speaks CloudWatch's Smithy RPC v2 CBOR protocol; the local
//! stand-in (`tests/src/aws_standin.rs`) answers it.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, StateValue, StatusCode,
};
use aws_smithy_types::DateTime;
use tollgate_aws::SdkConfig;
use tollgate_checks::gate::{
    AlarmState, AlarmValue, MetricRequest, MetricSource, RequestKind, Series, SeriesStatus,
    SourceError, SourceErrorKind,
};

/// Pages read at most per call (the spec's limits keep a measurement to one).
const MAX_PAGES: usize = 10;

/// CloudWatch-backed [`MetricSource`].
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: tollgate_aws::Lazy<Client>,
}

impl CloudWatchMetrics {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
        }
    }
}

/// Maps an SDK error onto the gate's two kinds, naming the IAM action when
/// access is denied.
fn source_error<E>(err: aws_sdk_cloudwatch::error::SdkError<E>, action: &str) -> SourceError
where
    E: aws_sdk_cloudwatch::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use tollgate_report::ReportError;
    match tollgate_aws::classify(err, &[]) {
        ReportError::AccessDenied { code, message } => SourceError {
            kind: SourceErrorKind::Configuration,
            message: format!(
                "{action} was denied ({code}: {message}); grant cloudwatch:{action} to the function's role (it has no resource-level permissions: resource \"*\")"
            ),
        },
        ReportError::Rejected { code, message } => SourceError {
            kind: SourceErrorKind::Configuration,
            message: format!(
                "{action} rejected the request ({code}: {message}); check the gate's queries, expressions and statistics"
            ),
        },
        other => SourceError {
            kind: SourceErrorKind::Transient,
            message: format!("{action} failed: {other}"),
        },
    }
}

fn query(q: &tollgate_checks::gate::RequestQuery) -> MetricDataQuery {
    let period = i32::try_from(q.period).unwrap_or(i32::MAX);
    let b = MetricDataQuery::builder().id(&q.id).return_data(true);
    match &q.kind {
        RequestKind::Metric {
            namespace,
            name,
            dimensions,
            stat,
        } => {
            let metric = Metric::builder()
                .namespace(namespace)
                .metric_name(name)
                .set_dimensions(Some(
                    dimensions
                        .iter()
                        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                        .collect(),
                ))
                .build();
            b.metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(period)
                    .stat(stat)
                    .build(),
            )
            .build()
        }
        RequestKind::Expression(e) => b.expression(e).period(period).build(),
    }
}

fn status(s: Option<&StatusCode>) -> SeriesStatus {
    match s {
        Some(StatusCode::Forbidden) => SeriesStatus::Forbidden,
        Some(StatusCode::InternalError) => SeriesStatus::InternalError,
        Some(StatusCode::PartialData) => SeriesStatus::PartialData,
        _ => SeriesStatus::Complete,
    }
}

impl MetricSource for CloudWatchMetrics {
    async fn metric_data(&self, request: &MetricRequest) -> Result<Vec<Series>, SourceError> {
        let queries: Vec<MetricDataQuery> = request.queries.iter().map(query).collect();
        let mut out: Vec<Series> = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(DateTime::from_secs(request.start))
                .end_time(DateTime::from_secs(request.end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| source_error(e, "GetMetricData"))?;
            for r in page.metric_data_results() {
                let id = r.id().unwrap_or_default().to_owned();
                let points = r
                    .timestamps()
                    .iter()
                    .zip(r.values())
                    .map(|(t, v)| (t.secs(), *v));
                let messages = r.messages().iter().map(|m| {
                    format!(
                        "{}: {}",
                        m.code().unwrap_or("message"),
                        m.value().unwrap_or_default()
                    )
                });
                match out.iter_mut().find(|s| s.id == id) {
                    Some(s) => {
                        s.points.extend(points);
                        s.messages.extend(messages);
                        s.status = status(r.status_code());
                    }
                    None => out.push(Series {
                        id,
                        points: points.collect(),
                        status: status(r.status_code()),
                        messages: messages.collect(),
                    }),
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
        // Still more: what was read is partial.
        for s in &mut out {
            if s.status == SeriesStatus::Complete {
                s.status = SeriesStatus::PartialData;
            }
        }
        Ok(out)
    }

    async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmState>, SourceError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let value = |s: Option<&StateValue>| match s {
            Some(StateValue::Ok) => AlarmValue::Ok,
            Some(StateValue::Alarm) => AlarmValue::Alarm,
            _ => AlarmValue::InsufficientData,
        };
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| source_error(e, "DescribeAlarms"))?;
            out.extend(page.metric_alarms().iter().map(|a| AlarmState {
                name: a.alarm_name().unwrap_or_default().to_owned(),
                state: value(a.state_value()),
            }));
            out.extend(page.composite_alarms().iter().map(|a| AlarmState {
                name: a.alarm_name().unwrap_or_default().to_owned(),
                state: value(a.state_value()),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn metric_exists(&self, namespace: &str, name: &str) -> Result<bool, SourceError> {
        let page = self
            .client
            .list_metrics()
            .namespace(namespace)
            .metric_name(name)
            .send()
            .await
            .map_err(|e| source_error(e, "ListMetrics"))?;
        Ok(!page.metrics().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_checks::gate::RequestQuery;

    #[test]
    fn queries_carry_the_period_and_the_dimensions() {
        let q = query(&RequestQuery {
            id: "p99".into(),
            kind: RequestKind::Metric {
                namespace: "AWS/ApplicationELB".into(),
                name: "TargetResponseTime".into(),
                dimensions: vec![("TargetGroup".into(), "targetgroup/green/1".into())],
                stat: "p99".into(),
            },
            period: 60,
        });
        let stat = q.metric_stat().expect("stat");
        assert_eq!(
            (q.id(), stat.period(), stat.stat()),
            (Some("p99"), Some(60), Some("p99"))
        );
        let m = stat.metric().expect("metric");
        assert_eq!(m.dimensions()[0].value(), Some("targetgroup/green/1"));
        let e = query(&RequestQuery {
            id: "rate".into(),
            kind: RequestKind::Expression("100 * errors / requests".into()),
            period: 300,
        });
        assert_eq!(
            (e.expression(), e.period(), e.return_data()),
            (Some("100 * errors / requests"), Some(300), Some(true))
        );
    }

    #[test]
    fn statuses_map() {
        assert_eq!(
            status(Some(&StatusCode::Forbidden)),
            SeriesStatus::Forbidden
        );
        assert_eq!(
            status(Some(&StatusCode::InternalError)),
            SeriesStatus::InternalError
        );
        assert_eq!(status(None), SeriesStatus::Complete);
    }
}
