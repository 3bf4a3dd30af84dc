//! Seeding moto with the AWS resources Tollgate's functions look up, and the
//! scripted answers for what moto cannot say (ECS rollout states, CodeDeploy
//! deployment targets). Used by the local rehearsal (`src/bin/rehearse.rs`)
//! and available to integration tests.
//!
//! Seeding goes straight to moto with its own credentials, so the stand-in's
//! record ([`crate::AwsStandIn::calls`]) holds only the functions' calls.
//!
//! - [`seeding_config`], [`s3_client`]: SDK clients for moto.
//! - [`zip`], [`unzip_file`], [`put_zip`]: CodePipeline artifacts.
//! - [`ecs_service`], [`service_answer`]: an ECS service and the
//!   `DescribeServices` answer for one rollout state.
//! - [`blue_green`], [`create_deployment`], [`ecs_target_answer`]: a load
//!   balancer with production and test listeners, a CodeDeploy ECS
//!   blue/green application and group, a deployment, and the
//!   `GetDeploymentTarget` answer showing one hook in progress.
//! - [`moto_json`]: one raw awsJson call to moto (to read a record as moto
//!   stores it, e.g. to script a changed copy of it on the stand-in).

use crate::Moto;
use aws_credential_types::Credentials;
use aws_sdk_codedeploy::types::{
    AppSpecContent, BlueGreenDeploymentConfiguration, ComputePlatform, DeploymentOption,
    DeploymentReadyAction, DeploymentReadyOption, DeploymentStyle, DeploymentType, EcsService,
    LoadBalancerInfo, RevisionLocation, RevisionLocationType, TargetGroupInfo, TargetGroupPairInfo,
    TrafficRoute,
};
use aws_sdk_ecs::types::{ContainerDefinition, PortMapping};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ProtocolEnum,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::io::{Cursor, Read, Write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A seeding step that failed: which one, and what moto said.
#[derive(Debug, thiserror::Error)]
#[error(
    "seeding moto failed while {step}: {detail}; check that moto_server is running (scripts/setup-venv installs it)"
)]
pub struct SeedError {
    /// What was being created.
    pub step: String,
    /// The error.
    pub detail: String,
}

fn fail(step: impl Into<String>) -> impl FnOnce(String) -> SeedError {
    let step = step.into();
    move |detail| SeedError { step, detail }
}

/// The error text of an SDK error, with the service's message when there is one.
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

/// The account moto uses.
pub const ACCOUNT: &str = "123456789012";
/// The region everything is seeded in.
pub const REGION: &str = "us-east-1";

/// An SDK config for moto itself, with seeding credentials.
pub async fn seeding_config(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto.url())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new(
            "AKIASEEDING000000001",
            "seeding-secret",
            None,
            None,
            "seed",
        ))
        .load()
        .await
}

/// An S3 client for a loopback endpoint (path-style addressing).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

// ------------------------------------------------------------- artifacts

/// A zip holding `files` (path, content).
pub fn zip(files: &[(&str, &str)]) -> Result<Vec<u8>, SeedError> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (path, content) in files {
        w.start_file(*path, zip::write::SimpleFileOptions::default())
            .map_err(|e| fail(format!("zipping {path}"))(e.to_string()))?;
        w.write_all(content.as_bytes())
            .map_err(|e| fail(format!("zipping {path}"))(e.to_string()))?;
    }
    w.finish()
        .map(Cursor::into_inner)
        .map_err(|e| fail("finishing a zip")(e.to_string()))
}

/// One file of a zip, if present and UTF-8.
pub fn unzip_file(bytes: &[u8], path: &str) -> Option<String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let mut file = archive.by_name(path).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The file names in a zip.
pub fn zip_names(bytes: &[u8]) -> Vec<String> {
    zip::ZipArchive::new(Cursor::new(bytes))
        .map(|a| {
            a.file_names()
                .filter_map(|n| n.ok().map(|n| n.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `bucket` (an existing one is fine).
pub async fn bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), SeedError> {
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = sdk_text(e);
            if text.contains("BucketAlreadyOwnedByYou") {
                Ok(())
            } else {
                Err(fail(format!("creating bucket {bucket}"))(text))
            }
        }
    }
}

/// Uploads an artifact zip, SSE-KMS encrypted with `kms_key` when given.
pub async fn put_zip(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    files: &[(&str, &str)],
    kms_key: Option<&str>,
) -> Result<(), SeedError> {
    let mut req = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(zip(files)?));
    if let Some(kms) = kms_key {
        req = req
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms);
    }
    req.send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("uploading s3://{bucket}/{key}"))(sdk_text(e)))
}

/// Reads an object's bytes.
pub async fn get_bytes(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, SeedError> {
    let step = format!("reading s3://{bucket}/{key}");
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| fail(step.clone())(sdk_text(e)))?;
    out.body
        .collect()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| fail(step)(e.to_string()))
}

// ------------------------------------------------------------------- ECS

/// One container of a seeded task definition.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Container port, if any.
    pub port: Option<i32>,
}

/// Creates cluster `cluster`, task definition family `family` with
/// `containers`, and service `service` with `desired` tasks on it. Returns
/// the task definition ARN.
pub async fn ecs_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    family: &str,
    containers: &[Container],
    desired: i32,
) -> Result<String, SeedError> {
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(|e| fail(format!("creating ECS cluster {cluster}"))(sdk_text(e)))?;
    let mut td = ecs
        .register_task_definition()
        .family(family)
        .task_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{family}-task"));
    for c in containers {
        let mut def = ContainerDefinition::builder()
            .name(&c.name)
            .image(&c.image)
            .memory(512);
        if let Some(port) = c.port {
            def = def.port_mappings(PortMapping::builder().container_port(port).build());
        }
        td = td.container_definitions(def.build());
    }
    let td = td
        .send()
        .await
        .map_err(|e| fail(format!("registering task definition {family}"))(sdk_text(e)))?;
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(family)
        .desired_count(desired)
        .send()
        .await
        .map_err(|e| fail(format!("creating ECS service {cluster}/{service}"))(sdk_text(e)))?;
    td.task_definition
        .and_then(|t| t.task_definition_arn)
        .ok_or_else(|| fail("registering a task definition")("no ARN in the answer".into()))
}

/// A rollout state of one ECS deployment, for [`service_answer`].
#[derive(Debug, Clone)]
pub struct Rollout<'a> {
    /// Cluster name.
    pub cluster: &'a str,
    /// Service name.
    pub service: &'a str,
    /// Deployment id (`ecs-svc/…`).
    pub deployment: &'a str,
    /// Task definition ARN of the deployment.
    pub task_definition: &'a str,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub state: &'a str,
    /// Desired tasks.
    pub desired: i64,
    /// Running tasks.
    pub running: i64,
    /// Tasks that failed to start.
    pub failed: i64,
    /// `rolloutStateReason`.
    pub reason: &'a str,
}

/// The `DescribeServices` answer ECS gives for the service while `r` holds
/// (moto cannot produce rollout states: script this on the stand-in).
pub fn service_answer(r: &Rollout<'_>) -> Value {
    let now = epoch_secs();
    json!({"services": [{
        "serviceArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}", r.cluster, r.service),
        "serviceName": r.service,
        "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{}", r.cluster),
        "status": "ACTIVE",
        "desiredCount": r.desired,
        "runningCount": r.running,
        "pendingCount": r.desired - r.running,
        "taskDefinition": r.task_definition,
        "deploymentController": {"type": "ECS"},
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true, "rollback": true}},
        "deployments": [{
            "id": r.deployment, "status": "PRIMARY", "taskDefinition": r.task_definition,
            "desiredCount": r.desired, "runningCount": r.running,
            "pendingCount": r.desired - r.running, "failedTasks": r.failed,
            "rolloutState": r.state, "rolloutStateReason": r.reason,
            "createdAt": now, "updatedAt": now
        }],
        "events": [{"id": format!("ev-{now}"), "createdAt": now,
            "message": format!("(service {}) has started {} tasks.", r.service, r.running)}]
    }], "failures": []})
}

// ------------------------------------------------- CodeDeploy blue/green

/// What [`blue_green`] creates.
#[derive(Debug, Clone)]
pub struct BlueGreen {
    /// CodeDeploy application.
    pub application: String,
    /// Deployment group.
    pub deployment_group: String,
    /// The load balancer's DNS name (what the hook discovers).
    pub dns_name: String,
    /// Production listener ARN.
    pub prod_listener_arn: String,
    /// Test listener ARN, when a test port was given.
    pub test_listener_arn: Option<String>,
}

/// What to create for a blue/green deployment group.
#[derive(Debug, Clone)]
pub struct BlueGreenSpec<'a> {
    /// Prefix of every name (`<name>-app`, `<name>-dg`, target groups `<name>-blue` / `-green`).
    pub name: &'a str,
    /// ECS cluster of the service.
    pub cluster: &'a str,
    /// ECS service.
    pub service: &'a str,
    /// Production listener port.
    pub prod_port: u16,
    /// Test listener port (none: the group has no test traffic route).
    pub test_port: Option<u16>,
}

/// A default subnet from moto's EC2 (one query call; the EC2 SDK is not a dependency).
pub async fn default_subnet(moto: &Moto) -> Result<String, SeedError> {
    default_subnet_field(moto, "subnetId").await
}

/// The default VPC of moto's EC2 (that of its first default subnet).
pub async fn default_vpc(moto: &Moto) -> Result<String, SeedError> {
    default_subnet_field(moto, "vpcId").await
}

async fn default_subnet_field(moto: &Moto, field: &str) -> Result<String, SeedError> {
    let body = "Action=DescribeSubnets&Version=2016-11-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIASEEDING000000001/20250101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        moto.addr(),
        body.len()
    );
    let step = "reading a default subnet from moto's EC2";
    let mut stream = tokio::net::TcpStream::connect(moto.addr())
        .await
        .map_err(|e| fail(step)(e.to_string()))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(step)(e.to_string()))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| fail(step)(e.to_string()))?;
    let open = format!("<{field}>");
    let start = answer
        .find(&open)
        .map(|i| i + open.len())
        .ok_or_else(|| fail(step)(format!("no {open} in the answer")))?;
    let end = answer[start..]
        .find('<')
        .map(|i| i + start)
        .ok_or_else(|| fail(step)(format!("unterminated {open}")))?;
    Ok(answer[start..end].to_owned())
}

/// A load balancer with a production listener (and a test listener), and a
/// CodeDeploy ECS application and blue/green deployment group using them.
pub async fn blue_green(
    moto: &Moto,
    sdk: &aws_config::SdkConfig,
    spec: &BlueGreenSpec<'_>,
) -> Result<BlueGreen, SeedError> {
    let name = spec.name;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let lb = elb
        .create_load_balancer()
        .name(format!("{name}-alb"))
        .subnets(default_subnet(moto).await?)
        .send()
        .await
        .map_err(|e| fail("creating the load balancer")(sdk_text(e)))?;
    let lb = lb.load_balancers().first().cloned().ok_or_else(|| {
        fail("creating the load balancer")("no load balancer in the answer".into())
    })?;
    let lb_arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
    let dns_name = lb.dns_name().unwrap_or_default().to_owned();
    let listener = |port: u16| {
        let elb = elb.clone();
        let lb_arn = lb_arn.clone();
        async move {
            let out = elb
                .create_listener()
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
                .await
                .map_err(|e| fail(format!("creating the listener on port {port}"))(sdk_text(e)))?;
            out.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .map(str::to_owned)
                .ok_or_else(|| fail("creating a listener")("no listener ARN in the answer".into()))
        }
    };
    let prod_listener_arn = listener(spec.prod_port).await?;
    let mut pair = TargetGroupPairInfo::builder()
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
        .prod_traffic_route(
            TrafficRoute::builder()
                .listener_arns(&prod_listener_arn)
                .build(),
        );
    let test_listener_arn = match spec.test_port {
        Some(port) => {
            let arn = listener(port).await?;
            pair = pair.test_traffic_route(TrafficRoute::builder().listener_arns(&arn).build());
            Some(arn)
        }
        None => None,
    };

    let cd = aws_sdk_codedeploy::Client::new(sdk);
    let application = format!("{name}-app");
    let deployment_group = format!("{name}-dg");
    cd.create_application()
        .application_name(&application)
        .compute_platform(ComputePlatform::Ecs)
        .send()
        .await
        .map_err(|e| fail("creating the CodeDeploy application")(sdk_text(e)))?;
    cd.create_deployment_group()
        .application_name(&application)
        .deployment_group_name(&deployment_group)
        .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/ecs-codedeploy"))
        .deployment_config_name("CodeDeployDefault.ECSAllAtOnce")
        .ecs_services(
            EcsService::builder()
                .cluster_name(spec.cluster)
                .service_name(spec.service)
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
                .target_group_pair_info_list(pair.build())
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail("creating the CodeDeploy deployment group")(sdk_text(e)))?;
    Ok(BlueGreen {
        application,
        deployment_group,
        dns_name,
        prod_listener_arn,
        test_listener_arn,
    })
}

/// Creates a deployment of `group` with this AppSpec content; returns its id.
pub async fn create_deployment(
    sdk: &aws_config::SdkConfig,
    application: &str,
    group: &str,
    appspec: &str,
) -> Result<String, SeedError> {
    aws_sdk_codedeploy::Client::new(sdk)
        .create_deployment()
        .application_name(application)
        .deployment_group_name(group)
        .revision(
            RevisionLocation::builder()
                .revision_type(RevisionLocationType::AppSpecContent)
                .app_spec_content(AppSpecContent::builder().content(appspec).build())
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail("creating the CodeDeploy deployment")(sdk_text(e)))?
        .deployment_id
        .ok_or_else(|| fail("creating the CodeDeploy deployment")("no deployment id".into()))
}

/// ECS blue/green lifecycle events, in order (`Install`, `AllowTestTraffic`
/// and `AllowTraffic` are CodeDeploy's own steps; the rest are hooks).
pub const ECS_LIFECYCLE: [&str; 8] = [
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// Task counts of a task set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSetCounts {
    /// Desired.
    pub desired: i64,
    /// Running.
    pub running: i64,
    /// Pending.
    pub pending: i64,
}

/// The ECS deployment target CodeDeploy shows while `hook` runs.
#[derive(Debug, Clone)]
pub struct EcsTarget<'a> {
    /// Deployment id.
    pub deployment_id: &'a str,
    /// Cluster.
    pub cluster: &'a str,
    /// Service.
    pub service: &'a str,
    /// The lifecycle event in progress (one of [`ECS_LIFECYCLE`]).
    pub in_progress: &'a str,
    /// Target group name prefix (`<prefix>-blue`, `<prefix>-green`).
    pub target_groups: &'a str,
    /// Blue task set id.
    pub blue_task_set: &'a str,
    /// Green task set id.
    pub green_task_set: &'a str,
    /// Green task counts.
    pub green: TaskSetCounts,
}

impl EcsTarget<'_> {
    /// `<cluster>:<service>`, CodeDeploy's target id.
    pub fn target_id(&self) -> String {
        format!("{}:{}", self.cluster, self.service)
    }
}

/// The `ListDeploymentTargets` answer for `t` (moto lacks the call).
pub fn list_targets_answer(t: &EcsTarget<'_>) -> Value {
    json!({"targetIds": [t.target_id()]})
}

/// The `GetDeploymentTarget` answer for `t` (moto lacks the call).
pub fn ecs_target_answer(t: &EcsTarget<'_>) -> Value {
    let at = ECS_LIFECYCLE
        .iter()
        .position(|h| *h == t.in_progress)
        .unwrap_or(0);
    let events: Vec<Value> = ECS_LIFECYCLE
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
    let test_weight = if at >= 3 { 100.0 } else { 0.0 };
    json!({"deploymentTarget": {
        "deploymentTargetType": "ECSTarget",
        "ecsTarget": {
            "deploymentId": t.deployment_id,
            "targetId": t.target_id(),
            "targetArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}", t.cluster, t.service),
            "lastUpdatedAt": epoch_secs(),
            "status": "InProgress",
            "lifecycleEvents": events,
            "taskSetsInfo": [
                {"identifer": t.blue_task_set, "desiredCount": 2, "pendingCount": 0,
                 "runningCount": 2, "status": "PRIMARY", "trafficWeight": 100.0,
                 "targetGroup": {"name": format!("{}-blue", t.target_groups)}, "taskSetLabel": "Blue"},
                {"identifer": t.green_task_set, "desiredCount": t.green.desired,
                 "pendingCount": t.green.pending, "runningCount": t.green.running, "status": "ACTIVE",
                 "trafficWeight": test_weight, "targetGroup": {"name": format!("{}-green", t.target_groups)},
                 "taskSetLabel": "Green"}
            ]
        }
    }})
}

// ----------------------------------------------------------- raw calls

/// One awsJson 1.1 call straight to moto (`target` like
/// `CodeDeploy_20141006.GetDeployment`, `service` the signing name like
/// `codedeploy`); returns the answer body.
pub async fn moto_json(
    moto: &Moto,
    service: &str,
    target: &str,
    body: &Value,
) -> Result<Value, SeedError> {
    let step = format!("calling {target} on moto");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = hyper::Request::post(format!("{}/", moto.url()))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", target)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIASEEDING000000001/20250101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| fail(step.clone())(e.to_string()))?;
    let answer = client
        .request(request)
        .await
        .map_err(|e| fail(step.clone())(e.to_string()))?;
    let status = answer.status();
    let bytes = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(step.clone())(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(fail(step)(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    // Operations without output (CreateLogStream, …) answer an empty body.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| fail(step)(e.to_string()))
}

/// Seconds since the epoch.
pub fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The notifier's delivery table as the template creates it (key `pk`,
/// on demand), on moto.
pub async fn delivery_table(sdk: &aws_config::SdkConfig, name: &str) -> Result<(), SeedError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attribute = AttributeDefinition::builder()
        .attribute_name("pk")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| fail("the table's attribute")(e.to_string()))?;
    let key = KeySchemaElement::builder()
        .attribute_name("pk")
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| fail("the table's key")(e.to_string()))?;
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute)
        .key_schema(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("creating table {name}"))(sdk_text(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_round_trip() {
        let bytes = zip(&[("a.txt", "alpha"), ("dir/b.json", "{}")]).expect("zip");
        assert_eq!(unzip_file(&bytes, "a.txt").as_deref(), Some("alpha"));
        assert_eq!(unzip_file(&bytes, "dir/b.json").as_deref(), Some("{}"));
        assert_eq!(unzip_file(&bytes, "missing"), None);
        assert_eq!(zip_names(&bytes), vec!["a.txt", "dir/b.json"]);
    }

    #[test]
    fn the_target_shows_the_hook_in_progress_and_earlier_ones_done() {
        let t = EcsTarget {
            deployment_id: "d-1",
            cluster: "prod",
            service: "web",
            in_progress: "BeforeAllowTraffic",
            target_groups: "web",
            blue_task_set: "ecs-svc/1",
            green_task_set: "ecs-svc/2",
            green: TaskSetCounts {
                desired: 2,
                running: 2,
                pending: 0,
            },
        };
        let v = ecs_target_answer(&t);
        let events = v["deploymentTarget"]["ecsTarget"]["lifecycleEvents"]
            .as_array()
            .expect("events");
        assert_eq!(events[4]["status"], "Succeeded");
        assert_eq!(events[5]["status"], "InProgress");
        assert_eq!(events[6]["status"], "Pending");
        assert_eq!(list_targets_answer(&t)["targetIds"][0], "prod:web");
    }

    #[test]
    fn a_rollout_answer_carries_its_state() {
        let v = service_answer(&Rollout {
            cluster: "staging",
            service: "web",
            deployment: "ecs-svc/9",
            task_definition: "arn:td:2",
            state: "IN_PROGRESS",
            desired: 3,
            running: 1,
            failed: 0,
            reason: "in progress",
        });
        let d = &v["services"][0]["deployments"][0];
        assert_eq!(d["rolloutState"], "IN_PROGRESS");
        assert_eq!(d["pendingCount"], 2);
    }
}
