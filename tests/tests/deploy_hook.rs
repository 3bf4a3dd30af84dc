//! deploy-hook end to end: the real binary under the local Runtime API, real
//! SDK clients against the AWS stand-in (CodeDeploy and ELBv2 reads answered
//! by moto; `ListDeploymentTargets` / `GetDeploymentTarget`, which moto
//! lacks, scripted in the stand-in), and a local app playing the green task
//! set behind the discovered listener.
//!
//! The discovered listener address is the moto load balancer's DNS name;
//! `TOLLGATE_RESOLVE` pins it to 127.0.0.1, so the URL the function builds
//! from the listener (scheme, DNS name, port) is the one it requests.
//!
//! Every test asserts, from the stand-in's record, exactly one report per
//! CodeDeploy invocation (and none for ECS native invocations, whose answer
//! is the report).

use aws_sdk_codedeploy::types::{
    AppSpecContent, BlueGreenDeploymentConfiguration, ComputePlatform, DeploymentOption,
    DeploymentReadyAction, DeploymentReadyOption, DeploymentStyle, DeploymentType, EcsService,
    LoadBalancerInfo, RevisionLocation, RevisionLocationType, TargetGroupInfo, TargetGroupPairInfo,
    TrafficRoute,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ProtocolEnum,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_test_support::http::{Reply, Stub};
use tollgate_tests::{AwsStandIn, Fault, Invocation, LocalLambda, Moto, Report, paths};

const DEADLINE: Duration = Duration::from_secs(20);

/// A spec that asks for a healthy JSON answer.
const SPEC: &str = r#"
checks:
  - name: health
    url: "${TARGET}/health?deployment=${DEPLOYMENT_ID}"
    retry: {attempts: 2, interval: 100ms}
    expect:
      status: 200
      json:
        - {path: $.status, equals: ok}
"#;

// ---------------------------------------------------------------- local app

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Healthy,
    Unavailable,
    Slow,
}

/// The local app: the shared loopback stub answering as `mode` says and
/// counting requests.
struct App;

impl App {
    async fn start(mode: Mode) -> Stub {
        let json = |status, body: &'static str| {
            Reply::status(status)
                .header("content-type", "application/json")
                .body(body)
        };
        Stub::replying(match mode {
            Mode::Healthy => json(200, r#"{"status":"ok"}"#),
            Mode::Unavailable => json(503, r#"{"status":"starting"}"#),
            Mode::Slow => json(200, r#"{"status":"ok"}"#).after(Duration::from_secs(30)),
        })
        .await
    }
}

// ------------------------------------------------------------ AWS seeding

/// A default subnet from moto's EC2 (the SDK for EC2 is not a dependency:
/// one query call is enough).
async fn default_subnet() -> String {
    tag_of_default_subnet("subnetId").await
}

/// A field of moto's first default subnet (`subnetId`, `vpcId`).
async fn tag_of_default_subnet(tag: &str) -> String {
    let moto = Moto::shared();
    let body = "Action=DescribeSubnets&Version=2016-11-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIATESTSEED/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        moto.addr(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(moto.addr())
        .await
        .expect("connect moto");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send DescribeSubnets");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read DescribeSubnets");
    let open = format!("<{tag}>");
    let start = answer.find(&open).expect("a default subnet") + open.len();
    let end = answer[start..].find('<').expect("closing tag") + start;
    answer[start..end].to_owned()
}

struct Seeded {
    deployment_id: String,
    dns: String,
}

/// A load balancer with a production listener (and a test listener when
/// `test_port` is given), a CodeDeploy ECS application and blue/green
/// group using them, and a deployment of it.
async fn seed(standin: &AwsStandIn, name: &str, test_port: Option<u16>, prod_port: u16) -> Seeded {
    let sdk = standin.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let lb = elb
        .create_load_balancer()
        .name(name)
        .subnets(default_subnet().await)
        .send()
        .await
        .expect("CreateLoadBalancer");
    let lb = lb.load_balancers()[0].clone();
    let lb_arn = lb.load_balancer_arn().expect("arn").to_owned();
    let listener = |port: u16| {
        elb.create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(port))
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::FixedResponse)
                    .fixed_response_config(
                        FixedResponseActionConfig::builder()
                            .status_code("404")
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    let prod_arn = listener(prod_port)
        .await
        .expect("prod listener")
        .listeners()[0]
        .listener_arn()
        .expect("arn")
        .to_owned();
    let mut route = TargetGroupPairInfo::builder()
        .target_groups(
            TargetGroupInfo::builder()
                .name(format!("{name}-blue"))
                .build(),
        )
        .target_groups(
            TargetGroupInfo::builder()
                .name(format!("{name}-green"))
                .build(),
        )
        .prod_traffic_route(TrafficRoute::builder().listener_arns(prod_arn).build());
    if let Some(port) = test_port {
        let test_arn = listener(port).await.expect("test listener").listeners()[0]
            .listener_arn()
            .expect("arn")
            .to_owned();
        route = route.test_traffic_route(TrafficRoute::builder().listener_arns(test_arn).build());
    }

    let cd = aws_sdk_codedeploy::Client::new(&sdk);
    let app = format!("{name}-app");
    let group = format!("{name}-dg");
    cd.create_application()
        .application_name(&app)
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .expect("CreateApplication");
    cd.create_deployment_group()
        .application_name(&app)
        .deployment_group_name(&group)
        .service_role_arn("arn:aws:iam::111111111111:role/ecs-codedeploy")
        .deployment_config_name("CodeDeployDefault.ECSAllAtOnce")
        .ecs_services(
            EcsService::builder()
                .cluster_name("web-cluster")
                .service_name("web")
                .build(),
        )
        .deployment_style(
            DeploymentStyle::builder()
                .deployment_type(DeploymentType::BlueGreen)
                .deployment_option(DeploymentOption::WithTrafficControl)
                .build(),
        )
        .blue_green_deployment_configuration(
            BlueGreenDeploymentConfiguration::builder()
                .deployment_ready_option(
                    DeploymentReadyOption::builder()
                        .action_on_timeout(DeploymentReadyAction::ContinueDeployment)
                        .build(),
                )
                .build(),
        )
        .load_balancer_info(
            LoadBalancerInfo::builder()
                .target_group_pair_info_list(route.build())
                .build(),
        )
        .send()
        .await
        .expect("CreateDeploymentGroup");
    let deployment_id = cd
        .create_deployment()
        .application_name(&app)
        .deployment_group_name(&group)
        .revision(
            RevisionLocation::builder()
                .revision_type(RevisionLocationType::AppSpecContent)
                .app_spec_content(
                    AppSpecContent::builder()
                        .content(r#"{"version": 0.0, "Resources": []}"#)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateDeployment")
        .deployment_id
        .expect("deployment id");
    Seeded {
        deployment_id,
        dns: lb.dns_name().expect("dns").to_owned(),
    }
}

/// Scripts the ECS target CodeDeploy would show: `hook` in progress, and a
/// green task set with the given counts.
fn script_target(standin: &AwsStandIn, deployment_id: &str, hook: &str, green: (i64, i64, i64)) {
    script_target_groups(
        standin,
        deployment_id,
        hook,
        green,
        ("web-blue", "web-green"),
    );
}

/// [`script_target`] with the blue and green task sets' target groups named.
fn script_target_groups(
    standin: &AwsStandIn,
    deployment_id: &str,
    hook: &str,
    green: (i64, i64, i64),
    (blue_group, green_group): (&str, &str),
) {
    let (desired, running, pending) = green;
    let order = [
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "AllowTestTraffic",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AllowTraffic",
        "AfterAllowTraffic",
    ];
    let at = order.iter().position(|h| *h == hook).expect("hook name");
    let events: Vec<Value> = order
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let status = match i.cmp(&at) {
                std::cmp::Ordering::Less => "Succeeded",
                std::cmp::Ordering::Equal => "InProgress",
                std::cmp::Ordering::Greater => "Pending",
            };
            json!({"lifecycleEventName": name, "status": status})
        })
        .collect();
    standin.script(
        "ListDeploymentTargets",
        vec![json!({"targetIds": ["web-cluster:web"]})],
    );
    standin.script(
        "GetDeploymentTarget",
        vec![json!({"deploymentTarget": {
            "deploymentTargetType": "ECSTarget",
            "ecsTarget": {
                "deploymentId": deployment_id,
                "targetId": "web-cluster:web",
                "targetArn": "arn:aws:ecs:us-east-1:111111111111:service/web-cluster/web",
                "lastUpdatedAt": 1_753_870_443.0,
                "status": "InProgress",
                "lifecycleEvents": events,
                "taskSetsInfo": [
                    {"identifer": "ecs-svc/1111111111111111111", "desiredCount": 2, "pendingCount": 0,
                     "runningCount": 2, "status": "PRIMARY", "trafficWeight": 100.0,
                     "targetGroup": {"name": blue_group}, "taskSetLabel": "Blue"},
                    {"identifer": "ecs-svc/2222222222222222222", "desiredCount": desired,
                     "pendingCount": pending, "runningCount": running, "status": "ACTIVE",
                     "trafficWeight": 0.0, "targetGroup": {"name": green_group}, "taskSetLabel": "Green"}
                ]
            }
        }})],
    );
}

/// The sample event for `hook_file` with this deployment's id and a fresh
/// execution id, registered with the stand-in.
fn hook_event(standin: &AwsStandIn, hook_file: &str, deployment_id: &str) -> (Value, String) {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let mut ev = paths::event("deploy-hook", hook_file);
    ev["DeploymentId"] = json!(deployment_id);
    let execution = format!(
        "{}-{deployment_id}-{}",
        ev["LifecycleEventHookExecutionId"].as_str().expect("id"),
        SERIAL.fetch_add(1, Ordering::SeqCst)
    );
    ev["LifecycleEventHookExecutionId"] = json!(execution);
    standin.register_hook(deployment_id, &execution);
    (ev, execution)
}

async fn function(standin: &AwsStandIn, extra: &[(&str, String)]) -> LocalLambda {
    let mut env = standin.lambda_env();
    env.push(("TOLLGATE_REPORT_RESERVE_MS".into(), "1500".into()));
    env.push(("TOLLGATE_REPORT_ATTEMPT_TIMEOUT_MS".into(), "400".into()));
    env.push(("RUST_LOG".into(), "info".into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    if !env
        .iter()
        .any(|(k, _)| k.starts_with("TOLLGATE_CHECK_SPEC"))
    {
        env.push(("TOLLGATE_CHECK_SPEC".into(), SPEC.to_owned()));
    }
    LocalLambda::spawn(&paths::function_binary("deploy-hook"), &env).await
}

/// The one accepted report for `execution`: its status.
fn only_report(standin: &AwsStandIn, execution: &str) -> String {
    let reports = standin.reports_for(execution);
    assert_eq!(
        reports.len(),
        1,
        "exactly one accepted report expected, got {reports:#?}"
    );
    assert_eq!(standin.reports().len(), 1, "no other reports expected");
    match &reports[0] {
        Report::Hook { status, .. } => status.clone(),
        other => panic!("expected a hook report, got {other:?}"),
    }
}

fn pin(seeded: &Seeded) -> (&'static str, String) {
    ("TOLLGATE_RESOLVE", format!("{}=127.0.0.1", seeded.dns))
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_healthy_green_succeeds_through_discovery() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "healthy", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "AfterAllowTestTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-after-allow-test-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(&standin, &[(pin(&seeded).0, pin(&seeded).1)]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Succeeded");
    assert!(app.hits() >= 1);
    for op in [
        "GetDeployment",
        "ListDeploymentTargets",
        "GetDeploymentTarget",
        "GetDeploymentGroup",
        "DescribeListeners",
        "DescribeLoadBalancers",
    ] {
        assert_eq!(standin.calls_of(op).len(), 1, "{op} once");
    }
    let logs = f.logs();
    assert!(
        logs.contains(&format!(
            "AfterAllowTestTraffic passed for {} against http://127.0.0.1:{}: 1/1 passed",
            seeded.deployment_id,
            app.addr().port()
        )),
        "{logs}"
    );
    assert!(
        logs.contains("green ecs-svc/2222222222222222222 2/2 running"),
        "{logs}"
    );
}

/// Issue 21, warm path: one warm process serving two hooks of the same
/// deployment lists its targets and reads its load balancer once, and reads
/// everything that can change (the deployment's status, the target's hooks
/// and green's tasks, the group, the listener) for each hook.
#[tokio::test]
async fn a_warm_process_reuses_only_what_a_deployment_cannot_change() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "warmreuse", Some(app.addr().port()), 1).await;
    let mut f = function(&standin, &[(pin(&seeded).0, pin(&seeded).1)]).await;

    let mut executions = Vec::new();
    for (hook, fixture) in [
        (
            "AfterAllowTestTraffic",
            "codedeploy-after-allow-test-traffic",
        ),
        ("BeforeAllowTraffic", "codedeploy-before-allow-traffic"),
    ] {
        script_target(&standin, &seeded.deployment_id, hook, (2, 2, 0));
        let (ev, execution) = hook_event(&standin, fixture, &seeded.deployment_id);
        let out = f.invoke(ev, DEADLINE).await;
        assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
        executions.push(execution);
    }

    for execution in &executions {
        let reports = standin.reports_for(execution);
        assert_eq!(reports.len(), 1, "{reports:#?}");
        assert!(
            matches!(&reports[0], Report::Hook { status, .. } if status == "Succeeded"),
            "{reports:#?}"
        );
    }
    for (op, times) in [
        ("GetDeployment", 2),
        ("ListDeploymentTargets", 1),
        ("GetDeploymentTarget", 2),
        ("GetDeploymentGroup", 2),
        ("DescribeListeners", 2),
        ("DescribeLoadBalancers", 1),
    ] {
        assert_eq!(standin.calls_of(op).len(), times, "{op}");
    }
    let logs = f.logs();
    assert!(
        logs.contains(&format!(
            "BeforeAllowTraffic passed for {}",
            seeded.deployment_id
        )),
        "the second hook ran as BeforeAllowTraffic, read fresh from the target: {logs}"
    );
}

#[tokio::test]
async fn after_allow_traffic_checks_the_production_listener() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    // No test listener at all: AfterAllowTraffic does not need one.
    let seeded = seed(&standin, "prodroute", None, app.addr().port()).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "AfterAllowTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-after-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(&standin, &[(pin(&seeded).0, pin(&seeded).1)]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Succeeded");
    assert!(app.hits() >= 1);
}

#[tokio::test]
async fn a_green_answering_503_fails_with_the_expectation() {
    let app = App::start(Mode::Unavailable).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "unavailable", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "BeforeAllowTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(&standin, &[(pin(&seeded).0, pin(&seeded).1)]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "failed");
    assert_eq!(only_report(&standin, &execution), "Failed");
    assert_eq!(app.hits(), 2, "both attempts of the retry were made");
    let logs = f.logs();
    assert!(logs.contains("BeforeAllowTraffic failed for"), "{logs}");
    assert!(logs.contains("status 503 (expected 200)"), "{logs}");
    assert!(
        logs.contains(r#"json $.status: expected equals "ok", got "starting""#),
        "every failed expectation is listed: {logs}"
    );
}

/// The prefix the record tests write under.
const FAILURE_PREFIX: &str = "/tollgate/deploy-hook-test/hook-failures";

#[tokio::test]
async fn a_failed_hook_leaves_its_failed_checks_in_ssm_before_reporting() {
    let app = App::start(Mode::Unavailable).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "recorded", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "AfterAllowTestTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-after-allow-test-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(
        &standin,
        &[
            (pin(&seeded).0, pin(&seeded).1),
            (
                "TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX",
                FAILURE_PREFIX.to_owned(),
            ),
        ],
    )
    .await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Failed");
    // Written once, and before the report.
    let ops: Vec<String> = standin
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|o| o == "PutParameter" || o == "PutLifecycleEventHookExecutionStatus")
        .collect();
    assert_eq!(
        ops,
        ["PutParameter", "PutLifecycleEventHookExecutionStatus"],
        "{}",
        f.logs()
    );
    let name = format!("{FAILURE_PREFIX}/recorded-app/recorded-dg");
    let put = &standin.calls_of("PutParameter")[0];
    assert_eq!(put.status, 200, "moto stored it: {put:?}");
    assert_eq!(put.request["Name"], name);
    assert_eq!(put.request["Type"], "String");
    assert_eq!(put.request["Overwrite"], true);

    // What the notifier will read back.
    let sdk = standin.sdk_config().await;
    let stored = aws_sdk_ssm::Client::new(&sdk)
        .get_parameter()
        .name(&name)
        .send()
        .await
        .expect("GetParameter");
    let value = stored
        .parameter()
        .and_then(|p| p.value())
        .expect("a value")
        .to_owned();
    assert!(value.len() <= 4096);
    let record: Value = serde_json::from_str(&value).expect("JSON record");
    assert_eq!(record["deploymentId"], seeded.deployment_id.as_str());
    assert_eq!(record["hook"], "AfterAllowTestTraffic");
    let summary = record["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with(&format!(
            "AfterAllowTestTraffic failed for {}",
            seeded.deployment_id
        )),
        "{summary}"
    );
    let lines: Vec<&str> = record["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines.contains(&"  - status: expected 200, got 503"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#"json $.status: expected equals "ok", got "starting""#)),
        "{lines:?}"
    );
    assert!(f.logs().contains("failed checks recorded for the notifier"));
}

#[tokio::test]
async fn a_denied_record_write_still_reports_failed_once() {
    let app = App::start(Mode::Unavailable).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "recdenied", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "BeforeAllowTraffic",
        (2, 2, 0),
    );
    standin.inject("PutParameter", Fault::AccessDenied, None);
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(
        &standin,
        &[
            (pin(&seeded).0, pin(&seeded).1),
            (
                "TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX",
                FAILURE_PREFIX.to_owned(),
            ),
        ],
    )
    .await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Failed");
    assert_eq!(
        standin.calls_of("PutParameter").len(),
        1,
        "denied is not retried"
    );
    // Judged where the answer lands, against the deadline it was given
    // (no wall-clock bound of the test's own: it would flake on a busy host).
    assert_eq!(f.late_answers(), Vec::new(), "answered after the deadline");
    let logs = f.logs();
    assert!(
        logs.contains("could not record the failed checks for the notifier"),
        "{logs}"
    );
    assert!(logs.contains("grant ssm:PutParameter"), "{logs}");
}

#[tokio::test]
async fn a_slow_record_write_is_abandoned_after_two_seconds() {
    let app = App::start(Mode::Unavailable).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "recslow", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "BeforeAllowTraffic",
        (2, 2, 0),
    );
    standin.inject("PutParameter", Fault::Slow(Duration::from_secs(30)), None);
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(
        &standin,
        &[
            (pin(&seeded).0, pin(&seeded).1),
            (
                "TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX",
                FAILURE_PREFIX.to_owned(),
            ),
        ],
    )
    .await;

    let started = Instant::now();
    let out = f.invoke(ev, DEADLINE).await;
    let took = started.elapsed();

    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Failed");
    // The write waited out its 2 s bound (a lower bound cannot flake on a
    // slow host); the answer still came before the deadline, judged where
    // it landed.
    assert!(
        took >= Duration::from_secs(2) && took < DEADLINE / 2,
        "the write waits its 2 s bound, and only that: {took:?}"
    );
    assert_eq!(f.late_answers(), Vec::new(), "answered after the deadline");
    assert!(f.logs().contains("did not answer within"), "{}", f.logs());
}

#[tokio::test]
async fn without_a_prefix_nothing_is_written() {
    let app = App::start(Mode::Unavailable).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "recoff", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "BeforeAllowTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(&standin, &[(pin(&seeded).0, pin(&seeded).1)]).await;
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Failed");
    assert!(standin.calls_of("PutParameter").is_empty());
}

#[tokio::test]
async fn a_green_with_pending_tasks_fails_with_the_counts() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "pending", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "AfterAllowTestTraffic",
        (3, 1, 2),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-after-allow-test-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(&standin, &[(pin(&seeded).0, pin(&seeded).1)]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "failed");
    assert_eq!(only_report(&standin, &execution), "Failed");
    assert_eq!(
        app.hits(),
        0,
        "nothing is sent to a green that is not ready"
    );
    let logs = f.logs();
    assert!(
        logs.contains("green task set ecs-svc/2222222222222222222 of web-cluster:web is not ready: running 1 of desired 3, pending 2"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_group_without_a_test_listener_fails_naming_the_fix() {
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "notest", None, 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "BeforeAllowTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(&standin, &[]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "failed");
    assert_eq!(only_report(&standin, &execution), "Failed");
    let logs = f.logs();
    assert!(
        logs.contains("deployment group 'notest-dg' has no test traffic route; set TARGET_URL or add a test listener"),
        "{logs}"
    );
    assert!(standin.calls_of("DescribeListeners").is_empty());
}

#[tokio::test]
async fn before_install_with_target_url_skips_discovery_and_green() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "early", None, 1).await;
    script_target(&standin, &seeded.deployment_id, "BeforeInstall", (0, 0, 0));
    let (ev, execution) = hook_event(&standin, "codedeploy-before-install", &seeded.deployment_id);
    let target = app.url("");
    let mut f = function(&standin, &[("TARGET_URL", target)]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Succeeded");
    assert!(standin.calls_of("GetDeploymentGroup").is_empty());
    assert!(
        f.logs()
            .contains("no green task set to verify at BeforeInstall")
    );
}

#[tokio::test]
async fn after_install_without_target_url_fails_naming_the_fix() {
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "afterinstall", Some(1), 2).await;
    script_target(&standin, &seeded.deployment_id, "AfterInstall", (2, 2, 0));
    let (ev, execution) = hook_event(&standin, "codedeploy-after-install", &seeded.deployment_id);
    let mut f = function(&standin, &[]).await;

    let out = f.invoke(ev, DEADLINE).await;

    assert_eq!(out.response()["report"], "failed");
    assert_eq!(only_report(&standin, &execution), "Failed");
    assert!(
        f.logs()
            .contains("AfterInstall runs before any listener routes to the green task set"),
        "{}",
        f.logs()
    );
}

/// Issue 14.1: a configuration error must not leave a deployment waiting
/// out the hook's hour. The function starts anyway and fails every hook at
/// once, with the configuration error as the reason.
#[tokio::test]
async fn an_invalid_spec_fails_every_hook_at_once_with_the_spec_error() {
    let standin = AwsStandIn::start(None).await;
    let spec =
        "checks:\n  - name: health\n    url: \"${TARGET}/health\"\n    expect: {status: 2xx}\n";
    let mut f = function(&standin, &[("TOLLGATE_CHECK_SPEC", spec.to_owned())]).await;
    assert!(
        f.wait_init(Duration::from_secs(20)).await.is_some(),
        "a configuration error must not fail init: {:?}\n{}",
        f.init_error(),
        f.logs()
    );

    // A CodeDeploy hook: reported Failed, once, without looking anything up.
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-after-allow-test-traffic",
        "d-CONFIGERR",
    );
    let started = Instant::now();
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Failed");
    assert!(
        started.elapsed() < DEADLINE / 2,
        "reported at once, not at the deadline: {:?}",
        started.elapsed()
    );
    let calls = standin.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.operation == "PutLifecycleEventHookExecutionStatus"),
        "nothing but the report: {calls:?}"
    );

    // An ECS native hook: answered FAILED with the reason.
    let out = f
        .invoke(
            paths::event("deploy-hook", "ecs-post-test-traffic-shift"),
            DEADLINE,
        )
        .await;
    let out = out.response();
    assert_eq!(out["hookStatus"], "FAILED");
    let reason = out["hookDetails"]["tollgate"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.starts_with(
            "deploy-hook is misconfigured (InvalidCheckSpec): the check spec from \
             TOLLGATE_CHECK_SPEC is invalid: checks[0].expect.status"
        ),
        "{reason}"
    );

    // Visible as an error, and counted (the template's metric filter).
    let logs = f.logs();
    let alerts = logs
        .lines()
        .filter(|l| {
            l.contains("alert=\"ConfigurationError\"") || l.contains("alert=ConfigurationError")
        })
        .count();
    assert!(alerts >= 3, "one alert at init and one per event:\n{logs}");
    assert_eq!(
        standin.reports().len(),
        1,
        "the ECS hook answers, it does not report"
    );
}

/// The spec's SSM parameter cannot be read (denied, missing, a KMS denial):
/// the same fail-fast path, naming the parameter and the permission.
#[tokio::test]
async fn an_unreadable_spec_parameter_fails_every_hook_naming_the_permission() {
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    standin.inject("GetParameter", Fault::AccessDenied, None);
    let mut f = function(
        &standin,
        &[(
            "TOLLGATE_CHECK_SPEC_PARAMETER",
            "/tollgate/deploy-hook-test/denied".to_owned(),
        )],
    )
    .await;
    assert!(
        f.wait_init(Duration::from_secs(20)).await.is_some(),
        "{:?}\n{}",
        f.init_error(),
        f.logs()
    );

    let ev = paths::event("deploy-hook", "ecs-pre-scale-up");
    let out = f.invoke(ev, DEADLINE).await;
    let out = out.response();
    assert_eq!(out["hookStatus"], "FAILED", "{}", f.logs());
    let reason = out["hookDetails"]["tollgate"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("deploy-hook is misconfigured (SpecUnavailable)"),
        "{reason}"
    );
    assert!(
        reason.contains("/tollgate/deploy-hook-test/denied"),
        "{reason}"
    );
    assert!(reason.contains("ssm:GetParameter"), "{reason}");
}

#[tokio::test]
async fn a_spec_from_ssm_is_read_once_at_init() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let sdk = standin.sdk_config().await;
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/tollgate/deploy-hook-test/checks")
        .value(SPEC)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
    let target = app.url("");
    let mut f = function(
        &standin,
        &[
            (
                "TOLLGATE_CHECK_SPEC_PARAMETER",
                "/tollgate/deploy-hook-test/checks".to_owned(),
            ),
            ("TARGET_URL", target),
            ("TOLLGATE_HOOK", "BeforeAllowTraffic".to_owned()),
            ("TOLLGATE_VERIFY_GREEN", "false".to_owned()),
        ],
    )
    .await;
    let seeded = seed(&standin, "ssmspec", None, 1).await;

    for _ in 0..2 {
        let (ev, execution) = hook_event(
            &standin,
            "codedeploy-before-allow-traffic",
            &seeded.deployment_id,
        );
        let out = f.invoke(ev, DEADLINE).await;
        assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
        assert_eq!(standin.reports_for(&execution).len(), 1);
    }
    assert_eq!(standin.reports().len(), 2, "one report per invocation");
    assert_eq!(
        standin.calls_of("GetParameter").len(),
        1,
        "read at init only"
    );
    assert_eq!(app.hits(), 2);
}

#[tokio::test]
async fn an_ecs_native_soak_goes_in_progress_then_succeeds_carrying_hook_details() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(None).await;
    let mut f = function(
        &standin,
        &[
            ("TOLLGATE_SOAK_ROUNDS", "2".to_owned()),
            ("TOLLGATE_SOAK_INTERVAL_S", "1".to_owned()),
            (
                "TOLLGATE_CHECK_SPEC",
                "checks: [{name: health, url: '${TARGET}/health?stage=${LIFECYCLE_STAGE}', expect: {status: 200}}]"
                    .to_owned(),
            ),
        ],
    )
    .await;
    let mut event = paths::event("deploy-hook", "ecs-post-test-traffic-shift");
    // The service's hook configuration names the test listener's address.
    event["hookDetails"] = json!({"targetUrl": app.url("")});

    let first = f.invoke(event.clone(), DEADLINE).await;
    let first = first.response().clone();
    assert_eq!(first["hookStatus"], "IN_PROGRESS", "{}", f.logs());
    assert_eq!(first["callBackDelay"], 1);
    assert_eq!(first["hookDetails"]["tollgate"]["round"], 1);
    assert_eq!(first["hookDetails"]["tollgate"]["rounds"], 2);
    assert_eq!(first["hookDetails"]["tollgate"]["passedRounds"], 1);

    // As ECS does: wait callBackDelay, merge the returned hookDetails into
    // the configured ones, invoke again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut details = event["hookDetails"].as_object().cloned().expect("object");
    for (k, v) in first["hookDetails"].as_object().expect("details") {
        details.insert(k.clone(), v.clone());
    }
    event["hookDetails"] = Value::Object(details);
    let second = f.invoke(event, DEADLINE).await;
    let second = second.response().clone();
    assert_eq!(second["hookStatus"], "SUCCEEDED", "{}", f.logs());
    assert_eq!(second["hookDetails"]["tollgate"]["round"], 2);
    assert_eq!(second["hookDetails"]["tollgate"]["passedRounds"], 2);
    assert_eq!(
        second["hookDetails"]["tollgate"]["startedAt"],
        first["hookDetails"]["tollgate"]["startedAt"]
    );
    assert_eq!(app.hits(), 2, "one round of checks per invocation");
    assert!(
        standin.reports().is_empty(),
        "ECS hooks answer; they do not report"
    );
}

#[tokio::test]
async fn a_bad_ecs_payload_is_failed_with_a_reason_not_a_runtime_error() {
    let standin = AwsStandIn::start(None).await;
    let mut f = function(&standin, &[("TARGET_URL", "http://127.0.0.1:9".to_owned())]).await;
    let mut event = paths::event("deploy-hook", "ecs-post-test-traffic-shift");
    event["executionDetails"] = json!("not an object");

    let out = f.invoke(event, DEADLINE).await;

    let out = out.response();
    assert_eq!(out["hookStatus"], "FAILED");
    let reason = out["hookDetails"]["tollgate"]["reason"]
        .as_str()
        .expect("reason");
    assert!(reason.contains("cannot be read"), "{reason}");
    assert!(standin.reports().is_empty());
}

#[tokio::test]
async fn an_unrecognised_payload_fails_naming_the_accepted_shapes() {
    let standin = AwsStandIn::start(None).await;
    let mut f = function(&standin, &[]).await;

    let out = f
        .invoke(
            paths::event("pipeline-action", "job-with-credentials"),
            DEADLINE,
        )
        .await;

    match out {
        Invocation::Error {
            error_type,
            error_message,
        } => {
            assert_eq!(error_type, "UnrecognisedEvent");
            assert!(
                error_message.contains("CodePipeline.job"),
                "{error_message}"
            );
            assert!(
                error_message.contains("LifecycleEventHookExecutionId"),
                "{error_message}"
            );
            assert!(
                error_message.contains("executionDetails"),
                "{error_message}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(standin.reports().is_empty());
}

#[tokio::test]
async fn a_deadline_shorter_than_the_checks_reports_one_failure_in_time() {
    let app = App::start(Mode::Slow).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "slow", Some(app.addr().port()), 1).await;
    script_target(
        &standin,
        &seeded.deployment_id,
        "BeforeAllowTraffic",
        (2, 2, 0),
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &seeded.deployment_id,
    );
    let spec =
        "checks: [{name: health, url: '${TARGET}/health', timeout: 25s, expect: {status: 200}}]";
    let mut f = function(
        &standin,
        &[
            (pin(&seeded).0, pin(&seeded).1),
            ("TOLLGATE_CHECK_SPEC", spec.to_owned()),
        ],
    )
    .await;
    f.wait_init(Duration::from_secs(10)).await;

    let deadline = Duration::from_secs(5);
    let started = Instant::now();
    let out = f.invoke(ev, deadline).await;
    let took = started.elapsed();

    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    // Judged where the answer lands, against the deadline it was given.
    assert_eq!(
        f.late_answers(),
        Vec::new(),
        "answered after the deadline ({took:?} by the test's clock)"
    );
    assert_eq!(only_report(&standin, &execution), "Failed");
    let logs = f.logs();
    assert!(
        logs.contains("NOT FINISHED health: deadline reached during attempt 1"),
        "{logs}"
    );
}

// ------------------------------------------- one function, many services

/// Puts a String parameter into moto.
async fn put_parameter(standin: &AwsStandIn, name: &str, value: &str) {
    let sdk = standin.sdk_config().await;
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
}

/// One deploy-hook, three deployment groups: two with their own spec under
/// `TOLLGATE_CHECK_SPEC_PREFIX` (different checks, different outcomes),
/// one without (the default spec). Each spec is read once and kept.
#[tokio::test]
async fn one_function_serves_two_services_each_with_its_own_spec() {
    let app = Stub::start(|req: tollgate_test_support::http::Request| async move {
        match req.path.as_str() {
            "/alpha" => Reply::status(200).body("alpha ok"),
            "/beta" => Reply::status(200).body("beta is degraded"),
            _ => Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"status":"ok"}"#),
        }
    })
    .await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let prefix = "/tollgate/deploy-hook-test/per-target";
    let alpha = seed(&standin, "svcalpha", None, 1).await;
    let beta = seed(&standin, "svcbeta", None, 1).await;
    let other = seed(&standin, "svcother", None, 1).await;
    put_parameter(
        &standin,
        &format!("{prefix}/codedeploy/svcalpha-app/svcalpha-dg"),
        "checks: [{name: alpha-home, url: '${TARGET}/alpha', expect: {status: 200, body: {contains: 'alpha ok'}}}]",
    )
    .await;
    put_parameter(
        &standin,
        &format!("{prefix}/codedeploy/svcbeta-app/svcbeta-dg"),
        "checks: [{name: beta-home, url: '${TARGET}/beta?g=${DEPLOYMENT_GROUP_NAME}', expect: {status: 200, body: {not_contains: degraded}}}]",
    )
    .await;
    let mut f = function(
        &standin,
        &[
            ("TOLLGATE_CHECK_SPEC_PREFIX", prefix.to_owned()),
            // The default, for the group without its own.
            ("TOLLGATE_CHECK_SPEC", SPEC.to_owned()),
            ("TARGET_URL", app.url("")),
            ("TOLLGATE_HOOK", "BeforeAllowTraffic".to_owned()),
            ("TOLLGATE_VERIFY_GREEN", "false".to_owned()),
        ],
    )
    .await;

    let outcome = |seeded: &Seeded| {
        let (ev, execution) = hook_event(
            &standin,
            "codedeploy-before-allow-traffic",
            &seeded.deployment_id,
        );
        (ev, execution)
    };
    let (ev, a1) = outcome(&alpha);
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
    let (ev, b1) = outcome(&beta);
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    let (ev, o1) = outcome(&other);
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());
    let (ev, a2) = outcome(&alpha);
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "succeeded", "{}", f.logs());

    for execution in [&a1, &b1, &o1, &a2] {
        assert_eq!(standin.reports_for(execution).len(), 1, "{execution}");
    }
    let paths: Vec<String> = app.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/alpha", "/beta", "/health", "/alpha"],
        "each its own spec"
    );
    let beta_request = &app.requests()[1];
    assert_eq!(beta_request.query, "g=svcbeta-dg");
    let logs = f.logs();
    assert!(
        logs.contains("beta-home"),
        "the failure names beta's own check: {logs}"
    );
    let reads = standin.calls_of("GetParameter");
    assert_eq!(
        reads.len(),
        3,
        "alpha, beta and the missing one read once each: {reads:?}"
    );
}

/// Without a default spec, a target without its own is reported Failed at
/// once, naming the parameter to create; a bad spec likewise names its
/// parameter and field, never quoting the document.
#[tokio::test]
async fn a_missing_or_bad_per_target_spec_fails_the_hook_at_once_naming_the_parameter() {
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let prefix = "/tollgate/deploy-hook-test/strict";
    let missing = seed(&standin, "svcmissing", None, 1).await;
    let bad = seed(&standin, "svcbad", None, 1).await;
    put_parameter(
        &standin,
        &format!("{prefix}/codedeploy/svcbad-app/svcbad-dg"),
        "checks: [{name: h, url: '${TARGET}/', headers: {Authorization: 'Bearer tok-DOC-7731'}, expect: {status: 2xx}}]",
    )
    .await;
    let mut f = function(
        &standin,
        &[
            ("TOLLGATE_CHECK_SPEC_PREFIX", prefix.to_owned()),
            ("TARGET_URL", "http://127.0.0.1:9".to_owned()),
            ("TOLLGATE_HOOK", "BeforeAllowTraffic".to_owned()),
            ("TOLLGATE_VERIFY_GREEN", "false".to_owned()),
        ],
    )
    .await;
    assert!(
        f.wait_init(Duration::from_secs(20)).await.is_some(),
        "init needs no spec: {:?}",
        f.init_error()
    );
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &missing.deployment_id,
    );
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(standin.reports_for(&execution).len(), 1);
    let logs = f.logs();
    assert!(
        logs.contains(&format!(
            "SSM parameter \\\"{prefix}/codedeploy/svcmissing-app/svcmissing-dg\\\" does not exist"
        )) || logs.contains(&format!(
            "SSM parameter \"{prefix}/codedeploy/svcmissing-app/svcmissing-dg\" does not exist"
        )),
        "{logs}"
    );

    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-before-allow-traffic",
        &bad.deployment_id,
    );
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "failed", "{}", f.logs());
    assert_eq!(standin.reports_for(&execution).len(), 1);
    let logs = f.logs();
    assert!(logs.contains("svcbad-dg"), "{logs}");
    assert!(logs.contains("checks[0].expect.status"), "{logs}");
    assert!(
        !logs.contains("tok-DOC-7731"),
        "the document is never quoted"
    );
}

/// A spec's `variables:` reads its token from Secrets Manager once; the
/// token reaches the target, and never the hook's answer, its reason or a
/// log line, even when the target echoes it back in a failing body.
#[tokio::test]
async fn a_secret_variable_is_sent_but_never_reported_or_logged() {
    const TOKEN: &str = "tok-IT-Secret-9d41f0";
    let app = Stub::start(|req: tollgate_test_support::http::Request| async move {
        let auth = req.header("x-echo").unwrap_or("none").to_owned();
        Reply::status(401)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"error": "rejected {auth}", "hint": "check {auth}"}}"#
            ))
    })
    .await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let sdk = standin.sdk_config().await;
    let secret_arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("tollgate/deploy-hook-test/api")
        .secret_string(format!(r#"{{"token": "{TOKEN}"}}"#))
        .send()
        .await
        .expect("CreateSecret")
        .arn
        .expect("arn");
    let prefix = "/tollgate/deploy-hook-test/secret";
    put_parameter(
        &standin,
        &format!("{prefix}/ecs/web-cluster/web"),
        &format!(
            "checks: [{{name: api, url: '${{TARGET}}/api', headers: {{X-Echo: '${{API_TOKEN}}'}}, \
             expect: {{status: 200, body: {{contains: '${{API_TOKEN}}'}}}}}}]\n\
             variables: {{API_TOKEN: 'secretsmanager:{secret_arn}#token'}}"
        ),
    )
    .await;
    let mut f = function(
        &standin,
        &[
            ("TOLLGATE_CHECK_SPEC_PREFIX", prefix.to_owned()),
            ("TARGET_URL", app.url("")),
        ],
    )
    .await;
    let mut event = paths::event("deploy-hook", "ecs-post-test-traffic-shift");
    event["hookDetails"] = json!({"targetUrl": app.url("")});
    for _ in 0..2 {
        let out = f.invoke(event.clone(), DEADLINE).await;
        let out = out.response().clone();
        assert_eq!(out["hookStatus"], "FAILED", "{}", f.logs());
        let answer = out.to_string();
        assert!(answer.contains("status: expected 200, got 401"), "{answer}");
        assert!(!answer.contains(TOKEN), "{answer}");
    }
    let requests = app.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("x-echo"),
        Some(TOKEN),
        "the token is sent"
    );
    let logs = f.logs();
    assert!(!logs.contains(TOKEN), "never logged: {logs}");
    assert!(logs.contains("<redacted>"), "{logs}");
    assert_eq!(
        standin.calls_of("GetSecretValue").len(),
        1,
        "read once, then cached with the spec"
    );
}

// ------------------------------------------------------- metric gate (CodeDeploy)

/// What [`seed_gate`] made: the target groups' ARNs, their CloudWatch
/// dimensions, the load balancer's, and the production listener rule.
struct GateSeed {
    blue_arn: String,
    green_arn: String,
    blue: String,
    green: String,
    load_balancer: String,
    rule: String,
}

/// Blue and green target groups in moto's ELBv2 behind one load balancer,
/// whose production listener rule forwards to both with `weights` (green,
/// blue) as ECS native blue/green sets it; CloudWatch datapoints for each
/// with the `LoadBalancer` and `TargetGroup` dimensions ALB publishes
/// target-group metrics with (`app/<name>/<id>`, `targetgroup/<name>/<id>`):
/// `errors` 5xx responses and 500 requests.
async fn seed_gate(
    standin: &AwsStandIn,
    name: &str,
    blue_errors: f64,
    green_errors: f64,
    weights: (i32, i32),
) -> GateSeed {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    use aws_sdk_elasticloadbalancingv2::types::{
        ForwardActionConfig, RuleCondition, TargetGroupTuple,
    };
    let sdk = standin.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let vpc = tag_of_default_subnet("vpcId").await;
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let lb_arn = elb
        .create_load_balancer()
        .name(format!("{name}-gate"))
        .subnets(default_subnet().await)
        .send()
        .await
        .expect("CreateLoadBalancer")
        .load_balancers()[0]
        .load_balancer_arn()
        .expect("arn")
        .to_owned();
    let load_balancer = lb_arn[lb_arn.find(":loadbalancer/").expect("lb arn") + 14..].to_owned();
    let mut arns = Vec::new();
    for color in ["blue", "green"] {
        let tg = elb
            .create_target_group()
            .name(format!("{name}-{color}"))
            .protocol(ProtocolEnum::Http)
            .port(80)
            .vpc_id(&vpc)
            .send()
            .await
            .expect("CreateTargetGroup");
        arns.push(
            tg.target_groups()[0]
                .target_group_arn()
                .expect("arn")
                .to_owned(),
        );
    }
    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateListener")
        .listeners()[0]
        .listener_arn()
        .expect("arn")
        .to_owned();
    let rule = elb
        .create_rule()
        .listener_arn(&listener)
        .priority(1)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/*")
                .build(),
        )
        .actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .forward_config(
                    ForwardActionConfig::builder()
                        .target_groups(
                            TargetGroupTuple::builder()
                                .target_group_arn(&arns[1])
                                .weight(weights.0)
                                .build(),
                        )
                        .target_groups(
                            TargetGroupTuple::builder()
                                .target_group_arn(&arns[0])
                                .weight(weights.1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateRule")
        .rules()[0]
        .rule_arn()
        .expect("arn")
        .to_owned();
    let at = aws_sdk_cloudwatch::primitives::DateTime::from_secs(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs(),
        )
        .expect("epoch")
            - 90,
    );
    let mut dims = Vec::new();
    for (arn, errors) in arns.iter().zip([blue_errors, green_errors]) {
        let dim = arn[arn.find(":targetgroup/").expect("tg arn") + 1..].to_owned();
        for (metric, value) in [
            ("RequestCount", 500.0),
            ("HTTPCode_Target_5XX_Count", errors),
        ] {
            cw.put_metric_data()
                .namespace("AWS/ApplicationELB")
                .metric_data(
                    MetricDatum::builder()
                        .metric_name(metric)
                        .dimensions(
                            Dimension::builder()
                                .name("LoadBalancer")
                                .value(&load_balancer)
                                .build(),
                        )
                        .dimensions(Dimension::builder().name("TargetGroup").value(&dim).build())
                        .timestamp(at)
                        .value(value)
                        .build(),
                )
                .send()
                .await
                .expect("PutMetricData through the stand-in's CBOR translation");
        }
        dims.push(dim);
    }
    GateSeed {
        blue_arn: arns[0].clone(),
        green_arn: arns[1].clone(),
        blue: dims[0].clone(),
        green: dims[1].clone(),
        load_balancer,
        rule,
    }
}

/// A spec with a metric gate: green's 5xx count at most blue's + 5, two
/// measurements one second apart (CloudWatch windows of five minutes, so
/// the seeded datapoints are in every one).
const GATE_SPEC: &str = r#"
checks:
  - name: health
    url: "${TARGET}/health"
    expect: {status: 200}
gate:
  interval: 1s
  count: 2
  window: 5m
  period: 5m
  queries:
    - {id: requests, metric: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {LoadBalancer: "${LOAD_BALANCER}", TargetGroup: "${TARGET_GROUP}"}}}
    - {id: errors, name: 5xx count, metric: {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum, dimensions: {LoadBalancer: "${LOAD_BALANCER}", TargetGroup: "${TARGET_GROUP}"}}}
  min_requests: {query: requests, at_least: 100}
  conditions:
    - {query: errors, max_vs_baseline: {plus: 5}}
"#;

/// The SQS event Lambda's event source mapping would deliver for the
/// `n`th ticket the function sent.
fn ticket_delivery(standin: &AwsStandIn, n: usize) -> (Value, Value) {
    let sent = standin.calls_of("SendMessage");
    let call = sent
        .get(n)
        .unwrap_or_else(|| panic!("ticket {n} was sent: {sent:#?}"));
    let body = call.request["MessageBody"]
        .as_str()
        .expect("a body")
        .to_owned();
    (
        json!({"Records": [{"messageId": format!("m-{n}"), "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:111111111111:gates", "body": body}]}),
        call.request["DelaySeconds"].clone(),
    )
}

#[tokio::test]
async fn after_allow_traffic_gates_on_green_against_blue_through_the_queue() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    let seeded = seed(&standin, "gatecd", None, app.addr().port()).await;
    let gs = seed_gate(&standin, "gatecd", 1.0, 60.0, (0, 100)).await;
    script_target_groups(
        &standin,
        &seeded.deployment_id,
        "AfterAllowTraffic",
        (2, 2, 0),
        ("gatecd-blue", "gatecd-green"),
    );
    // moto's deployments stay "Created"; CodeDeploy's are InProgress while
    // a hook runs.
    standin.script(
        "GetDeployment",
        vec![
            json!({"deploymentInfo": {"deploymentId": seeded.deployment_id,
            "applicationName": "gatecd-app", "deploymentGroupName": "gatecd-dg",
            "computePlatform": "ECS", "status": "InProgress"}}),
        ],
    );
    let sqs = aws_sdk_sqs::Client::new(&standin.sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name("gatecd-gates")
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("url");
    let (ev, execution) = hook_event(
        &standin,
        "codedeploy-after-allow-traffic",
        &seeded.deployment_id,
    );
    let mut f = function(
        &standin,
        &[
            (pin(&seeded).0, pin(&seeded).1),
            ("TOLLGATE_CHECK_SPEC", GATE_SPEC.to_owned()),
            ("TOLLGATE_GATE_QUEUE_URL", queue),
        ],
    )
    .await;

    // 1. The hook: the checks pass, the gate starts, nothing is reported.
    let out = f.invoke(ev, DEADLINE).await;
    assert_eq!(out.response()["report"], "baking", "{}", f.logs());
    assert!(
        standin.reports_for(&execution).is_empty(),
        "not reported while baking"
    );
    let (delivery, delay) = ticket_delivery(&standin, 0);
    assert_eq!(
        delay,
        json!(1),
        "the first measurement is due one interval later"
    );
    assert!(
        standin
            .calls_of("SendMessage")
            .iter()
            .all(|c| c.forwarded && c.status == 200),
        "moto's SQS took the ticket"
    );

    // 2. The ticket: green's 5xx count against blue's, read from moto's
    // CloudWatch with the target groups found from the deployment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = f.invoke(delivery, DEADLINE).await;
    assert_eq!(out.response()[0]["gate"], "reported", "{}", f.logs());
    assert_eq!(only_report(&standin, &execution), "Failed");
    let logs = f.logs();
    assert!(
        logs.contains(
            "metric gate failed: 5xx count 60 > 6 (baseline 1 + 5) in 1 of 1 measurements"
        ),
        "{logs}"
    );
    assert_reads_green_then_blue(&standin, &gs);
}

/// The gate read green's, then blue's, target group metrics, each with the
/// load balancer's dimension.
fn assert_reads_green_then_blue(standin: &AwsStandIn, gs: &GateSeed) {
    let reads = standin.calls_of("GetMetricData");
    assert_eq!(reads.len(), 2, "green, then blue");
    let dimensions = |i: usize| {
        let mut d: Vec<(String, String)> =
            reads[i].request["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"]
                .as_array()
                .expect("dimensions")
                .iter()
                .map(|d| {
                    (
                        d["Name"].as_str().unwrap_or_default().to_owned(),
                        d["Value"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
        d.sort();
        d
    };
    for (i, tg) in [(0, &gs.green), (1, &gs.blue)] {
        assert_eq!(
            dimensions(i),
            [
                ("LoadBalancer".to_owned(), gs.load_balancer.clone()),
                ("TargetGroup".to_owned(), tg.clone())
            ],
            "read {i}"
        );
    }
}

// ------------------------------------------------- metric gate (ECS native)

#[tokio::test]
async fn an_ecs_native_gate_finds_green_and_blue_target_groups_itself() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    // After every shift: the rule sends everything to green.
    let gs = seed_gate(&standin, "gateecs", 1.0, 60.0, (100, 0)).await;
    let mut event = paths::event("deploy-hook", "ecs-post-production-traffic-shift");
    let green_rev = event["executionDetails"]["targetServiceRevisionArn"]
        .as_str()
        .expect("arn")
        .to_owned();
    let blue_rev = green_rev.replace("4417902536558120771", "8823015467219033412");
    event["executionDetails"]["productionTrafficWeights"] =
        json!({green_rev.clone(): 100, blue_rev.clone(): 0});
    event["hookDetails"] = json!({"targetUrl": app.url("")});
    // A second deployment: green is in the service's primary target group
    // (ECS alternates them), which only the revisions' resolved
    // configuration says.
    let revision = |serving: &str| {
        json!({
            "serviceArn": "arn:aws:ecs:eu-west-1:111122223333:service/web-cluster/web",
            "loadBalancers": [{"targetGroupArn": gs.green_arn, "containerName": "web",
                "containerPort": 8080, "advancedConfiguration": {
                    "alternateTargetGroupArn": gs.blue_arn, "productionListenerRule": gs.rule,
                    "roleArn": "arn:aws:iam::111122223333:role/ecs-elb"}}],
            "resolvedConfiguration": {"loadBalancers": [
                {"targetGroupArn": serving, "productionListenerRule": gs.rule}]}
        })
    };
    standin.register_service_revision(&green_rev, revision(&gs.green_arn));
    standin.register_service_revision(&blue_rev, revision(&gs.blue_arn));
    let mut f = function(&standin, &[("TOLLGATE_CHECK_SPEC", GATE_SPEC.to_owned())]).await;

    // 1. The smoke checks pass; the gate finds the target groups, checks
    // them against the rule, and starts baking.
    let first = f.invoke(event.clone(), DEADLINE).await;
    let first = first.response().clone();
    assert_eq!(first["hookStatus"], "IN_PROGRESS", "{}", f.logs());
    assert_eq!(first["callBackDelay"], 1);
    assert_eq!(
        first["hookDetails"]["tollgateTargets"]["green"],
        json!({"TARGET_GROUP": gs.green, "LOAD_BALANCER": gs.load_balancer})
    );
    assert_eq!(
        first["hookDetails"]["tollgateTargets"]["blue"]["TARGET_GROUP"],
        json!(gs.blue)
    );

    // 2. As ECS does: after callBackDelay, the answer's hookDetails merged
    // into the configured ones. The carried names are used; nothing is
    // read from ECS or ELB again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut details = event["hookDetails"].as_object().cloned().expect("object");
    for (k, v) in first["hookDetails"].as_object().expect("details") {
        details.insert(k.clone(), v.clone());
    }
    event["hookDetails"] = Value::Object(details);
    let second = f.invoke(event, DEADLINE).await;
    let second = second.response().clone();
    assert_eq!(second["hookStatus"], "FAILED", "{}", f.logs());
    let reason = second["hookDetails"]["tollgate"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("5xx count 60 > 6 (baseline 1 + 5)"),
        "{reason}"
    );
    assert_eq!(standin.calls_of("DescribeServiceRevisions").len(), 1);
    assert_eq!(standin.calls_of("DescribeRules").len(), 1);
    assert_reads_green_then_blue(&standin, &gs);
    assert!(
        standin.reports().is_empty(),
        "ECS hooks answer; they do not report"
    );
}

#[tokio::test]
async fn an_ecs_native_gate_fails_when_the_rule_contradicts_the_recorded_target_groups() {
    let app = App::start(Mode::Healthy).await;
    let standin = AwsStandIn::start(Some(Moto::shared())).await;
    // After every shift the rule still sends everything to the group ECS
    // records as blue's: measuring "green" there would measure blue.
    let gs = seed_gate(&standin, "gatebad", 1.0, 1.0, (0, 100)).await;
    let mut event = paths::event("deploy-hook", "ecs-post-production-traffic-shift");
    let green_rev = event["executionDetails"]["targetServiceRevisionArn"]
        .as_str()
        .expect("arn")
        .to_owned();
    event["executionDetails"]["productionTrafficWeights"] = json!({green_rev.clone(): 100});
    event["hookDetails"] = json!({"targetUrl": app.url("")});
    standin.register_service_revision(
        &green_rev,
        json!({"loadBalancers": [{"targetGroupArn": gs.blue_arn, "advancedConfiguration": {
                "alternateTargetGroupArn": gs.green_arn, "productionListenerRule": gs.rule}}],
            "resolvedConfiguration": {"loadBalancers": [
                {"targetGroupArn": gs.green_arn, "productionListenerRule": gs.rule}]}}),
    );
    let mut f = function(&standin, &[("TOLLGATE_CHECK_SPEC", GATE_SPEC.to_owned())]).await;
    let out = f.invoke(event, DEADLINE).await;
    let out = out.response().clone();
    assert_eq!(out["hookStatus"], "FAILED", "{}", f.logs());
    let reason = out["hookDetails"]["tollgate"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("sends 0 % to gatebad-green, which ECS records as the new revision's"),
        "{reason}"
    );
    assert!(reason.contains("set hookDetails.gateVariables"), "{reason}");
    assert!(
        standin.calls_of("GetMetricData").is_empty(),
        "nothing measured"
    );
}
