//! Production › AfterAllowTraffic: the metric gate of the hook's check spec,
//! baked through the gate queue, and `--break metrics`.
//!
//! Once production traffic is on green, deploy-hook runs its smoke checks
//! again and starts the spec's `gate:` (green's 5xx rate against blue's):
//! it queues a ticket on the gate queue (moto's SQS) instead of reporting.
//! The rehearsal plays Lambda's SQS event source mapping: it receives each
//! ticket from moto once its `DelaySeconds` are over, hands it to the real
//! deploy-hook as an SQS event, and deletes it when the invocation
//! succeeded. Each ticket takes one measurement from moto's CloudWatch
//! (`GetMetricData`; the stand-in computes the metric math moto lacks) and
//! queues the next, until the verdict is reported.
//!
//! The load balancer's per-target-group metrics are what the rehearsal
//! seeds with `PutMetricData`: blue's production traffic before the shift,
//! and before each measurement green's traffic since the last one. With
//! `--break metrics` green keeps passing its smoke checks, but its 5xx rate
//! rises during the bake: the second measurement fails the gate, the hook
//! reports `Failed`, CodeDeploy moves production back to blue, and the
//! deployment's Slack message shows the failed measurement and by how much.
//!
//! A measurement's window ends at the last whole minute (CloudWatch's
//! latest minute is still filling), and the rehearsal's bake lasts seconds:
//! so the seeded datapoints are stamped 90 seconds back, inside every
//! window of the bake.

use super::*;

/// The gate: green's 5xx rate at most blue's + 0.5 points, three
/// measurements two seconds apart (a real bake would use minutes), each
/// over the last five minutes.
pub(super) const GATE: &str = r#"gate:
  interval: 2s
  count: 3
  window: 5m
  period: 5m
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
  conditions:
    - {query: error_rate, max_vs_baseline: {plus: 0.5}}
"#;

/// The hook's check spec: the smoke checks and the gate.
pub(super) fn hook_spec(checks: &str) -> String {
    format!("{checks}{GATE}")
}

/// Blue's production traffic before the shift: requests and 5xx.
const BLUE_TRAFFIC: (f64, f64) = (1800.0, 4.0);

/// Green's traffic before each measurement (requests, 5xx): healthy, and
/// with `--break metrics` (the rate rises from 0.3 % to 8 %).
fn green_traffic(scenario: Scenario, measurement: usize) -> (f64, f64) {
    let healthy = [(600.0, 2.0), (600.0, 1.0), (600.0, 2.0)];
    let broken = [(600.0, 2.0), (600.0, 48.0), (600.0, 96.0)];
    let table = if scenario == Scenario::BrokenMetrics {
        broken
    } else {
        healthy
    };
    table
        .get(measurement)
        .or(table.last())
        .copied()
        .unwrap_or_default()
}

/// What the gate runs on: the gate queue, and the CloudWatch dimensions of
/// the load balancer and of the blue and green target groups.
#[derive(Debug, Clone)]
pub(super) struct GateSetup {
    /// The gate queue's URL (deploy-hook's `TOLLGATE_GATE_QUEUE_URL`).
    pub queue_url: String,
    queue_arn: String,
    load_balancer: String,
    blue: String,
    green: String,
}

fn seed_err(step: &str) -> impl FnOnce(String) -> SeedError + '_ {
    move |detail| SeedError {
        step: step.to_owned(),
        detail,
    }
}

fn sdk_text<E: std::error::Error>(e: E) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `targetgroup/<name>/<id>` or `app/<name>/<id>`: CloudWatch's dimension
/// value of an ELBv2 ARN.
fn dimension(arn: &str, kind: &str) -> String {
    arn.find(&format!(":{kind}/"))
        .map_or(arn, |i| &arn[i + 1..])
        .trim_start_matches("loadbalancer/")
        .to_owned()
}

/// Creates the gate queue and the production target groups (each behind a
/// listener rule of the load balancer, as CodeDeploy's are), and seeds
/// blue's traffic before the release.
pub(super) async fn setup(
    moto: &Moto,
    sdk: &aws_config::SdkConfig,
    bg: &seed::BlueGreen,
    t: &mut Timeline,
) -> Result<GateSetup, RehearsalError> {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ProtocolEnum, RuleCondition, TargetTypeEnum,
    };
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("tollgate-rehearsal-deploy-hook-gates")
        .send()
        .await
        .map_err(|e| seed_err("creating the gate queue")(sdk_text(e)))?
        .queue_url
        .unwrap_or_default();
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:tollgate-rehearsal-deploy-hook-gates");

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let vpc = seed::default_vpc(moto).await?;
    let mut arns = Vec::new();
    for (color, listener, priority) in [
        ("blue", &bg.prod_listener_arn, 10),
        (
            "green",
            bg.test_listener_arn
                .as_ref()
                .unwrap_or(&bg.prod_listener_arn),
            20,
        ),
    ] {
        let name = format!("web-prod-{color}");
        let tg = elb
            .create_target_group()
            .name(&name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .target_type(TargetTypeEnum::Ip)
            .vpc_id(&vpc)
            .send()
            .await
            .map_err(|e| seed_err("creating the production target groups")(sdk_text(e)))?;
        let arn = tg
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .unwrap_or_default()
            .to_owned();
        elb.create_rule()
            .listener_arn(listener)
            .priority(priority)
            .conditions(
                RuleCondition::builder()
                    .field("path-pattern")
                    .values("/*")
                    .build(),
            )
            .actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&arn)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| seed_err("creating the listener rules")(sdk_text(e)))?;
        arns.push(arn);
    }
    let groups = elb
        .describe_target_groups()
        .set_target_group_arns(Some(arns.clone()))
        .send()
        .await
        .map_err(|e| seed_err("reading the target groups back")(sdk_text(e)))?;
    let load_balancer = groups
        .target_groups()
        .iter()
        .find_map(|g| g.load_balancer_arns().first())
        .map(|a| dimension(a, "loadbalancer"))
        .ok_or_else(|| {
            seed_err("reading the target groups back")(
                "no load balancer behind the target groups".to_owned(),
            )
        })?;
    let gate = GateSetup {
        queue_url,
        queue_arn,
        load_balancer,
        blue: dimension(&arns[0], "targetgroup"),
        green: dimension(&arns[1], "targetgroup"),
    };
    t.detail(&format!(
        "ELBv2 target groups {} and {} behind the load balancer {}; SQS gate queue tollgate-rehearsal-deploy-hook-gates",
        gate.blue, gate.green, gate.load_balancer
    ));
    put_traffic(moto, &gate.load_balancer, &gate.blue, BLUE_TRAFFIC).await?;
    t.detail(&format!(
        "CloudWatch (PutMetricData): blue's production traffic before the release, {} requests, {} 5xx",
        BLUE_TRAFFIC.0, BLUE_TRAFFIC.1
    ));
    Ok(gate)
}

/// `RequestCount` and `HTTPCode_Target_5XX_Count` of one target group, as
/// the load balancer publishes them, stamped 90 s back (see the module docs).
async fn put_traffic(
    moto: &Moto,
    load_balancer: &str,
    target_group: &str,
    (requests, errors): (f64, f64),
) -> Result<(), SeedError> {
    let at = seed::epoch_secs().saturating_sub(90);
    let datum = |name: &str, value: f64| {
        json!({"MetricName": name, "Timestamp": at, "Value": value, "Unit": "Count",
            "Dimensions": [{"Name": "LoadBalancer", "Value": load_balancer},
                           {"Name": "TargetGroup", "Value": target_group}]})
    };
    seed::moto_json(
        moto,
        "monitoring",
        "GraniteServiceVersion20100801.PutMetricData",
        &json!({"Namespace": "AWS/ApplicationELB", "MetricData": [
            datum("RequestCount", requests),
            datum("HTTPCode_Target_5XX_Count", errors)]}),
    )
    .await
    .map(|_| ())
}

impl World {
    /// AfterAllowTraffic with the metric gate: `Some` when the gate failed
    /// and the deployment was rolled back.
    pub(super) async fn after_allow_traffic(
        &mut self,
        deployment_id: &str,
    ) -> Result<Option<Verdict>, RehearsalError> {
        const HOOK: &str = "AfterAllowTraffic";
        self.script_hook_target(deployment_id, HOOK);
        self.script_in_progress(deployment_id).await?;
        let execution = self
            .start_hook(deployment_id, HOOK, "codedeploy-after-allow-traffic")
            .await?;
        let what = format!("{HOOK} of {deployment_id}");
        let records = self.new_log_records("deploy-hook");
        let handed = records
            .iter()
            .find(|r| r.event() == Some("hook handed to the metric gate; not reported yet"))
            .and_then(|r| r.text("summary"));
        let calls = self.new_calls();
        let Some(summary) = handed else {
            // The checks failed before the gate started: reported at once.
            return self
                .hook_verdict(deployment_id, HOOK, &execution, &what, &records, &calls)
                .await;
        };
        self.t.step(
            "deploy-hook",
            &format!("{HOOK}: smoke checks passed against production; the metric gate starts its bake, the hook is not reported yet"),
        );
        self.t.detail(&summary);
        self.t
            .detail(&format!("AWS calls: {}", describe_calls(&calls)));

        let sqs = aws_sdk_sqs::Client::new(&self.seed_sdk);
        let queue = self.gate.queue_url.clone();
        // Measurements taken, and traffic slices seeded: a ticket that
        // arrives early measures nothing, and green's traffic is seeded
        // once per measurement.
        let (mut taken, mut seeded) = (0, 0);
        for _ in 0..6 {
            if seeded == taken {
                let traffic = green_traffic(self.scenario, taken);
                put_traffic(
                    &self.moto,
                    &self.gate.load_balancer,
                    &self.gate.green,
                    traffic,
                )
                .await?;
                seeded += 1;
                self.t.step(
                    "cloudwatch",
                    &format!(
                        "green's traffic since the last look (PutMetricData): {} requests, {} 5xx",
                        traffic.0, traffic.1
                    ),
                );
            }
            let Some(message) = self.next_ticket(&sqs, &queue).await? else {
                return Err(RehearsalError::Invocation {
                    function: "deploy-hook",
                    what: what.clone(),
                    outcome: "no report and no next ticket on the gate queue".to_owned(),
                    log: self.log_path("deploy-hook"),
                });
            };
            self.t.step(
                "lambda",
                "SQS event source mapping: delivers the gate ticket to deploy-hook",
            );
            let outcome = self
                .deploy_hook
                .invoke(sqs_event(&message, &self.gate.queue_arn), INVOKE_DEADLINE)
                .await;
            self.expect_response("deploy-hook", &what, &outcome)?;
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| seed_err("deleting the delivered gate ticket")(sdk_text(e)))?;
            }
            let records = self.new_log_records("deploy-hook");
            for r in records
                .iter()
                .filter(|r| r.event() == Some("metric gate measurement"))
            {
                taken += 1;
                self.t.step(
                    "deploy-hook",
                    &format!(
                        "measurement {} of {}: {}",
                        r.text("measurement").unwrap_or_default(),
                        r.text("count").unwrap_or_default(),
                        r.text("outcome").unwrap_or_default()
                    ),
                );
                self.t.detail(&r.text("reason").unwrap_or_default());
            }
            let out = match &outcome {
                Invocation::Response(v) => v.clone(),
                _ => Value::Null,
            };
            let calls = self.new_calls();
            self.t
                .detail(&format!("AWS calls: {}", describe_calls(&calls)));
            match out[0]["gate"].as_str() {
                Some("baking") => {
                    self.t
                        .detail(out[0]["summary"].as_str().unwrap_or_default());
                }
                Some("reported") => {
                    return self
                        .hook_verdict(deployment_id, HOOK, &execution, &what, &records, &[])
                        .await;
                }
                _ => {
                    return Err(RehearsalError::Invocation {
                        function: "deploy-hook",
                        what,
                        outcome: format!("the gate ticket ended in {out}"),
                        log: self.log_path("deploy-hook"),
                    });
                }
            }
        }
        Err(RehearsalError::Invocation {
            function: "deploy-hook",
            what,
            outcome: "the metric gate was still baking after six tickets".to_owned(),
            log: self.log_path("deploy-hook"),
        })
    }

    /// The hook's one report, shown; `Some` (rolled back) when it failed.
    async fn hook_verdict(
        &mut self,
        deployment_id: &str,
        hook: &str,
        execution: &str,
        what: &str,
        records: &[logs::Record],
        calls: &[Call],
    ) -> Result<Option<Verdict>, RehearsalError> {
        let status = match self.standin.reports_for(execution).as_slice() {
            [Report::Hook { status, .. }] => status.clone(),
            other => {
                return Err(RehearsalError::Reports {
                    what: what.to_owned(),
                    id: execution.to_owned(),
                    count: other.len(),
                    reports: format!("{other:?}"),
                });
            }
        };
        let message = records
            .iter()
            .find(|r| r.event() == Some("hook outcome"))
            .and_then(|r| r.message_field().map(str::to_owned))
            .unwrap_or_else(|| "(no outcome in the log)".to_owned());
        let passed = status == "Succeeded";
        self.t.step(
            "deploy-hook",
            &format!(
                "{hook} {}: PutLifecycleEventHookExecutionStatus {status}",
                if passed { "passed" } else { "FAILED" }
            ),
        );
        self.t.detail(&message);
        if !calls.is_empty() {
            self.t
                .detail(&format!("AWS calls: {}", describe_calls(calls)));
        }
        if passed {
            return Ok(None);
        }
        // "AfterAllowTraffic failed for d-…: metric gate failed: …" → the cause.
        let cause = first_line(&message)
            .split_once(": ")
            .map_or(first_line(&message), |(_, rest)| rest);
        let why = format!("{hook} failed: {cause}");
        self.roll_back(deployment_id, hook, &why).await.map(Some)
    }

    /// CodeDeploy's record of the deployment while a hook runs (moto's
    /// deployments stay `Created`): `InProgress`, which the gate's tickets
    /// check before they measure.
    async fn script_in_progress(&mut self, deployment_id: &str) -> Result<(), RehearsalError> {
        let mut answer = seed::moto_json(
            &self.moto,
            "codedeploy",
            "CodeDeploy_20141006.GetDeployment",
            &json!({"deploymentId": deployment_id}),
        )
        .await?;
        answer["deploymentInfo"]["status"] = json!("InProgress");
        answer["deploymentInfo"]["computePlatform"] = json!("ECS");
        self.standin.script("GetDeployment", vec![answer]);
        Ok(())
    }

    /// The next ticket, received from moto's SQS once its delay is over.
    async fn next_ticket(
        &mut self,
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
    ) -> Result<Option<aws_sdk_sqs::types::Message>, RehearsalError> {
        let delay = self
            .standin
            .calls_of("SendMessage")
            .last()
            .and_then(|c| c.request["DelaySeconds"].as_u64())
            .unwrap_or(0);
        self.t.step(
            "sqs",
            &format!(
                "the gate ticket is delayed {delay}s (DelaySeconds): no invocation waits for it"
            ),
        );
        for _ in 0..4 {
            let got = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(1)
                .wait_time_seconds(i32::try_from(delay + 3).unwrap_or(5))
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| seed_err("receiving a gate ticket")(sdk_text(e)))?;
            if let Some(m) = got.messages.unwrap_or_default().into_iter().next() {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }
}

/// The SQS event Lambda's event source mapping delivers for `m`.
fn sqs_event(m: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: Map<String, Value> = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect()
        })
        .unwrap_or_default();
    json!({"Records": [{
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_spec_parses_with_its_gate() {
        let spec = hook_spec(&check_spec());
        let gate = tollgate_checks::gate::GateSpec::from_document(&spec)
            .expect("valid")
            .expect("a gate");
        assert_eq!(gate.count, 3);
        assert!(gate.needs_baseline());
        assert!(
            gate.bake() < Duration::from_secs(10),
            "quick enough to rehearse"
        );
    }

    #[test]
    fn dimensions_from_arns() {
        assert_eq!(
            dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-prod-green/6d0ecf831eec9f09",
                "targetgroup"
            ),
            "targetgroup/web-prod-green/6d0ecf831eec9f09"
        );
        assert_eq!(
            dimension(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web-prod-alb/50dc6c495c0c9188",
                "loadbalancer"
            ),
            "app/web-prod-alb/50dc6c495c0c9188"
        );
    }

    #[test]
    fn a_broken_green_rises_during_the_bake() {
        let rate = |s, n| {
            let (requests, errors): (f64, f64) = (0..=n)
                .map(|i| green_traffic(s, i))
                .fold((0.0, 0.0), |(r, e), (dr, de)| (r + dr, e + de));
            100.0 * errors / requests
        };
        let blue = 100.0 * BLUE_TRAFFIC.1 / BLUE_TRAFFIC.0;
        for n in 0..3 {
            assert!(rate(Scenario::Healthy, n) <= blue + 0.5, "{n}");
        }
        assert!(rate(Scenario::BrokenMetrics, 0) <= blue + 0.5);
        assert!(rate(Scenario::BrokenMetrics, 1) > blue + 0.5);
    }
}
