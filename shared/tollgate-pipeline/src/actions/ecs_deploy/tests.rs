use super::*;
use crate::ecs::{Deployment, MAX_POLL_ERRORS, ServiceEvent};
use crate::fakes::rollouts::{SHA_IMAGE, failure, rollout, setup, success};
use crate::fakes::{self, FakeArtifacts, FakeEcs, TestDeps, td_arn};
use crate::params::testing::assert_rejected;
use crate::params::{Params, parse};
use std::sync::atomic::Ordering;
use tollgate_report::FailureKind;

const DEPLOY: &str =
    r#"{"action":"ecs-deploy","cluster":"prod","service":"web","wait_timeout_minutes":30}"#;

async fn deploy(deps: &TestDeps, job: &Job) -> Result<JobOutcome, Failure> {
    let Params::EcsDeploy(p) = parse(
        job.data
            .action_configuration
            .configuration
            .user_parameters
            .as_deref(),
    )
    .expect("params") else {
        panic!("ecs-deploy params")
    };
    run(deps, job, &p, &Step::default(), Instant::now()).await
}

#[tokio::test]
async fn deploy_registers_updates_and_answers_in_progress() {
    let (deps, _) = setup(SHA_IMAGE);
    let s = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    let token = WaitToken::decode(s.continuation_token.as_deref().expect("token")).expect("ours");
    assert_eq!(token.deployment, "ecs-svc/2001");
    assert_eq!(token.task_definition, td_arn("web", 13));
    assert_eq!(
        (token.cluster.as_str(), token.service.as_str()),
        ("prod", "web")
    );
    assert_eq!(token.polls, 1);
    assert_eq!(s.percent_complete, Some(0));
    assert_eq!(
        s.summary.as_deref(),
        Some("web: 0/4 tasks on new revision web:13; rollout in progress for 0s (limit 30m)")
    );
    assert_eq!(s.external_execution_id.as_deref(), Some("ecs-svc/2001"));
    assert_eq!(
        deps.ecs.calls(),
        [
            "DescribeServices".to_owned(),
            format!("DescribeTaskDefinition {}", td_arn("web", 12)),
            "DescribeTaskDefinition web".to_owned(),
            "RegisterTaskDefinition".to_owned(),
            format!("UpdateService {}", td_arn("web", 13)),
        ]
    );
    let revs = deps.ecs.revisions("web");
    let new = revs.last().expect("new revision");
    assert_eq!(new.containers[0], ("web".to_owned(), SHA_IMAGE.to_owned()));
    assert_eq!(
        new.containers[1].1, "public.ecr.aws/envoy:v1.30.1",
        "untouched"
    );
    assert!(new.tags.contains(&(JOB_TAG.to_owned(), "job-1".to_owned())));
    assert!(
        new.tags
            .contains(&("team".to_owned(), "payments".to_owned()))
    );
    // The artifact was read with the job's credentials.
    assert_eq!(
        *deps.artifacts.get_keys.lock().expect("lock"),
        [fakes::ACCESS_KEY]
    );
}

#[tokio::test]
async fn a_scripted_rollout_completes_over_three_polls() {
    let (deps, now) = setup(SHA_IMAGE);
    let first = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    let after = deps.ecs.service("web");
    deps.ecs.script(vec![
        Ok(rollout(
            &after,
            "ecs-svc/2001",
            "IN_PROGRESS",
            1,
            "in progress",
        )),
        Ok(rollout(
            &after,
            "ecs-svc/2001",
            "IN_PROGRESS",
            3,
            "in progress",
        )),
        Ok(rollout(&after, "ecs-svc/2001", "COMPLETED", 4, "completed")),
    ]);
    let mut token = first.continuation_token.expect("token");
    let mut percents = Vec::new();
    for (i, job_id) in ["job-2", "job-3"].iter().enumerate() {
        now.fetch_add(60, Ordering::SeqCst);
        let calls_before = deps.ecs.calls().len();
        let s = success(deploy(&deps, &fakes::job_with_id(job_id, DEPLOY, Some(&token))).await);
        assert_eq!(
            deps.ecs.calls().len(),
            calls_before + 1,
            "one DescribeServices per poll"
        );
        percents.push(s.percent_complete.expect("percent"));
        let expected = if i == 0 { "1/4" } else { "3/4" };
        assert!(
            s.summary
                .as_deref()
                .expect("summary")
                .starts_with(&format!("web: {expected} tasks on new revision web:13")),
            "{s:?}"
        );
        token = s.continuation_token.expect("still waiting");
    }
    assert_eq!(percents, [25, 75]);
    now.fetch_add(60, Ordering::SeqCst);
    let done = success(deploy(&deps, &fakes::job_with_id("job-4", DEPLOY, Some(&token))).await);
    assert_eq!(done.continuation_token, None);
    assert_eq!(done.percent_complete, Some(100));
    assert_eq!(
        done.summary.as_deref(),
        Some("web: 4/4 tasks on new revision web:13; rollout completed after 3m (4 polls)")
    );
    assert_eq!(
        done.output_variables["task_definition_arn"],
        td_arn("web", 13)
    );
    assert_eq!(done.output_variables["deployment_id"], "ecs-svc/2001");
    // Polling never registers or updates again.
    let calls = deps.ecs.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("Register")).count(),
        1
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("UpdateService"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_failed_rollout_reports_the_circuit_breaker_and_stopped_tasks() {
    let (deps, now) = setup(SHA_IMAGE);
    let first = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    let mut after = rollout(
        &deps.ecs.service("web"),
        "ecs-svc/2001",
        "FAILED",
        0,
        "ECS deployment circuit breaker: tasks failed to start.",
    );
    after.deployments[0].failed_tasks = 3;
    // The circuit breaker started a rollback deployment to the old revision.
    after.deployments.insert(
        0,
        Deployment {
            id: "ecs-svc/3000".into(),
            status: "PRIMARY".into(),
            task_definition: td_arn("web", 12),
            desired: 4,
            rollout_state: Some("IN_PROGRESS".into()),
            ..Deployment::default()
        },
    );
    after.deployments[1].status = "ACTIVE".into();
    after.events = vec![ServiceEvent {
        created_at: Some(10_030),
        message: "(service web) has started 2 tasks: (task a) (task b).".into(),
    }];
    deps.ecs.script(vec![Ok(after)]);
    deps.ecs.state.lock().expect("lock").stopped =
        vec!["task 1a2b: Essential container in task exited (web: exit code 1)".into()];
    now.fetch_add(120, Ordering::SeqCst);
    let token = first.continuation_token.expect("token");
    let f = failure(deploy(&deps, &fakes::job_with_id("job-2", DEPLOY, Some(&token))).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    for part in [
        "ECS rollout of service web to web:13 FAILED after 2m",
        "ECS deployment circuit breaker: tasks failed to start.",
        "0/4 tasks on new revision web:13 (4 pending, 3 failed to start)",
        "rolling back to web:12 (deployment ecs-svc/3000)",
        "Recent service events: (service web) has started 2 tasks",
        "Stopped tasks: task 1a2b: Essential container in task exited (web: exit code 1)",
    ] {
        assert!(
            f.message.contains(part),
            "missing {part:?} in {}",
            f.message
        );
    }
}

#[tokio::test]
async fn the_wait_limit_ends_the_wait() {
    let (deps, now) = setup(SHA_IMAGE);
    let first = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    now.fetch_add(31 * 60, Ordering::SeqCst);
    let f = failure(
        deploy(
            &deps,
            &fakes::job_with_id("job-2", DEPLOY, first.continuation_token.as_deref()),
        )
        .await,
    );
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message
            .contains("did not complete within the 30m wait limit"),
        "{}",
        f.message
    );
    assert!(f.message.contains("wait_timeout_minutes"), "{}", f.message);
}

#[tokio::test]
async fn a_replaced_deployment_fails_the_wait() {
    let (deps, _) = setup(SHA_IMAGE);
    let first = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    let mut other = deps.ecs.service("web");
    other.deployments[0].id = "ecs-svc/9999".into();
    other.deployments[0].task_definition = td_arn("web", 14);
    deps.ecs.script(vec![Ok(other)]);
    let f = failure(
        deploy(
            &deps,
            &fakes::job_with_id("job-2", DEPLOY, first.continuation_token.as_deref()),
        )
        .await,
    );
    assert!(
        f.message
            .contains("no longer among the service's deployments"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("ecs-svc/9999 with web:14"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn a_duplicate_delivery_registers_one_revision() {
    let (deps, _) = setup(SHA_IMAGE);
    let job = fakes::job(DEPLOY, None);
    let a = success(deploy(&deps, &job).await);
    let b = success(deploy(&deps, &job).await);
    let calls = deps.ecs.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("Register")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("UpdateService"))
            .count(),
        1,
        "{calls:?}"
    );
    let (ta, tb) = (
        WaitToken::decode(a.continuation_token.as_deref().expect("a")).expect("a"),
        WaitToken::decode(b.continuation_token.as_deref().expect("b")).expect("b"),
    );
    assert_eq!(ta.deployment, tb.deployment);
    assert_eq!(ta.task_definition, tb.task_definition);
}

#[tokio::test]
async fn a_revision_registered_by_a_lost_delivery_is_reused() {
    let (deps, _) = setup(SHA_IMAGE);
    // An earlier delivery registered web:13 and died before UpdateService.
    let images = BTreeMap::from([("web".to_owned(), SHA_IMAGE.to_owned())]);
    deps.ecs
        .register_task_definition(
            &td_arn("web", 12),
            &images,
            &[(JOB_TAG.into(), "job-1".into())],
        )
        .await
        .expect("registered");
    success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    let calls = deps.ecs.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("Register")).count(),
        1,
        "{calls:?}"
    );
    assert!(
        calls.contains(&format!("UpdateService {}", td_arn("web", 13))),
        "{calls:?}"
    );
}

#[tokio::test]
async fn mutable_tags_are_refused_before_any_ecs_call() {
    let (deps, _) = setup("111111111111.dkr.ecr.us-east-1.amazonaws.com/web:latest");
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message.starts_with("refusing to deploy: container web:"),
        "{}",
        f.message
    );
    assert!(f.message.contains(":latest"), "{}", f.message);
    assert!(deps.ecs.calls().is_empty());
}

#[tokio::test]
async fn unknown_containers_are_a_configuration_error() {
    let artifacts = FakeArtifacts::with_zip(&[(
        "imagedefinitions.json",
        &format!(r#"[{{"name":"api","imageUri":"{SHA_IMAGE}"}}]"#),
    )]);
    let (deps, _) = fakes::deps(artifacts, FakeEcs::with_web_service());
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    assert_eq!(f.kind, FailureKind::ConfigurationError);
    assert!(f.message.contains("container(s) api"), "{}", f.message);
    assert!(
        f.message.contains("its containers: web, envoy"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn a_missing_imagedefinitions_file_lists_the_artifact() {
    let artifacts = FakeArtifacts::with_zip(&[("build/out.txt", "x")]);
    let (deps, _) = fakes::deps(artifacts, FakeEcs::with_web_service());
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message
            .contains("imagedefinitions.json is not in artifact BuildOutput"),
        "{}",
        f.message
    );
    assert!(f.message.contains("build/out.txt"), "{}", f.message);
}

#[tokio::test]
async fn a_missing_artifact_names_bucket_and_key() {
    let (deps, _) = fakes::deps(FakeArtifacts::default(), FakeEcs::with_web_service());
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message
            .contains(&format!("s3://{}/{}", fakes::BUCKET, fakes::IN_KEY)),
        "{}",
        f.message
    );
    assert!(!f.message.contains(fakes::SECRET_KEY));
}

#[tokio::test]
async fn denied_registration_names_the_roles_to_pass() {
    let (deps, _) = setup(SHA_IMAGE);
    deps.ecs.state.lock().expect("lock").register_error = Some(EcsError::Denied {
        operation: "ecs:RegisterTaskDefinition",
        detail: "User is not authorized to perform: iam:PassRole".into(),
        hint: String::new(),
    });
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    assert_eq!(f.kind, FailureKind::PermissionError);
    assert!(f.message.contains("iam:PassRole on arn:aws:iam::111111111111:role/web-task and arn:aws:iam::111111111111:role/web-exec"), "{}", f.message);
}

#[tokio::test]
async fn code_deploy_services_are_refused() {
    let (deps, _) = setup(SHA_IMAGE);
    deps.ecs
        .state
        .lock()
        .expect("lock")
        .services
        .get_mut("web")
        .expect("web")
        .deployment_controller = "CODE_DEPLOY".into();
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    assert_eq!(f.kind, FailureKind::ConfigurationError);
    assert!(
        f.message.contains("CODE_DEPLOY deployment controller"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn poll_errors_are_retried_then_reported() {
    let (deps, _) = setup(SHA_IMAGE);
    let first = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    let blip = || {
        Err(EcsError::Unavailable {
            operation: "ecs:DescribeServices",
            detail: "ThrottlingException: Rate exceeded".into(),
        })
    };
    deps.ecs
        .script((0..MAX_POLL_ERRORS).map(|_| blip()).collect());
    let mut token = first.continuation_token.expect("token");
    for i in 1..MAX_POLL_ERRORS {
        let s = success(deploy(&deps, &fakes::job_with_id("job-n", DEPLOY, Some(&token))).await);
        assert!(
            s.summary
                .as_deref()
                .expect("summary")
                .contains(&format!("trying again ({i}/{MAX_POLL_ERRORS})")),
            "{s:?}"
        );
        token = s.continuation_token.expect("still waiting");
        assert_eq!(WaitToken::decode(&token).expect("ours").errors, i);
    }
    let f = failure(deploy(&deps, &fakes::job_with_id("job-n", DEPLOY, Some(&token))).await);
    assert_eq!(f.kind, FailureKind::SystemUnavailable);
    assert!(
        f.message.contains("failed 5 times in a row"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn a_foreign_token_is_refused() {
    let (deps, _) = setup(SHA_IMAGE);
    let f = failure(deploy(&deps, &fakes::job(DEPLOY, Some("not-json"))).await);
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(
        f.message.contains("continuation token is not one tollgate"),
        "{}",
        f.message
    );
    assert!(deps.ecs.calls().is_empty());
}

#[tokio::test]
async fn the_wait_limit_message_suggests_the_circuit_breaker_when_it_is_off() {
    let (deps, now) = setup(SHA_IMAGE);
    deps.ecs
        .state
        .lock()
        .expect("lock")
        .services
        .get_mut("web")
        .expect("web")
        .circuit_breaker = None;
    let first = success(deploy(&deps, &fakes::job(DEPLOY, None)).await);
    now.fetch_add(30 * 60, Ordering::SeqCst);
    let f = failure(
        deploy(
            &deps,
            &fakes::job_with_id("job-2", DEPLOY, first.continuation_token.as_deref()),
        )
        .await,
    );
    assert!(
        f.message.contains("deployment circuit breaker is off"),
        "{}",
        f.message
    );
}

/// Issue 14.4: J1 deployed and reported, J2 deployed, J1 delivered again
/// (a late async retry): no RegisterTaskDefinition, no UpdateService.
#[tokio::test]
async fn a_late_delivery_of_a_finished_job_changes_nothing() {
    let (deps, clock) = setup(SHA_IMAGE);
    let j1 = fakes::job_with_id("job-1", DEPLOY, None);
    success(deploy(&deps, &j1).await);
    deps.jobs.set(
        "job-1",
        Liveness::Gone {
            why: "action execution a-1 of web/Deploy/EcsDeploy is Succeeded".into(),
        },
    );
    clock.fetch_add(600, Ordering::SeqCst);
    let j2 = fakes::job_with_id("job-2", DEPLOY, None);
    success(deploy(&deps, &j2).await);
    let before = deps.ecs.calls();

    let f = failure(deploy(&deps, &j1).await);
    let after = deps.ecs.calls();
    let new: Vec<&String> = after[before.len()..].iter().collect();
    assert!(
        !new.iter()
            .any(|c| c.starts_with("Register") || c.starts_with("UpdateService")),
        "a finished job changed production: {new:?}"
    );
    assert_eq!(f.kind, FailureKind::JobFailed);
    assert!(f.message.contains("no longer live"), "{}", f.message);
    assert!(f.message.contains("is Succeeded"), "{}", f.message);
    assert!(
        deps.jobs
            .asked
            .lock()
            .expect("lock")
            .contains(&"job-1".to_owned())
    );
}

/// A job that is still live but older than the job that registered the
/// service's revision (J2 started after J1, registered and deployed first)
/// must not deploy over it.
#[tokio::test]
async fn an_older_job_never_deploys_over_a_newer_jobs_revision() {
    let (deps, clock) = setup(SHA_IMAGE);
    // J1's action started at t=10 000 s; J2 registered and deployed at t=10 600 s.
    deps.jobs.set(
        "job-1",
        Liveness::Live {
            started_at_ms: Some(10_000_000),
        },
    );
    clock.store(10_600, Ordering::SeqCst);
    success(deploy(&deps, &fakes::job_with_id("job-2", DEPLOY, None)).await);
    let before = deps.ecs.calls();
    let f = failure(deploy(&deps, &fakes::job_with_id("job-1", DEPLOY, None)).await);
    let after = deps.ecs.calls();
    assert!(
        !after[before.len()..]
            .iter()
            .any(|c| c.starts_with("Register") || c.starts_with("UpdateService")),
        "{after:?}"
    );
    assert!(
        f.message.contains("newer Tollgate job (job-2)"),
        "{}",
        f.message
    );

    // A job that started after J2 registered deploys as usual.
    deps.jobs.set(
        "job-3",
        Liveness::Live {
            started_at_ms: Some(10_700_000),
        },
    );
    clock.store(10_700, Ordering::SeqCst);
    success(deploy(&deps, &fakes::job_with_id("job-3", DEPLOY, None)).await);
}

#[test]
fn the_example_parses() {
    let Params::EcsDeploy(d) = parse(Some(EXAMPLE)).expect("valid") else {
        panic!("ecs-deploy")
    };
    assert_eq!(d.cluster, "prod");
    assert_eq!(d.service, "web");
    assert_eq!(d.file, "imagedefinitions.json");
    assert_eq!(d.wait_timeout, Some(Duration::from_secs(30 * 60)));
    assert_eq!(d.image_policy, ImagePolicy::default());
}

#[test]
fn malformed_parameters_name_the_field() {
    assert_rejected(&[
        (
            r#"{"action":"ecs-deploy","service":"web"}"#,
            "cluster",
            "is missing",
        ),
        (
            r#"{"action":"ecs-deploy","cluster":7,"service":"web"}"#,
            "cluster",
            "must be a string",
        ),
        (
            r#"{"action":"ecs-deploy","cluster":"c","service":"s","force_new_deployment":"yes"}"#,
            "force_new_deployment",
            "true or false",
        ),
    ]);
}

#[test]
fn the_example_matches_the_action() {
    let e = crate::params::testing::err(r#"{"action":"ecs-deploy","service":"web"}"#);
    assert_eq!(e.example, EXAMPLE);
}
