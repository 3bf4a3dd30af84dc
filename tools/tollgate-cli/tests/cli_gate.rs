//! `tollgate gate` as a user runs it, against moto's CloudWatch behind the
//! AWS stand-in (which translates the SDK's CBOR for moto, and answers what
//! moto cannot: metric math): the measurements printed, the verdict, and
//! the exit codes of `tollgate check` (0 passed, 1 failed, 2 spec or
//! configuration error).

use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use tollgate_tests::{AwsStandIn, Moto};

struct TempSpec(PathBuf);

impl TempSpec {
    fn new(name: &str, text: &str) -> TempSpec {
        let path = std::env::temp_dir().join(format!(
            "tollgate-cli-gate-{}-{name}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write temp spec");
        TempSpec(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempSpec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Seeds moto (through a stand-in of its own, so the test's stand-in
/// records only the CLI's calls): requests, average latency and 5xx for
/// `target_group`, and an OK alarm.
async fn seed(target_group: &str, requests: f64, latency_s: f64, alarm: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, Statistic};
    let seeder = AwsStandIn::start(Some(Moto::shared())).await;
    let cw = aws_sdk_cloudwatch::Client::new(&seeder.sdk_config().await);
    let dims = [
        Dimension::builder()
            .name("LoadBalancer")
            .value("app/web/0123456789abcdef")
            .build(),
        Dimension::builder()
            .name("TargetGroup")
            .value(target_group)
            .build(),
    ];
    let at = aws_sdk_cloudwatch::primitives::DateTime::from_secs(now_epoch() - 90);
    for (name, value) in [
        ("RequestCount", requests),
        ("TargetResponseTime", latency_s),
        ("HTTPCode_Target_5XX_Count", 0.0),
    ] {
        cw.put_metric_data()
            .namespace("AWS/ApplicationELB")
            .metric_data(
                MetricDatum::builder()
                    .metric_name(name)
                    .set_dimensions(Some(dims.to_vec()))
                    .timestamp(at)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("PutMetricData through the stand-in's CBOR translation");
    }
    cw.put_metric_alarm()
        .alarm_name(alarm)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

/// A gate over the seeded metrics: two measurements one second apart, each
/// looking back five minutes (the seeded datapoint is 90 s old).
fn spec(alarm: &str, extra_queries: &str, conditions: &str) -> String {
    format!(
        r#"
checks:
  - name: health
    url: "${{TARGET}}/health"
gate:
  interval: 1s
  count: 2
  window: 5m
  min_requests: {{query: requests, at_least: 100}}
  queries:
    - id: requests
      metric: {{namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum,
               dimensions: {{LoadBalancer: "${{LOAD_BALANCER}}", TargetGroup: "${{TARGET_GROUP}}"}}}}
    - id: latency
      name: average latency
      unit: ms
      scale: 1000
      metric: {{namespace: AWS/ApplicationELB, name: TargetResponseTime, stat: Average,
               dimensions: {{LoadBalancer: "${{LOAD_BALANCER}}", TargetGroup: "${{TARGET_GROUP}}"}}}}
{extra_queries}  conditions:
{conditions}  alarms: ["{alarm}"]
"#
    )
}

const LATENCY_600: &str = "    - {query: latency, max: 600}\n";

/// Runs the CLI off the async runtime (the stand-in keeps serving).
async fn tollgate(standin: &AwsStandIn, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env = standin.lambda_env();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(&args)
            .envs(env)
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("tollgate runs")
    })
    .await
    .expect("blocking task")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tg(name: &str) -> String {
    format!("TARGET_GROUP=targetgroup/cli-{name}/1")
}

const LB: &str = "LOAD_BALANCER=app/web/0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_gate_prints_each_measurement_and_exits_0() {
    seed("targetgroup/cli-pass/1", 812.0, 0.212, "cli-pass-5xx").await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let spec = TempSpec::new("pass", &spec("cli-pass-5xx", "", LATENCY_600));
    let out = tollgate(
        &standin,
        &[
            "gate",
            "--spec",
            spec.path(),
            "--var",
            LB,
            "--var",
            &tg("pass"),
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].ends_with(
            ": metric gate of 2 measurements, one every 1s (a 2s bake); metrics and alarms found"
        ),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        "measurement 1 of 2: successful: requests 812, average latency 212 ms"
    );
    assert_eq!(
        lines[2],
        "measurement 2 of 2: successful: requests 812, average latency 212 ms"
    );
    assert!(
        lines[3].starts_with(
            "metric gate successful: 2 of 2 measurements (100%): 2 successful, 0 failed"
        ),
        "{stdout}"
    );
    // Everything went to moto through the stand-in, with the variables
    // applied: the preflight (two ListMetrics, DescribeAlarms), then per
    // measurement DescribeAlarms and GetMetricData.
    let data = standin.calls_of("GetMetricData");
    assert_eq!(data.len(), 2);
    assert!(
        data.iter().all(|c| c.forwarded && c.status == 200),
        "{data:?}"
    );
    assert_eq!(
        data[0].request["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"][1]["Value"],
        json!("targetgroup/cli-pass/1")
    );
    assert_eq!(standin.calls_of("ListMetrics").len(), 2);
    assert_eq!(standin.calls_of("DescribeAlarms").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gate_says_by_how_much_and_exits_1() {
    seed("targetgroup/cli-slow/1", 900.0, 0.812, "cli-slow-5xx").await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let spec = TempSpec::new("slow", &spec("cli-slow-5xx", "", LATENCY_600));
    let out = tollgate(
        &standin,
        &[
            "gate",
            "--spec",
            spec.path(),
            "--var",
            LB,
            "--var",
            &tg("slow"),
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(
            "measurement 1 of 2: failed: average latency 812 ms > 600 ms\n\
             metric gate failed: average latency 812 ms > 600 ms in 1 of 1 measurements\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\nwhat to do: "), "{stdout}");
    assert!(
        !stdout.contains("measurement 2 of 2"),
        "the first failure decides: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_math_scripted_on_the_standin_and_once() {
    // moto answers no metric math: CloudWatch's answer, scripted.
    seed("targetgroup/cli-math/1", 900.0, 0.1, "cli-math-5xx").await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let ts = (now_epoch() - 120) as f64;
    standin.script(
        "GetMetricData",
        vec![json!({"MetricDataResults": [
            {"Id": "requests", "Label": "requests", "Timestamps": [ts], "Values": [900.0], "StatusCode": "Complete"},
            {"Id": "latency", "Label": "latency", "Timestamps": [ts], "Values": [0.1], "StatusCode": "Complete"},
            {"Id": "errors", "Label": "errors", "Timestamps": [ts], "Values": [29.0], "StatusCode": "Complete"},
            {"Id": "error_rate", "Label": "error_rate", "Timestamps": [ts], "Values": [3.2222], "StatusCode": "Complete"}
        ], "Messages": []})],
    );
    let extra = "    - id: errors\n      missing: zero\n      metric: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum,\n               dimensions: {LoadBalancer: \"${LOAD_BALANCER}\", TargetGroup: \"${TARGET_GROUP}\"}}\n    - {id: error_rate, name: 5xx rate, unit: \"%\", expression: \"100 * FILL(errors, 0) / requests\"}\n";
    let spec = TempSpec::new(
        "math",
        &spec("cli-math-5xx", extra, "    - {query: error_rate, max: 1}\n"),
    );
    let out = tollgate(
        &standin,
        &[
            "gate",
            "--once",
            "--spec",
            spec.path(),
            "--var",
            LB,
            "--var",
            &tg("math"),
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.ends_with(
            "measurement 1 of 1: failed: 5xx rate 3.222 % > 1 %\nmetric gate: the measurement did not pass\n"
        ),
        "{stdout}"
    );
    let sent = &standin.calls_of("GetMetricData")[0].request;
    assert_eq!(
        sent["MetricDataQueries"][3]["Expression"],
        json!("100 * FILL(errors, 0) / requests")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_and_spec_errors_exit_2_saying_what_to_change() {
    seed("targetgroup/cli-bad/1", 900.0, 0.1, "cli-bad-5xx").await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;

    // A misspelt metric: CloudWatch has never seen it.
    let bad =
        spec("cli-bad-5xx", "", LATENCY_600).replace("TargetResponseTime", "TargetResponseTim");
    let spec_file = TempSpec::new("unknown", &bad);
    let out = tollgate(
        &standin,
        &[
            "gate",
            "--spec",
            spec_file.path(),
            "--var",
            LB,
            "--var",
            &tg("bad"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "tollgate: the metric gate cannot run: gate.queries[1].metric: CloudWatch has no metric AWS/ApplicationELB TargetResponseTim (with any dimensions) in the past two weeks; check the namespace and the metric name\n"
    );
    assert!(text(&out.stdout).is_empty());
    assert!(standin.calls_of("GetMetricData").is_empty());

    // An alarm that does not exist.
    let spec_file = TempSpec::new("alarm", &spec("cli-no-such-alarm", "", LATENCY_600));
    let out = tollgate(
        &standin,
        &[
            "gate",
            "--spec",
            spec_file.path(),
            "--var",
            LB,
            "--var",
            &tg("bad"),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("gate.alarms: no alarm named \"cli-no-such-alarm\" exists"),
        "{}",
        text(&out.stderr)
    );

    // A variable the spec needs, missing: nothing is sent.
    let spec_file = TempSpec::new("novar", &spec("cli-bad-5xx", "", LATENCY_600));
    let before = standin.calls().len();
    let out = tollgate(&standin, &["gate", "--spec", spec_file.path(), "--var", LB]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("tollgate: spec error in ") && stderr.contains("TARGET_GROUP"),
        "{stderr}"
    );
    assert_eq!(standin.calls().len(), before, "nothing sent");

    // A document without a gate.
    let spec_file = TempSpec::new(
        "nogate",
        "checks:\n  - name: a\n    url: https://example.com\n",
    );
    let out = tollgate(&standin, &["gate", "--spec", spec_file.path()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the document has no gate: section"));

    // A gate field the spec gets wrong.
    let spec_file = TempSpec::new("badfield", "gate:\n  count: 0\n  alarms: [a]\n");
    let out = tollgate(&standin, &["gate", "--spec", spec_file.path()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("gate.count: expected a whole number from 1 to 200, got 0"),
        "{}",
        text(&out.stderr)
    );

    // Usage.
    let out = tollgate(&standin, &["gate", "--spec", spec_file.path(), "--json"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_check_command_still_reads_a_document_that_has_a_gate() {
    // `validate` parses the checks and ignores the gate section.
    let spec_file = TempSpec::new("validate", &spec("x", "", LATENCY_600));
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "validate",
            "--spec",
            spec_file.path(),
            "--var",
            "TARGET=https://example.com",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
