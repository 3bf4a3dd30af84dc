//! Table tests of the gate: spec errors, one measurement's classification,
//! and the verdict over many.

use super::*;
use crate::template::Vars;
use std::sync::Mutex;

/// The fake [`MetricSource`]: answers per target group (the `TargetGroup`
/// dimension of the first metric query) from a table, records requests.
/// One target group's answers: query id → values.
type Table = Vec<(&'static str, Vec<f64>)>;

#[derive(Default)]
struct Fake {
    /// target group → id → points; a missing id has no data.
    data: Vec<(&'static str, Table)>,
    status: Vec<(&'static str, SeriesStatus)>,
    error: Option<SourceError>,
    alarms: Vec<(&'static str, AlarmValue)>,
    unknown_metrics: Vec<&'static str>,
    requests: Mutex<Vec<MetricRequest>>,
}

impl MetricSource for Fake {
    async fn metric_data(&self, request: &MetricRequest) -> Result<Vec<Series>, SourceError> {
        self.requests.lock().expect("lock").push(request.clone());
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let tg = request
            .queries
            .iter()
            .find_map(|q| match &q.kind {
                RequestKind::Metric { dimensions, .. } => dimensions
                    .iter()
                    .find(|(k, _)| k == "TargetGroup")
                    .map(|(_, v)| v.clone()),
                RequestKind::Expression(_) => None,
            })
            .unwrap_or_default();
        let Some((_, table)) = self.data.iter().find(|(t, _)| *t == tg) else {
            return Ok(Vec::new());
        };
        Ok(request
            .queries
            .iter()
            .map(|q| {
                let points = table
                    .iter()
                    .find(|(id, _)| *id == q.id)
                    .map(|(_, vs)| {
                        vs.iter()
                            .enumerate()
                            .map(|(i, v)| (request.end - 60 * (i as i64 + 1), *v))
                            .collect()
                    })
                    .unwrap_or_default();
                let status = self
                    .status
                    .iter()
                    .find(|(id, _)| *id == q.id)
                    .map_or(SeriesStatus::Complete, |(_, s)| *s);
                Series {
                    id: q.id.clone(),
                    points,
                    status,
                    messages: if status == SeriesStatus::InternalError {
                        vec!["InternalError: division by zero".to_owned()]
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }

    async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmState>, SourceError> {
        Ok(self
            .alarms
            .iter()
            .filter(|(n, _)| names.iter().any(|x| x == n))
            .map(|(n, s)| AlarmState {
                name: (*n).to_owned(),
                state: *s,
            })
            .collect())
    }

    async fn metric_exists(&self, _namespace: &str, name: &str) -> Result<bool, SourceError> {
        Ok(!self.unknown_metrics.contains(&name))
    }
}

const SPEC: &str = r#"
gate:
  interval: 1m
  count: 5
  min_requests: {query: requests, at_least: 100}
  queries:
    - id: requests
      metric: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum,
               dimensions: {LoadBalancer: "${LOAD_BALANCER}", TargetGroup: "${TARGET_GROUP}"}}
    - id: errors
      missing: zero
      metric: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum,
               dimensions: {LoadBalancer: "${LOAD_BALANCER}", TargetGroup: "${TARGET_GROUP}"}}
    - id: error_rate
      name: 5xx rate
      unit: "%"
      expression: 100 * FILL(errors, 0) / requests
    - id: p99
      unit: ms
      scale: 1000
      metric: {namespace: AWS/ApplicationELB, name: TargetResponseTime, stat: p99,
               dimensions: {LoadBalancer: "${LOAD_BALANCER}", TargetGroup: "${TARGET_GROUP}"}}
  conditions:
    - {query: error_rate, max: 1}
    - {query: p99, max: 600}
"#;

const RELATIVE: &str = r#"
gate:
  count: 3
  queries:
    - id: requests
      metric: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum,
               dimensions: {TargetGroup: "${TARGET_GROUP}"}}
    - id: error_rate
      unit: "%"
      expression: 100 * requests / requests
    - id: p99
      unit: ms
      scale: 1000
      metric: {namespace: AWS/ApplicationELB, name: TargetResponseTime, stat: p99,
               dimensions: {TargetGroup: "${TARGET_GROUP}"}}
  conditions:
    - {query: error_rate, max_vs_baseline: {plus: 0.5}}
    - {query: p99, max_vs_baseline: {times: 1.2}}
"#;

fn spec(text: &str) -> GateSpec {
    GateSpec::from_document(text)
        .expect("valid")
        .expect("has a gate")
}

fn green() -> Vars {
    Vars::new()
        .with("TARGET_GROUP", "targetgroup/green/1")
        .with("LOAD_BALANCER", "app/web/1")
}

fn blue() -> Vars {
    Vars::new()
        .with("TARGET_GROUP", "targetgroup/blue/2")
        .with("LOAD_BALANCER", "app/web/1")
}

fn fake(green: Vec<(&'static str, Vec<f64>)>) -> Fake {
    Fake {
        data: vec![("targetgroup/green/1", green)],
        ..Fake::default()
    }
}

const NOW: i64 = 1_800_000_030;

async fn one(spec: &GateSpec, f: &Fake) -> Result<Measurement, GateError> {
    measure(spec, f, &green(), Some(&blue()), NOW).await
}

#[test]
fn spec_errors_name_the_field_and_say_what_to_change() {
    let many_queries: String = (0..501)
        .map(|i| format!("{{id: q{i}, metric: {{namespace: N, name: M, stat: Sum}}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let too_many = format!(
        "gate: {{count: 1, queries: [{many_queries}], conditions: [{{query: q0, max: 1}}]}}"
    );
    let many_points: String = (0..29)
        .map(|i| format!("{{id: q{i}, metric: {{namespace: N, name: M, stat: Sum}}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let too_many_points = format!(
        "gate: {{count: 1, window: 1h, period: 1s, queries: [{many_points}], conditions: [{{query: q0, max: 1}}]}}"
    );
    let cases: Vec<(String, &str)> = vec![
        ("gate: {interval: 1m}".into(), "gate.count: missing; give the number of measurements"),
        ("gate: {count: 0, alarms: [a]}".into(), "gate.count: expected a whole number from 1 to 200, got 0"),
        ("gate: {count: 3}".into(), "gate: has neither conditions nor alarms"),
        ("gate: {count: 3, alarms: [a], no_data: ok}".into(), "gate.no_data: expected one of inconclusive (the default), failed, successful, got \"ok\""),
        ("gate: {count: 3, alarms: [a], inconclusive: maybe}".into(), "gate.inconclusive: expected fail (the default) or pass"),
        ("gate: {count: 3, alarms: [a], period: 45s}".into(), "gate.period: CloudWatch periods are 1s, 5s, 10s, 30s or a multiple of 60s, got \"45s\""),
        ("gate: {count: 3, alarms: [a], window: 1m, period: 5m}".into(), "gate.window: shorter than the period"),
        ("gate: {count: 3, queries: [{id: Rate, expression: \"1\"}]}".into(), "gate.queries[0].id: expected an id that starts with a lowercase letter"),
        ("gate: {count: 3, queries: [{id: r, expression: \"errors / requests\"}]}".into(), "gate.queries[0].expression: refers to \"errors\", which is not the id of an earlier query (no query comes before it)"),
        ("gate: {count: 3, queries: [{id: r, expression: \"(1\"}]}".into(), "gate.queries[0].expression: a \"(\" is never closed"),
        ("gate: {count: 3, queries: [{id: r, metric: {namespace: N, name: M, stat: p999x}}]}".into(), "gate.queries[0].metric.stat: expected SampleCount, Average, Sum, Minimum, Maximum or a percentile"),
        ("gate: {count: 3, queries: [{id: r, metric: {namespace: N, name: M, stat: Sum}}], conditions: [{query: rate, max: 1}]}".into(), "gate.conditions[0].query: \"rate\" is not a query id; ids: r"),
        ("gate: {count: 3, queries: [{id: r, metric: {namespace: N, name: M, stat: Sum}}], conditions: [{query: r, max: 1, min: 0}]}".into(), "gate.conditions[0]: sets max and min; give one rule per condition"),
        ("gate: {count: 3, queries: [{id: r, metric: {namespace: N, name: M, stat: Sum}}], conditions: [{query: r}]}".into(), "gate.conditions[0]: has no rule"),
        ("gate: {count: 3, queries: [{id: r, metric: {namespace: N, name: M, stat: Sum}}], conditions: [{query: r, maks: 1}]}".into(), "gate.conditions[0].maks: unknown field (did you mean \"max\"?)"),
        (too_many, "gate.queries: 501 queries; GetMetricData takes at most 500"),
        (too_many_points, "gate.period: 29 queries × 3600 periods of 1s in a 3600s window = 104400 datapoints; GetMetricData returns at most 100800"),
    ];
    for (text, want) in cases {
        let err = GateSpec::from_document(&text).expect_err(&text).to_string();
        assert!(err.contains(want), "{text}\n got: {err}\nwant: {want}");
    }
}

#[test]
fn errors_never_quote_the_document() {
    let secret = "Bearer-abcdefghijklmnopqrstuvwxyz";
    for text in [
        format!("gate: {{count: 3, alarms: [a], no_data: {secret}}}"),
        format!("gate: {{count: 3, queries: [{{id: {secret}, expression: \"1\"}}]}}"),
        format!("gate: {{count: 3, queries: [{{id: r, expression: \"{secret}\"}}]}}"),
        format!("gate: [{secret}"),
    ] {
        let err = GateSpec::from_document(&text).expect_err(&text).to_string();
        assert!(!err.contains("abcdefghijklmnop"), "{err}");
    }
}

#[test]
fn defaults_and_budget() {
    let s = spec(SPEC);
    assert_eq!(
        (
            s.interval.as_secs(),
            s.count,
            s.window.as_secs(),
            s.period.as_secs()
        ),
        (60, 5, 60, 60)
    );
    assert_eq!(
        (
            s.failure_limit,
            s.inconclusive_limit,
            s.consecutive_error_limit
        ),
        (0, 0, 4)
    );
    assert_eq!(s.no_data, NoData::Inconclusive);
    assert!(!s.inconclusive_passes);
    assert_eq!(s.datapoints(), 4);
    assert!(!s.needs_baseline());
    assert!(spec(RELATIVE).needs_baseline());
    s.check_budget(std::time::Duration::from_secs(300), "the wait limit")
        .expect("fits");
    let err = s
        .check_budget(
            std::time::Duration::from_secs(240),
            "the action's wait limit",
        )
        .expect_err("too long")
        .to_string();
    assert_eq!(
        err,
        "gate: the bake (count 5 × interval 1m) lasts 5m, longer than the action's wait limit (4m); lower count or interval"
    );
    assert_eq!(
        GateSpec::from_document("checks: []").expect("no gate"),
        None
    );
    // The check spec accepts the gate section beside its checks.
    crate::Spec::from_yaml_or_json(&format!(
        "checks: [{{name: h, url: \"http://x/\"}}]\n{SPEC}"
    ))
    .expect("checks with a gate");
}

/// One measurement per row: green's values (requests, errors, p99 in
/// seconds; `None`: no data) → outcome and reason.
#[tokio::test]
async fn one_measurement_is_classified() {
    type Row = (
        &'static str,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Outcome,
        &'static str,
    );
    let rows: Vec<Row> = vec![
        (
            "healthy",
            Some(1000.0),
            None,
            Some(0.5),
            Some(0.31),
            Outcome::Successful,
            "requests 1000, 5xx rate 0.5 %, p99 310 ms",
        ),
        (
            "slow",
            Some(1000.0),
            Some(0.0),
            Some(0.0),
            Some(0.812),
            Outcome::Failed,
            "p99 812 ms > 600 ms",
        ),
        (
            "5xx",
            Some(1000.0),
            Some(21.0),
            Some(2.1),
            Some(0.2),
            Outcome::Failed,
            "5xx rate 2.1 % > 1 %",
        ),
        (
            "both",
            Some(1000.0),
            Some(21.0),
            Some(2.1),
            Some(0.9),
            Outcome::Failed,
            "5xx rate 2.1 % > 1 %; p99 900 ms > 600 ms",
        ),
        (
            "few requests",
            Some(12.0),
            None,
            Some(0.0),
            Some(0.2),
            Outcome::Inconclusive,
            "requests 12 is below the minimum 100 for a measurement to count",
        ),
        (
            "no requests",
            None,
            None,
            None,
            None,
            Outcome::Inconclusive,
            "requests (no data) is below the minimum 100",
        ),
        (
            "partial: no p99",
            Some(1000.0),
            None,
            Some(0.1),
            None,
            Outcome::Inconclusive,
            "no data for p99 (no_data: inconclusive)",
        ),
    ];
    let s = spec(SPEC);
    for (name, requests, errors, rate, p99, want, reason) in rows {
        let mut table = Vec::new();
        for (id, v) in [
            ("requests", requests),
            ("errors", errors),
            ("error_rate", rate),
            ("p99", p99),
        ] {
            if let Some(v) = v {
                table.push((id, vec![v]));
            }
        }
        let m = one(&s, &fake(table)).await.expect(name);
        assert_eq!(m.outcome, want, "{name}: {}", m.reason);
        assert!(
            m.reason.contains(reason),
            "{name}\n got: {}\nwant: {reason}",
            m.reason
        );
    }
}

#[tokio::test]
async fn the_no_data_policy_is_explicit() {
    for (policy, want) in [
        ("inconclusive", Outcome::Inconclusive),
        ("failed", Outcome::Failed),
        ("successful", Outcome::Successful),
    ] {
        let text = SPEC.replace(
            "  count: 5\n",
            &format!("  count: 5\n  no_data: {policy}\n"),
        );
        let m = one(
            &spec(&text),
            &fake(vec![("requests", vec![500.0]), ("error_rate", vec![0.1])]),
        )
        .await
        .expect(policy);
        assert_eq!(m.outcome, want, "{policy}: {}", m.reason);
        assert!(m.reason.contains("no data for p99"), "{}", m.reason);
    }
}

#[tokio::test]
async fn reduce_over_several_periods_takes_the_worst_by_default() {
    let text = SPEC.replace("  count: 5\n", "  count: 5\n  window: 5m\n  period: 1m\n");
    let s = spec(&text);
    assert_eq!(s.datapoints(), 20);
    let f = fake(vec![
        ("requests", vec![500.0, 400.0]),
        ("error_rate", vec![0.1, 0.2]),
        ("p99", vec![0.2, 0.7, 0.3]),
    ]);
    let m = one(&s, &f).await.expect("measured");
    assert_eq!(m.outcome, Outcome::Failed);
    assert!(m.reason.contains("p99 700 ms > 600 ms"), "{}", m.reason);
    let req = f.requests.lock().expect("lock")[0].clone();
    assert_eq!((req.end - req.start, req.end % 60), (300, 0));
    assert!(req.queries.iter().all(|q| q.period == 60));
    assert_eq!(
        req.queries[0].kind,
        RequestKind::Metric {
            namespace: "AWS/ApplicationELB".into(),
            name: "RequestCount".into(),
            dimensions: vec![
                ("LoadBalancer".into(), "app/web/1".into()),
                ("TargetGroup".into(), "targetgroup/green/1".into())
            ],
            stat: "Sum".into(),
        }
    );
}

#[tokio::test]
async fn errors_and_configuration_problems() {
    let s = spec(SPEC);
    // Throttling: an error measurement.
    let mut f = fake(vec![]);
    f.error = Some(SourceError {
        kind: SourceErrorKind::Transient,
        message: "GetMetricData was throttled".into(),
    });
    let m = one(&s, &f).await.expect("measured");
    assert_eq!(
        (m.outcome, m.reason.as_str()),
        (
            Outcome::Error,
            "could not read CloudWatch: GetMetricData was throttled"
        )
    );
    // A rejected expression stops the gate.
    f.error = Some(SourceError {
        kind: SourceErrorKind::Configuration,
        message: "the metric-math expression of error_rate is invalid".into(),
    });
    let e = one(&s, &f).await.expect_err("refused").to_string();
    assert_eq!(
        e,
        "gate: CloudWatch refused the measurement: the metric-math expression of error_rate is invalid"
    );
    // A metric-math runtime error in one series: an error measurement.
    let mut f = fake(vec![("requests", vec![500.0]), ("p99", vec![0.1])]);
    f.status = vec![("error_rate", SeriesStatus::InternalError)];
    let m = one(&s, &f).await.expect("measured");
    assert_eq!(m.outcome, Outcome::Error);
    assert!(
        m.reason
            .contains("CloudWatch could not compute 5xx rate (InternalError: division by zero)"),
        "{}",
        m.reason
    );
    // Unknown metric, at the first measurement.
    let mut f = fake(vec![]);
    f.unknown_metrics = vec!["TargetResponseTime"];
    let e = preflight(&s, &f, &green(), None)
        .await
        .expect_err("unknown")
        .to_string();
    assert_eq!(
        e,
        "gate.queries[3].metric: CloudWatch has no metric AWS/ApplicationELB TargetResponseTime (with any dimensions) in the past two weeks; check the namespace and the metric name"
    );
    // A variable the entry point does not give.
    let e = measure(
        &s,
        &fake(vec![]),
        &Vars::new().with("TARGET_GROUP", "x"),
        None,
        NOW,
    )
    .await
    .expect_err("unknown variable")
    .to_string();
    assert!(
        e.starts_with(
            "gate.queries[0].metric.dimensions.LoadBalancer: unknown variable ${LOAD_BALANCER}"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn alarms_must_stay_ok_and_exist() {
    let s = spec("gate: {count: 2, alarms: [web-5xx, web-latency]}");
    let mut f = fake(vec![]);
    f.alarms = vec![("web-5xx", AlarmValue::Ok), ("web-latency", AlarmValue::Ok)];
    assert_eq!(one(&s, &f).await.expect("ok").outcome, Outcome::Successful);
    f.alarms = vec![
        ("web-5xx", AlarmValue::Alarm),
        ("web-latency", AlarmValue::Ok),
    ];
    let m = one(&s, &f).await.expect("alarm");
    assert_eq!(
        (m.outcome, m.reason.as_str()),
        (Outcome::Failed, "alarm web-5xx is ALARM")
    );
    f.alarms = vec![
        ("web-5xx", AlarmValue::InsufficientData),
        ("web-latency", AlarmValue::Ok),
    ];
    assert_eq!(
        one(&s, &f).await.expect("no data").outcome,
        Outcome::Inconclusive
    );
    f.alarms = vec![("web-5xx", AlarmValue::Ok)];
    let e = one(&s, &f).await.expect_err("missing").to_string();
    assert_eq!(
        e,
        preflight(&s, &f, &green(), None)
            .await
            .expect_err("missing")
            .to_string()
    );
    assert_eq!(
        e,
        "gate.alarms: no alarm named \"web-latency\" exists in this account and region; fix the name or create the alarm"
    );
}

#[tokio::test]
async fn green_against_blue() {
    let s = spec(RELATIVE);
    let f = Fake {
        data: vec![
            (
                "targetgroup/green/1",
                vec![
                    ("requests", vec![900.0]),
                    ("error_rate", vec![1.2]),
                    ("p99", vec![0.98]),
                ],
            ),
            (
                "targetgroup/blue/2",
                vec![
                    ("requests", vec![1000.0]),
                    ("error_rate", vec![0.4]),
                    ("p99", vec![0.7]),
                ],
            ),
        ],
        ..Fake::default()
    };
    let m = one(&s, &f).await.expect("measured");
    assert_eq!(m.outcome, Outcome::Failed);
    assert_eq!(
        m.reason,
        "error_rate 1.2 % > 0.9 % (baseline 0.4 % + 0.5); p99 980 ms > 840 ms (baseline 700 ms × 1.2)"
    );
    assert_eq!(
        f.requests.lock().expect("lock").len(),
        2,
        "one call per target group"
    );
    // Within bounds.
    let ok = Fake {
        data: vec![
            (
                "targetgroup/green/1",
                vec![
                    ("requests", vec![900.0]),
                    ("error_rate", vec![0.8]),
                    ("p99", vec![0.8]),
                ],
            ),
            (
                "targetgroup/blue/2",
                vec![
                    ("requests", vec![1000.0]),
                    ("error_rate", vec![0.4]),
                    ("p99", vec![0.7]),
                ],
            ),
        ],
        ..Fake::default()
    };
    assert_eq!(one(&s, &ok).await.expect("ok").outcome, Outcome::Successful);
    // No baseline data: the no-data policy.
    let no_blue = Fake {
        data: vec![(
            "targetgroup/green/1",
            vec![
                ("requests", vec![900.0]),
                ("error_rate", vec![0.8]),
                ("p99", vec![0.8]),
            ],
        )],
        ..Fake::default()
    };
    let m = one(&s, &no_blue).await.expect("no blue");
    assert_eq!(m.outcome, Outcome::Inconclusive);
    assert!(
        m.reason
            .contains("no data for error_rate (baseline), p99 (baseline)"),
        "{}",
        m.reason
    );
    // No baseline at all: a configuration error.
    let e = measure(&s, &ok, &green(), None, NOW)
        .await
        .expect_err("no baseline")
        .to_string();
    assert!(
        e.contains("a max_vs_baseline condition needs a baseline"),
        "{e}"
    );
}

fn outcome_of(letter: char) -> Measurement {
    let outcome = match letter {
        'S' => Outcome::Successful,
        'F' => Outcome::Failed,
        'I' => Outcome::Inconclusive,
        _ => Outcome::Error,
    };
    Measurement {
        outcome,
        checks: if outcome == Outcome::Failed {
            vec![CondCheck {
                condition: 1,
                value: Some(812.0),
                baseline: None,
                limit: Some(600.0),
                passed: Some(false),
            }]
        } else {
            Vec::new()
        },
        alarms: Vec::new(),
        reason: format!("{} measurement", outcome.word()),
    }
}

/// The verdict after a sequence of measurements, per limits (Argo
/// Rollouts' semantics).
#[test]
fn verdicts_follow_the_limits() {
    // (extra spec lines, outcomes, verdict after the last one)
    let rows: Vec<(&str, &str, Verdict)> = vec![
        ("", "SSSS", Verdict::Running),
        ("", "SSSSS", Verdict::Successful),
        ("", "SSF", Verdict::Failed),
        ("  failure_limit: 1\n", "SFSSS", Verdict::Successful),
        ("  failure_limit: 1\n", "SFSF", Verdict::Failed),
        ("", "SI", Verdict::Inconclusive),
        ("  inconclusive_limit: 2\n", "IISSS", Verdict::Successful),
        ("  inconclusive_limit: 2\n", "IISI", Verdict::Inconclusive),
        ("  inconclusive: pass\n", "SISS", Verdict::Running),
        ("  inconclusive: pass\n", "SISSS", Verdict::Inconclusive),
        ("", "EEEE", Verdict::Running),
        ("", "EEEEE", Verdict::Error),
        ("", "EEESE", Verdict::Inconclusive),
        ("  inconclusive_limit: 1\n", "SSESS", Verdict::Successful),
        ("  consecutive_error_limit: 0\n", "SE", Verdict::Error),
        ("  consecutive_error_limit: 9\n", "EEEEE", Verdict::Error),
        (
            "  consecutive_error_limit: 1\n",
            "SESES",
            Verdict::Inconclusive,
        ),
        (
            "  consecutive_error_limit: 1\n  inconclusive_limit: 2\n",
            "SESES",
            Verdict::Successful,
        ),
        // No successful measurement proves nothing, however generous the
        // inconclusive limit: never a success (review finding).
        ("  inconclusive_limit: 5\n", "IIIII", Verdict::Inconclusive),
        ("  inconclusive_limit: 5\n", "EIEIE", Verdict::Inconclusive),
        (
            "  inconclusive_limit: 5\n  consecutive_error_limit: 5\n",
            "IEIEI",
            Verdict::Inconclusive,
        ),
        ("  inconclusive_limit: 4\n", "IIIIS", Verdict::Successful),
    ];
    for (extra, outcomes, want) in rows {
        let text = SPEC.replace("  count: 5\n", &format!("  count: 5\n{extra}"));
        let s = spec(&text);
        let mut state = GateState::new(&s, NOW);
        let mut verdict = Verdict::Running;
        for (i, o) in outcomes.chars().enumerate() {
            assert!(
                !verdict.is_final(),
                "{extra}{outcomes}: final before measurement {i}"
            );
            state.record(&outcome_of(o));
            verdict = state.verdict(&s);
        }
        assert_eq!(verdict, want, "{extra}{outcomes}");
    }
    let pass = spec(&SPEC.replace("  count: 5\n", "  count: 5\n  inconclusive: pass\n"));
    assert!(Verdict::Inconclusive.passes(&pass));
    assert!(!Verdict::Inconclusive.passes(&spec(SPEC)));
    assert!(!Verdict::Error.passes(&pass));
}

#[test]
fn results_read_as_sentences_and_the_state_round_trips() {
    let s = spec(SPEC);
    let mut state = GateState::new(&s, NOW);
    for o in "SF".chars() {
        state.record(&outcome_of(o));
    }
    let mut big = outcome_of('F');
    big.checks[0].value = Some(950.0);
    state.record(&big);
    state.record(&outcome_of('F'));
    state.record(&outcome_of('S'));
    let s = spec(&SPEC.replace("  count: 5\n", "  count: 5\n  failure_limit: 3\n"));
    assert_eq!(state.verdict(&s), Verdict::Successful);
    assert_eq!(
        state.condition_sentences(&s),
        ["p99 950 ms > 600 ms in 3 of 5 measurements"]
    );
    let strict = spec(SPEC);
    assert_eq!(
        state.failure_message(&strict),
        "metric gate failed: p99 950 ms > 600 ms in 3 of 5 measurements\n\
         last measurement (5 of 5) successful: successful measurement\n\
         measurements: 2 successful, 3 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 5 of 5 taken\n\
         what to do: the new version stays out: fix what the measurements show and release again, or change the gate's conditions if a limit is wrong"
    );
    let report = tollgate_core::gate_report::GateReport::parse(&state.failure_message(&strict))
        .expect("the notifier reads it back");
    assert_eq!(report, state.failure_report(&strict));
    let back = GateState::from_json(&state.to_json()).expect("round trip");
    assert_eq!(back, state);
    assert!(
        state.to_json().to_string().len() < 600,
        "{}",
        state.to_json()
    );

    let mut running = GateState::new(&strict, NOW);
    running.record(&outcome_of('S'));
    running.record(&outcome_of('S'));
    assert_eq!(running.percent(&strict), 40);
    assert_eq!(running.next_due(&strict), NOW + 180);
    assert_eq!(
        running.summary(&strict),
        "metric gate running: 2 of 5 measurements (40%): 2 successful, 0 failed (limit 0), 0 inconclusive (limit 0), 0 errors; last measurement successful: successful measurement"
    );
}

#[test]
fn numbers_are_shown_briefly() {
    for (v, want) in [
        (812.4, "812"),
        (0.5, "0.5"),
        (2.125, "2.125"),
        (1.0, "1"),
        (0.0001, "0"),
        (-0.0, "0"),
        (1234.0, "1234"),
        (1e308, "1e308"),
        (-1.23456e15, "-1.235e15"),
    ] {
        assert_eq!(format_value(v), want);
    }
}

/// The token envelope the pipeline action wraps a state in (its length is
/// what counts against CodePipeline's 2,048 characters).
fn token(state: &GateState) -> String {
    serde_json::json!({"v": 1, "action": "gate", "s": state.to_json()}).to_string()
}

/// The largest spec the parser allows: 200 measurements, 20 conditions,
/// 100 alarms.
fn largest_spec() -> GateSpec {
    let conditions: String = (0..20)
        .map(|i| format!("    - {{query: q{i}, max_vs_baseline: {{plus: 1, times: 1.5}}}}\n"))
        .collect();
    let queries: String = (0..20)
        .map(|i| format!("    - {{id: q{i}, metric: {{namespace: N, name: M{i}, stat: p99}}}}\n"))
        .collect();
    let alarms: String = (0..100).map(|i| format!("    - alarm-{i}\n")).collect();
    spec(&format!(
        "gate:\n  interval: 1m\n  count: 200\n  queries:\n{queries}  conditions:\n{conditions}  alarms:\n{alarms}"
    ))
}

#[test]
fn the_token_is_bounded_by_design() {
    let s = largest_spec();
    let worst = GateState::worst_case(&s);
    let len = token(&worst).chars().count();
    assert!(
        len <= 2048,
        "the largest spec's worst state takes {len} characters"
    );
    GateState::check_fits(&s, 2048, "CodePipeline's continuation token", token)
        .expect("every spec the parser allows fits a continuation token");

    // A real bake at that size: every condition missed with long numbers,
    // alarms with long names, a long reason full of characters JSON escapes.
    let mut state = GateState::new(&s, NOW);
    for i in 0..200 {
        state.record(&Measurement {
            outcome: Outcome::Failed,
            checks: (0..20)
                .map(|c| CondCheck {
                    condition: c,
                    value: Some(-123_456_789.123_456_78 * f64::from(i + 1)),
                    baseline: Some(1.0e-7 / 3.0),
                    limit: Some(-1.0e300 / 7.0),
                    passed: Some(false),
                })
                .collect(),
            alarms: (0..5)
                .map(|a| (format!("{a}\"{}", "a\\".repeat(200)), "ALARM"))
                .collect(),
            reason: "\"quoted\" \\ ".repeat(100),
        });
    }
    let raw = token(&state);
    assert!(
        raw.chars().count() <= 2048,
        "{}: {raw}",
        raw.chars().count()
    );
    // A carrier with less room (ECS hookDetails, say) gets the same state
    // with a shorter last reason.
    let fitted = state.encode_within(1500, token).expect("fits");
    assert!(fitted.chars().count() <= 1500, "{}", fitted.chars().count());
    assert!(fitted.chars().count() < raw.chars().count());
    let v: serde_json::Value = serde_json::from_str(&fitted).expect("JSON");
    let back = GateState::from_json(&v["s"]).expect("reads back");
    assert_eq!(
        back.outcomes, state.outcomes,
        "the verdict's inputs are whole"
    );
    assert_eq!(back.conditions.len(), 20);
    assert_eq!(back.conditions[0].fails, 200);
    assert_eq!(back.verdict(&s), state.verdict(&s));
    assert_eq!(back.alarms.len(), STATE_ALARMS);
    assert!(
        back.last_reason.starts_with("\"quoted\""),
        "{}",
        back.last_reason
    );
    assert!(
        back.condition_sentences(&s)[0].starts_with(
            "q0 -123457000 > -1.429e299 (baseline 0 × 1.5 + 1) in 200 of 200 measurements"
        ),
        "{:?}",
        back.condition_sentences(&s)
    );
}

#[test]
fn a_state_that_cannot_fit_is_refused_at_preflight_saying_what_to_reduce() {
    let s = largest_spec();
    let err = GateState::check_fits(&s, 1000, "ECS hookDetails", token).expect_err("too big");
    let text = err.to_string();
    assert!(
        text.starts_with("gate: the running verdict of this gate (count 200, 20 conditions, 100 alarms) can take "),
        "{text}"
    );
    assert!(
        text.contains("more than ECS hookDetails holds (1000); lower count"),
        "{text}"
    );
    assert!(GateState::new(&s, NOW).encode_within(10, token).is_none());
}

#[test]
fn conditions_travel_as_short_strings_and_the_older_form_is_read() {
    let s = spec(SPEC);
    let mut state = GateState::new(&s, NOW);
    state.record(&outcome_of('F'));
    assert_eq!(
        state.to_json(),
        serde_json::json!({"t0": NOW, "o": "F", "c": ["0", "1 812 600"], "r": "failed measurement"})
    );
    let old = serde_json::json!({"t0": NOW, "o": "F", "c": [{"f": 0}, {"f": 1, "w": 812.0, "l": 600.0}], "r": "failed measurement"});
    assert_eq!(GateState::from_json(&old), Some(state));
    assert!(
        GateState::from_json(&serde_json::json!({"t0": 1, "o": "", "c": [[1.5]], "r": ""}))
            .is_none()
    );
}
