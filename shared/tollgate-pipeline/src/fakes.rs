//! In-memory fakes of the actions' ports, for unit tests.

use super::actions::smoke::CheckRunner;
use super::artifact::{ArtifactError, ArtifactStore, build_zip};
use super::ecs::{Deployment, EcsApi, EcsError, JOB_TAG, ServiceState, TaskDefinitionView};
pub use super::liveness::fakes::FakeJobs;
use super::task::{LinesFuture, LogError, LogReader, RunRequest, TaskSpec, TaskState};
use super::{Clock, Deps, Settings};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tollgate_checks::{RunReport, Spec, SpecError, Vars};
use tollgate_report::events::codepipeline::{
    ArtifactCredentials, CodePipelineEvent, EncryptionKey, Job, S3Location,
};

pub const BUCKET: &str = "codepipeline-artifacts";
pub const IN_KEY: &str = "web-pipeline/BuildOutpu/in.zip";
pub const OUT_KEY: &str = "web-pipeline/Verified/out.zip";
pub const ACCESS_KEY: &str = "ASIAJOBCREDENTIALS01";
pub const SECRET_KEY: &str = "job-secret-key-never-shown";
pub const KMS_KEY: &str = "arn:aws:kms:us-east-1:111111111111:key/abcd";

/// One upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub bucket: String,
    pub key: String,
    pub body: Vec<u8>,
    pub kms_key: Option<String>,
    pub access_key: String,
}

#[derive(Debug, Default)]
pub struct FakeArtifacts {
    pub objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    pub puts: Mutex<Vec<Put>>,
    pub get_error: Mutex<Option<ArtifactError>>,
    /// Access key ids used for gets.
    pub get_keys: Mutex<Vec<String>>,
}

impl FakeArtifacts {
    pub fn with_zip(files: &[(&str, &str)]) -> Self {
        let fake = Self::default();
        fake.set_zip(files);
        fake
    }

    pub fn set_zip(&self, files: &[(&str, &str)]) {
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
            .collect();
        let zip = build_zip(&files).expect("zip");
        self.objects
            .lock()
            .expect("lock")
            .insert((BUCKET.into(), IN_KEY.into()), zip);
    }
}

impl ArtifactStore for FakeArtifacts {
    async fn get(
        &self,
        artifact: &str,
        location: &S3Location,
        credentials: &ArtifactCredentials,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        self.get_keys
            .lock()
            .expect("lock")
            .push(credentials.access_key_id.expose().to_owned());
        if let Some(e) = self.get_error.lock().expect("lock").clone() {
            return Err(e);
        }
        let body = self
            .objects
            .lock()
            .expect("lock")
            .get(&(location.bucket_name.clone(), location.object_key.clone()))
            .cloned()
            .ok_or_else(|| ArtifactError::NotFound {
                artifact: artifact.into(),
                bucket: location.bucket_name.clone(),
                key: location.object_key.clone(),
                detail: "NoSuchKey".into(),
            })?;
        if body.len() as u64 > max_bytes {
            return Err(ArtifactError::TooLarge {
                artifact: artifact.into(),
                bucket: location.bucket_name.clone(),
                key: location.object_key.clone(),
                size: body.len() as u64,
                max: max_bytes,
            });
        }
        Ok(body)
    }

    async fn put(
        &self,
        _artifact: &str,
        location: &S3Location,
        credentials: &ArtifactCredentials,
        body: Vec<u8>,
        encryption_key: Option<&EncryptionKey>,
    ) -> Result<(), ArtifactError> {
        self.puts.lock().expect("lock").push(Put {
            bucket: location.bucket_name.clone(),
            key: location.object_key.clone(),
            body,
            kms_key: encryption_key.map(|k| k.id.clone()),
            access_key: credentials.access_key_id.expose().to_owned(),
        });
        Ok(())
    }
}

pub const ACCOUNT_PREFIX: &str = "arn:aws:ecs:us-east-1:111111111111";

pub fn td_arn(family: &str, revision: i64) -> String {
    format!("{ACCOUNT_PREFIX}:task-definition/{family}:{revision}")
}

#[derive(Debug, Default)]
pub struct EcsState {
    pub services: BTreeMap<String, ServiceState>,
    pub task_defs: BTreeMap<String, Vec<TaskDefinitionView>>,
    /// Answers for DescribeServices, used before the service map.
    pub scripted: VecDeque<Result<ServiceState, EcsError>>,
    pub calls: Vec<String>,
    pub register_error: Option<EcsError>,
    pub stopped: Vec<String>,
    pub next_deployment: u32,
    /// Task specs by family (the latest revision answers for the family).
    pub specs: BTreeMap<String, TaskSpec>,
    /// Tasks by ARN.
    pub tasks: BTreeMap<String, TaskState>,
    /// Answers for DescribeTasks, used before the task map.
    pub task_script: VecDeque<Result<Option<TaskState>, EcsError>>,
    /// Every RunTask request.
    pub runs: Vec<RunRequest>,
    /// Every StopTask: (task, reason).
    pub stops: Vec<(String, String)>,
    pub run_error: Option<EcsError>,
    /// RunTask loses a race: a concurrent delivery of the job starts the
    /// task (recorded as a run) and this call gets the error.
    pub run_raced: Option<EcsError>,
    /// Every document RegisterTaskDefinition got whole (run-task's
    /// `task_definition_file`).
    pub documents: Vec<serde_json::Value>,
}

#[derive(Debug, Default)]
pub struct FakeEcs {
    pub state: Mutex<EcsState>,
}

impl FakeEcs {
    /// A cluster with service `web` (desired 4) on `web:12` (containers web, envoy),
    /// whose one deployment is COMPLETED.
    pub fn with_web_service() -> Self {
        let fake = Self::default();
        {
            let mut s = fake.state.lock().expect("lock");
            s.task_defs.insert(
                "web".into(),
                vec![TaskDefinitionView {
                    arn: td_arn("web", 12),
                    family: "web".into(),
                    revision: 12,
                    containers: vec![
                        (
                            "web".into(),
                            "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:0ld5ha1".into(),
                        ),
                        ("envoy".into(), "public.ecr.aws/envoy:v1.30.1".into()),
                    ],
                    tags: vec![("team".into(), "payments".into())],
                    task_role_arn: Some("arn:aws:iam::111111111111:role/web-task".into()),
                    execution_role_arn: Some("arn:aws:iam::111111111111:role/web-exec".into()),
                }],
            );
            s.services.insert(
                "web".into(),
                ServiceState {
                    name: "web".into(),
                    status: "ACTIVE".into(),
                    desired_count: 4,
                    task_definition: td_arn("web", 12),
                    deployment_controller: "ECS".into(),
                    circuit_breaker: Some((true, true)),
                    deployments: vec![Deployment {
                        id: "ecs-svc/1000".into(),
                        status: "PRIMARY".into(),
                        task_definition: td_arn("web", 12),
                        desired: 4,
                        running: 4,
                        pending: 0,
                        failed_tasks: 0,
                        rollout_state: Some("COMPLETED".into()),
                        rollout_state_reason: Some("ECS deployment ecs-svc/1000 completed.".into()),
                        created_at: Some(1_000),
                    }],
                    events: vec![],
                    network: None,
                    launch_type: None,
                },
            );
        }
        fake
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().expect("lock").calls.clone()
    }

    pub fn script(&self, answers: Vec<Result<ServiceState, EcsError>>) {
        self.state.lock().expect("lock").scripted.extend(answers);
    }

    pub fn service(&self, name: &str) -> ServiceState {
        self.state.lock().expect("lock").services[name].clone()
    }

    pub fn revisions(&self, family: &str) -> Vec<TaskDefinitionView> {
        self.state.lock().expect("lock").task_defs[family].clone()
    }
}

fn lookup(state: &EcsState, td: &str) -> Option<TaskDefinitionView> {
    let label = td.rsplit_once('/').map_or(td, |(_, l)| l);
    let (family, rev) = match label.split_once(':') {
        Some((f, r)) => (f, r.parse::<i64>().ok()),
        None => (label, None),
    };
    let revs = state.task_defs.get(family)?;
    match rev {
        Some(r) => revs.iter().find(|t| t.revision == r).cloned(),
        None => revs.last().cloned(),
    }
}

impl EcsApi for FakeEcs {
    async fn describe_service(
        &self,
        _cluster: &str,
        service: &str,
    ) -> Result<ServiceState, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push("DescribeServices".into());
        if let Some(answer) = s.scripted.pop_front() {
            return answer;
        }
        s.services
            .get(service)
            .cloned()
            .ok_or_else(|| EcsError::NotFound {
                operation: "ecs:DescribeServices",
                what: format!("service {service}"),
                detail: "MISSING".into(),
            })
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinitionView, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls
            .push(format!("DescribeTaskDefinition {task_definition}"));
        lookup(&s, task_definition).ok_or_else(|| EcsError::NotFound {
            operation: "ecs:DescribeTaskDefinition",
            what: format!("task definition {task_definition}"),
            detail: "Unable to describe task definition.".into(),
        })
    }

    async fn register_task_definition(
        &self,
        base: &str,
        images: &BTreeMap<String, String>,
        tags: &[(String, String)],
    ) -> Result<TaskDefinitionView, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push("RegisterTaskDefinition".into());
        if let Some(e) = s.register_error.clone() {
            return Err(e);
        }
        let base = lookup(&s, base).expect("base exists");
        let revs = s.task_defs.get_mut(&base.family).expect("family");
        let revision = revs.last().map_or(1, |t| t.revision + 1);
        let mut new = base.clone();
        new.revision = revision;
        new.arn = td_arn(&base.family, revision);
        for (name, image) in &mut new.containers {
            if let Some(i) = images.get(name) {
                *image = i.clone();
            }
        }
        new.tags.retain(|(k, _)| k != JOB_TAG);
        new.tags.extend(tags.iter().cloned());
        revs.push(new.clone());
        Ok(new)
    }

    async fn register_task_definition_document(
        &self,
        family: &str,
        document: &str,
    ) -> Result<TaskDefinitionView, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls
            .push(format!("RegisterTaskDefinition {family} (document)"));
        if let Some(e) = s.register_error.clone() {
            return Err(e);
        }
        let doc: serde_json::Value = serde_json::from_str(document).expect("a JSON document");
        s.documents.push(doc.clone());
        let revs = s.task_defs.entry(family.to_owned()).or_default();
        let revision = revs.last().map_or(1, |t| t.revision + 1);
        let str_of = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let new = TaskDefinitionView {
            arn: td_arn(family, revision),
            family: family.to_owned(),
            revision,
            containers: doc["containerDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| (str_of(&c["name"]), str_of(&c["image"])))
                .collect(),
            tags: doc["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| (str_of(&t["key"]), str_of(&t["value"])))
                .collect(),
            task_role_arn: doc["taskRoleArn"].as_str().map(str::to_owned),
            execution_role_arn: doc["executionRoleArn"].as_str().map(str::to_owned),
        };
        revs.push(new.clone());
        Ok(new)
    }

    async fn update_service(
        &self,
        _cluster: &str,
        service: &str,
        task_definition: &str,
        _force_new_deployment: bool,
    ) -> Result<ServiceState, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push(format!("UpdateService {task_definition}"));
        s.next_deployment += 1;
        let id = format!("ecs-svc/{}", 2000 + s.next_deployment);
        let svc = s.services.get_mut(service).expect("service");
        svc.task_definition = task_definition.to_owned();
        for d in &mut svc.deployments {
            d.status = "ACTIVE".into();
        }
        svc.deployments.insert(
            0,
            Deployment {
                id,
                status: "PRIMARY".into(),
                task_definition: task_definition.to_owned(),
                desired: svc.desired_count,
                running: 0,
                pending: 0,
                failed_tasks: 0,
                rollout_state: Some("IN_PROGRESS".into()),
                rollout_state_reason: Some("ECS deployment in progress.".into()),
                created_at: Some(5_000),
            },
        );
        Ok(svc.clone())
    }

    async fn stopped_task_reasons(
        &self,
        _cluster: &str,
        deployment_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push(format!("StoppedTasks {deployment_id}"));
        Ok(s.stopped.iter().take(limit).cloned().collect())
    }

    async fn describe_task_spec(&self, task_definition: &str) -> Result<TaskSpec, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push(format!("DescribeTaskSpec {task_definition}"));
        let view = lookup(&s, task_definition).ok_or_else(|| EcsError::NotFound {
            operation: "ecs:DescribeTaskDefinition",
            what: format!("task definition {task_definition}"),
            detail: "Unable to describe task definition.".into(),
        })?;
        let mut spec = s.specs.get(&view.family).cloned().unwrap_or_default();
        spec.arn = view.arn.clone();
        spec.family = view.family.clone();
        Ok(spec)
    }

    async fn run_task(&self, request: &RunRequest) -> Result<TaskState, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push(format!("RunTask {}", request.task_definition));
        if let Some(e) = s.run_error.clone() {
            return Err(e);
        }
        if let Some(e) = s.run_raced.take() {
            s.runs.push(request.clone());
            let arn = format!("{ACCOUNT_PREFIX}:task/prod/task{}", s.runs.len());
            let task = TaskState {
                arn: arn.clone(),
                task_definition: request.task_definition.clone(),
                last_status: "PROVISIONING".into(),
                desired_status: "RUNNING".into(),
                ..TaskState::default()
            };
            s.tasks.insert(arn, task);
            return Err(e);
        }
        s.runs.push(request.clone());
        let arn = format!("{ACCOUNT_PREFIX}:task/prod/task{}", s.runs.len());
        let task = TaskState {
            arn: arn.clone(),
            task_definition: request.task_definition.clone(),
            last_status: "PROVISIONING".into(),
            desired_status: "RUNNING".into(),
            ..TaskState::default()
        };
        s.tasks.insert(arn, task.clone());
        Ok(task)
    }

    async fn describe_task(
        &self,
        _cluster: &str,
        task: &str,
    ) -> Result<Option<TaskState>, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push("DescribeTasks".into());
        if let Some(answer) = s.task_script.pop_front() {
            return answer;
        }
        Ok(s.tasks.get(task).cloned())
    }

    async fn tasks_started_by(
        &self,
        _cluster: &str,
        started_by: &str,
    ) -> Result<Vec<String>, EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push(format!("ListTasks {started_by}"));
        let found: Vec<String> = s
            .runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.started_by == started_by)
            .map(|(i, _)| format!("{ACCOUNT_PREFIX}:task/prod/task{}", i + 1))
            .collect();
        Ok(found)
    }

    async fn stop_task(&self, _cluster: &str, task: &str, reason: &str) -> Result<(), EcsError> {
        let mut s = self.state.lock().expect("lock");
        s.calls.push("StopTask".into());
        s.stops.push((task.to_owned(), reason.to_owned()));
        Ok(())
    }
}

/// One log read: (group, stream, region, limit).
pub type LogRead = (String, String, Option<String>, usize);

/// Log streams by (group, stream); unknown streams are not found.
#[derive(Debug, Default)]
pub struct FakeLogs {
    pub streams: Mutex<BTreeMap<(String, String), Vec<String>>>,
    /// Every read: (group, stream, region, limit).
    pub reads: Mutex<Vec<LogRead>>,
    pub error: Mutex<Option<LogError>>,
}

impl LogReader for FakeLogs {
    fn last_lines<'a>(
        &'a self,
        group: &'a str,
        stream: &'a str,
        region: Option<&'a str>,
        limit: usize,
    ) -> LinesFuture<'a> {
        Box::pin(async move {
            self.reads.lock().expect("lock").push((
                group.to_owned(),
                stream.to_owned(),
                region.map(str::to_owned),
                limit,
            ));
            if let Some(e) = self.error.lock().expect("lock").clone() {
                return Err(e);
            }
            let streams = self.streams.lock().expect("lock");
            let lines = streams
                .get(&(group.to_owned(), stream.to_owned()))
                .ok_or_else(|| LogError::NotFound {
                    group: group.to_owned(),
                    stream: stream.to_owned(),
                })?;
            let start = lines.len().saturating_sub(limit);
            Ok(lines[start..].to_vec())
        })
    }
}

/// A check runner that answers with a canned report.
#[derive(Debug, Default)]
pub struct FakeChecks {
    pub report: Mutex<Option<Result<RunReport, SpecError>>>,
    /// (check names, TARGET var) of every run.
    pub runs: Mutex<Vec<(Vec<String>, Option<String>)>>,
}

impl CheckRunner for FakeChecks {
    async fn run_checks(
        &self,
        spec: &Spec,
        vars: &Vars,
        _deadline: Instant,
    ) -> Result<RunReport, SpecError> {
        self.runs.lock().expect("lock").push((
            spec.check_names().map(str::to_owned).collect(),
            vars.get("TARGET").map(str::to_owned),
        ));
        self.report
            .lock()
            .expect("lock")
            .clone()
            .expect("a canned report")
    }
}

/// The fake metric source: answers GetMetricData from a script (then
/// "no data"), knows every metric but `unknown_metric`, every alarm in
/// `alarms`.
#[derive(Debug, Default)]
pub struct FakeMetrics {
    pub script: Mutex<
        VecDeque<Result<Vec<tollgate_checks::gate::Series>, tollgate_checks::gate::SourceError>>,
    >,
    pub alarms: Vec<tollgate_checks::gate::AlarmState>,
    pub unknown_metric: Option<String>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeMetrics {
    /// One value per query id, as one GetMetricData answer.
    pub fn answer(
        values: &[(&str, f64)],
    ) -> Result<Vec<tollgate_checks::gate::Series>, tollgate_checks::gate::SourceError> {
        Ok(values
            .iter()
            .map(|(id, v)| tollgate_checks::gate::Series {
                id: (*id).to_owned(),
                points: vec![(0, *v)],
                status: tollgate_checks::gate::SeriesStatus::Complete,
                messages: Vec::new(),
            })
            .collect())
    }
}

impl tollgate_checks::gate::MetricSource for FakeMetrics {
    async fn metric_data(
        &self,
        _request: &tollgate_checks::gate::MetricRequest,
    ) -> Result<Vec<tollgate_checks::gate::Series>, tollgate_checks::gate::SourceError> {
        self.calls
            .lock()
            .expect("lock")
            .push("GetMetricData".into());
        self.script
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Ok(Vec::new()))
    }

    async fn alarm_states(
        &self,
        _names: &[String],
    ) -> Result<Vec<tollgate_checks::gate::AlarmState>, tollgate_checks::gate::SourceError> {
        self.calls
            .lock()
            .expect("lock")
            .push("DescribeAlarms".into());
        Ok(self.alarms.clone())
    }

    async fn metric_exists(
        &self,
        _namespace: &str,
        name: &str,
    ) -> Result<bool, tollgate_checks::gate::SourceError> {
        self.calls
            .lock()
            .expect("lock")
            .push(format!("ListMetrics {name}"));
        Ok(self.unknown_metric.as_deref() != Some(name))
    }
}

pub type TestDeps = Deps<FakeArtifacts, FakeEcs, FakeChecks, FakeJobs>;

/// Deps with a settable clock (epoch seconds).
pub fn deps(artifacts: FakeArtifacts, ecs: FakeEcs) -> (Arc<TestDeps>, Arc<AtomicU64>) {
    deps_with_logs(artifacts, ecs, Arc::new(FakeLogs::default()))
}

/// [`deps`] with a log reader of the test's own.
pub fn deps_with_logs(
    artifacts: FakeArtifacts,
    ecs: FakeEcs,
    logs: Arc<FakeLogs>,
) -> (Arc<TestDeps>, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(10_000));
    let clock_now = now.clone();
    let deps = Deps {
        artifacts,
        ecs,
        checks: FakeChecks::default(),
        jobs: FakeJobs::default(),
        metrics: Box::new(FakeMetrics::default()),
        logs: logs.clone(),
        settings: Settings::default(),
        clock: Clock::from_fn(move || clock_now.load(Ordering::SeqCst)),
    };
    (Arc::new(deps), now)
}

/// A job with input artifact BuildOutput, output artifact Verified, credentials and a KMS key.
pub fn job(user_parameters: &str, continuation_token: Option<&str>) -> Job {
    job_with_id("job-1", user_parameters, continuation_token)
}

pub fn job_with_id(id: &str, user_parameters: &str, continuation_token: Option<&str>) -> Job {
    let mut data = serde_json::json!({
        "actionConfiguration": {"configuration": {"FunctionName": "f", "UserParameters": user_parameters}},
        "inputArtifacts": [{"name": "BuildOutput", "revision": null,
            "location": {"type": "S3", "s3Location": {"bucketName": BUCKET, "objectKey": IN_KEY}}}],
        "outputArtifacts": [{"name": "Verified", "revision": null,
            "location": {"type": "S3", "s3Location": {"bucketName": BUCKET, "objectKey": OUT_KEY}}}],
        "artifactCredentials": {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY,
            "sessionToken": "job-session-token", "expirationTime": 1_763_759_400_000_u64},
        "encryptionKey": {"id": KMS_KEY, "type": "KMS"}
    });
    if let Some(t) = continuation_token {
        data["continuationToken"] = serde_json::Value::String(t.to_owned());
    }
    let ev: CodePipelineEvent = serde_json::from_value(serde_json::json!({
        "CodePipeline.job": {"id": id, "accountId": "111111111111", "data": data}
    }))
    .expect("job");
    ev.job
}

/// The one fake of the report port (`tollgate-test-support`).
pub use tollgate_test_support::reporters::FakeJobReporter as FakeReporter;

/// Helpers for the rollout tests of `ecs-deploy` and `ecs-wait`.
pub(crate) mod rollouts {
    use super::{FakeArtifacts, FakeEcs, TestDeps};
    use crate::Failure;
    use crate::ecs::ServiceState;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use tollgate_report::{JobFailure, JobOutcome, JobSuccess};

    pub(crate) const SHA_IMAGE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:3f9c2ab";

    pub(crate) fn imagedefs(image: &str) -> String {
        format!(r#"[{{"name":"web","imageUri":"{image}"}}]"#)
    }

    pub(crate) fn setup(image: &str) -> (Arc<TestDeps>, Arc<AtomicU64>) {
        let artifacts = FakeArtifacts::with_zip(&[("imagedefinitions.json", &imagedefs(image))]);
        super::deps(artifacts, FakeEcs::with_web_service())
    }

    pub(crate) fn success(o: Result<JobOutcome, Failure>) -> JobSuccess {
        match o {
            Ok(JobOutcome::Success(s)) => s,
            other => panic!("expected a success, got {other:?}"),
        }
    }

    pub(crate) fn failure(o: Result<JobOutcome, Failure>) -> Failure {
        match o {
            Err(f) => f,
            Ok(JobOutcome::Failure(JobFailure { kind, message, .. })) => Failure { kind, message },
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    pub(crate) fn rollout(
        base: &ServiceState,
        id: &str,
        state: &str,
        running: i64,
        reason: &str,
    ) -> ServiceState {
        let mut s = base.clone();
        let d = s
            .deployments
            .iter_mut()
            .find(|d| d.id == id)
            .expect("deployment");
        d.rollout_state = Some(state.into());
        d.running = running;
        d.pending = (d.desired - running).max(0);
        d.rollout_state_reason = Some(reason.into());
        s
    }
}
