//! The local rehearsal: a whole release of a sample app on loopback, with no
//! AWS account and no Docker, run by `scripts/rehearse` (the README's "run
//! it" command) through the `rehearse` binary.
//!
//! What runs:
//! - the three real function binaries (`pipeline-action`, `deploy-hook`,
//!   `notifier`) under the local Lambda Runtime API ([`crate::LocalLambda`]),
//!   each started once and kept warm, as Lambda would, and `approvals`
//!   (started at the manual approval, [`approval`]), which a signed Slack
//!   click reaches through its function URL;
//! - real AWS SDK clients inside them, pointed at the AWS stand-in
//!   ([`crate::AwsStandIn`]), which answers the CodePipeline and CodeDeploy
//!   reports and the reads moto lacks, and forwards the rest to moto;
//! - the sample app ([`app`]): staging and green run the release, blue the
//!   current version, behind two loopback load balancer listeners
//!   (production and test) that CodeDeploy re-points;
//! - a chat sink ([`sink`]) behind a Slack webhook URL kept in Secrets Manager.
//!
//! The rehearsal plays CodePipeline, CodeDeploy and EventBridge: it invokes
//! the functions with the events those services send, in the order they
//! send them, and turns the functions' reports into the next step. It
//! prints a [`timeline`] and writes the function logs, the Slack payloads
//! and the AWS calls to `target/rehearsal/<scenario>/`.
//!
//! Exit codes ([`exit_code`]):
//! - `0` ([`EXIT_RELEASED`]): the release reached production;
//! - `3` ([`EXIT_ROLLED_BACK`]): the release was stopped by a failed
//!   deployment hook and rolled back, with production left on blue; this
//!   is the expected outcome of `--break green`;
//! - `4` ([`EXIT_MIGRATION_FAILED`]): the migration task (Staging ›
//!   Migrate, `run-task`) exited non-zero and the pipeline stopped there,
//!   before staging or production changed; this is the expected outcome of
//!   `--break migration`;
//! - `5` ([`EXIT_GATE_FAILED`]): green passed its smoke checks, but the
//!   metric gate of `AfterAllowTraffic` failed it during the bake (its 5xx
//!   rate against blue's) and the deployment was rolled back, production
//!   back on blue; this is the expected outcome of `--break metrics`;
//! - `6` ([`EXIT_REJECTED`]): the approver rejected the release in Slack
//!   (a signed click on Reject, then the reason dialog) and the pipeline
//!   stopped at `Approval › Release`, with the reason in its failure; this
//!   is the expected outcome of `--reject`;
//! - `1` ([`EXIT_PROBLEM`]): the rehearsal itself went wrong, or the outcome
//!   was not the one the scenario expects (a healthy release that did not
//!   reach production, a broken green that was not stopped);
//! - `2` ([`EXIT_USAGE`]): bad command-line arguments.

pub mod app;
mod approval;
pub mod codepipeline;
pub mod events;
pub mod logs;
mod metrics;
mod migration;
mod pipeline;
mod production;
pub mod sink;
mod slackbot;
pub mod timeline;
mod world;

use crate::aws_standin::{Call, Report};
use crate::paths;
use crate::seed::{self, ACCOUNT, REGION, SeedError};
use crate::{AwsStandIn, Invocation, LocalLambda, Moto};
use app::{AppInstance, Listener, ServeError};
use codepipeline::{ActionRun, Commit, PipelineRun, RunStatus};
use serde_json::{Map, Value, json};
use sink::ChatSink;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use timeline::Timeline;
use world::World;

pub use slackbot::SlackMode;

/// Exit code: the release reached production.
pub const EXIT_RELEASED: i32 = 0;
/// Exit code: the rehearsal went wrong, or its outcome was not the expected one.
pub const EXIT_PROBLEM: i32 = 1;
/// Exit code: bad arguments.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: a deployment hook stopped the release and it was rolled back.
pub const EXIT_ROLLED_BACK: i32 = 3;
/// Exit code: the migration task failed and the pipeline stopped before
/// anything was deployed.
pub const EXIT_MIGRATION_FAILED: i32 = 4;
/// Exit code: the metric gate failed green during the bake after
/// AllowTraffic, and the deployment was rolled back.
pub const EXIT_GATE_FAILED: i32 = 5;
/// Exit code: the approver rejected the release in Slack; the pipeline
/// stopped at the approval.
pub const EXIT_REJECTED: i32 = 6;

/// What to rehearse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Everything healthy: the release reaches production.
    Healthy,
    /// The green task set answers like a broken release.
    BrokenGreen,
    /// The migration task exits 1.
    BrokenMigration,
    /// Green passes its smoke checks, but its 5xx rate rises during the
    /// metric gate's bake.
    BrokenMetrics,
    /// The approver rejects the release in Slack, with a reason.
    Rejected,
}

impl Scenario {
    /// Directory name under `target/rehearsal/`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::BrokenGreen => "break-green",
            Self::BrokenMigration => "break-migration",
            Self::BrokenMetrics => "break-metrics",
            Self::Rejected => "reject",
        }
    }
}

/// How the release ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Production serves the release.
    Released,
    /// The release stopped at `stage › action`.
    Stopped {
        /// Stage.
        stage: String,
        /// Action.
        action: String,
        /// Why.
        reason: String,
        /// Whether a blue/green deployment was rolled back.
        rolled_back: bool,
    },
}

/// The exit code for an outcome of `scenario` (see the module docs).
pub fn exit_code(scenario: Scenario, verdict: &Verdict) -> i32 {
    match (scenario, verdict) {
        (Scenario::Healthy, Verdict::Released) => EXIT_RELEASED,
        (
            Scenario::BrokenGreen,
            Verdict::Stopped {
                rolled_back: true, ..
            },
        ) => EXIT_ROLLED_BACK,
        (
            Scenario::BrokenMigration,
            Verdict::Stopped {
                action,
                rolled_back: false,
                ..
            },
        ) if action == "Migrate" => EXIT_MIGRATION_FAILED,
        (
            Scenario::BrokenMetrics,
            Verdict::Stopped {
                reason,
                rolled_back: true,
                ..
            },
        ) if reason.starts_with("AfterAllowTraffic failed: metric gate failed") => EXIT_GATE_FAILED,
        (
            Scenario::Rejected,
            Verdict::Stopped {
                stage,
                action,
                rolled_back: false,
                ..
            },
        ) if stage == approval::STAGE && action == approval::ACTION => EXIT_REJECTED,
        _ => EXIT_PROBLEM,
    }
}

/// A problem that stops the rehearsal (not a failed release: that is a
/// [`Verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    /// Seeding moto failed.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// A local server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A function did not start.
    #[error(
        "{function} did not start: {detail}; run `cargo build --release -p {function}` and see {log}"
    )]
    Init {
        /// Function.
        function: &'static str,
        /// Init error or exit.
        detail: String,
        /// Where its log was written.
        log: String,
    },
    /// An invocation ended without the expected answer.
    #[error("{function} invocation for {what} ended in {outcome}; its log is in {log}")]
    Invocation {
        /// Function.
        function: &'static str,
        /// What was invoked.
        what: String,
        /// The outcome.
        outcome: String,
        /// Where its log was written.
        log: String,
    },
    /// The exactly-once report promise was broken.
    #[error(
        "{what}: expected exactly one accepted report for {id}, the stand-in has {count}: {reports}"
    )]
    Reports {
        /// What was invoked.
        what: String,
        /// Job or hook execution id.
        id: String,
        /// How many reports.
        count: usize,
        /// The reports.
        reports: String,
    },
    /// The output directory could not be written.
    #[error("cannot write the rehearsal output to {path}: {detail}")]
    Output {
        /// Path.
        path: String,
        /// Error.
        detail: String,
    },
}

// ----------------------------------------------------------- the release

const PIPELINE: &str = "web-release";
const BUCKET: &str = "codepipeline-us-east-1-123456789012";
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const STAGING_CLUSTER: &str = "staging";
const PROD_CLUSTER: &str = "prod";
const SERVICE: &str = "web";
const BLUE_VERSION: &str = "1.4.2";
const GREEN_VERSION: &str = "1.5.0";
const TAG: &str = "3f9c2ab";
const OLD_TAG: &str = "8d41e07";
const BLUE_TASK_SET: &str = "ecs-svc/4821937102938471623";
const GREEN_TASK_SET: &str = "ecs-svc/7301958273645019283";
const SLACK_SECRET: &str = "tollgate/rehearsal/slack-webhook";
/// Where deploy-hook leaves a failed hook's checks for the notifier.
const HOOK_FAILURE_VAR: &str = "TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX";
const HOOK_FAILURE_PREFIX: &str = "/tollgate/rehearsal/hook-failures";
const SLACK_PATH: &str = "/services/T0REHEARSE/B0REHEARSE/rehearsalWebhookSecretPath";
const INVOKE_DEADLINE: Duration = Duration::from_secs(30);
const NOTIFY_DEADLINE: Duration = Duration::from_secs(15);

/// Artifact object keys, as CodePipeline names them (`<pipeline>/<name, 10 chars>/<id>`).
const ARTIFACTS: [(&str, &str); 3] = [
    ("SourceOutput", "web-release/SourceOutp/Q7mZk2a"),
    ("BuildOutput", "web-release/BuildOutpu/Xa9bQ2e"),
    ("VerifiedOutput", "web-release/VerifiedOu/Hk3pW9c"),
];

fn artifact_key(name: &str) -> &'static str {
    ARTIFACTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
        .unwrap_or("web-release/Unknown/0000000")
}

fn image(tag: &str) -> String {
    format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/web:{tag}")
}

/// The smoke checks, for staging (from the source artifact) and for green
/// (the deploy-hook's `TOLLGATE_CHECK_SPEC`): the new version must answer,
/// healthy, and serve orders.
fn check_spec() -> String {
    format!(
        r#"defaults:
  timeout: 2s
  retry: {{attempts: 3, interval: 200ms}}
checks:
  - name: health
    url: "${{TARGET}}/health"
    expect:
      status: 200
      json:
        - {{path: $.status, equals: ok}}
        - {{path: $.version, equals: "{GREEN_VERSION}"}}
  - name: orders api
    url: "${{TARGET}}/api/orders"
    expect:
      status: 200
      max_latency: 1s
"#
    )
}

/// What the notifier is told to send for this rehearsal (its defaults stay
/// quiet on starts and plain successes; a rehearsal wants to see them).
const NOTIFY_RULES: &str = "version: 1
notify:
  pipeline: [started, succeeded, failed]
  deployment: [succeeded, failed]
  stage: []
";

const TASKDEF: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"<IMAGE1_NAME>","essential":true,"portMappings":[{"containerPort":8080}]}]}"#;

fn appspec() -> String {
    "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n        LoadBalancerInfo:\n          ContainerName: web\n          ContainerPort: 8080\nHooks:\n  - AfterAllowTestTraffic: CodeDeployHook_tollgate\n  - BeforeAllowTraffic: CodeDeployHook_tollgate\n  - AfterAllowTraffic: CodeDeployHook_tollgate\n".to_owned()
}

/// Runs the rehearsal, printing to `out`; returns the verdict and the
/// printed lines. Function logs, Slack payloads and AWS calls are written
/// to `out_dir`.
pub async fn run(
    scenario: Scenario,
    out_dir: &Path,
    out: Box<dyn std::io::Write + Send>,
) -> Result<Verdict, RehearsalError> {
    run_with(scenario, SlackMode::Webhook, out_dir, out).await
}

/// [`run`] with the notifier posting to Slack as `slack` says (a webhook,
/// or a bot token and the Web API: [`SlackMode`]).
pub async fn run_with(
    scenario: Scenario,
    slack: SlackMode,
    out_dir: &Path,
    out: Box<dyn std::io::Write + Send>,
) -> Result<Verdict, RehearsalError> {
    let mut t = Timeline::new(out);
    let title = match scenario {
        Scenario::Healthy => "a healthy release",
        Scenario::BrokenGreen => "a release whose green task set is broken (--break green)",
        Scenario::BrokenMigration => "a release whose database migration fails (--break migration)",
        Scenario::BrokenMetrics => "a release whose 5xx rate rises in production (--break metrics)",
        Scenario::Rejected => "a release the approver rejects in Slack (--reject)",
    };
    t.text(&format!(
        "Tollgate rehearsal: {title}, on loopback (no AWS account, no Docker)"
    ));
    t.text("Times are seconds since the start. CodePipeline, CodeDeploy and EventBridge are played by the rehearsal; the functions are the real binaries.");
    std::fs::create_dir_all(out_dir).map_err(|e| RehearsalError::Output {
        path: out_dir.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut w = World::setup(scenario, slack, out_dir, t).await?;
    let result = w.release().await;
    let result = match result {
        Ok(verdict) => {
            w.show_channel();
            w.finish(&verdict).await;
            Ok(verdict)
        }
        Err(e) => Err(e),
    };
    w.save();
    result
}

/// `GetObject, DescribeServices ×2 (scripted), PutJobSuccessResult`: the
/// operations in order of first use, with counts; `(scripted)` marks
/// answers the stand-in gave from a script rather than moto.
fn describe_calls(calls: &[Call]) -> String {
    let mut order: Vec<(String, usize)> = Vec::new();
    for c in calls {
        let reports = [
            "PutJobSuccessResult",
            "PutJobFailureResult",
            "PutLifecycleEventHookExecutionStatus",
            "PutApprovalResult",
        ];
        let name = match c.operation.as_str() {
            "s3:GET" => "S3 GetObject".to_owned(),
            "s3:PUT" => "S3 PutObject".to_owned(),
            "s3:HEAD" => "S3 HeadObject".to_owned(),
            op if !c.forwarded && !reports.contains(&op) => format!("{op} (scripted)"),
            op => op.to_owned(),
        };
        match order.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => order.push((name, 1)),
        }
    }
    if order.is_empty() {
        return "none".to_owned();
    }
    order
        .into_iter()
        .map(|(n, c)| if c > 1 { format!("{n} ×{c}") } else { n })
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_scenario() {
        let stopped = |rolled_back| Verdict::Stopped {
            stage: "Production".into(),
            action: "BlueGreen".into(),
            reason: "AfterAllowTestTraffic failed".into(),
            rolled_back,
        };
        assert_eq!(exit_code(Scenario::Healthy, &Verdict::Released), 0);
        assert_eq!(exit_code(Scenario::Healthy, &stopped(true)), 1);
        assert_eq!(exit_code(Scenario::BrokenGreen, &stopped(true)), 3);
        assert_eq!(exit_code(Scenario::BrokenGreen, &stopped(false)), 1);
        assert_eq!(exit_code(Scenario::BrokenGreen, &Verdict::Released), 1);
        let migrate = Verdict::Stopped {
            stage: "Staging".into(),
            action: "Migrate".into(),
            reason: "task failed".into(),
            rolled_back: false,
        };
        assert_eq!(exit_code(Scenario::BrokenMigration, &migrate), 4);
        assert_eq!(exit_code(Scenario::BrokenMigration, &stopped(true)), 1);
        assert_eq!(exit_code(Scenario::BrokenMigration, &Verdict::Released), 1);
        assert_eq!(exit_code(Scenario::Healthy, &migrate), 1);
        let gate = Verdict::Stopped {
            stage: "Production".into(),
            action: "BlueGreen".into(),
            reason: "AfterAllowTraffic failed: metric gate failed: 5xx rate 4.2 % > 0.72 %".into(),
            rolled_back: true,
        };
        assert_eq!(exit_code(Scenario::BrokenMetrics, &gate), 5);
        assert_eq!(exit_code(Scenario::BrokenMetrics, &stopped(true)), 1);
        assert_eq!(exit_code(Scenario::BrokenMetrics, &Verdict::Released), 1);
        assert_eq!(exit_code(Scenario::BrokenGreen, &gate), 3);
        assert_eq!(exit_code(Scenario::Healthy, &gate), 1);
        let rejected = Verdict::Stopped {
            stage: "Approval".into(),
            action: "Release".into(),
            reason: "Rejected in Slack by ana".into(),
            rolled_back: false,
        };
        assert_eq!(exit_code(Scenario::Rejected, &rejected), 6);
        assert_eq!(exit_code(Scenario::Rejected, &Verdict::Released), 1);
        assert_eq!(exit_code(Scenario::Rejected, &migrate), 1);
        assert_eq!(exit_code(Scenario::Healthy, &rejected), 1);
    }

    #[test]
    fn calls_are_summarised_in_order_with_counts() {
        let call = |op: &str, forwarded: bool| Call {
            operation: op.into(),
            status: 200,
            error_code: None,
            request: Value::Null,
            forwarded,
            access_key_id: None,
            at: std::time::Instant::now(),
        };
        let calls = [
            call("s3:GET", true),
            call("DescribeServices", false),
            call("DescribeServices", false),
            call("PutJobSuccessResult", false),
        ];
        assert_eq!(
            describe_calls(&calls),
            "S3 GetObject, DescribeServices (scripted) ×2, PutJobSuccessResult"
        );
        assert_eq!(describe_calls(&[]), "none");
    }
}
