//! `tollgate gate`: the spec's metric gate, run against CloudWatch from a
//! laptop or CodeBuild. The same analysis as the pipeline action and the
//! deploy hook ([`tollgate_checks::gate`]), but in one process: it checks
//! the metrics and alarms exist, then sleeps out each interval, takes a
//! measurement, prints it, and stops at the final verdict.
//!
//! Exit codes, as `tollgate check`: 0 the gate passed, 1 it failed (or was
//! inconclusive, or could not measure), 2 a spec, variable or
//! configuration error (an unknown metric or alarm, access denied, a
//! rejected query), with what to change.

use std::process::ExitCode;
use std::time::Duration;
use tollgate_checks::Vars;
use tollgate_checks::gate::{
    GateError, GateSpec, GateState, MetricSource, Outcome, measure, preflight,
};
use tollgate_core::text::human_duration;

/// What `tollgate gate` was asked.
#[derive(Debug)]
pub struct Options<'a> {
    /// The spec's path, as given (for messages).
    pub spec_path: &'a str,
    /// The spec document.
    pub text: &'a str,
    /// Green's variables.
    pub vars: &'a Vars,
    /// The baseline's variables (`--baseline-var`).
    pub baseline: Option<&'a Vars>,
    /// One measurement now, judged alone.
    pub once: bool,
}

/// The clock: epoch seconds now, and a way to wait until a moment.
trait Clock {
    fn now(&self) -> i64;
    fn sleep_until(&self, at: i64) -> impl Future<Output = ()>;
}

#[derive(Debug)]
struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    async fn sleep_until(&self, at: i64) {
        let wait = at.saturating_sub(self.now());
        if wait > 0 {
            tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
        }
    }
}

fn spec_error(path: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("tollgate: spec error in {path}: {e}");
    ExitCode::from(2)
}

/// Runs the command; prints to standard output, errors to standard error.
pub fn run(o: &Options<'_>) -> ExitCode {
    let spec = match GateSpec::from_document(o.text) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return spec_error(
                o.spec_path,
                "the document has no gate: section; add one (interval, count, queries, conditions, alarms: see docs/checks.md#metric-gates)",
            );
        }
        Err(e) => return spec_error(o.spec_path, e),
    };
    if let Err(e) = spec.check_vars(o.vars) {
        return spec_error(o.spec_path, e);
    }
    if spec.needs_baseline() && o.baseline.is_none() {
        return spec_error(
            o.spec_path,
            "gate.conditions: a max_vs_baseline condition compares with a baseline; give its values with --baseline-var (e.g. --baseline-var TARGET_GROUP=targetgroup/web-blue/…)",
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let sdk = tollgate_aws::load_sdk_config().await;
        let source = tollgate_aws_cloudwatch::CloudWatchMetrics::new(&sdk);
        let mut out = std::io::stdout();
        bake(o, &spec, &source, &WallClock, &mut out).await
    })
}

fn config_error(e: &GateError) -> ExitCode {
    eprintln!("tollgate: the metric gate cannot run: {e}");
    ExitCode::from(2)
}

/// The analysis: preflight, then one measurement per interval until the
/// verdict is final (or one, with `--once`).
async fn bake<M: MetricSource, C: Clock>(
    o: &Options<'_>,
    spec: &GateSpec,
    source: &M,
    clock: &C,
    out: &mut impl std::io::Write,
) -> ExitCode {
    if let Err(e) = preflight(spec, source, o.vars, o.baseline).await {
        return config_error(&e);
    }
    let start = clock.now();
    let mut state = GateState::new(spec, start);
    if o.once {
        let _ = writeln!(
            out,
            "{}: one measurement of the metric gate (--once), judged alone",
            o.spec_path
        );
    } else {
        let _ = writeln!(
            out,
            "{}: metric gate of {} measurement{}, one every {} (a {} bake); metrics and alarms found",
            o.spec_path,
            spec.count,
            if spec.count == 1 { "" } else { "s" },
            human_duration(spec.interval.as_secs()),
            human_duration(spec.bake().as_secs()),
        );
    }
    loop {
        if !o.once {
            clock.sleep_until(state.next_due(spec)).await;
        }
        let now = clock.now();
        let m = match measure(spec, source, o.vars, o.baseline, now).await {
            Ok(m) => m,
            Err(e) => return config_error(&e),
        };
        let n = state.taken() + 1;
        let total = if o.once { 1 } else { spec.count };
        let _ = writeln!(
            out,
            "measurement {n} of {total}: {}: {}",
            m.outcome.word(),
            m.reason
        );
        state.record(&m);
        if o.once {
            let passed = match m.outcome {
                Outcome::Successful => true,
                Outcome::Inconclusive => spec.inconclusive_passes,
                Outcome::Failed | Outcome::Error => false,
            };
            let _ = writeln!(
                out,
                "{}",
                if passed {
                    "metric gate: the measurement passed"
                } else {
                    "metric gate: the measurement did not pass"
                }
            );
            return if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        let verdict = state.verdict(spec);
        if !verdict.is_final() {
            continue;
        }
        if verdict.passes(spec) {
            let _ = writeln!(out, "{}", state.summary(spec));
            return ExitCode::SUCCESS;
        }
        let _ = writeln!(out, "{}", state.failure_message(spec));
        return ExitCode::from(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use tollgate_checks::gate::{
        AlarmState, MetricRequest, Series, SeriesStatus, SourceError, SourceErrorKind,
    };

    /// A clock that jumps instead of sleeping.
    #[derive(Debug)]
    struct Jumps(Cell<i64>);

    impl Clock for Jumps {
        fn now(&self) -> i64 {
            self.0.get()
        }
        async fn sleep_until(&self, at: i64) {
            if at > self.0.get() {
                self.0.set(at);
            }
        }
    }

    #[derive(Debug, Default)]
    struct Script {
        answers: Mutex<VecDeque<Result<Vec<Series>, SourceError>>>,
        windows: Mutex<Vec<(i64, i64)>>,
        unknown: bool,
    }

    impl Script {
        fn with(values: &[&[(&str, f64)]]) -> Script {
            let s = Script::default();
            for v in values {
                s.answers.lock().expect("lock").push_back(Ok(v
                    .iter()
                    .map(|(id, x)| Series {
                        id: (*id).to_owned(),
                        points: vec![(0, *x)],
                        status: SeriesStatus::Complete,
                        messages: Vec::new(),
                    })
                    .collect()));
            }
            s
        }
    }

    impl MetricSource for Script {
        async fn metric_data(&self, r: &MetricRequest) -> Result<Vec<Series>, SourceError> {
            self.windows.lock().expect("lock").push((r.start, r.end));
            self.answers
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or_else(|| {
                    Err(SourceError {
                        kind: SourceErrorKind::Transient,
                        message: "GetMetricData failed: throttled".into(),
                    })
                })
        }
        async fn alarm_states(&self, _: &[String]) -> Result<Vec<AlarmState>, SourceError> {
            Ok(Vec::new())
        }
        async fn metric_exists(&self, _: &str, _: &str) -> Result<bool, SourceError> {
            Ok(!self.unknown)
        }
    }

    const SPEC: &str = "gate:\n  interval: 2m\n  count: 3\n  queries:\n    - {id: p99, unit: ms, scale: 1000, metric: {namespace: AWS/ApplicationELB, name: TargetResponseTime, stat: p99, dimensions: {TargetGroup: \"${TARGET_GROUP}\"}}}\n  conditions:\n    - {query: p99, max: 600}\n";

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.insert("TARGET_GROUP", "targetgroup/green/1");
        v
    }

    async fn go(source: &Script, once: bool) -> (ExitCode, String, i64) {
        let spec = GateSpec::from_document(SPEC).expect("spec").expect("gate");
        let vars = vars();
        let o = Options {
            spec_path: "gate.yaml",
            text: SPEC,
            vars: &vars,
            baseline: None,
            once,
        };
        let clock = Jumps(Cell::new(1_000_020));
        let mut out = Vec::new();
        let code = bake(&o, &spec, source, &clock, &mut out).await;
        (code, String::from_utf8(out).expect("utf-8"), clock.now())
    }

    #[tokio::test]
    async fn a_healthy_bake_measures_every_interval_and_exits_0() {
        let s = Script::with(&[&[("p99", 0.3)], &[("p99", 0.31)], &[("p99", 0.29)]]);
        let (code, out, end) = go(&s, false).await;
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(
            out,
            "gate.yaml: metric gate of 3 measurements, one every 2m (a 6m bake); metrics and alarms found\n\
             measurement 1 of 3: successful: p99 300 ms\n\
             measurement 2 of 3: successful: p99 310 ms\n\
             measurement 3 of 3: successful: p99 290 ms\n\
             metric gate successful: 3 of 3 measurements (100%): 3 successful, 0 failed (limit 0), 0 inconclusive (limit 0), 0 errors; last measurement successful: p99 290 ms\n"
        );
        assert_eq!(end, 1_000_020 + 360, "three intervals slept out");
        let windows = s.windows.lock().expect("lock").clone();
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[1].1 - windows[0].1, 120, "one interval apart");
    }

    #[tokio::test]
    async fn a_failed_measurement_ends_the_bake_with_exit_1() {
        let s = Script::with(&[&[("p99", 0.3)], &[("p99", 0.812)]]);
        let (code, out, _) = go(&s, false).await;
        assert_eq!(code, ExitCode::from(1));
        assert!(out.contains("measurement 2 of 3: failed: p99 812 ms > 600 ms\nmetric gate failed: p99 812 ms > 600 ms in 1 of 2 measurements\n"), "{out}");
        assert!(!out.contains("measurement 3"), "{out}");
    }

    #[tokio::test]
    async fn once_takes_one_measurement_now() {
        let (code, out, end) = go(&Script::with(&[&[("p99", 0.3)]]), true).await;
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(end, 1_000_020, "no waiting");
        assert!(
            out.ends_with(
                "measurement 1 of 1: successful: p99 300 ms\nmetric gate: the measurement passed\n"
            ),
            "{out}"
        );
        let (code, out, _) = go(&Script::with(&[&[("p99", 0.9)]]), true).await;
        assert_eq!(code, ExitCode::from(1));
        assert!(
            out.ends_with("metric gate: the measurement did not pass\n"),
            "{out}"
        );
        // No data: inconclusive, which fails unless the spec says otherwise.
        let (code, _, _) = go(&Script::with(&[&[]]), true).await;
        assert_eq!(code, ExitCode::from(1));
    }

    #[tokio::test]
    async fn an_unknown_metric_is_a_configuration_error_exit_2() {
        let s = Script {
            unknown: true,
            ..Script::default()
        };
        let (code, out, _) = go(&s, false).await;
        assert_eq!(code, ExitCode::from(2));
        assert!(out.is_empty(), "{out}");
        assert!(s.windows.lock().expect("lock").is_empty());
    }
}
