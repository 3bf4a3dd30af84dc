//! `pipeline-action` end to end: the real binary under the local Runtime API,
//! real SDK clients against the AWS stand-in, which fronts moto for S3
//! artifacts and ECS and answers the CodePipeline reports itself. ECS rollout
//! states moto cannot produce (IN_PROGRESS → COMPLETED, a circuit-breaker
//! FAILED) are scripted on the stand-in. Every test asserts, from the
//! stand-in's record, exactly one accepted report per invocation.

use aws_credential_types::Credentials;
use aws_sdk_ecs::types::{ContainerDefinition, PortMapping};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use serde_json::{Value, json};
use std::io::{Cursor, Read, Write};
use std::time::Duration;
use tollgate_test_support::http::{Reply, Request, Stub};
use tollgate_tests::{AwsStandIn, Fault, Invocation, LocalLambda, Moto, Report, paths};

const DEADLINE: Duration = Duration::from_secs(20);
const SHA_IMAGE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:3f9c2ab";
const KMS_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const CIRCUIT_BREAKER: &str = "ECS deployment circuit breaker: tasks failed to start.";

/// One test's world: a stand-in of its own (so its record is the test's),
/// the shared moto, a function process, and clients for seeding moto.
struct Rig {
    standin: AwsStandIn,
    lambda: LocalLambda,
    s3: aws_sdk_s3::Client,
    ecs: aws_sdk_ecs::Client,
    bucket: String,
    name: String,
}

impl Rig {
    async fn new(name: &str) -> Rig {
        Self::with_env(name, &[]).await
    }

    /// A rig whose function gets `extra` environment variables.
    async fn with_env(name: &str, extra: &[(&str, &str)]) -> Rig {
        let moto = Moto::shared();
        let standin = AwsStandIn::start(Some(moto)).await;
        let mut env = standin.lambda_env();
        env.push(("TOLLGATE_REPORT_RESERVE_MS".into(), "2000".into()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let lambda = LocalLambda::spawn(&paths::function_binary("pipeline-action"), &env).await;
        // Seeding goes straight to moto, so the stand-in records only the function's calls.
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(moto.url())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIASEEDING000000001",
                "seeding-secret",
                None,
                None,
                "seed",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let bucket = format!("tollgate-pa-{name}");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket created in moto");
        Rig {
            standin,
            lambda,
            s3,
            ecs,
            bucket,
            name: name.to_owned(),
        }
    }

    /// A sample event with a fresh job id, the rig's bucket, and (optionally)
    /// other UserParameters. The job is registered with the stand-in.
    fn event(&self, sample: &str, id: &str, params: Option<Value>) -> Value {
        let mut ev = paths::event("pipeline-action", sample);
        let job = &mut ev["CodePipeline.job"];
        job["id"] = json!(id);
        for list in ["inputArtifacts", "outputArtifacts"] {
            if let Some(items) = job["data"][list].as_array_mut() {
                for a in items {
                    a["location"]["s3Location"]["bucketName"] = json!(self.bucket);
                }
            }
        }
        if let Some(p) = params {
            job["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                json!(p.to_string());
        }
        self.standin.register_job(id);
        ev
    }

    /// The UserParameters of a sample, with fields replaced.
    fn params(sample: &str, changes: Value) -> Value {
        let ev = paths::event("pipeline-action", sample);
        let raw = ev["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
            ["UserParameters"]
            .as_str()
            .expect("sample UserParameters")
            .to_owned();
        let mut p: Value = serde_json::from_str(&raw).expect("sample UserParameters are JSON");
        for (k, v) in changes.as_object().expect("object") {
            p[k] = v.clone();
        }
        p
    }

    async fn put_zip(&self, key: &str, files: &[(&str, &str)], kms: bool) {
        let mut req = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(zip(files)));
        if kms {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(KMS_KEY);
        }
        req.send().await.expect("artifact uploaded to moto");
    }

    async fn invoke(&mut self, event: Value) -> Value {
        match self.lambda.invoke(event, DEADLINE).await {
            Invocation::Response(v) => v,
            other => panic!(
                "expected a response, got {other:?}\nlogs:\n{}",
                self.lambda.logs()
            ),
        }
    }

    /// Exactly one accepted report for `id`.
    fn only_report(&self, id: &str) -> Report {
        let reports = self.standin.reports_for(id);
        assert_eq!(
            reports.len(),
            1,
            "exactly one accepted report expected for {id}, got {reports:#?}"
        );
        reports.into_iter().next().expect("one report")
    }

    fn success(&self, id: &str) -> Value {
        match self.only_report(id) {
            Report::JobSuccess { request, .. } => request,
            other => panic!("expected a success report for {id}, got {other:?}"),
        }
    }

    fn failure(&self, id: &str) -> (String, String) {
        match self.only_report(id) {
            Report::JobFailure {
                failure_type,
                message,
                ..
            } => (failure_type, message),
            other => panic!("expected a failure report for {id}, got {other:?}"),
        }
    }

    fn count(&self, operation: &str) -> usize {
        self.standin.calls_of(operation).len()
    }

    /// Cluster `<name>` with service `<name>` (desired 4) on a two-container
    /// task definition family `<name>`.
    async fn seed_service(&self) -> String {
        let n = &self.name;
        self.ecs
            .create_cluster()
            .cluster_name(n)
            .send()
            .await
            .expect("cluster");
        let td = self
            .ecs
            .register_task_definition()
            .family(n)
            .task_role_arn("arn:aws:iam::111111111111:role/web-task")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("111111111111.dkr.ecr.us-east-1.amazonaws.com/web:0ld5ha1")
                    .memory(512)
                    .port_mappings(PortMapping::builder().container_port(8080).build())
                    .build(),
            )
            .container_definitions(
                ContainerDefinition::builder()
                    .name("log-router")
                    .image("public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0")
                    .memory(128)
                    .build(),
            )
            .send()
            .await
            .expect("task definition");
        self.ecs
            .create_service()
            .cluster(n)
            .service_name(n)
            .task_definition(n)
            .desired_count(4)
            .send()
            .await
            .expect("service");
        td.task_definition
            .and_then(|t| t.task_definition_arn)
            .expect("arn")
    }

    async fn revisions(&self) -> Vec<String> {
        self.ecs
            .list_task_definitions()
            .family_prefix(&self.name)
            .send()
            .await
            .expect("list")
            .task_definition_arns
            .unwrap_or_default()
    }

    async fn service_task_definition(&self) -> String {
        self.ecs
            .describe_services()
            .cluster(&self.name)
            .services(&self.name)
            .send()
            .await
            .expect("describe")
            .services
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|s| s.task_definition)
            .expect("service task definition")
    }

    /// A DescribeServices answer for the rig's service with one deployment
    /// in the given rollout state (plus, for a rollback, the old PRIMARY).
    fn service_answer(
        &self,
        deployment: &str,
        task_definition: &str,
        state: &str,
        running: i64,
        reason: &str,
    ) -> Value {
        let n = &self.name;
        json!({"services": [{
            "serviceArn": format!("arn:aws:ecs:us-east-1:123456789012:service/{n}/{n}"),
            "serviceName": n,
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{n}"),
            "status": "ACTIVE",
            "desiredCount": 4,
            "runningCount": running,
            "pendingCount": 4 - running,
            "taskDefinition": task_definition,
            "deploymentController": {"type": "ECS"},
            "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true, "rollback": false}},
            "deployments": [{
                "id": deployment, "status": "PRIMARY", "taskDefinition": task_definition,
                "desiredCount": 4, "runningCount": running, "pendingCount": 4 - running,
                "failedTasks": if state == "FAILED" { 3 } else { 0 },
                "rolloutState": state, "rolloutStateReason": reason,
                "createdAt": 1.7637e9, "updatedAt": 1.7637e9
            }],
            "events": [{"id": "e1", "createdAt": now_epoch(),
                "message": format!("(service {n}) has started 1 tasks: (task 0f1e2d3c).")}]
        }], "failures": []})
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn zip(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (path, content) in files {
        w.start_file(*path, zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        w.write_all(content.as_bytes()).expect("zip write");
    }
    w.finish().expect("zip").into_inner()
}

fn unzip(bytes: Vec<u8>, path: &str) -> Option<String> {
    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip");
    let mut f = a.by_name(path).ok()?;
    let mut s = String::new();
    f.read_to_string(&mut s).expect("utf-8");
    Some(s)
}

fn token_of(success: &Value) -> String {
    success["continuationToken"]
        .as_str()
        .expect("a continuation token")
        .to_owned()
}

fn imagedefinitions(image: &str) -> String {
    json!([{"name": "web", "imageUri": image}]).to_string()
}

const TASKDEF: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"<IMAGE1_NAME>","portMappings":[{"containerPort":8080}]}]}"#;
const APPSPEC: &str = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n        LoadBalancerInfo:\n          ContainerName: web\n          ContainerPort: 8080\n";

#[tokio::test]
async fn verify_artifact_passes_and_writes_a_kms_encrypted_output() {
    let mut rig = Rig::new("verify-ok").await;
    let detail = json!({"ImageURI": SHA_IMAGE}).to_string();
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[
            ("imagedefinitions.json", &imagedefinitions(SHA_IMAGE)),
            ("imageDetail.json", &detail),
            ("taskdef.json", TASKDEF),
            ("appspec.yaml", APPSPEC),
        ],
        true,
    )
    .await;
    let ev = rig.event("verify-artifact", "job-verify-ok", None);
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "success", "{out}");
    let s = rig.success("job-verify-ok");
    assert_eq!(s["outputVariables"]["image_uri"], SHA_IMAGE);
    assert_eq!(s["outputVariables"]["image_tag"], "3f9c2ab");
    assert_eq!(s["outputVariables"]["containers"], "web");
    let summary = s["executionDetails"]["summary"].as_str().expect("summary");
    assert!(summary.starts_with("artifact BuildOutput verified: imagedefinitions.json, imageDetail.json, taskdef.json, appspec.yaml"), "{summary}");
    assert!(summary.ends_with("; wrote VerifiedOutput"), "{summary}");

    // The output artifact went through S3 with SSE-KMS and the job's key.
    let key = "web-pipeline/VerifiedOu/Hk3pW9c";
    let head = rig
        .s3
        .head_object()
        .bucket(&rig.bucket)
        .key(key)
        .send()
        .await
        .expect("output artifact exists");
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(KMS_KEY));
    let body = rig
        .s3
        .get_object()
        .bucket(&rig.bucket)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .to_vec();
    let td = unzip(body, "taskdef.json").expect("taskdef.json in the output");
    assert!(
        td.contains(SHA_IMAGE) && !td.contains("<IMAGE1_NAME>"),
        "{td}"
    );
    assert_eq!(rig.count("s3:GET"), 1);
    assert_eq!(rig.count("s3:PUT"), 1);
}

#[tokio::test]
async fn verify_artifact_rejects_latest() {
    let mut rig = Rig::new("verify-latest").await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[(
            "imagedefinitions.json",
            &imagedefinitions("111111111111.dkr.ecr.us-east-1.amazonaws.com/web:latest"),
        )],
        false,
    )
    .await;
    let params = Rig::params(
        "verify-artifact",
        json!({"image_placeholder": null, "fill_image": false, "output_artifact": null}),
    );
    let ev = rig.event("verify-artifact", "job-latest", Some(params));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-latest");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains("uses the mutable tag :latest"),
        "{message}"
    );
    assert!(message.contains("imagedefinitions.json (web)"), "{message}");
    assert_eq!(
        rig.count("s3:PUT"),
        0,
        "nothing written for a failed verification"
    );
}

#[tokio::test]
async fn a_missing_artifact_fails_naming_bucket_and_key() {
    let mut rig = Rig::new("verify-missing").await;
    let ev = rig.event("job-with-credentials", "job-missing", None);
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-missing");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains("s3://tollgate-pa-verify-missing/web-pipeline/BuildOutpu/Xa9bQ2e"),
        "{message}"
    );
    assert!(message.contains("NoSuchKey"), "{message}");
    for secret in [
        "wJalrXUtnFEMI",
        "FwoGZXIvYXdzEXAMPLESESSIONTOKEN",
        "ASIATOLLGATEEXAMPLE1",
    ] {
        assert!(!message.contains(secret), "{message}");
        assert!(
            !rig.lambda.logs().contains(secret),
            "credentials reached the logs"
        );
    }
}

#[tokio::test]
async fn denied_artifact_access_is_a_permission_error() {
    let mut rig = Rig::new("verify-denied").await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions(SHA_IMAGE))],
        false,
    )
    .await;
    rig.standin.inject("s3:GET", Fault::AccessDenied, None);
    let ev = rig.event("job-with-credentials", "job-denied", None);
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-denied");
    assert_eq!(kind, "PermissionError");
    assert!(
        message.contains("was denied for the job's artifact credentials"),
        "{message}"
    );
    assert!(
        message.contains("s3://tollgate-pa-verify-denied/web-pipeline/BuildOutpu/Xa9bQ2e"),
        "{message}"
    );
}

#[tokio::test]
async fn ecs_deploy_rolls_out_over_three_reinvocations() {
    let mut rig = Rig::new("deploy-ok").await;
    let old = rig.seed_service().await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions(SHA_IMAGE))],
        false,
    )
    .await;
    let params = Rig::params(
        "ecs-deploy",
        json!({"cluster": rig.name, "service": rig.name}),
    );

    // First invocation: register, update, answer in progress.
    let ev = rig.event("ecs-deploy", "job-deploy-1", Some(params.clone()));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let first = rig.success("job-deploy-1");
    assert_eq!(rig.count("RegisterTaskDefinition"), 1);
    assert_eq!(rig.count("UpdateService"), 1);
    let new = rig.service_task_definition().await;
    assert_ne!(new, old);
    assert!(new.ends_with(&format!("{}:2", rig.name)), "{new}");
    let registered = rig
        .ecs
        .describe_task_definition()
        .task_definition(&new)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .expect("describe");
    let containers = registered
        .task_definition
        .and_then(|t| t.container_definitions)
        .expect("containers");
    assert_eq!(containers[0].image(), Some(SHA_IMAGE));
    assert_eq!(
        containers[1].image(),
        Some("public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0"),
        "containers not in imagedefinitions.json keep their image"
    );
    assert!(
        registered
            .tags
            .unwrap_or_default()
            .iter()
            .any(|t| t.key() == Some("tollgate:codepipeline-job-id")
                && t.value() == Some("job-deploy-1"))
    );
    let token: Value = serde_json::from_str(&token_of(&first)).expect("token is JSON");
    let deployment = token["deployment"]
        .as_str()
        .expect("deployment id")
        .to_owned();
    assert_eq!(token["taskDefinition"], json!(new));

    // Then three re-invocations with new job ids, one DescribeServices each.
    rig.standin.script(
        "DescribeServices",
        vec![
            rig.service_answer(&deployment, &new, "IN_PROGRESS", 1, "in progress"),
            rig.service_answer(&deployment, &new, "IN_PROGRESS", 3, "in progress"),
            rig.service_answer(&deployment, &new, "COMPLETED", 4, "completed"),
        ],
    );
    let mut token = token_of(&first);
    let mut progress = Vec::new();
    for (i, id) in ["job-deploy-2", "job-deploy-3", "job-deploy-4"]
        .iter()
        .enumerate()
    {
        let before = rig.count("DescribeServices");
        let mut ev = rig.event("ecs-deploy-continuation", id, Some(params.clone()));
        ev["CodePipeline.job"]["data"]["continuationToken"] = json!(token);
        let out = rig.invoke(ev).await;
        assert_eq!(
            rig.count("DescribeServices"),
            before + 1,
            "one poll per invocation"
        );
        let s = rig.success(id);
        progress.push((
            out["report"].as_str().expect("report").to_owned(),
            s["executionDetails"]["percentComplete"].clone(),
            s["executionDetails"]["summary"]
                .as_str()
                .expect("summary")
                .to_owned(),
        ));
        if i < 2 {
            token = token_of(&s);
        } else {
            assert!(s.get("continuationToken").is_none());
            assert_eq!(s["outputVariables"]["task_definition_arn"], json!(new));
            assert_eq!(s["outputVariables"]["deployment_id"], json!(deployment));
        }
    }
    assert_eq!(progress[0].0, "in-progress");
    assert_eq!(progress[0].1, json!(25));
    assert!(
        progress[0].2.starts_with(&format!(
            "{}: 1/4 tasks on new revision {}:2",
            rig.name, rig.name
        )),
        "{}",
        progress[0].2
    );
    assert_eq!(progress[1].1, json!(75));
    assert!(
        progress[1].2.contains("3/4 tasks on new revision"),
        "{}",
        progress[1].2
    );
    assert_eq!(progress[2].0, "success");
    assert_eq!(progress[2].1, json!(100));
    assert!(
        progress[2].2.contains("4/4 tasks on new revision")
            && progress[2].2.contains("rollout completed"),
        "{}",
        progress[2].2
    );
    // Waiting never registered or updated again.
    assert_eq!(rig.count("RegisterTaskDefinition"), 1);
    assert_eq!(rig.count("UpdateService"), 1);
    assert_eq!(rig.standin.reports().len(), 4);
}

#[tokio::test]
async fn ecs_deploy_reports_a_circuit_breaker_failure() {
    let mut rig = Rig::new("deploy-failed").await;
    rig.seed_service().await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions(SHA_IMAGE))],
        false,
    )
    .await;
    let params = Rig::params(
        "ecs-deploy",
        json!({"cluster": rig.name, "service": rig.name}),
    );
    let ev = rig.event("ecs-deploy", "job-cb-1", Some(params.clone()));
    rig.invoke(ev).await;
    let token = token_of(&rig.success("job-cb-1"));
    let t: Value = serde_json::from_str(&token).expect("token");
    let deployment = t["deployment"].as_str().expect("id").to_owned();
    let td = t["taskDefinition"].as_str().expect("td").to_owned();
    rig.standin.script(
        "DescribeServices",
        vec![rig.service_answer(&deployment, &td, "FAILED", 0, CIRCUIT_BREAKER)],
    );
    let task = format!(
        "arn:aws:ecs:us-east-1:123456789012:task/{}/5d6e7f80a1b2",
        rig.name
    );
    rig.standin
        .script("ListTasks", vec![json!({"taskArns": [task]})]);
    rig.standin.script(
        "DescribeTasks",
        vec![json!({"tasks": [{
            "taskArn": task, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
            "stoppedReason": "Essential container in task exited",
            "stoppedAt": 1.7637e9,
            "containers": [{"name": "web", "exitCode": 137, "lastStatus": "STOPPED"}]
        }], "failures": []})],
    );
    let mut ev = rig.event("ecs-deploy-continuation", "job-cb-2", Some(params));
    ev["CodePipeline.job"]["data"]["continuationToken"] = json!(token);
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-cb-2");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains(&format!(
            "ECS rollout of service {} to {}:2 FAILED",
            rig.name, rig.name
        )),
        "{message}"
    );
    assert!(message.contains(CIRCUIT_BREAKER), "{message}");
    assert!(message.contains("3 failed to start"), "{message}");
    assert!(
        message.contains("Stopped tasks: task 5d6e7f80a1b2: Essential container in task exited (web: exit code 137)"),
        "{message}"
    );
    assert!(
        message.contains("has started 1 tasks"),
        "service events are quoted: {message}"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_of_ecs_deploy_registers_one_revision() {
    let mut rig = Rig::new("deploy-dup").await;
    rig.seed_service().await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions(SHA_IMAGE))],
        false,
    )
    .await;
    let params = Rig::params(
        "ecs-deploy",
        json!({"cluster": rig.name, "service": rig.name}),
    );
    let ev = rig.event("ecs-deploy", "job-dup", Some(params));
    let first = rig.invoke(ev.clone()).await;
    let second = rig.invoke(ev).await;
    assert_eq!(first["delivery"], "delivered", "{first}");
    assert_eq!(second["delivery"], "already-reported", "{second}");
    rig.only_report("job-dup");
    assert_eq!(rig.count("RegisterTaskDefinition"), 1);
    assert_eq!(rig.count("UpdateService"), 1);
    assert_eq!(
        rig.revisions().await.len(),
        2,
        "the seeded revision and one new one"
    );
}

/// Issue 14.4: J1 deployed and reported, J2 deployed, J1 delivered again
/// (an async retry minutes later): CodePipeline says J1's action execution
/// is over, so nothing is registered or updated and production stays on
/// J2's revision.
#[tokio::test]
async fn a_late_redelivery_of_a_finished_deploy_never_rolls_production_back() {
    let mut rig = Rig::new("deploy-stale").await;
    rig.seed_service().await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions(SHA_IMAGE))],
        false,
    )
    .await;
    let params = Rig::params(
        "ecs-deploy",
        json!({"cluster": rig.name, "service": rig.name}),
    );
    let j1 = rig.event("ecs-deploy", "job-stale-1", Some(params.clone()));
    assert_eq!(rig.invoke(j1.clone()).await["report"], "in-progress");
    // J1's rollout finished through its continuation jobs.
    rig.standin.set_action_status("job-stale-1", "Succeeded");

    let newer = SHA_IMAGE.replace("3f9c2ab", "4a0d1be");
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions(&newer))],
        false,
    )
    .await;
    // J2's run starts after J1 registered its revision (in a pipeline,
    // minutes later; here a few milliseconds, past the timestamps' rounding).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let j2 = rig.event("ecs-deploy", "job-stale-2", Some(params));
    assert_eq!(rig.invoke(j2).await["report"], "in-progress");
    let production = rig.service_task_definition().await;
    let (registers, updates) = (
        rig.count("RegisterTaskDefinition"),
        rig.count("UpdateService"),
    );
    assert_eq!((registers, updates), (2, 2));

    // The late delivery of J1.
    let out = rig.invoke(j1).await;
    assert_eq!(out["delivery"], "already-reported", "{out}");
    assert_eq!(
        rig.count("RegisterTaskDefinition"),
        registers,
        "no new revision"
    );
    assert_eq!(rig.count("UpdateService"), updates, "no service update");
    assert_eq!(rig.service_task_definition().await, production);
    assert!(rig.count("GetJobDetails") >= 1);
    assert!(
        rig.lambda.logs().contains("the job is no longer live"),
        "{}",
        rig.lambda.logs()
    );
}

#[tokio::test]
async fn ecs_deploy_refuses_mutable_images_before_touching_ecs() {
    let mut rig = Rig::new("deploy-latest").await;
    rig.seed_service().await;
    rig.put_zip(
        "web-pipeline/BuildOutpu/Xa9bQ2e",
        &[("imagedefinitions.json", &imagedefinitions("nginx:latest"))],
        false,
    )
    .await;
    let params = Rig::params(
        "ecs-deploy",
        json!({"cluster": rig.name, "service": rig.name}),
    );
    let ev = rig.event("ecs-deploy", "job-deploy-latest", Some(params));
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-deploy-latest");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.starts_with(
            "refusing to deploy: container web: \"nginx:latest\" uses the mutable tag :latest"
        ),
        "{message}"
    );
    assert_eq!(
        rig.count("DescribeServices") + rig.count("RegisterTaskDefinition"),
        0
    );
}

#[tokio::test]
async fn a_superseded_deployment_fails_the_wait() {
    let mut rig = Rig::new("deploy-superseded").await;
    rig.seed_service().await;
    // The sample's token names a deployment this service never had.
    let params = Rig::params(
        "ecs-deploy-continuation",
        json!({"cluster": rig.name, "service": rig.name}),
    );
    let mut ev = rig.event("ecs-deploy-continuation", "job-superseded", Some(params));
    let raw = ev["CodePipeline.job"]["data"]["continuationToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut token: Value = serde_json::from_str(&raw).expect("token");
    token["cluster"] = json!(rig.name);
    token["service"] = json!(rig.name);
    ev["CodePipeline.job"]["data"]["continuationToken"] = json!(token.to_string());
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-superseded");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains("deployment ecs-svc/8273645510293847561"),
        "{message}"
    );
    assert!(
        message.contains("no longer among the service's deployments"),
        "{message}"
    );
    assert_eq!(rig.count("DescribeServices"), 1);
}

#[tokio::test]
async fn ecs_wait_waits_for_the_rollout() {
    let mut rig = Rig::new("wait-ok").await;
    let td = rig.seed_service().await;
    let params = Rig::params(
        "ecs-wait",
        json!({"cluster": rig.name, "service": rig.name}),
    );
    // moto's new service has no running tasks: its rollout is in progress.
    let ev = rig.event("ecs-wait", "job-wait-1", Some(params.clone()));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let first = rig.success("job-wait-1");
    assert_eq!(first["executionDetails"]["percentComplete"], json!(0));
    let token = token_of(&first);
    let deployment = serde_json::from_str::<Value>(&token).expect("token")["deployment"]
        .as_str()
        .expect("id")
        .to_owned();
    rig.standin.script(
        "DescribeServices",
        vec![rig.service_answer(&deployment, &td, "COMPLETED", 4, "completed")],
    );
    let mut ev = rig.event("ecs-wait", "job-wait-2", Some(params));
    ev["CodePipeline.job"]["data"]["continuationToken"] = json!(token);
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "success", "{out}");
    let done = rig.success("job-wait-2");
    assert!(
        done["executionDetails"]["summary"]
            .as_str()
            .expect("summary")
            .contains("4/4 tasks on new revision")
    );
    assert_eq!(
        rig.count("UpdateService") + rig.count("RegisterTaskDefinition"),
        0
    );
}

#[tokio::test]
async fn ecs_wait_for_a_missing_service_is_a_configuration_error() {
    let mut rig = Rig::new("wait-missing").await;
    rig.ecs
        .create_cluster()
        .cluster_name(&rig.name)
        .send()
        .await
        .expect("cluster");
    let params = Rig::params(
        "ecs-wait",
        json!({"cluster": rig.name, "service": "no-such-service"}),
    );
    let ev = rig.event("ecs-wait", "job-wait-missing", Some(params));
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-wait-missing");
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains("service no-such-service in cluster"),
        "{message}"
    );
    assert!(message.contains("was not found"), "{message}");
}

/// A loopback app (the shared stub): `/health` answers 200
/// `{"status":"ok"}`, anything else 503.
async fn app() -> Stub {
    Stub::start(|req: Request| {
        let (status, body) = if req.path == "/health" {
            (200, r#"{"status":"ok"}"#)
        } else {
            (503, "unavailable")
        };
        async move {
            Reply::status(status)
                .header("content-type", "application/json")
                .body(body)
        }
    })
    .await
}

#[tokio::test]
async fn smoke_from_an_artifact_spec_passes_with_output_variables() {
    let mut rig = Rig::new("smoke-ok").await;
    let app = app().await;
    let target = app.url("");
    let spec = "checks:\n  - name: health\n    url: \"${TARGET}/health\"\n    expect:\n      status: 200\n      json:\n        - path: $.status\n          equals: ok\n";
    rig.put_zip(
        "web-pipeline/SourceOutp/Q7mZk2a",
        &[("checks/staging.yaml", spec)],
        false,
    )
    .await;
    let params = Rig::params("smoke", json!({"vars": {"TARGET": target}}));
    let ev = rig.event("smoke", "job-smoke-ok", Some(params));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "success", "{out}");
    let s = rig.success("job-smoke-ok");
    assert_eq!(s["outputVariables"]["passed"], "1");
    assert_eq!(s["outputVariables"]["failed"], "0");
    assert!(
        s["outputVariables"]["p95_ms"]
            .as_str()
            .is_some_and(|p| p.parse::<u64>().is_ok()),
        "{s}"
    );
    assert!(
        s["executionDetails"]["summary"]
            .as_str()
            .expect("summary")
            .starts_with("1/1 passed")
    );
}

#[tokio::test]
async fn smoke_failure_lists_the_failed_expectations() {
    let mut rig = Rig::new("smoke-fail").await;
    let app = app().await;
    let target = app.url("");
    let params = Rig::params(
        "smoke-inline",
        json!({
            "spec": {"checks": [
                {"name": "health", "url": "${TARGET}/health", "expect": {"status": 200}},
                {"name": "checkout", "url": "${TARGET}/checkout", "expect": {"status": 200}}
            ]},
            "vars": {"TARGET": target}
        }),
    );
    let ev = rig.event("smoke-inline", "job-smoke-fail", Some(params));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-smoke-fail");
    assert_eq!(kind, "JobFailed");
    assert!(message.starts_with("1/2 passed"), "{message}");
    assert!(
        message.contains("FAIL checkout: status 503 (expected 200)"),
        "{message}"
    );
}

#[tokio::test]
async fn ten_malformed_user_parameters_each_get_one_configuration_error() {
    let mut rig = Rig::new("bad-params").await;
    let samples: [(&str, Option<Value>, &str); 12] = [
        ("bad-params-not-json", None, "UserParameters"),
        ("bad-params-unknown-action", None, "field \"action\""),
        ("bad-params-missing-field", None, "field \"cluster\""),
        ("bad-params-unknown-field", None, "field \"timeout\""),
        ("ecs-wait", Some(json!([1, 2])), "UserParameters"),
        (
            "ecs-wait",
            Some(json!({"cluster": "c"})),
            "field \"action\"",
        ),
        (
            "ecs-wait",
            Some(json!({"action": "ecs-wait", "cluster": 7, "service": "s"})),
            "field \"cluster\"",
        ),
        (
            "ecs-wait",
            Some(
                json!({"action": "ecs-wait", "cluster": "c", "service": "s", "wait_timeout_minutes": 0}),
            ),
            "field \"wait_timeout_minutes\"",
        ),
        (
            "verify-artifact",
            Some(json!({"action": "verify-artifact", "image_policy": {"pin": "sometimes"}})),
            "field \"image_policy.pin\"",
        ),
        (
            "verify-artifact",
            Some(json!({"action": "verify-artifact", "expected_containers": ["web", 3]})),
            "field \"expected_containers[1]\"",
        ),
        (
            "smoke",
            Some(json!({"action": "smoke"})),
            "field \"spec_path\"",
        ),
        (
            "smoke",
            Some(json!({"action": "smoke", "spec_path": "a.yaml", "vars": {"TARGET": true}})),
            "field \"vars.TARGET\"",
        ),
    ];
    for (i, (sample, params, field)) in samples.into_iter().enumerate() {
        let id = format!("job-bad-{i}");
        let ev = rig.event(sample, &id, params);
        let out = rig.invoke(ev).await;
        assert_eq!(out["report"], "failure", "{sample} #{i}: {out}");
        let (kind, message) = rig.failure(&id);
        assert_eq!(kind, "ConfigurationError", "{sample} #{i}: {message}");
        assert!(message.starts_with("invalid UserParameters: "), "{message}");
        assert!(
            message.contains(field),
            "#{i} should name {field}: {message}"
        );
        assert!(
            message.contains("Example of valid UserParameters: {\"action\":"),
            "{message}"
        );
    }
    // Nothing but the reports was called.
    let other: Vec<String> = rig
        .standin
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|op| op != "PutJobFailureResult")
        .collect();
    assert!(other.is_empty(), "{other:?}");
}

/// Issue 14.1: a configuration error must not leave a pipeline waiting out
/// the action's timeout. The function starts anyway and reports every job a
/// `ConfigurationError` at once, with the configuration error as the reason.
#[tokio::test]
async fn a_configuration_error_reports_every_job_at_once() {
    let standin = AwsStandIn::start(None).await;
    let mut env = standin.lambda_env();
    env.push(("TOLLGATE_ARTIFACT_MAX_BYTES".into(), "50MB".into()));
    env.push(("RUST_LOG".into(), "info".into()));
    let mut lambda = LocalLambda::spawn(&paths::function_binary("pipeline-action"), &env).await;
    assert!(
        lambda.wait_init(Duration::from_secs(20)).await.is_some(),
        "a configuration error must not fail init: {:?}\n{}",
        lambda.init_error(),
        lambda.logs()
    );
    for (i, sample) in ["ecs-deploy", "verify-artifact", "smoke"]
        .into_iter()
        .enumerate()
    {
        let id = format!("job-misconfigured-{i}");
        let mut ev = paths::event("pipeline-action", sample);
        ev["CodePipeline.job"]["id"] = json!(id);
        standin.register_job(&id);
        let out = lambda.invoke(ev, Duration::from_secs(20)).await;
        assert_eq!(out.response()["report"], "failure", "{}", lambda.logs());
        let reports = standin.reports_for(&id);
        assert_eq!(reports.len(), 1, "{reports:?}");
        let Report::JobFailure {
            failure_type,
            message,
            ..
        } = &reports[0]
        else {
            panic!("expected a failure: {reports:?}");
        };
        assert_eq!(failure_type, "ConfigurationError");
        assert!(
            message.starts_with(
                "pipeline-action is misconfigured (InvalidConfiguration): \
                 TOLLGATE_ARTIFACT_MAX_BYTES=\"50MB\" is invalid"
            ),
            "{message}"
        );
    }
    let other: Vec<String> = standin
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|op| op != "PutJobFailureResult")
        .collect();
    assert!(
        other.is_empty(),
        "nothing runs while misconfigured: {other:?}"
    );
    assert!(
        lambda.logs().contains("ConfigurationError"),
        "the error is visible in the logs: {}",
        lambda.logs()
    );
}

/// The template runs pipeline-action with 128 MB and lets verify-artifact
/// download up to `ArtifactMaxBytes` (50 MiB by default). An artifact just
/// under that limit must fit: the zip is held in memory and an output
/// artifact is written, so this measures the peak (VmHWM) of the real
/// binary verifying one. Not a timing assertion: memory is what Lambda
/// kills a function for.
#[tokio::test]
async fn verify_artifact_at_the_default_size_limit_fits_128_mb() {
    const LAMBDA_MEMORY_MIB: u64 = 128;
    let mut rig = Rig::new("verify-large").await;
    let detail = json!({"ImageURI": SHA_IMAGE}).to_string();
    // Incompressible filler, stored, so the zip is as large as its contents.
    let filler_len = 49 * 1024 * 1024;
    let mut filler = Vec::with_capacity(filler_len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while filler.len() < filler_len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        filler.extend_from_slice(&x.to_le_bytes());
    }
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default();
    let stored = deflated.compression_method(zip::CompressionMethod::Stored);
    for (path, content) in [
        ("imagedefinitions.json", imagedefinitions(SHA_IMAGE)),
        ("imageDetail.json", detail),
        ("taskdef.json", TASKDEF.to_owned()),
        ("appspec.yaml", APPSPEC.to_owned()),
    ] {
        w.start_file(path, deflated).expect("zip entry");
        w.write_all(content.as_bytes()).expect("zip write");
    }
    w.start_file("static/bundle.bin", stored)
        .expect("zip entry");
    w.write_all(&filler).expect("zip write");
    drop(filler);
    let body = w.finish().expect("zip").into_inner();
    let zip_len = body.len() as u64;
    assert!(
        zip_len < 50 * 1024 * 1024 && zip_len > 48 * 1024 * 1024,
        "{zip_len}"
    );
    rig.s3
        .put_object()
        .bucket(&rig.bucket)
        .key("web-pipeline/BuildOutpu/Xa9bQ2e")
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("artifact uploaded to moto");

    let ev = rig.event("verify-artifact", "job-verify-large", None);
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "success", "{out}");
    rig.success("job-verify-large");
    let peak_kib = rig.lambda.peak_rss_kib().expect("VmHWM of the function");
    eprintln!(
        "verify-artifact of a {:.1} MiB artifact: peak RSS {:.1} MiB",
        zip_len as f64 / 1048576.0,
        peak_kib as f64 / 1024.0
    );
    assert!(
        peak_kib < LAMBDA_MEMORY_MIB * 1024,
        "verifying a {zip_len}-byte artifact peaked at {peak_kib} KiB, over the template's \
         {LAMBDA_MEMORY_MIB} MB: raise PipelineActionMemorySize's default or lower ArtifactMaxBytes'"
    );
}

// ---- gate: metric gates against moto's CloudWatch ----
//
// The CloudWatch SDK speaks Smithy RPC v2 CBOR, which moto does not read:
// the stand-in translates it to CloudWatch's awsJson 1.0 and back
// (`tests/src/aws_standin.rs`, `forward_cbor`). What moto's GetMetricData
// answers: MetricStat queries with Sum, Average, Minimum, Maximum and
// SampleCount (percentiles come back as null values), and a metric-math
// expression only when it is the bare id of another query (anything else:
// no values). Metric math and percentiles are covered with scripted
// CloudWatch answers on the stand-in.

/// Seeds moto's CloudWatch through a stand-in of its own (so the test's
/// stand-in records only the function's calls), with the real SDK.
async fn seed_metrics(target_group: &str, requests: f64, latency_s: f64, alarm: &str) {
    let errors = 0.0;
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
    let at = aws_sdk_cloudwatch::primitives::DateTime::from_secs(
        i64::try_from(now_epoch()).expect("epoch") - 90,
    );
    for (name, value) in [
        ("RequestCount", requests),
        ("TargetResponseTime", latency_s),
        ("HTTPCode_Target_5XX_Count", errors),
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

/// The gate sample's UserParameters for this rig: its own target group
/// and alarm (moto is shared between tests).
fn gate_params(rig: &Rig, changes: Value) -> Value {
    let mut p = Rig::params("gate", json!({}));
    p["vars"]["TARGET_GROUP"] = json!(format!("targetgroup/{}/1", rig.name));
    p["gate"]["alarms"] = json!([format!("{}-5xx", rig.name)]);
    for (k, v) in changes.as_object().expect("object") {
        p["gate"][k] = v.clone();
    }
    p
}

/// The token with its bake moved `secs` into the past, so the next
/// measurement is due now (the test never waits out an interval).
fn backdate(token: &str, secs: i64) -> String {
    let mut t: Value = serde_json::from_str(token).expect("gate token is JSON");
    let t0 = t["s"]["t0"].as_i64().expect("t0");
    t["s"]["t0"] = json!(t0 - secs);
    t.to_string()
}

#[tokio::test]
async fn gate_bakes_against_moto_cloudwatch_and_passes() {
    let mut rig = Rig::new("gate-pass").await;
    seed_metrics(
        &format!("targetgroup/{}/1", rig.name),
        812.0,
        0.212,
        &format!("{}-5xx", rig.name),
    )
    .await;
    let params = gate_params(&rig, json!({}));

    // 1: the preflight (metrics and the alarm exist), the bake starts.
    let out = rig
        .invoke(rig.event("gate", "job-gate-1", Some(params.clone())))
        .await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let first = rig.success("job-gate-1");
    assert_eq!(first["executionDetails"]["percentComplete"], json!(0));
    assert_eq!(rig.count("ListMetrics"), 2);
    assert_eq!(rig.count("DescribeAlarms"), 1);
    assert_eq!(
        rig.count("GetMetricData"),
        0,
        "nothing is measured before the first interval"
    );

    // 2 and 3: one measurement each, answered by moto.
    let mut token = token_of(&first);
    for (i, id) in ["job-gate-2", "job-gate-3"].into_iter().enumerate() {
        let mut ev = rig.event("gate", id, Some(params.clone()));
        ev["CodePipeline.job"]["data"]["continuationToken"] = json!(backdate(&token, 60));
        let out = rig.invoke(ev).await;
        let report = rig.success(id);
        if i == 0 {
            assert_eq!(out["report"], "in-progress", "{out}");
            assert_eq!(report["executionDetails"]["percentComplete"], json!(50));
            let summary = report["executionDetails"]["summary"]
                .as_str()
                .expect("summary");
            assert!(
                summary.starts_with("metric gate running: 1 of 2 measurements (50%): 1 successful"),
                "{summary}"
            );
            assert!(
                summary.ends_with("requests 812, average latency 212 ms"),
                "{summary}"
            );
            token = token_of(&report);
        } else {
            assert_eq!(out["report"], "success", "{out}");
            let vars = &report["outputVariables"];
            assert_eq!(vars["verdict"], "successful", "{report}");
            assert_eq!(vars["measurements"], "2");
            assert_eq!(vars["failed"], "0");
        }
    }
    let calls = rig.standin.calls_of("GetMetricData");
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|c| c.forwarded && c.status == 200),
        "{calls:?}"
    );
    assert_eq!(
        calls[0].request["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"][1]["Value"],
        json!(format!("targetgroup/{}/1", rig.name)),
        "the function sent CBOR the stand-in could read"
    );
}

#[tokio::test]
async fn gate_fails_when_the_5xx_rate_rises_with_metric_math_on_the_standin() {
    let mut rig = Rig::new("gate-5xx").await;
    seed_metrics(
        &format!("targetgroup/{}/1", rig.name),
        900.0,
        0.1,
        &format!("{}-5xx", rig.name),
    )
    .await;
    let params = gate_params(
        &rig,
        json!({
            "queries": [
                {"id": "requests", "metric": {"namespace": "AWS/ApplicationELB", "name": "RequestCount", "stat": "Sum",
                    "dimensions": {"LoadBalancer": "${LOAD_BALANCER}", "TargetGroup": "${TARGET_GROUP}"}}},
                {"id": "errors", "missing": "zero", "metric": {"namespace": "AWS/ApplicationELB", "name": "HTTPCode_Target_5XX_Count", "stat": "Sum",
                    "dimensions": {"LoadBalancer": "${LOAD_BALANCER}", "TargetGroup": "${TARGET_GROUP}"}}},
                {"id": "error_rate", "name": "5xx rate", "unit": "%", "expression": "100 * FILL(errors, 0) / requests"}
            ],
            "conditions": [{"query": "error_rate", "max": 1}]
        }),
    );
    let out = rig
        .invoke(rig.event("gate", "job-gate5-1", Some(params.clone())))
        .await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let token = token_of(&rig.success("job-gate5-1"));
    // moto answers no metric math: CloudWatch's answer, scripted.
    let ts = now_epoch() as f64 - 120.0;
    rig.standin.script(
        "GetMetricData",
        vec![json!({"MetricDataResults": [
            {"Id": "requests", "Label": "requests", "Timestamps": [ts], "Values": [900.0], "StatusCode": "Complete"},
            {"Id": "errors", "Label": "errors", "Timestamps": [ts], "Values": [29.0], "StatusCode": "Complete"},
            {"Id": "error_rate", "Label": "error_rate", "Timestamps": [ts], "Values": [3.2222], "StatusCode": "Complete"}
        ], "Messages": []})],
    );
    let mut ev = rig.event("gate", "job-gate5-2", Some(params));
    ev["CodePipeline.job"]["data"]["continuationToken"] = json!(backdate(&token, 60));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-gate5-2");
    assert_eq!(kind, "JobFailed");
    assert_eq!(
        message,
        "metric gate failed: 5xx rate 3.222 % > 1 % in 1 of 1 measurements\n\
         last measurement (1 of 2) failed: 5xx rate 3.222 % > 1 %\n\
         measurements: 0 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 1 of 2 taken\n\
         what to do: the new version stays out: fix what the measurements show and release again, or change the gate's conditions if a limit is wrong"
    );
    // The notifier reads the same text back as the gate's result.
    let report = tollgate_core::gate_report::GateReport::parse(&message).expect("a gate report");
    assert_eq!(
        report.headline,
        "5xx rate 3.222 % > 1 % in 1 of 1 measurements"
    );
}

#[tokio::test]
async fn gate_with_an_unknown_metric_fails_the_first_invocation() {
    let mut rig = Rig::new("gate-unknown").await;
    seed_metrics(
        &format!("targetgroup/{}/1", rig.name),
        900.0,
        0.1,
        &format!("{}-5xx", rig.name),
    )
    .await;
    let mut params = gate_params(&rig, json!({}));
    params["gate"]["queries"][1]["metric"]["name"] = json!("TargetResponseTim");
    let out = rig
        .invoke(rig.event("gate", "job-gate-u", Some(params)))
        .await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-gate-u");
    assert_eq!(kind, "ConfigurationError");
    assert_eq!(
        message,
        "the metric gate cannot run: gate.queries[1].metric: CloudWatch has no metric AWS/ApplicationELB TargetResponseTim (with any dimensions) in the past two weeks; check the namespace and the metric name"
    );
    assert_eq!(rig.count("GetMetricData"), 0);
}

#[tokio::test]
async fn gate_throttled_by_cloudwatch_counts_an_error_and_goes_on() {
    let mut rig = Rig::new("gate-throttle").await;
    seed_metrics(
        &format!("targetgroup/{}/1", rig.name),
        500.0,
        0.1,
        &format!("{}-5xx", rig.name),
    )
    .await;
    let params = gate_params(&rig, json!({"count": 3}));
    let out = rig
        .invoke(rig.event("gate", "job-gatet-1", Some(params.clone())))
        .await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let token = token_of(&rig.success("job-gatet-1"));
    rig.standin
        .inject("GetMetricData", Fault::Throttle, Some(10));
    let mut ev = rig.event("gate", "job-gatet-2", Some(params));
    ev["CodePipeline.job"]["data"]["continuationToken"] = json!(backdate(&token, 60));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let report = rig.success("job-gatet-2");
    let summary = report["executionDetails"]["summary"]
        .as_str()
        .expect("summary");
    assert!(
        summary.contains(
            "1 errors; last measurement error: could not read CloudWatch: GetMetricData failed"
        ),
        "{summary}"
    );
}

// ---------------------------------------------------------------- run-task

const MIGRATION_SECRET: &str = "migration-password-never-shown";

impl Rig {
    /// Cluster `<name>` with a one-container task definition family
    /// `<name>-migrate` (container `migrate`, awslogs to `/ecs/<name>` with
    /// prefix `ecs`). Returns the task definition ARN.
    async fn seed_migration(&self) -> String {
        let n = &self.name;
        self.ecs
            .create_cluster()
            .cluster_name(n)
            .send()
            .await
            .expect("cluster");
        let mut options = std::collections::HashMap::new();
        options.insert("awslogs-group".to_owned(), format!("/ecs/{n}"));
        options.insert("awslogs-stream-prefix".to_owned(), "ecs".to_owned());
        self.ecs
            .register_task_definition()
            .family(format!("{n}-migrate"))
            // No requiresCompatibilities: moto would then make it awsvpc and
            // want a real subnet; launch_type FARGATE comes from UserParameters.
            .container_definitions(
                ContainerDefinition::builder()
                    .name("migrate")
                    .image(SHA_IMAGE)
                    .memory(512)
                    .essential(true)
                    .log_configuration(
                        aws_sdk_ecs::types::LogConfiguration::builder()
                            .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
                            .set_options(Some(options))
                            .build()
                            .expect("log configuration"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("task definition")
            .task_definition
            .and_then(|t| t.task_definition_arn)
            .expect("arn")
    }

    fn run_task_params(&self) -> Value {
        json!({
            "action": "run-task",
            "cluster": self.name,
            "task_definition": format!("{}-migrate", self.name),
            "launch_type": "FARGATE",
            "network": {"subnets": ["subnet-0a1b2c3d"], "security_groups": ["sg-0a1b2c3d"]},
            "overrides": {"migrate": {"command": ["bin/migrate", "--yes"],
                "environment": {"DB_PASSWORD": MIGRATION_SECRET}}},
            "timeout_minutes": 20
        })
    }

    /// A continuation job carrying `token`.
    fn next(&self, id: &str, params: &Value, token: &str) -> Value {
        let mut ev = self.event("run-task-continuation", id, Some(params.clone()));
        ev["CodePipeline.job"]["data"]["continuationToken"] = json!(token);
        ev
    }

    /// A log stream with `lines`, in moto (what the awslogs driver would write).
    async fn seed_log_stream(&self, group: &str, stream: &str, lines: &[String]) {
        let sdk = self.standin_free_sdk().await;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
        let _ = logs.create_log_group().log_group_name(group).send().await;
        logs.create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
            .expect("log stream");
        let now = i64::try_from(now_epoch()).expect("epoch") * 1000;
        let mut req = logs
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream);
        for (i, l) in lines.iter().enumerate() {
            req = req.log_events(
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now + i64::try_from(i).expect("small"))
                    .message(l)
                    .build()
                    .expect("event"),
            );
        }
        req.send().await.expect("log events put");
    }

    /// An SDK configuration for moto itself (seeding bypasses the stand-in).
    async fn standin_free_sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(Moto::shared().url())
            .region(aws_config::Region::new("us-east-1"))
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
}

/// A DescribeTasks answer for a stopped task.
fn stopped_task(task: &str, td: &str, exit_code: i64, reason: &str) -> Value {
    json!({"tasks": [{
        "taskArn": task, "taskDefinitionArn": td,
        "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited", "stoppedReason": reason,
        "createdAt": 1.7637e9, "startedAt": 1.7637e9, "stoppedAt": 1.7637e9 + 42.0,
        "containers": [{"name": "migrate", "lastStatus": "STOPPED", "exitCode": exit_code}]
    }], "failures": []})
}

#[tokio::test]
async fn run_task_starts_one_task_and_follows_it_to_a_clean_exit_on_moto() {
    let mut rig = Rig::new("run-ok").await;
    let td = rig.seed_migration().await;
    let params = rig.run_task_params();
    let ev = rig.event("run-task", "job-run-1", Some(params.clone()));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let first = rig.success("job-run-1");
    let mut token = token_of(&first);
    let t: Value = serde_json::from_str(&token).expect("token");
    let task = t["task"].as_str().expect("task arn").to_owned();
    // The request ECS got: one task, the job's startedBy and tag, the overrides.
    let run = rig.standin.calls_of("RunTask");
    assert_eq!(run.len(), 1);
    let req = &run[0].request;
    assert_eq!(req["startedBy"], "job-run-1");
    assert_eq!(req["count"], 1);
    assert_eq!(req["launchType"], "FARGATE");
    assert_eq!(req["taskDefinition"], td);
    assert_eq!(
        req["tags"],
        json!([{"key": "tollgate:codepipeline-job-id", "value": "job-run-1"}])
    );
    assert_eq!(
        req["overrides"]["containerOverrides"][0]["command"],
        json!(["bin/migrate", "--yes"])
    );
    assert_eq!(
        req["networkConfiguration"]["awsvpcConfiguration"]["subnets"],
        json!(["subnet-0a1b2c3d"])
    );
    assert_eq!(
        rig.count("GetJobDetails"),
        1,
        "liveness asked before RunTask"
    );

    // moto moves the task one state per DescribeTasks until STOPPED.
    let mut statuses = Vec::new();
    let mut done = None;
    for i in 0..8 {
        let id = format!("job-run-poll-{i}");
        let out = rig.invoke(rig.next(&id, &params, &token)).await;
        let report = rig.success(&id);
        let summary = report["executionDetails"]["summary"]
            .as_str()
            .expect("summary")
            .to_owned();
        statuses.push(summary.clone());
        if out["report"] == "success" {
            done = Some(report);
            break;
        }
        token = token_of(&report);
    }
    let done = done.unwrap_or_else(|| panic!("the task never finished: {statuses:#?}"));
    let summary = done["executionDetails"]["summary"]
        .as_str()
        .expect("summary");
    assert!(summary.contains("succeeded after"), "{summary}");
    assert!(summary.contains("→ STOPPED"), "{summary}");
    let vars = &done["outputVariables"];
    assert_eq!(vars["task_arn"], json!(task));
    assert_eq!(vars["exit_code"], "0");
    assert!(vars["duration_seconds"].as_str().is_some(), "{vars}");
    assert_eq!(rig.count("RunTask"), 1);
    assert_eq!(rig.count("StopTask"), 0);
}

#[tokio::test]
async fn a_duplicate_delivery_of_run_task_starts_no_second_task() {
    let mut rig = Rig::new("run-dup").await;
    rig.seed_migration().await;
    let params = rig.run_task_params();
    let ev = rig.event("run-task", "job-run-dup", Some(params.clone()));
    rig.invoke(ev.clone()).await;
    let first = token_of(&rig.success("job-run-dup"));
    // Lambda delivers the same event again: the job was reported, so the
    // stand-in refuses a second report, and no second task starts.
    rig.invoke(ev).await;
    assert_eq!(rig.count("RunTask"), 1, "one task per job");
    assert!(
        rig.count("ListTasks") >= 2,
        "the redelivery looked for the task"
    );
    let t: Value = serde_json::from_str(&first).expect("token");
    assert!(t["task"].as_str().is_some());
}

#[tokio::test]
async fn a_late_run_task_for_a_finished_job_starts_nothing() {
    let mut rig = Rig::new("run-stale").await;
    rig.seed_migration().await;
    let params = rig.run_task_params();
    let ev = rig.event("run-task", "job-run-stale", Some(params));
    rig.standin.set_action_status("job-run-stale", "Failed");
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-run-stale");
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("no longer live"), "{message}");
    assert_eq!(rig.count("RunTask"), 0);
}

#[tokio::test]
async fn a_failed_migration_reports_exit_code_reason_and_redacted_log_lines() {
    let mut rig = Rig::new("run-fail").await;
    let td = rig.seed_migration().await;
    let params = rig.run_task_params();
    let ev = rig.event("run-task", "job-runf-1", Some(params.clone()));
    rig.invoke(ev).await;
    let token = token_of(&rig.success("job-runf-1"));
    let task = serde_json::from_str::<Value>(&token).expect("token")["task"]
        .as_str()
        .expect("arn")
        .to_owned();
    let task_id = task.rsplit('/').next().expect("id").to_owned();
    let group = format!("/ecs/{}", rig.name);
    let stream = format!("ecs/migrate/{task_id}");
    let mut lines: Vec<String> = (1..=40)
        .map(|i| format!("applied migration {i:04}"))
        .collect();
    lines.push(format!(
        "connecting as app with password {MIGRATION_SECRET}"
    ));
    lines.push("ERROR: column \"email\" of relation \"users\" already exists".to_owned());
    rig.seed_log_stream(&group, &stream, &lines).await;
    // moto's containers always exit 0: the failed stop comes from the stand-in.
    rig.standin.script(
        "DescribeTasks",
        vec![stopped_task(
            &task,
            &td,
            3,
            "Essential container in task exited",
        )],
    );
    let out = rig.invoke(rig.next("job-runf-2", &params, &token)).await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-runf-2");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains(&format!(
            "task {task_id} ({}-migrate:1) failed: essential container migrate exited with code 3; \
             stopped reason: Essential container in task exited (EssentialContainerExited)",
            rig.name
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "Last 20 log lines of migrate (group {group}, stream {stream})"
        )),
        "{message}"
    );
    assert!(message.contains("| applied migration 0023\n"), "{message}");
    assert!(!message.contains("applied migration 0022"), "{message}");
    assert!(
        message.ends_with("| ERROR: column \"email\" of relation \"users\" already exists"),
        "{message}"
    );
    assert!(!message.contains(MIGRATION_SECRET), "{message}");
    assert!(message.contains("password ***"), "{message}");
    let reads = rig.standin.calls_of("GetLogEvents");
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].request["logGroupName"], group);
    assert_eq!(reads[0].request["startFromHead"], false);
    assert_eq!(reads[0].request["limit"], 20);
    assert!(reads[0].request.get("unmask").is_none());
}

#[tokio::test]
async fn run_task_stops_the_task_at_its_time_limit() {
    let mut rig = Rig::new("run-limit").await;
    rig.seed_migration().await;
    let mut params = rig.run_task_params();
    params["timeout_minutes"] = json!(1);
    let ev = rig.event("run-task", "job-runl-1", Some(params.clone()));
    rig.invoke(ev).await;
    let token = token_of(&rig.success("job-runl-1"));
    // The wait started 2 minutes ago.
    let mut t: Value = serde_json::from_str(&token).expect("token");
    t["startedAt"] = json!(now_epoch() - 120);
    let out = rig
        .invoke(rig.next("job-runl-2", &params, &t.to_string()))
        .await;
    assert_eq!(out["report"], "failure", "{out}");
    let (kind, message) = rig.failure("job-runl-2");
    assert_eq!(kind, "JobFailed");
    assert!(
        message.contains("did not finish within the 1m time limit"),
        "{message}"
    );
    assert!(message.contains("it was stopped (StopTask"), "{message}");
    let stops = rig.standin.calls_of("StopTask");
    assert_eq!(stops.len(), 1);
    assert_eq!(
        stops[0].request["reason"],
        "Tollgate: time limit of 1m reached for CodePipeline job job-runl-1"
    );
    assert_eq!(stops[0].request["task"], t["task"]);
}

#[tokio::test]
async fn run_task_without_network_for_awsvpc_names_the_field_and_starts_nothing() {
    let mut rig = Rig::new("run-nonet").await;
    rig.seed_migration().await;
    let mut params = rig.run_task_params();
    params.as_object_mut().expect("object").remove("network");
    let ev = rig.event("run-task", "job-run-nonet", Some(params));
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-run-nonet");
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains("field \"network\" is missing"),
        "{message}"
    );
    assert_eq!(rig.count("RunTask"), 0);
}

// ------------------------------------------- run-task with taskdef.json

const TASKDEF_SECRET: &str = "taskdef-env-token-never-shown";
const BUILD_KEY: &str = "web-pipeline/BuildOutpu/Xa9bQ2e";

impl Rig {
    /// taskdef.json (family `<name>-td`, container `migrate` with the image
    /// placeholder, awslogs, a secret reference, an environment value, a
    /// tag of its own) and imageDetail.json, as the build writes them.
    fn taskdef(&self, execution_role: &str) -> String {
        json!({
            "family": format!("{}-td", self.name),
            "taskRoleArn": "arn:aws:iam::111111111111:role/migrate-task",
            "executionRoleArn": execution_role,
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [{
                "name": "migrate",
                "image": "<IMAGE1_NAME>",
                "essential": true,
                "memory": 512,
                "environment": [{"name": "API_TOKEN", "value": TASKDEF_SECRET}],
                "secrets": [{"name": "DB_PASSWORD",
                    "valueFrom": "arn:aws:ssm:us-east-1:111111111111:parameter/db-password"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": format!("/ecs/{}", self.name),
                    "awslogs-stream-prefix": "ecs"}}
            }],
            "tags": [{"key": "team", "value": "db"}]
        })
        .to_string()
    }

    fn taskdef_params(&self) -> Value {
        json!({
            "action": "run-task",
            "cluster": self.name,
            "task_definition_file": "taskdef.json",
            "image_placeholder": "IMAGE1_NAME",
            "launch_type": "FARGATE",
            "network": {"subnets": ["subnet-0a1b2c3d"]},
            "overrides": {"migrate": {"command": ["bin/migrate", "--yes"]}},
            "timeout_minutes": 30
        })
    }

    async fn seed_taskdef(&self, execution_role: &str) {
        self.ecs
            .create_cluster()
            .cluster_name(&self.name)
            .send()
            .await
            .expect("cluster");
        let detail = json!({"ImageURI": SHA_IMAGE}).to_string();
        self.put_zip(
            BUILD_KEY,
            &[
                ("taskdef.json", self.taskdef(execution_role).as_str()),
                ("imageDetail.json", detail.as_str()),
            ],
            true,
        )
        .await;
    }
}

#[tokio::test]
async fn run_task_registers_the_artifacts_taskdef_once_tagged_and_runs_it() {
    let mut rig = Rig::with_env(
        "run-td",
        &[(
            "TOLLGATE_ECS_PASS_ROLE_ARNS",
            "arn:aws:iam::111111111111:role/migrate-*, arn:aws:iam::111111111111:role/ecs-exec",
        )],
    )
    .await;
    rig.seed_taskdef("arn:aws:iam::111111111111:role/ecs-exec")
        .await;
    let params = rig.taskdef_params();
    let ev = rig.event("run-task", "job-run-td", Some(params.clone()));
    let out = rig.invoke(ev.clone()).await;
    assert_eq!(out["report"], "in-progress", "{out}");
    rig.success("job-run-td");
    // The document went to ECS as written, the placeholder filled, the job tags added.
    let registered = rig.standin.calls_of("RegisterTaskDefinition");
    assert_eq!(registered.len(), 1);
    let body = &registered[0].request;
    let family = format!("{}-td", rig.name);
    assert_eq!(body["family"], json!(family));
    assert_eq!(body["cpu"], "256");
    assert_eq!(body["containerDefinitions"][0]["image"], SHA_IMAGE);
    assert_eq!(
        body["containerDefinitions"][0]["secrets"][0]["valueFrom"],
        "arn:aws:ssm:us-east-1:111111111111:parameter/db-password"
    );
    let tags = body["tags"].as_array().expect("tags");
    assert!(
        tags.contains(&json!({"key": "team", "value": "db"})),
        "{tags:?}"
    );
    assert!(
        tags.contains(&json!({"key": "tollgate:codepipeline-job-id", "value": "job-run-td"})),
        "{tags:?}"
    );
    // moto holds the revision, tagged with the job; RunTask ran exactly it.
    let described = rig
        .ecs
        .describe_task_definition()
        .task_definition(&family)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .expect("registered in moto");
    let arn = described
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .expect("arn");
    assert!(described.tags.unwrap_or_default().iter().any(|t| t.key()
        == Some("tollgate:codepipeline-job-id")
        && t.value() == Some("job-run-td")));
    let run = rig.standin.calls_of("RunTask");
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].request["taskDefinition"], json!(arn));
    // Liveness was asked before registering anything.
    let calls = rig.standin.calls();
    let at = |op: &str| {
        calls
            .iter()
            .position(|c| c.operation == op)
            .unwrap_or_else(|| panic!("no {op}"))
    };
    assert!(at("GetJobDetails") < at("RegisterTaskDefinition"));
    // A redelivery registers nothing and starts nothing.
    rig.invoke(ev).await;
    assert_eq!(rig.count("RegisterTaskDefinition"), 1);
    assert_eq!(rig.count("RunTask"), 1);
    assert!(!rig.lambda.logs().contains(TASKDEF_SECRET));
}

#[tokio::test]
async fn run_task_refuses_a_taskdef_role_outside_ecs_pass_role_arns_before_registering() {
    let mut rig = Rig::with_env(
        "run-td-role",
        &[(
            "TOLLGATE_ECS_PASS_ROLE_ARNS",
            "arn:aws:iam::111111111111:role/migrate-*",
        )],
    )
    .await;
    rig.seed_taskdef("arn:aws:iam::111111111111:role/admin")
        .await;
    let ev = rig.event("run-task", "job-run-td-role", Some(rig.taskdef_params()));
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-run-td-role");
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains("\"executionRoleArn\" is arn:aws:iam::111111111111:role/admin, a role this function may not pass to ECS"),
        "{message}"
    );
    assert!(message.contains("EcsPassRoleArns"), "{message}");
    assert!(!message.contains(TASKDEF_SECRET), "{message}");
    assert_eq!(rig.count("RegisterTaskDefinition"), 0);
    assert_eq!(rig.count("RunTask"), 0);
}

#[tokio::test]
async fn a_late_run_task_with_a_taskdef_registers_nothing() {
    let mut rig = Rig::new("run-td-stale").await;
    rig.seed_taskdef("arn:aws:iam::111111111111:role/ecs-exec")
        .await;
    let ev = rig.event("run-task", "job-run-td-stale", Some(rig.taskdef_params()));
    rig.standin
        .set_action_status("job-run-td-stale", "Succeeded");
    rig.invoke(ev).await;
    let (kind, message) = rig.failure("job-run-td-stale");
    assert_eq!(kind, "JobFailed");
    assert!(message.contains("no longer live"), "{message}");
    assert_eq!(rig.count("RegisterTaskDefinition"), 0);
    assert_eq!(rig.count("RunTask"), 0);
}

#[tokio::test]
async fn run_task_on_the_ec2_launch_type_is_placed_on_a_container_instance_without_awsvpc() {
    let mut rig = Rig::new("run-ec2").await;
    let td = rig.seed_migration().await;
    // moto places EC2 tasks on registered container instances, which must
    // be EC2 instances it knows.
    let ec2_instance = moto_ec2_instance().await;
    let instance = rig
        .ecs
        .register_container_instance()
        .cluster(&rig.name)
        .instance_identity_document(json!({"instanceId": ec2_instance}).to_string())
        .send()
        .await
        .expect("container instance")
        .container_instance
        .and_then(|c| c.container_instance_arn)
        .expect("instance arn");
    let mut params = rig.run_task_params();
    params["launch_type"] = json!("EC2");
    params.as_object_mut().expect("object").remove("network");
    let ev = rig.event("run-task", "job-run-ec2", Some(params.clone()));
    let out = rig.invoke(ev).await;
    assert_eq!(out["report"], "in-progress", "{out}");
    let token = token_of(&rig.success("job-run-ec2"));
    let run = rig.standin.calls_of("RunTask");
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].request["launchType"], "EC2");
    assert_eq!(run[0].request["taskDefinition"], json!(td));
    assert!(
        run[0].request.get("networkConfiguration").is_none(),
        "a bridge-mode task on EC2 takes no awsvpc configuration: {}",
        run[0].request
    );
    let arn = serde_json::from_str::<Value>(&token).expect("token")["task"]
        .as_str()
        .expect("task")
        .to_owned();
    let described = rig
        .ecs
        .describe_tasks()
        .cluster(&rig.name)
        .tasks(&arn)
        .send()
        .await
        .expect("describe")
        .tasks
        .unwrap_or_default();
    assert_eq!(
        described[0].container_instance_arn.as_deref(),
        Some(instance.as_str())
    );
    // It is followed like any other task: a clean exit succeeds.
    rig.standin.script(
        "DescribeTasks",
        vec![stopped_task(
            &arn,
            &td,
            0,
            "Essential container in task exited",
        )],
    );
    let out = rig.invoke(rig.next("job-run-ec2-2", &params, &token)).await;
    assert_eq!(out["report"], "success", "{out}");
    assert_eq!(
        rig.success("job-run-ec2-2")["outputVariables"]["exit_code"],
        "0"
    );
}

/// One instance in moto's EC2 (a raw Query call: the EC2 SDK is not a
/// dependency), for a container instance to stand on.
async fn moto_ec2_instance() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let moto = Moto::shared();
    let body = "Action=RunInstances&Version=2016-11-15&ImageId=ami-03cf127a&MinCount=1&MaxCount=1&InstanceType=t3.micro";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIASEEDING000000001/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        moto.addr(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(moto.addr())
        .await
        .expect("moto");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    let start = answer
        .find("<instanceId>")
        .map(|i| i + "<instanceId>".len())
        .unwrap_or_else(|| panic!("no instance in {answer}"));
    let end = answer[start..].find('<').expect("terminated") + start;
    answer[start..end].to_owned()
}
