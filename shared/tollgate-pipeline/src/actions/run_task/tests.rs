use super::*;
use crate::fakes::rollouts::{SHA_IMAGE, failure, success};
use crate::fakes::{self, FakeArtifacts, FakeEcs, FakeLogs, TestDeps, td_arn};
use crate::liveness::Liveness;
use crate::params::testing::assert_rejected;
use crate::task::{AwsLogs, ContainerSpec, ContainerState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tollgate_report::FailureKind;

const MIGRATE: &str = r#"{"action":"run-task","cluster":"prod","service":"web","overrides":{"web":{"command":["bin/migrate"],"environment":{"DB_PASSWORD":"hunter2-not-shown","MODE":"up"}}},"timeout_minutes":30}"#;

fn web_spec() -> TaskSpec {
    TaskSpec {
        network_mode: Some("awsvpc".into()),
        compatibilities: vec!["FARGATE".into()],
        containers: vec![
            ContainerSpec {
                name: "web".into(),
                essential: true,
                log_driver: Some("awslogs".into()),
                awslogs: Some(AwsLogs {
                    group: "/ecs/web".into(),
                    region: None,
                    stream_prefix: Some("ecs".into()),
                }),
                secret_names: vec!["DATABASE_URL".into()],
            },
            ContainerSpec {
                name: "envoy".into(),
                essential: false,
                log_driver: None,
                awslogs: None,
                secret_names: vec![],
            },
        ],
        ..TaskSpec::default()
    }
}

fn network() -> NetworkConfig {
    NetworkConfig {
        subnets: vec!["subnet-0abc".into()],
        security_groups: vec!["sg-0abc".into()],
        assign_public_ip: false,
    }
}

fn setup() -> (Arc<TestDeps>, Arc<AtomicU64>, Arc<FakeLogs>) {
    let artifacts = FakeArtifacts::with_zip(&[(
        "imagedefinitions.json",
        &crate::fakes::rollouts::imagedefs(SHA_IMAGE),
    )]);
    let ecs = FakeEcs::with_web_service();
    {
        let mut s = ecs.state.lock().expect("lock");
        s.specs.insert("web".into(), web_spec());
        let svc = s.services.get_mut("web").expect("web");
        svc.network = Some(network());
        svc.launch_type = Some("FARGATE".into());
    }
    let logs = Arc::new(FakeLogs::default());
    let (deps, now) = fakes::deps_with_logs(artifacts, ecs, logs.clone());
    (deps, now, logs)
}

async fn go(deps: &TestDeps, job: &Job) -> Result<JobOutcome, Failure> {
    let crate::params::Params::RunTask(p) = crate::params::parse(
        job.data
            .action_configuration
            .configuration
            .user_parameters
            .as_deref(),
    )
    .expect("params") else {
        panic!("run-task params")
    };
    run(deps, job, &p, &Step::default(), Instant::now()).await
}

fn stopped(deps: &TestDeps, task: &str, containers: &[(&str, Option<i32>)], reason: &str) {
    let mut s = deps.ecs.state.lock().expect("lock");
    let t = s.tasks.get_mut(task).expect("task");
    t.last_status = "STOPPED".into();
    t.desired_status = "STOPPED".into();
    t.stopped_reason = Some(reason.into());
    t.stop_code = Some("EssentialContainerExited".into());
    t.started_at = Some(10_000);
    t.stopped_at = Some(10_095);
    t.containers = containers
        .iter()
        .map(|(n, code)| ContainerState {
            name: (*n).into(),
            last_status: "STOPPED".into(),
            exit_code: *code,
            reason: None,
        })
        .collect();
}

fn set_status(deps: &TestDeps, task: &str, status: &str) {
    let mut s = deps.ecs.state.lock().expect("lock");
    s.tasks.get_mut(task).expect("task").last_status = status.into();
}

/// Starts the task: the first invocation's token.
async fn start(deps: &TestDeps) -> (String, TaskToken) {
    let s = success(go(deps, &fakes::job(MIGRATE, None)).await);
    let raw = s.continuation_token.expect("token");
    let t = TaskToken::decode(&raw).expect("ours");
    (raw, t)
}

#[tokio::test]
async fn a_migration_registers_the_new_image_runs_with_overrides_and_waits() {
    let (deps, _, _) = setup();
    let s = success(go(&deps, &fakes::job(MIGRATE, None)).await);
    let raw = s.continuation_token.clone().expect("a continuation token");
    assert!(raw.len() < 2048);
    assert_eq!(
        s.summary.as_deref(),
        Some("task task1 (web:13): PROVISIONING; 0s of 30m limit")
    );
    // One revision with the new image, tagged with the job, then one task.
    let revs = deps.ecs.revisions("web");
    let new = revs.last().expect("registered");
    assert_eq!(new.revision, 13);
    assert!(new.tagged_with("job-1"));
    assert_eq!(new.containers[0].1, SHA_IMAGE);
    let runs = deps.ecs.state.lock().expect("lock").runs.clone();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r.task_definition, td_arn("web", 13));
    assert_eq!(r.launch_type, "FARGATE");
    assert_eq!(r.network, Some(network()), "the service's network is reused");
    assert_eq!(r.started_by, "job-1");
    assert_eq!(r.tags, vec![(JOB_TAG.to_owned(), "job-1".to_owned())]);
    assert_eq!(r.overrides[0].name, "web");
    assert_eq!(
        r.overrides[0].command.as_deref(),
        Some(&["bin/migrate".to_owned()][..])
    );
    assert_eq!(deps.jobs.asked.lock().expect("lock").as_slice(), ["job-1"]);
}

#[tokio::test]
async fn progress_is_followed_until_every_essential_container_exits_0() {
    let (deps, now, _) = setup();
    let (raw, t) = start(&deps).await;
    now.store(10_040, Ordering::SeqCst);
    set_status(&deps, &t.task, "RUNNING");
    let s = success(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert_eq!(
        s.summary.as_deref(),
        Some("task task1 (web:13): PROVISIONING → RUNNING; 40s of 30m limit")
    );
    assert_eq!(s.percent_complete, Some(50));
    let raw = s.continuation_token.expect("still waiting");
    // envoy is not essential: its exit code does not matter.
    stopped(&deps, &t.task, &[("web", Some(0)), ("envoy", Some(137))], "Essential container in task exited");
    let done = success(go(&deps, &fakes::job_with_id("job-3", MIGRATE, Some(&raw))).await);
    assert_eq!(done.continuation_token, None);
    assert_eq!(
        done.summary.as_deref(),
        Some("task task1 (web:13) succeeded after 1m 35s: web exited 0; statuses seen: PROVISIONING → RUNNING → STOPPED")
    );
    assert_eq!(done.output_variables["task_arn"], t.task);
    assert_eq!(done.output_variables["exit_code"], "0");
    assert_eq!(done.output_variables["duration_seconds"], "95");
    assert_eq!(deps.ecs.state.lock().expect("lock").runs.len(), 1);
}

#[tokio::test]
async fn a_failed_migration_names_container_code_reason_and_its_last_log_lines() {
    let (deps, _, logs) = setup();
    let (raw, t) = start(&deps).await;
    let stream = format!("ecs/web/{}", task_id(&t.task));
    logs.streams.lock().expect("lock").insert(
        ("/ecs/web".into(), stream.clone()),
        (1..=30)
            .map(|i| format!("line {i}"))
            .chain([
                "connecting with password hunter2-not-shown\u{1b}[31m".to_owned(),
                "ERROR: relation \"users\" already exists".to_owned(),
            ])
            .collect(),
    );
    stopped(&deps, &t.task, &[("web", Some(1)), ("envoy", None)], "Essential container in task exited");
    let f = failure(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message.starts_with(
            "task task1 (web:13) failed: essential container web exited with code 1; stopped reason: \
             Essential container in task exited (EssentialContainerExited); statuses seen: PROVISIONING → STOPPED. \
             Last 20 log lines of web (group /ecs/web, stream ecs/web/task1):\n| line 13\n"
        ),
        "{}",
        f.message
    );
    assert!(f.message.ends_with("| connecting with password *** [31m\n| ERROR: relation \"users\" already exists"), "{}", f.message);
    assert!(!f.message.contains("hunter2"), "{}", f.message);
    assert!(!f.message.contains("line 12\n"), "{}", f.message);
    let reads = logs.reads.lock().expect("lock").clone();
    assert_eq!(reads, vec![("/ecs/web".into(), stream, None, LOG_LINES)]);
}

#[tokio::test]
async fn without_awslogs_the_failure_still_goes_out_saying_logs_are_unavailable() {
    let (deps, _, logs) = setup();
    {
        let mut s = deps.ecs.state.lock().expect("lock");
        let spec = s.specs.get_mut("web").expect("spec");
        spec.containers[0].awslogs = None;
        spec.containers[0].log_driver = Some("json-file".into());
    }
    let (raw, t) = start(&deps).await;
    stopped(&deps, &t.task, &[("web", Some(137))], "OutOfMemoryError: Container killed due to memory usage");
    let f = failure(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert!(f.message.contains("exited with code 137"), "{}", f.message);
    assert!(f.message.contains("OutOfMemoryError"), "{}", f.message);
    assert!(
        f.message.contains("Log lines of web are unavailable: its task definition has no awslogs log configuration (logDriver json-file)"),
        "{}",
        f.message
    );
    assert!(logs.reads.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_task_that_never_ran_a_container_fails_with_ecs_reason() {
    let (deps, _, _) = setup();
    let (raw, t) = start(&deps).await;
    {
        let mut s = deps.ecs.state.lock().expect("lock");
        let task = s.tasks.get_mut(&t.task).expect("task");
        task.last_status = "STOPPED".into();
        task.stopped_reason = Some("CannotPullContainerError: pull image manifest has been retried 5 time(s)".into());
        task.stop_code = Some("TaskFailedToStart".into());
        task.containers = vec![ContainerState {
            name: "web".into(),
            last_status: "STOPPED".into(),
            exit_code: None,
            reason: Some("CannotPullContainerError: ref not found".into()),
        }];
    }
    let f = failure(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert!(
        f.message.starts_with("task task1 (web:13) failed: essential container web has no exit code (it never ran or was killed) (CannotPullContainerError: ref not found); stopped reason: CannotPullContainerError"),
        "{}",
        f.message
    );
    assert!(f.message.contains("(TaskFailedToStart)"), "{}", f.message);
    assert!(f.message.contains("no log stream ecs/web/task1"), "{}", f.message);
}

#[tokio::test]
async fn at_the_time_limit_the_task_is_stopped_naming_the_job() {
    let (deps, now, _) = setup();
    let (raw, t) = start(&deps).await;
    set_status(&deps, &t.task, "RUNNING");
    now.store(10_000 + 30 * 60, Ordering::SeqCst);
    let f = failure(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message.starts_with("task task1 (web:13) did not finish within the 30m time limit: after 30m it was RUNNING (statuses seen: PROVISIONING → RUNNING); it was stopped (StopTask: \"Tollgate: time limit of 30m reached for CodePipeline job job-1\")"),
        "{}",
        f.message
    );
    let stops = deps.ecs.state.lock().expect("lock").stops.clone();
    assert_eq!(
        stops,
        vec![(t.task.clone(), "Tollgate: time limit of 30m reached for CodePipeline job job-1".to_owned())]
    );
}

#[tokio::test]
async fn a_redelivered_job_waits_for_its_task_instead_of_starting_another() {
    let (deps, _, _) = setup();
    start(&deps).await;
    let again = success(go(&deps, &fakes::job(MIGRATE, None)).await);
    assert!(again.continuation_token.is_some());
    assert_eq!(deps.ecs.revisions("web").len(), 2, "one revision per job");
    assert_eq!(deps.ecs.state.lock().expect("lock").runs.len(), 1, "one task per job");
}

#[tokio::test]
async fn a_concurrent_delivery_that_started_the_task_first_is_waited_for_not_failed() {
    let (deps, _, _) = setup();
    deps.ecs.state.lock().expect("lock").run_raced = Some(EcsError::Rejected {
        operation: "ecs:RunTask",
        code: "ClientException".into(),
        detail: "idempotent parameter mismatch".into(),
    });
    let s = success(go(&deps, &fakes::job(MIGRATE, None)).await);
    let t = TaskToken::decode(&s.continuation_token.expect("token")).expect("ours");
    assert!(t.task.ends_with("task1"), "{}", t.task);
    assert_eq!(deps.ecs.state.lock().expect("lock").runs.len(), 1, "one task per job");
}

#[tokio::test]
async fn a_job_that_is_no_longer_live_starts_nothing() {
    let (deps, _, _) = setup();
    deps.jobs.set(
        "job-1",
        Liveness::Gone {
            why: "action execution x of p/Deploy/Migrate is Failed".into(),
        },
    );
    let f = failure(go(&deps, &fakes::job(MIGRATE, None)).await);
    assert!(f.message.contains("no longer live"), "{}", f.message);
    let s = deps.ecs.state.lock().expect("lock");
    assert!(s.runs.is_empty());
    assert!(!s.calls.iter().any(|c| c == "RegisterTaskDefinition"));
}

#[tokio::test]
async fn an_unknown_container_in_the_overrides_is_a_configuration_error() {
    let (deps, _, _) = setup();
    let job = fakes::job(
        r#"{"action":"run-task","cluster":"prod","service":"web","overrides":{"migrator":{"command":["x"]}}}"#,
        None,
    );
    let f = failure(go(&deps, &job).await);
    assert_eq!(f.kind, FailureKind::ConfigurationError);
    assert!(
        f.message.contains("field \"overrides.migrator\" names a container that task definition web:12 does not have (its containers: web, envoy)"),
        "{}",
        f.message
    );
    assert!(deps.ecs.state.lock().expect("lock").runs.is_empty());
}

#[tokio::test]
async fn awsvpc_without_network_configuration_names_the_field() {
    let (deps, _, _) = setup();
    let job = fakes::job(
        r#"{"action":"run-task","cluster":"prod","task_definition":"web:12"}"#,
        None,
    );
    let f = failure(go(&deps, &job).await);
    assert_eq!(f.kind, FailureKind::ConfigurationError);
    assert!(
        f.message.contains("field \"network\" is missing: task definition web:12 uses network mode awsvpc (Fargate)"),
        "{}",
        f.message
    );
    // Given, it runs the revision as it is (no registration, no artifact read).
    let job = fakes::job(
        r#"{"action":"run-task","cluster":"prod","task_definition":"web:12","network":{"subnets":["subnet-1"]}}"#,
        None,
    );
    success(go(&deps, &job).await);
    let s = deps.ecs.state.lock().expect("lock");
    assert_eq!(s.runs[0].task_definition, td_arn("web", 12));
    assert_eq!(s.runs[0].network.as_ref().expect("network").subnets, ["subnet-1"]);
    assert!(deps.artifacts.get_keys.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_poll_blip_is_retried_and_a_forgotten_task_fails() {
    let (deps, _, _) = setup();
    let (raw, _) = start(&deps).await;
    deps.ecs.state.lock().expect("lock").task_script.extend([
        Err(EcsError::Unavailable {
            operation: "ecs:DescribeTasks",
            detail: "ThrottlingException: Rate exceeded".into(),
        }),
        Ok(None),
    ]);
    let s = success(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert!(s.summary.as_deref().expect("summary").contains("trying again (1/5)"));
    let raw = s.continuation_token.expect("token");
    let f = failure(go(&deps, &fakes::job_with_id("job-3", MIGRATE, Some(&raw))).await);
    assert!(f.message.contains("no longer known to ECS"), "{}", f.message);
}

#[tokio::test]
async fn a_job_that_fails_unwatched_stops_its_task_first() {
    // Five polls in a row fail: the job fails, and the task it can no longer
    // watch is stopped, so a retried stage cannot run a second one beside it.
    let (deps, _, _) = setup();
    let (mut raw, _) = start(&deps).await;
    for i in 0..MAX_POLL_ERRORS {
        deps.ecs
            .state
            .lock()
            .expect("lock")
            .task_script
            .push_back(Err(EcsError::Unavailable {
                operation: "ecs:DescribeTasks",
                detail: "ThrottlingException: Rate exceeded".into(),
            }));
        let out = go(&deps, &fakes::job_with_id(&format!("job-{i}"), MIGRATE, Some(&raw))).await;
        if i + 1 < MAX_POLL_ERRORS {
            raw = success(out).continuation_token.expect("token");
        } else {
            let f = failure(out);
            assert!(f.message.contains("it was stopped"), "{}", f.message);
        }
    }
    let stops = deps.ecs.state.lock().expect("lock").stops.clone();
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert!(stops[0].1.contains("job-1"), "{stops:?}");

    // Any other error while polling: the same.
    let (deps, _, _) = setup();
    let (raw, _) = start(&deps).await;
    deps.ecs.state.lock().expect("lock").task_script.push_back(Err(EcsError::Rejected {
        operation: "ecs:DescribeTasks",
        code: "AccessDeniedException".into(),
        detail: "not authorized".into(),
    }));
    let f = failure(go(&deps, &fakes::job_with_id("job-2", MIGRATE, Some(&raw))).await);
    assert!(f.message.contains("it was stopped"), "{}", f.message);
    assert_eq!(deps.ecs.state.lock().expect("lock").stops.len(), 1);
}

#[test]
fn log_lines_are_bounded_cleaned_and_redacted() {
    let lines: Vec<String> = (0..100).map(|i| format!("{i} {}", "x".repeat(500))).collect();
    let shown = bound_lines(&lines, &[]);
    let total: usize = shown.iter().map(|l| l.chars().count() + 1).sum();
    assert!(total <= LOG_TAIL_CHARS, "{total}");
    assert!(shown.len() < LOG_LINES);
    assert!(shown.last().expect("some").starts_with("| 99 "));
    assert!(shown.iter().all(|l| l.chars().count() <= LOG_LINE_CHARS + 3));
    let shown = bound_lines(&["a\tsecret-value\r".to_owned()], &["secret-value"]);
    assert_eq!(shown, ["| a ***"]);
}

#[test]
fn the_example_parses_and_tokens_stay_small() {
    let crate::params::Params::RunTask(p) = crate::params::parse(Some(EXAMPLE)).expect("valid")
    else {
        panic!("run-task")
    };
    assert_eq!(p.timeout, Some(Duration::from_secs(1200)));
    let t = TaskToken {
        v: 1,
        action: NAME.into(),
        cluster: format!("arn:aws:ecs:us-east-1:111111111111:cluster/{}", "c".repeat(255)),
        task: format!("arn:aws:ecs:us-east-1:111111111111:task/{}/{}", "c".repeat(255), "f".repeat(32)),
        job: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".into(),
        started_at: 1_760_000_000,
        seen: [
            "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING",
            "DEPROVISIONING", "STOPPED",
        ]
        .map(String::from)
        .to_vec(),
        polls: 2880,
        errors: 0,
    };
    let encoded = t.encode();
    assert!(encoded.len() < 2048, "{}", encoded.len());
    assert_eq!(TaskToken::decode(&encoded).expect("round trip"), t);
    assert!(TaskToken::decode(r#"{"v":1}"#).is_err());
}

#[test]
fn malformed_parameters_name_the_field() {
    assert_rejected(&[
        (
            r#"{"action":"run-task","cluster":"c"}"#,
            "task_definition",
            "is missing",
        ),
        (
            r#"{"action":"run-task","cluster":"c","service":"s","task_definition":"t"}"#,
            "task_definition",
            "are both set",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","file":"x.json"}"#,
            "file",
            "applies only with \"service\"",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","launch_type":"LAMBDA"}"#,
            "launch_type",
            "must be \"FARGATE\" or \"EC2\"",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","network":{"security_groups":["sg-1"]}}"#,
            "network.subnets",
            "is missing",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","overrides":{"web":["bin/migrate"]}}"#,
            "overrides.web",
            "must be an object",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","overrides":{"web":{"cmd":["x"]}}}"#,
            "overrides.web.cmd",
            "known fields: \"command\", \"environment\"",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","overrides":{"web":{"command":[]}}}"#,
            "overrides.web.command",
            "is an empty list",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","timeout_minutes":0}"#,
            "timeout_minutes",
            "from 1 to 1380",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition":"t","timeout_minutes":1440}"#,
            "timeout_minutes",
            "over run-task's cap of 1380 minutes (23 h): CodePipeline times an action out 24 h",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition_file":"taskdef.json","service":"s"}"#,
            "task_definition_file",
            "and \"service\" are both set",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition_file":"taskdef.json","file":"i.json"}"#,
            "file",
            "applies only with \"service\"",
        ),
        (
            r#"{"action":"run-task","cluster":"c","task_definition_file":"taskdef.json","image_placeholder":"<IMAGE1>"}"#,
            "image_placeholder",
            "is not a placeholder name",
        ),
        (
            r#"{"action":"run-task","cluster":"c","service":"s","image_placeholder":"IMAGE1_NAME"}"#,
            "image_placeholder",
            "applies only with \"task_definition_file\"",
        ),
    ]);
}

#[test]
fn the_time_limit_stays_below_codepipelines_action_timeout() {
    let settings = crate::Settings {
        default_wait_timeout: Duration::from_secs(24 * 3600),
        ..crate::Settings::default()
    };
    let p = |raw: &str| {
        let crate::params::Params::RunTask(p) = crate::params::parse(Some(raw)).expect("valid") else {
            panic!("run-task")
        };
        p
    };
    let none = p(r#"{"action":"run-task","cluster":"c","task_definition":"t"}"#);
    assert_eq!(time_limit(&none, &settings), Duration::from_secs(23 * 3600));
    let max = p(r#"{"action":"run-task","cluster":"c","task_definition":"t","timeout_minutes":1380}"#);
    assert_eq!(time_limit(&max, &settings), Duration::from_secs(23 * 3600));
    let short = p(r#"{"action":"run-task","cluster":"c","task_definition":"t","timeout_minutes":5}"#);
    assert_eq!(time_limit(&short, &settings), Duration::from_secs(300));
}

#[test]
fn redaction_is_longest_first_and_matches_control_characters() {
    // "abcd-1234" holds "abcd": replaced whole, not as "***-1234".
    let shown = bound_lines(
        &["token abcd-1234 and abcd".to_owned()],
        &["abcd", "abcd-1234"],
    );
    assert_eq!(shown, ["| token *** and ***"]);
    // A value with a tab is matched as the cleaned line shows it.
    let shown = bound_lines(&["pw=ab\tcd-secret end".to_owned()], &["ab\tcd-secret"]);
    assert_eq!(shown, ["| pw=*** end"]);
    // Short values are left alone.
    assert_eq!(bound_lines(&["on".to_owned()], &["on"]), ["| on"]);
}

#[test]
fn override_debug_never_shows_environment_values() {
    let crate::params::Params::RunTask(p) = crate::params::parse(Some(MIGRATE)).expect("valid") else {
        panic!("run-task")
    };
    let debug = format!("{p:?}");
    assert!(debug.contains("DB_PASSWORD"), "{debug}");
    assert!(!debug.contains("hunter2-not-shown"), "{debug}");
    let request = RunRequest {
        overrides: p.overrides.clone(),
        ..RunRequest::default()
    };
    assert!(!format!("{request:?}").contains("hunter2-not-shown"));
    assert!(!format!("{request:#?}").contains("hunter2-not-shown"));
}

const TASKDEF_RUN: &str = r#"{"action":"run-task","cluster":"prod","task_definition_file":"taskdef.json","image_placeholder":"IMAGE1_NAME","network":{"subnets":["subnet-0abc"]},"overrides":{"migrate":{"command":["bin/migrate"],"environment":{"DB_PASSWORD":"hunter2-not-shown"}}}}"#;

fn taskdef_doc(role: &str) -> String {
    serde_json::json!({
        "family": "migrate",
        "executionRoleArn": role,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [{"name": "migrate", "image": "<IMAGE1_NAME>",
            "environment": [{"name": "TOKEN", "value": "doc-secret-never-shown"}]}]
    })
    .to_string()
}

fn taskdef_setup(role: &str, pass_roles: Option<Vec<String>>) -> Arc<TestDeps> {
    let artifacts = FakeArtifacts::with_zip(&[
        ("taskdef.json", &taskdef_doc(role)),
        ("imageDetail.json", &format!(r#"{{"ImageURI":"{SHA_IMAGE}"}}"#)),
    ]);
    let (mut deps, _) = fakes::deps(artifacts, FakeEcs::default());
    Arc::get_mut(&mut deps).expect("one owner").settings.pass_roles = pass_roles;
    deps
}

#[tokio::test]
async fn a_taskdef_from_the_artifact_is_registered_once_tagged_and_run() {
    let deps = taskdef_setup(
        "arn:aws:iam::111111111111:role/ecs-exec",
        Some(vec!["arn:aws:iam::111111111111:role/ecs-*".into()]),
    );
    let s = success(go(&deps, &fakes::job_with_id("job-td", TASKDEF_RUN, None)).await);
    assert!(s.continuation_token.is_some());
    {
        let state = deps.ecs.state.lock().expect("lock");
        assert_eq!(state.documents.len(), 1);
        let doc = &state.documents[0];
        assert_eq!(doc["containerDefinitions"][0]["image"], SHA_IMAGE);
        assert_eq!(doc["tags"][0]["key"], JOB_TAG);
        assert_eq!(doc["tags"][0]["value"], "job-td");
        assert_eq!(state.runs.len(), 1);
        assert_eq!(state.runs[0].task_definition, td_arn("migrate", 1));
        assert_eq!(state.runs[0].launch_type, "FARGATE");
        // Registered after the liveness check.
        assert!(state.calls.iter().any(|c| c.starts_with("RegisterTaskDefinition")));
    }
    assert_eq!(deps.jobs.asked.lock().expect("lock").as_slice(), ["job-td"]);
    // A redelivery whose earlier delivery registered but did not start: reuse the revision.
    deps.ecs.state.lock().expect("lock").runs.clear();
    deps.ecs.state.lock().expect("lock").tasks.clear();
    success(go(&deps, &fakes::job_with_id("job-td", TASKDEF_RUN, None)).await);
    let state = deps.ecs.state.lock().expect("lock");
    assert_eq!(state.documents.len(), 1, "registered once per job");
    assert_eq!(state.runs[0].task_definition, td_arn("migrate", 1));
}

#[tokio::test]
async fn a_taskdef_role_outside_the_allowed_ones_is_refused_before_registering() {
    let deps = taskdef_setup(
        "arn:aws:iam::111111111111:role/admin",
        Some(vec!["arn:aws:iam::111111111111:role/ecs-*".into()]),
    );
    let f = failure(go(&deps, &fakes::job_with_id("job-td", TASKDEF_RUN, None)).await);
    assert_eq!(f.kind, FailureKind::ConfigurationError);
    assert!(f.message.contains("\"executionRoleArn\" is arn:aws:iam::111111111111:role/admin"), "{}", f.message);
    assert!(!f.message.contains("doc-secret-never-shown"));
    let state = deps.ecs.state.lock().expect("lock");
    assert!(state.documents.is_empty());
    assert!(state.runs.is_empty());
}

#[tokio::test]
async fn a_stale_taskdef_job_registers_nothing() {
    let deps = taskdef_setup("arn:aws:iam::111111111111:role/ecs-exec", None);
    deps.jobs.set("job-td", Liveness::Gone { why: "the action execution is Succeeded".into() });
    let f = failure(go(&deps, &fakes::job_with_id("job-td", TASKDEF_RUN, None)).await);
    assert!(f.message.contains("no longer live"), "{}", f.message);
    let state = deps.ecs.state.lock().expect("lock");
    assert!(state.documents.is_empty());
    assert!(state.runs.is_empty());
}

