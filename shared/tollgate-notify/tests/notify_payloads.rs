//! Notifier payloads for every fixture in `events/notifier/`:
//! - snapshots of the Slack, Teams, webhook, SNS and Amazon Q payloads (enriched through
//!   an in-memory fake of the read APIs), and of the default rules' decisions;
//! - structural validation against Block Kit limits and the Adaptive Card 1.4
//!   element set;
//! - enrichment failure still renders a message.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_notify::enrich::{
    ActionExecutionInfo, DeploymentInfo, Enricher, ExecutionSummaryInfo, PipelineExecutionInfo,
    Revision, SourceError, SourceReader, TargetCounts,
};
use tollgate_notify::events::{self, Detail};
use tollgate_notify::model::{EnrichmentState, Notification, Status};
// Named `render` so the expressions the snapshots record stay `render::…`.
use tollgate_notify::destinations as render;
use tollgate_notify::rules::{Decision, Rules};

fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/notifier");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("events/notifier exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name")
                .to_owned();
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            (stem, text)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 15, "fixtures missing: {}", out.len());
    out
}

// ---------------------------------------------------------------------------
// In-memory fake of the read APIs, with the answers AWS would give for the
// fixtures' executions and deployments.

const CONNECTION: &str = "arn:aws:codeconnections:eu-west-1:111122223333:connection/7d2f1a3b-4c5e-6f70-8192-a3b4c5d6e7f8";
const COMMIT: &str = "9f1c0e2b7d3a4c5e8f9a0b1c2d3e4f5a6b7c8d9e";
const EXEC_FAILED: &str = "6a7c1e52-0d4b-4f8e-9a3c-2b1d0e9f8a71";
const EXEC_SUCCEEDED: &str = "0b5e9d21-7c3a-4e6f-8b2d-1a9c8e7f6d53";
const EXEC_RECOVERED: &str = "c4d8f2a6-3e1b-4a7c-9d5f-6b2e8a1c4f97";
const EXEC_RETRIED: &str = "9d3f7b1e-5a2c-4e8d-b6f4-0c9a7e5d3b21";
const EXEC_GATE: &str = "e7a1c3f5-9b2d-4f6e-8a0c-3d5f7b9e1a24";

fn ts(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn revision(commit: &str, message: &str, repo: &str) -> Revision {
    Revision {
        name: Some("SourceArtifact".into()),
        revision_id: Some(commit.into()),
        summary: Some(json!({"ProviderType": "GitHub", "CommitMessage": message}).to_string()),
        url: Some(format!(
            "https://eu-west-1.console.aws.amazon.com/codesuite/settings/connections/redirect?connectionArn={}&referenceType=COMMIT&FullRepositoryId={}&Commit={commit}",
            CONNECTION.replace(':', "%3A").replace('/', "%2F"),
            repo.replace('/', "%2F")
        )),
    }
}

fn source_action(commit: &str, message: &str, repo: &str, branch: &str) -> ActionExecutionInfo {
    ActionExecutionInfo {
        stage: "Source".into(),
        action: "Source".into(),
        status: Some("Succeeded".into()),
        category: Some("Source".into()),
        provider: Some("CodeStarSourceConnection".into()),
        summary: Some(json!({"ProviderType": "GitHub", "CommitMessage": message}).to_string()),
        output_variables: BTreeMap::from([
            ("BranchName".into(), branch.into()),
            ("CommitId".into(), commit.into()),
            ("CommitMessage".into(), message.into()),
            ("FullRepositoryName".into(), repo.into()),
            ("ConnectionArn".into(), CONNECTION.into()),
        ]),
        configuration: BTreeMap::from([
            ("BranchName".into(), branch.into()),
            ("FullRepositoryId".into(), repo.into()),
        ]),
        started: ts("2024-05-14T09:35:03Z"),
        updated: ts("2024-05-14T09:36:40Z"),
        ..ActionExecutionInfo::default()
    }
}

fn summary(id: &str, status: &str, start: &str, end: &str) -> ExecutionSummaryInfo {
    ExecutionSummaryInfo {
        execution_id: id.into(),
        status: Some(status.into()),
        started: ts(start),
        updated: ts(end),
    }
}

#[derive(Default)]
struct FakeSource {
    executions: HashMap<String, PipelineExecutionInfo>,
    actions: HashMap<String, Vec<ActionExecutionInfo>>,
    history: HashMap<String, Vec<ExecutionSummaryInfo>>,
    deployments: HashMap<String, DeploymentInfo>,
    /// deploy-hook failure records by parameter name.
    records: HashMap<String, String>,
}

/// The prefix the payload tests read hook-failure records under.
const HOOK_FAILURE_PREFIX: &str = "/tollgate/tollgate-prod/hook-failures";

impl FakeSource {
    fn aws() -> Self {
        let mut f = FakeSource::default();
        let msg = "Round invoice totals half-even\n\nFixes #412";
        f.executions.insert(
            EXEC_FAILED.into(),
            PipelineExecutionInfo {
                status: Some("Failed".into()),
                status_summary: None,
                trigger_type: Some("Webhook".into()),
                trigger_detail: Some(CONNECTION.into()),
                revisions: vec![revision(COMMIT, msg, "acme/payments-api")],
            },
        );
        f.actions.insert(
            EXEC_FAILED.into(),
            vec![
                source_action(COMMIT, msg, "acme/payments-api", "main"),
                ActionExecutionInfo {
                    stage: "Build".into(),
                    action: "UnitTests".into(),
                    status: Some("Failed".into()),
                    category: Some("Build".into()),
                    provider: Some("CodeBuild".into()),
                    summary: Some("Build terminated with state: FAILED".into()),
                    external_url: Some("https://console.aws.amazon.com/codebuild/home?region=eu-west-1#/builds/payments-api-unit-tests:4f2b8d1e-6a3c-4e9f-b7d5-1c8a3e6f9b20/view/new".into()),
                    error_code: Some("JobFailed".into()),
                    error_message: Some("Build terminated with state: FAILED. Phase BUILD: COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101".into()),
                    started: ts("2024-05-14T09:36:41Z"),
                    updated: ts("2024-05-14T09:42:15Z"),
                    ..ActionExecutionInfo::default()
                },
            ],
        );
        f.history.insert(
            "payments-api".into(),
            vec![
                summary(
                    EXEC_SUCCEEDED,
                    "Succeeded",
                    "2024-05-14T10:55:01Z",
                    "2024-05-14T11:03:55Z",
                ),
                summary(
                    EXEC_RECOVERED,
                    "Succeeded",
                    "2024-05-14T10:12:30Z",
                    "2024-05-14T10:21:48Z",
                ),
                summary(
                    "2f4a6c8e-0b1d-4e3f-a5b7-c9d1e3f5a7b9",
                    "Superseded",
                    "2024-05-14T09:50:00Z",
                    "2024-05-14T09:51:30Z",
                ),
                summary(
                    EXEC_FAILED,
                    "Failed",
                    "2024-05-14T09:35:02Z",
                    "2024-05-14T09:42:17Z",
                ),
                summary(
                    "11111111-2222-4333-8444-555555555555",
                    "Succeeded",
                    "2024-05-13T16:00:00Z",
                    "2024-05-13T16:09:12Z",
                ),
            ],
        );
        let fix = "Fix rounding test for negative totals";
        let fix_commit = "b2d4f6a8c0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9";
        f.executions.insert(
            EXEC_RECOVERED.into(),
            PipelineExecutionInfo {
                status: Some("Succeeded".into()),
                trigger_type: Some("StartPipelineExecution".into()),
                trigger_detail: Some(
                    "arn:aws:sts::111122223333:assumed-role/PlatformEngineer/alice".into(),
                ),
                revisions: vec![revision(fix_commit, fix, "acme/payments-api")],
                ..PipelineExecutionInfo::default()
            },
        );
        f.actions.insert(
            EXEC_RECOVERED.into(),
            vec![source_action(fix_commit, fix, "acme/payments-api", "main")],
        );
        // payments-api: a release the metric gate stopped during its bake
        // (`events/notifier/action-failed-gate.json`). ListActionExecutions
        // carries the gate's whole failure text as the error message.
        let baked = "Cache exchange rates per request";
        let baked_commit = "a1c3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9";
        f.executions.insert(
            EXEC_GATE.into(),
            PipelineExecutionInfo {
                status: Some("InProgress".into()),
                trigger_type: Some("Webhook".into()),
                trigger_detail: Some(CONNECTION.into()),
                revisions: vec![revision(baked_commit, baked, "acme/payments-api")],
                ..PipelineExecutionInfo::default()
            },
        );
        let sample: Value = serde_json::from_str(include_str!(
            "../../../events/notifier/action-failed-gate.json"
        ))
        .expect("the gate sample is JSON");
        let gate_text = sample["detail"]["execution-result"]["external-execution-summary"]
            .as_str()
            .expect("the gate sample's summary")
            .to_owned();
        f.actions.insert(
            EXEC_GATE.into(),
            vec![
                source_action(baked_commit, baked, "acme/payments-api", "main"),
                ActionExecutionInfo {
                    stage: "Deploy".into(),
                    action: "Bake".into(),
                    status: Some("Failed".into()),
                    category: Some("Invoke".into()),
                    provider: Some("Lambda".into()),
                    error_code: Some("JobFailed".into()),
                    error_message: Some(gate_text),
                    started: ts("2024-05-14T11:25:40Z"),
                    updated: ts("2024-05-14T11:31:01Z"),
                    ..ActionExecutionInfo::default()
                },
            ],
        );
        let next = "Add invoice PDF footer";
        let next_commit = "d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2";
        f.executions.insert(
            EXEC_SUCCEEDED.into(),
            PipelineExecutionInfo {
                status: Some("Succeeded".into()),
                trigger_type: Some("Webhook".into()),
                trigger_detail: Some(CONNECTION.into()),
                revisions: vec![revision(next_commit, next, "acme/payments-api")],
                ..PipelineExecutionInfo::default()
            },
        );
        f.actions.insert(
            EXEC_SUCCEEDED.into(),
            vec![source_action(
                next_commit,
                next,
                "acme/payments-api",
                "main",
            )],
        );
        // payments-api: an execution a newer one superseded (a real
        // CodePipeline answers for it like any other).
        let superseded = "Bump invoice schema to v3";
        let superseded_commit = "c3e5a7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1";
        f.executions.insert(
            "2f4a6c8e-0b1d-4e3f-a5b7-c9d1e3f5a7b9".into(),
            PipelineExecutionInfo {
                status: Some("Superseded".into()),
                trigger_type: Some("Webhook".into()),
                trigger_detail: Some(CONNECTION.into()),
                revisions: vec![revision(superseded_commit, superseded, "acme/payments-api")],
                ..PipelineExecutionInfo::default()
            },
        );
        f.actions.insert(
            "2f4a6c8e-0b1d-4e3f-a5b7-c9d1e3f5a7b9".into(),
            vec![source_action(
                superseded_commit,
                superseded,
                "acme/payments-api",
                "main",
            )],
        );
        // orders-service: a CodeCommit source; succeeded on attempt 2.
        let cc = "5e7a9c1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c";
        f.executions.insert(
            EXEC_RETRIED.into(),
            PipelineExecutionInfo {
                status: Some("Succeeded".into()),
                trigger_type: Some("CloudWatchEvent".into()),
                trigger_detail: Some("arn:aws:events:eu-west-1:111122223333:rule/orders-service-source-change".into()),
                revisions: vec![Revision {
                    name: Some("SourceOutput".into()),
                    revision_id: Some(cc.into()),
                    summary: Some("Retry payment capture on 503".into()),
                    url: Some(format!("https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/orders-service/commit/{cc}?region=eu-west-1")),
                }],
                ..PipelineExecutionInfo::default()
            },
        );
        f.actions.insert(EXEC_RETRIED.into(), Vec::new());
        f.history.insert(
            "orders-service".into(),
            vec![summary(
                EXEC_RETRIED,
                "Succeeded",
                "2024-05-15T13:20:00Z",
                "2024-05-15T14:02:11Z",
            )],
        );
        // CodeDeploy: ECS blue/green that failed in a hook and was rolled back.
        f.deployments.insert(
            "d-7QXQ4LJ2B".into(),
            DeploymentInfo {
                status: Some("Failed".into()),
                error_code: Some("HOOK_EXECUTION_FAILURE".into()),
                error_message: Some("The deployment failed because a lifecycle event hook failed: AfterAllowTestTraffic returned Failed (smoke check GET /healthz answered 503 three times)".into()),
                creator: Some("user".into()),
                rollback_deployment_id: Some("d-8RZK5MN3C".into()),
                rollback_message: Some("Automatic rollback triggered: deployment d-7QXQ4LJ2B failed".into()),
                created: ts("2024-05-14T12:09:58Z"),
                started: ts("2024-05-14T12:10:02Z"),
                completed: ts("2024-05-14T12:18:43Z"),
                targets: Some(TargetCounts { failed: 1, ..TargetCounts::default() }),
                compute_platform: Some("ECS".into()),
                ..DeploymentInfo::default()
            },
        );
        f.deployments.insert(
            "d-3HJK8PQ1A".into(),
            DeploymentInfo {
                status: Some("Succeeded".into()),
                creator: Some("user".into()),
                created: ts("2024-05-14T12:58:00Z"),
                started: ts("2024-05-14T12:58:03Z"),
                completed: ts("2024-05-14T13:05:08Z"),
                targets: Some(TargetCounts {
                    succeeded: 1,
                    ..TargetCounts::default()
                }),
                compute_platform: Some("ECS".into()),
                ..DeploymentInfo::default()
            },
        );
        f.deployments.insert(
            "d-5TRW2XY9K".into(),
            DeploymentInfo {
                status: Some("Failed".into()),
                error_code: Some("HEALTH_CONSTRAINTS".into()),
                error_message: Some("The overall deployment failed because too many individual instances failed deployment, too few healthy instances are available for deployment, or some instances in your deployment group are experiencing problems.".into()),
                creator: Some("user".into()),
                created: ts("2024-05-14T12:11:00Z"),
                started: ts("2024-05-14T12:11:04Z"),
                completed: ts("2024-05-14T12:18:01Z"),
                targets: Some(TargetCounts { succeeded: 2, failed: 1, skipped: 1, ..TargetCounts::default() }),
                compute_platform: Some("Server".into()),
                github_repository: Some("acme/legacy-billing".into()),
                github_commit: Some("a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9".into()),
                ..DeploymentInfo::default()
            },
        );
        // An ECS blue/green deployment stopped by deploy-hook's smoke checks:
        // CodeDeploy only knows the hook failed; the record says why.
        f.deployments.insert(
            "d-9HKWQ2M7C".into(),
            DeploymentInfo {
                status: Some("Failed".into()),
                error_code: Some("HOOK_EXECUTION_FAILURE".into()),
                error_message: Some("The deployment failed because one or more of the lifecycle event hooks failed for the ECS deployment. Lifecycle event AfterAllowTestTraffic failed for the ECS deployment.".into()),
                creator: Some("user".into()),
                rollback_message: Some("Automatic rollback triggered".into()),
                created: ts("2024-05-14T13:55:10Z"),
                started: ts("2024-05-14T13:55:12Z"),
                completed: ts("2024-05-14T14:02:30Z"),
                compute_platform: Some("ECS".into()),
                ..DeploymentInfo::default()
            },
        );
        f.records.insert(
            format!("{HOOK_FAILURE_PREFIX}/checkout-web/prod"),
            tollgate_core::hook_failures::HookFailureRecord::from_message(
                "d-9HKWQ2M7C",
                Some("AfterAllowTestTraffic"),
                "AfterAllowTestTraffic failed for d-9HKWQ2M7C: smoke checks against http://checkout-1234567890.eu-west-1.elb.amazonaws.com:8080 did not pass: 1 of 2 checks failed\n\
                 FAIL health (GET http://checkout-1234567890.eu-west-1.elb.amazonaws.com:8080/health): 3 attempts, last response 12 ms\n\
                 \x20 - status: expected 200, got 503\n\
                 \x20 - json $.status: expected equals \"ok\", got \"degraded\"",
                "2024-05-14T14:02:29Z",
            )
            .encode(),
        );
        f
    }
}

fn missing(action: &'static str, what: &str) -> SourceError {
    SourceError::NotFound {
        action,
        detail: format!("fake has no answer for {what}"),
    }
}

impl SourceReader for FakeSource {
    async fn pipeline_execution(
        &self,
        _region: &str,
        _pipeline: &str,
        execution_id: &str,
    ) -> Result<PipelineExecutionInfo, SourceError> {
        self.executions
            .get(execution_id)
            .cloned()
            .ok_or_else(|| missing("codepipeline:GetPipelineExecution", execution_id))
    }

    async fn action_executions(
        &self,
        _region: &str,
        _pipeline: &str,
        execution_id: &str,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        self.actions
            .get(execution_id)
            .cloned()
            .ok_or_else(|| missing("codepipeline:ListActionExecutions", execution_id))
    }

    async fn pipeline_executions(
        &self,
        _region: &str,
        pipeline: &str,
        _max: i32,
    ) -> Result<Vec<ExecutionSummaryInfo>, SourceError> {
        self.history
            .get(pipeline)
            .cloned()
            .ok_or_else(|| missing("codepipeline:ListPipelineExecutions", pipeline))
    }

    async fn deployment(
        &self,
        _region: &str,
        deployment_id: &str,
    ) -> Result<DeploymentInfo, SourceError> {
        self.deployments
            .get(deployment_id)
            .cloned()
            .ok_or_else(|| missing("codedeploy:GetDeployment", deployment_id))
    }

    async fn hook_failure_record(
        &self,
        _region: &str,
        name: &str,
    ) -> Result<Option<String>, SourceError> {
        Ok(self.records.get(name).cloned())
    }
}

/// A source whose every call is denied.
struct DeniedSource;

impl SourceReader for DeniedSource {
    async fn pipeline_execution(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<PipelineExecutionInfo, SourceError> {
        Err(SourceError::Denied {
            action: "codepipeline:GetPipelineExecution",
            detail: "AccessDeniedException".into(),
        })
    }
    async fn action_executions(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        // Slow as well as failing: the time bound must cut it off.
        tokio::time::sleep(Duration::from_secs(30)).await;
        Err(SourceError::Failed {
            action: "codepipeline:ListActionExecutions",
            detail: "unreachable".into(),
        })
    }
    async fn pipeline_executions(
        &self,
        _: &str,
        _: &str,
        _: i32,
    ) -> Result<Vec<ExecutionSummaryInfo>, SourceError> {
        Err(SourceError::Failed {
            action: "codepipeline:ListPipelineExecutions",
            detail: "ThrottlingException: Rate exceeded".into(),
        })
    }
    async fn deployment(&self, _: &str, _: &str) -> Result<DeploymentInfo, SourceError> {
        Err(SourceError::Denied {
            action: "codedeploy:GetDeployment",
            detail: "AccessDeniedException".into(),
        })
    }
}

async fn enriched(text: &str) -> Notification {
    let event = events::parse_str(text);
    let mut n = Notification::from_event(&event);
    let enricher = Enricher::new(FakeSource::aws(), Duration::from_secs(2), true)
        .with_hook_failures(Some(HOOK_FAILURE_PREFIX.to_owned()));
    enricher
        .enrich(&event, &mut n, Instant::now() + Duration::from_secs(10))
        .await;
    n
}

fn sns_text(n: &Notification) -> String {
    let m = render::sns::render(n);
    let attrs: Vec<String> = m
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "subject: {}\nattributes: {}\n---\n{}",
        m.subject,
        attrs.join(", "),
        m.message
    )
}

// ---------------------------------------------------------------------------

#[test]
fn every_fixture_parses_into_its_typed_detail() {
    for (name, text) in fixtures() {
        let ev = events::parse_str(&text);
        let dt = ev.envelope.detail_type().to_owned();
        let ok = match &ev.detail {
            Detail::PipelineExecution(_) => dt == events::detail_types::PIPELINE_EXECUTION,
            Detail::StageExecution(_) => dt == events::detail_types::STAGE_EXECUTION,
            Detail::ActionExecution(_) => dt == events::detail_types::ACTION_EXECUTION,
            Detail::Deployment(_) => dt == events::detail_types::DEPLOYMENT,
            Detail::Instance(_) => dt == events::detail_types::INSTANCE,
            Detail::Build(_) => dt == events::detail_types::BUILD,
            Detail::EcsDeployment(_) => dt == events::detail_types::ECS_DEPLOYMENT,
            Detail::EcsServiceAction(_) => dt == events::detail_types::ECS_SERVICE_ACTION,
            Detail::EcsHook(_) => dt == events::detail_types::ECS_HOOK,
            Detail::Unknown { .. } => !events::detail_types::ALL.contains(&dt.as_str()),
            Detail::Malformed { problem, .. } => panic!("{name}: malformed: {problem}"),
        };
        assert!(ok, "{name}: {dt} parsed as {:?}", ev.detail);
    }
    // Every detail-type of the notes' table has a fixture.
    let covered: Vec<String> = fixtures()
        .iter()
        .map(|(_, t)| events::parse_str(t).envelope.detail_type().to_owned())
        .collect();
    for dt in events::detail_types::ALL {
        assert!(covered.iter().any(|c| c == dt), "no fixture for {dt}");
    }
}

#[tokio::test]
async fn payload_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots/notify");
    settings.set_prepend_module_to_snapshot(false);
    let _guard = settings.bind_to_scope();
    for (name, text) in fixtures() {
        let n = enriched(&text).await;
        insta::assert_json_snapshot!(format!("{name}.slack"), render::slack::render(&n));
        insta::assert_json_snapshot!(format!("{name}.teams"), render::teams::render(&n));
        insta::assert_json_snapshot!(format!("{name}.webhook"), render::webhook::render(&n));
        insta::assert_snapshot!(format!("{name}.sns"), sns_text(&n));
        insta::assert_json_snapshot!(format!("{name}.amazonq"), render::amazonq::render(&n));
    }
}

#[tokio::test]
async fn default_rules_decisions() {
    let rules = Rules::default();
    let all = vec!["slack".to_owned()];
    let mut table = String::from("fixture | status | decision | title\n");
    for (name, text) in fixtures() {
        let n = enriched(&text).await;
        let decision = match rules.decide(&n, &all) {
            Decision::Send(to) => format!("send to {}", to.join(", ")),
            Decision::Quiet(_) => "quiet".to_owned(),
        };
        table.push_str(&format!(
            "{name} | {} | {decision} | {}\n",
            n.status,
            n.title()
        ));
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots/notify");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!("default-rules-decisions", table));
}

#[tokio::test]
async fn main_states_come_out_as_users_expect() {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    let n = enriched(&by_name["pipeline-failed"]).await;
    assert_eq!(n.status, Status::Failed);
    let reason = n.reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("Build › UnitTests failed:"), "{reason}");
    assert!(reason.contains("exit status 101"), "{reason}");
    let c = n.commit.as_ref().expect("commit");
    assert_eq!(c.message.as_deref(), Some("Round invoice totals half-even"));
    assert_eq!(c.branch.as_deref(), Some("main"));
    assert_eq!(c.repository.as_deref(), Some("acme/payments-api"));
    assert_eq!(n.enrichment.state, EnrichmentState::Complete);

    assert_eq!(
        enriched(&by_name["pipeline-recovered"]).await.status,
        Status::Recovered
    );
    assert_eq!(
        enriched(&by_name["pipeline-recovered-after-retry"])
            .await
            .status,
        Status::Recovered
    );
    assert_eq!(
        enriched(&by_name["pipeline-succeeded"]).await.status,
        Status::Succeeded
    );

    let n = enriched(&by_name["codedeploy-deployment-failed-rollback"]).await;
    assert_eq!(n.qualifier.as_deref(), Some("rolled back"));
    assert!(
        n.reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("HOOK_EXECUTION_FAILURE")
    );

    let n = enriched(&by_name["ecs-deployment-circuit-breaker"]).await;
    assert_eq!(n.qualifier.as_deref(), Some("circuit breaker"));

    let n = enriched(&by_name["codebuild-phase-failed"]).await;
    assert_eq!(n.scope.as_deref(), Some("BUILD"));
    assert!(
        n.reason
            .as_deref()
            .unwrap_or_default()
            .contains("cargo test")
    );
    assert!(n.links.iter().any(|l| l.label == "View logs"));
    assert_eq!(n.duration_secs, Some(229));
}

#[tokio::test]
async fn enrichment_failure_still_renders_from_the_event() {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    for name in ["pipeline-failed", "codedeploy-deployment-failed-rollback"] {
        let event = events::parse_str(&by_name[name]);
        let mut n = Notification::from_event(&event);
        let enricher = Enricher::new(DeniedSource, Duration::from_millis(200), true);
        // The source refuses at once; the time bound itself is tested with a
        // slow source (tests/tests/notifier.rs), not by a wall clock here.
        enricher
            .enrich(&event, &mut n, Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!(n.enrichment.state, EnrichmentState::Failed, "{name}");
        assert!(
            n.enrichment
                .problems
                .iter()
                .any(|p| p.contains("grant codepipeline:GetPipelineExecution")
                    || p.contains("grant codedeploy:GetDeployment")),
            "{:?}",
            n.enrichment.problems
        );
        let slack = render::slack::render(&n);
        let text = slack.to_string();
        assert!(text.contains("could not be looked up"), "{text}");
        validate_slack(name, &slack);
        validate_teams(name, &render::teams::render(&n));
    }
}

// ---------------------------------------------------------------------------
// Structural validation.

fn chars(v: &Value) -> usize {
    v.as_str().map(|s| s.chars().count()).unwrap_or(0)
}

fn validate_slack(name: &str, p: &Value) {
    let text = p["text"].as_str().unwrap_or_default();
    assert!(!text.is_empty(), "{name}: fallback text missing");
    let blocks = p["blocks"].as_array().expect("blocks array");
    assert!(
        !blocks.is_empty() && blocks.len() <= 50,
        "{name}: {} blocks",
        blocks.len()
    );
    for b in blocks {
        match b["type"].as_str().unwrap_or_default() {
            "header" => {
                assert_eq!(
                    b["text"]["type"], "plain_text",
                    "{name}: header must be plain_text"
                );
                let n = chars(&b["text"]["text"]);
                assert!((1..=150).contains(&n), "{name}: header {n} chars");
            }
            "section" => {
                let has_text = b.get("text").is_some();
                let fields = b.get("fields").and_then(|f| f.as_array());
                assert!(has_text || fields.is_some(), "{name}: empty section");
                if has_text {
                    let n = chars(&b["text"]["text"]);
                    assert!((1..=3000).contains(&n), "{name}: section text {n} chars");
                }
                if let Some(fields) = fields {
                    assert!(fields.len() <= 10, "{name}: {} fields", fields.len());
                    for f in fields {
                        let n = chars(&f["text"]);
                        assert!((1..=2000).contains(&n), "{name}: field {n} chars");
                    }
                }
            }
            "actions" => {
                let els = b["elements"].as_array().expect("elements");
                assert!(
                    !els.is_empty() && els.len() <= 25,
                    "{name}: {} actions",
                    els.len()
                );
                for e in els {
                    assert_eq!(e["type"], "button");
                    assert!(chars(&e["text"]["text"]) <= 75, "{name}: button text");
                    let url = e["url"].as_str().unwrap_or_default();
                    assert!(
                        url.starts_with("https://") && url.len() <= 3000,
                        "{name}: url"
                    );
                    if let Some(style) = e.get("style") {
                        assert!(style == "primary" || style == "danger", "{name}: style");
                    }
                }
            }
            "context" => {
                let els = b["elements"].as_array().expect("elements");
                assert!(
                    !els.is_empty() && els.len() <= 10,
                    "{name}: context elements"
                );
                for e in els {
                    assert!(chars(&e["text"]) <= 3000);
                }
            }
            other => panic!("{name}: unexpected block type {other}"),
        }
    }
}

/// The Adaptive Card 1.4 element set and the properties each may carry.
fn card_elements() -> HashMap<&'static str, Vec<&'static str>> {
    const COMMON: [&str; 7] = [
        "type",
        "id",
        "isVisible",
        "separator",
        "spacing",
        "height",
        "fallback",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        COMMON
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    HashMap::from([
        (
            "TextBlock",
            with(&[
                "text",
                "color",
                "fontType",
                "horizontalAlignment",
                "isSubtle",
                "maxLines",
                "size",
                "weight",
                "wrap",
            ]),
        ),
        (
            "Container",
            with(&[
                "items",
                "selectAction",
                "style",
                "verticalContentAlignment",
                "bleed",
                "backgroundImage",
                "minHeight",
                "rtl",
            ]),
        ),
        ("FactSet", with(&["facts"])),
        (
            "ColumnSet",
            with(&[
                "columns",
                "selectAction",
                "style",
                "bleed",
                "minHeight",
                "horizontalAlignment",
            ]),
        ),
        (
            "Image",
            with(&[
                "url",
                "altText",
                "backgroundColor",
                "horizontalAlignment",
                "selectAction",
                "size",
                "style",
                "width",
            ]),
        ),
        ("ImageSet", with(&["images", "imageSize"])),
        ("RichTextBlock", with(&["inlines", "horizontalAlignment"])),
        ("ActionSet", with(&["actions"])),
    ])
}

fn validate_card_element(name: &str, e: &Value, allowed: &HashMap<&str, Vec<&str>>) {
    let t = e["type"].as_str().unwrap_or_default();
    let props = allowed
        .get(t)
        .unwrap_or_else(|| panic!("{name}: element {t} is not in Adaptive Card 1.4"));
    for key in e.as_object().expect("element object").keys() {
        assert!(
            props.contains(&key.as_str()),
            "{name}: {t}.{key} is not a 1.4 property"
        );
    }
    if t == "TextBlock" {
        assert!(
            e["text"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: empty TextBlock"
        );
        for (k, ok) in [
            (
                "size",
                &["default", "small", "medium", "large", "extraLarge"][..],
            ),
            ("weight", &["default", "lighter", "bolder"][..]),
            (
                "color",
                &[
                    "default",
                    "dark",
                    "light",
                    "accent",
                    "good",
                    "warning",
                    "attention",
                ][..],
            ),
            ("fontType", &["default", "monospace"][..]),
        ] {
            if let Some(v) = e.get(k) {
                let v = v.as_str().unwrap_or_default().to_ascii_lowercase();
                assert!(
                    ok.iter().any(|o| o.to_ascii_lowercase() == v),
                    "{name}: {k}={v}"
                );
            }
        }
    }
    if t == "Container" {
        if let Some(style) = e.get("style") {
            let ok = [
                "default",
                "emphasis",
                "good",
                "attention",
                "warning",
                "accent",
            ];
            assert!(
                ok.contains(&style.as_str().unwrap_or_default()),
                "{name}: style"
            );
        }
        for item in e["items"].as_array().expect("items") {
            validate_card_element(name, item, allowed);
        }
    }
    if t == "FactSet" {
        for f in e["facts"].as_array().expect("facts") {
            assert!(
                f["title"].is_string() && f["value"].is_string(),
                "{name}: fact"
            );
            assert_eq!(f.as_object().map(|o| o.len()), Some(2), "{name}: fact keys");
        }
    }
}

fn validate_teams(name: &str, p: &Value) {
    assert_eq!(p["type"], "message", "{name}");
    let att = p["attachments"].as_array().expect("attachments");
    assert_eq!(att.len(), 1, "{name}");
    assert_eq!(
        att[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard", "{name}");
    assert_eq!(card["version"], "1.4", "{name}");
    let allowed_root = [
        "$schema",
        "type",
        "version",
        "body",
        "actions",
        "msteams",
        "fallbackText",
        "selectAction",
        "speak",
        "lang",
        "verticalContentAlignment",
        "minHeight",
        "rtl",
        "backgroundImage",
    ];
    for key in card.as_object().expect("card").keys() {
        assert!(allowed_root.contains(&key.as_str()), "{name}: card.{key}");
    }
    let allowed = card_elements();
    for e in card["body"].as_array().expect("body") {
        validate_card_element(name, e, &allowed);
    }
    let actions_14 = [
        "Action.OpenUrl",
        "Action.Submit",
        "Action.ShowCard",
        "Action.ToggleVisibility",
        "Action.Execute",
    ];
    for a in card["actions"].as_array().into_iter().flatten() {
        let t = a["type"].as_str().unwrap_or_default();
        assert!(actions_14.contains(&t), "{name}: action {t}");
        assert!(
            a["url"].as_str().is_some_and(|u| u.starts_with("https://")),
            "{name}"
        );
        assert!(a["title"].as_str().is_some_and(|s| !s.is_empty()), "{name}");
        for key in a.as_object().expect("action").keys() {
            assert!(["type", "title", "url", "iconUrl", "style", "id"].contains(&key.as_str()));
        }
    }
}

#[tokio::test]
async fn every_payload_is_structurally_valid() {
    for (name, text) in fixtures() {
        let n = enriched(&text).await;
        validate_slack(&name, &render::slack::render(&n));
        validate_teams(&name, &render::teams::render(&n));
        let sns = render::sns::render(&n);
        assert!(
            sns.subject.len() < 100 && sns.subject.is_ascii(),
            "{name}: {}",
            sns.subject
        );
        assert!(!sns.subject.contains('\n'), "{name}");
        let hook = render::webhook::render(&n);
        assert_eq!(hook["schema"], "tollgate.notification/v1");
        assert_eq!(hook["id"], n.event_id);
    }
}

#[tokio::test]
async fn oversized_content_is_cut_to_the_limits() {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    let mut n = enriched(&by_name["pipeline-failed"]).await;
    n.name = "p".repeat(400);
    n.reason = Some("line of a very long stack trace <with> & markup ```\n".repeat(400));
    for i in 0..120 {
        n.add_fact(&format!("Fact {i}"), "v".repeat(2500));
    }
    for i in 0..40 {
        n.add_link(
            &format!("Link {i} {}", "x".repeat(100)),
            format!("https://example.com/{i}"),
        );
    }
    validate_slack("oversized", &render::slack::render(&n));
    validate_teams("oversized", &render::teams::render(&n));
    let sns = render::sns::render(&n);
    assert!(sns.subject.len() < 100);

    // Issue 14.10: Teams refuses messages over about 28 KB. Multi-byte
    // text everywhere (4 bytes a character) still fits.
    n.reason = Some("🚨 a failure that goes on and on\n".repeat(400));
    n.facts.clear();
    for i in 0..120 {
        n.add_fact(&format!("Fact {i} 🚀"), "🚀".repeat(2500));
    }
    let teams = render::teams::render(&n);
    let bytes = teams.to_string().len();
    assert!(
        bytes <= render::teams::MAX_PAYLOAD_BYTES,
        "Teams payload of {bytes} bytes"
    );
    validate_teams("oversized multi-byte", &teams);
    assert!(
        teams.to_string().contains("a failure that goes on"),
        "the reason is cut, not dropped"
    );
}

/// Records which read APIs were called.
struct Counting {
    inner: FakeSource,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl Counting {
    fn note(&self, op: &'static str) {
        self.calls.lock().expect("calls").push(op);
    }
    fn taken(&self) -> Vec<&'static str> {
        let mut v = std::mem::take(&mut *self.calls.lock().expect("calls"));
        v.sort();
        v
    }
}

impl SourceReader for Counting {
    async fn pipeline_execution(
        &self,
        r: &str,
        p: &str,
        e: &str,
    ) -> Result<PipelineExecutionInfo, SourceError> {
        self.note("GetPipelineExecution");
        self.inner.pipeline_execution(r, p, e).await
    }
    async fn action_executions(
        &self,
        r: &str,
        p: &str,
        e: &str,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        self.note("ListActionExecutions");
        self.inner.action_executions(r, p, e).await
    }
    async fn pipeline_executions(
        &self,
        r: &str,
        p: &str,
        m: i32,
    ) -> Result<Vec<ExecutionSummaryInfo>, SourceError> {
        self.note("ListPipelineExecutions");
        self.inner.pipeline_executions(r, p, m).await
    }
    async fn deployment(&self, r: &str, d: &str) -> Result<DeploymentInfo, SourceError> {
        self.note("GetDeployment");
        self.inner.deployment(r, d).await
    }
}

#[tokio::test]
async fn a_plain_success_costs_one_lookup_a_recovery_three() {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    let enricher = Enricher::new(
        Counting {
            inner: FakeSource::aws(),
            calls: std::sync::Mutex::new(Vec::new()),
        },
        Duration::from_secs(2),
        true,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let run = |name: &str| {
        let event = events::parse_str(&by_name[name]);
        let n = Notification::from_event(&event);
        (event, n)
    };

    let (event, mut n) = run("pipeline-succeeded");
    enricher.enrich_for(&event, &mut n, deadline, false).await;
    assert_eq!(n.status, Status::Succeeded);
    assert_eq!(enricher.source().taken(), vec!["ListPipelineExecutions"]);

    let (event, mut n) = run("pipeline-recovered");
    enricher.enrich_for(&event, &mut n, deadline, false).await;
    assert_eq!(n.status, Status::Recovered);
    assert!(n.commit.is_some());
    assert_eq!(
        enricher.source().taken(),
        vec![
            "GetPipelineExecution",
            "ListActionExecutions",
            "ListPipelineExecutions"
        ]
    );

    // When plain successes notify, everything is looked up in one go.
    let (event, mut n) = run("pipeline-succeeded");
    enricher.enrich_for(&event, &mut n, deadline, true).await;
    assert_eq!(enricher.source().taken().len(), 3);
    assert!(n.commit.is_some());

    // Stage and action events never read the history.
    let (event, mut n) = run("action-failed");
    enricher.enrich(&event, &mut n, deadline).await;
    assert_eq!(
        enricher.source().taken(),
        vec!["GetPipelineExecution", "ListActionExecutions"]
    );
    let (event, mut n) = run("codebuild-phase-failed");
    enricher.enrich(&event, &mut n, deadline).await;
    assert!(enricher.source().taken().is_empty());
    assert_eq!(n.enrichment.state, EnrichmentState::None);
}

/// Whether `pat` occurs in `s` not escaped, i.e. after an even number of
/// backslashes (markdown's escape).
fn unescaped(s: &str, pat: &str) -> bool {
    s.match_indices(pat).any(|(i, _)| {
        let backslashes = s[..i].chars().rev().take_while(|c| *c == '\\').count();
        backslashes % 2 == 0
    })
}

/// Every string of a JSON payload, with where it sits.
fn strings(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at, s.clone())),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                strings(x, format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                strings(x, format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Issue 14.6: user-controlled text (here an action summary carrying Slack
/// mentions, a disguised Slack link, markdown links, a backslash trick,
/// emphasis and code fences) is inert in every renderer.
#[tokio::test]
async fn markup_in_user_text_is_inert_in_every_destination() {
    let text = fixtures()
        .into_iter()
        .find(|(name, _)| name == "action-failed-markup")
        .expect("fixture action-failed-markup")
        .1;
    let n = enriched(&text).await;
    assert!(
        n.reason
            .as_deref()
            .is_some_and(|r| r.contains("<!channel>")),
        "the fixture carries the markup into the notification: {:?}",
        n.reason
    );

    // Slack: no text of any block, nor the fallback, holds a raw `<`, so no
    // mention (`<!channel>`, `<@U…>`, `<!here>`) and no `<url|label>` link
    // can come from it; the only links are the ones Tollgate writes.
    let mut slack = Vec::new();
    strings(&render::slack::render(&n), String::new(), &mut slack);
    for (at, s) in &slack {
        for bad in ["<!channel>", "<!here", "<@U", "<https://evil"] {
            assert!(!s.contains(bad), "slack {at} holds {bad}: {s}");
        }
    }
    let fallback = &slack.iter().find(|(at, _)| at == ".text").expect("text").1;
    assert!(fallback.contains("&lt;!channel&gt;"), "{fallback}");

    // Teams: no markdown link or autolink from the summary.
    let mut teams = Vec::new();
    strings(&render::teams::render(&n), String::new(), &mut teams);
    for (at, s) in &teams {
        for bad in ["[docs", "](https://evil", "<https://evil", "<!channel>"] {
            assert!(!unescaped(s, bad), "teams {at} holds {bad} unescaped: {s}");
        }
    }
    assert!(
        teams
            .iter()
            .any(|(_, s)| s.contains("\\\\\\[x\\](https://evil.example/2)")),
        "the backslash trick is escaped: {teams:#?}"
    );

    // The webhook and SNS carry data, not markup: the text arrives as it was.
    let webhook = render::webhook::render(&n).to_string();
    assert!(
        webhook.contains("<!channel> checkout: status 503 & body"),
        "{webhook}"
    );
    assert!(sns_text(&n).contains("<!channel> checkout: status 503 & body"));
}

/// A `gate` action's failure (`events/notifier/action-failed-gate.json`):
/// the failing measurement is a section of its own in every destination,
/// the reason keeps only the gate's first line, and the gate's user text
/// (query names, units, alarm names) is inert markup.
#[tokio::test]
async fn a_gate_failure_shows_the_failing_measurement_in_every_destination() {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    let n = enriched(&by_name["action-failed-gate"]).await;
    assert_eq!(
        n.reason.as_deref(),
        Some(
            "metric gate failed: p99 812 ms > 600 ms in 3 of 5 measurements; 5xx rate 2.1 % > 1 % in 2 of 5 measurements"
        ),
        "enrichment merged the full text back; it is shown once, as the gate's section"
    );
    let g = n.gate.as_ref().expect("the gate is read back");
    assert_eq!(g.title(), "Metric gate failed");
    assert_eq!(
        g.findings,
        [
            "p99 812 ms > 600 ms in 3 of 5 measurements",
            "5xx rate 2.1 % > 1 % in 2 of 5 measurements"
        ]
    );
    let want = "p99 812 ms > 600 ms in 3 of 5 measurements";
    let slack = render::slack::render(&n).to_string();
    assert!(
        slack.contains(
            "*Metric gate failed*\\n```p99 812 ms &gt; 600 ms in 3 of 5 measurements\\n5xx rate"
        ),
        "{slack}"
    );
    let teams = render::teams::render(&n).to_string();
    assert!(
        teams.contains("Metric gate failed") && teams.contains("600 ms in 3 of 5 measurements"),
        "{teams}"
    );
    let hook = render::webhook::render(&n);
    assert_eq!(hook["gate"]["outcome"], "failed");
    assert_eq!(hook["gate"]["findings"][0], want);
    assert_eq!(
        hook["gate"]["measurements"],
        "2 successful, 3 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 5 of 5 taken"
    );
    let sns = sns_text(&n);
    assert!(
        sns.contains("\nMetric gate failed:\n  p99 812 ms > 600 ms in 3 of 5 measurements\n"),
        "{sns}"
    );
    let q = render::amazonq::render(&n).to_string();
    assert!(
        q.contains("Metric gate failed") && q.contains("600 ms in 3 of 5 measurements"),
        "{q}"
    );
    validate_slack("gate", &render::slack::render(&n));
    validate_teams("gate", &render::teams::render(&n));

    // Markup in the spec's names and CloudWatch's words stays text.
    let mut n = n;
    let evil = "p99 <!channel> *now* [x](https://evil.example/2) ```";
    n.reason = None;
    n.gate = None;
    n.reason = Some(
        tollgate_core::gate_report::GateReport::new(
            tollgate_core::gate_report::GateOutcome::Failed,
            vec![
                format!("{evil} 812 ms > 600 ms in 3 of 5 measurements"),
                "alarm <@U123> went to ALARM".into(),
            ],
            "",
        )
        .to_text(),
    );
    n.extract_gate();
    assert!(n.gate.is_some());
    let mut slack = Vec::new();
    strings(&render::slack::render(&n), String::new(), &mut slack);
    for (at, s) in &slack {
        for bad in ["<!channel>", "<@U", "<https://evil"] {
            assert!(!s.contains(bad), "slack {at} holds {bad}: {s}");
        }
    }
    assert!(
        slack
            .iter()
            .any(|(_, s)| s.starts_with("*Metric gate failed*") && s.contains("&lt;!channel&gt;")),
        "{slack:#?}"
    );
    let mut teams = Vec::new();
    strings(&render::teams::render(&n), String::new(), &mut teams);
    for (at, s) in &teams {
        for bad in ["](https://evil", "<!channel>", "<@U"] {
            assert!(!unescaped(s, bad), "teams {at} holds {bad} unescaped: {s}");
        }
    }
    let q = render::amazonq::render(&n);
    let mut qs = Vec::new();
    strings(&q, String::new(), &mut qs);
    for (at, s) in &qs {
        for bad in ["<!channel>", "<@U123>", "](https://evil"] {
            assert!(!s.contains(bad), "amazonq {at} holds {bad}: {s}");
        }
    }
}

/// A deploy-hook's gate failure, recorded like failed checks: the gate's
/// section, titled with the hook, instead of a "failed checks" list; with
/// or without the prefix deploy-hook's gate tickets write before it.
#[test]
fn a_deploy_hook_gate_record_becomes_the_gate_section() {
    for prefix in ["", "AfterAllowTraffic failed for d-GATE00001: "] {
        gate_record_becomes_the_gate_section(prefix);
    }
}

fn gate_record_becomes_the_gate_section(prefix: &str) {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    let event = events::parse_str(&by_name["codedeploy-deployment-hook-failed"]);
    let mut n = Notification::from_event(&event);
    let text = format!(
        "{prefix}metric gate failed: 5xx rate 3.2 % > 1 % in 1 of 1 measurements\nmeasurements: 0 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 1 of 5 taken"
    );
    let record = tollgate_core::hook_failures::HookFailureRecord::from_message(
        "d-GATE00001",
        Some("AfterAllowTraffic"),
        &text,
        "2024-05-14T11:31:02Z",
    );
    let seen =
        tollgate_notify::enrich::apply_hook_failure(&mut n, &record.encode(), "d-GATE00001", None);
    assert_eq!(seen, tollgate_notify::enrich::RecordMatch::Shown);
    assert!(n.failed_checks.is_none());
    let g = n.gate.as_ref().expect("gate");
    assert_eq!(g.title(), "Metric gate failed (AfterAllowTraffic)");
    assert_eq!(g.headline, "5xx rate 3.2 % > 1 % in 1 of 1 measurements");
    let slack = render::slack::render(&n);
    assert!(
        slack["text"]
            .as_str()
            .expect("fallback")
            .ends_with(": metric gate failed: 5xx rate 3.2 % &gt; 1 % in 1 of 1 measurements"),
        "{slack}"
    );
}

/// A failed check whose text merely quotes the gate's words (a body that
/// says "metric gate failed: …") stays a failed check: the gate's section
/// is recognised only where deploy-hook puts it.
#[test]
fn a_check_failure_quoting_the_gate_words_stays_a_failed_check() {
    let by_name: HashMap<String, String> = fixtures().into_iter().collect();
    let event = events::parse_str(&by_name["codedeploy-deployment-hook-failed"]);
    let mut n = Notification::from_event(&event);
    let text = "BeforeAllowTraffic failed for d-GATE00001: smoke checks: body: metric gate failed: 5xx rate 3.2 % > 1 % in 1 of 1 measurements\nmeasurements: 0 successful, 1 failed (limit 0), 0 inconclusive (limit 0), 0 errors; 1 of 5 taken";
    let record = tollgate_core::hook_failures::HookFailureRecord::from_message(
        "d-GATE00001",
        Some("BeforeAllowTraffic"),
        text,
        "2024-05-14T11:31:02Z",
    );
    let seen =
        tollgate_notify::enrich::apply_hook_failure(&mut n, &record.encode(), "d-GATE00001", None);
    assert_eq!(seen, tollgate_notify::enrich::RecordMatch::Shown);
    assert!(n.gate.is_none(), "not a gate report: {:?}", n.gate);
    assert!(n.failed_checks.is_some());
}
