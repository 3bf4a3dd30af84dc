//! # tollgate-pipeline
//!
//! The logic of `pipeline-action`: CodePipeline Invoke actions, picked by
//! `UserParameters`.
//!
//! Invariant: names no AWS SDK crate (the adapters are the function's own
//! `aws` module) and no other function's logic; depends on
//! `tollgate-core`, `tollgate-report` and `tollgate-checks`.
//!
//!
//! | action | what it does |
//! |---|---|
//! | `smoke` | runs a check spec ([`tollgate_checks`]) against a target |
//! | `verify-artifact` | validates the deploy files and images in an input artifact |
//! | `ecs-deploy` | registers a task definition with the new images, updates the service, waits for the rollout |
//! | `ecs-wait` | waits for a service's current rollout |
//! | `gate` | a metric gate over a bake: one CloudWatch measurement per invocation |
//! | `run-task` | runs one ECS task (e.g. a migration) and waits for it to exit 0 |
//!
//! The waiting actions never sleep: each invocation polls `DescribeServices`
//! once and answers with a continuation token ([`ecs::WaitToken`]) until the
//! rollout completes, fails, or runs out of its wait limit.
//!
//! Everything outside the process goes through ports: [`artifact::ArtifactStore`]
//! (S3 with the job's artifact credentials), [`ecs::EcsApi`] and
//! [`actions::smoke::CheckRunner`]. The adapters live in the `pipeline-action` function; the unit tests
//! use in-memory fakes. [`run`] never fails: every problem becomes a
//! [`JobOutcome`] failure of the right [`FailureKind`], and the report core
//! turns the outcome into exactly one report.

pub mod actions;
pub mod app;
pub mod artifact;
pub mod deploy_files;
pub mod ecs;
pub mod image;
pub mod liveness;
pub mod params;
pub mod task;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_core::config::{ConfigError, Env};
use tollgate_report::events::codepipeline::{ArtifactCredentials, Job};
use tollgate_report::{
    Budget, Completion, FailureKind, JobFailure, JobOutcome, JobReporter, ReportConfig,
    ReportFailure, Step,
};

/// Environment variables read by [`Settings::from_env`].
pub mod vars {
    /// Largest artifact zip downloaded, in bytes.
    pub const ARTIFACT_MAX_BYTES: &str = "TOLLGATE_ARTIFACT_MAX_BYTES";
    /// Default wait limit for `ecs-deploy` / `ecs-wait`, in minutes.
    pub const ECS_WAIT_TIMEOUT_MINUTES: &str = "TOLLGATE_ECS_WAIT_TIMEOUT_MINUTES";
    /// Roles (ARN patterns, comma-separated) the function may pass to ECS:
    /// the stack's `EcsPassRoleArns`. `run-task` refuses a task definition
    /// document naming another role before registering it.
    pub const ECS_PASS_ROLE_ARNS: &str = "TOLLGATE_ECS_PASS_ROLE_ARNS";
}

/// Function-level settings, read once at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Largest artifact zip downloaded.
    pub max_artifact_bytes: u64,
    /// Wait limit for rollouts when `wait_timeout_minutes` is not given.
    pub default_wait_timeout: Duration,
    /// The function's memory: caps the artifact size ([`Settings::artifact_limit`]).
    pub memory: tollgate_core::memory::MemoryBudget,
    /// Roles the function may pass to ECS (`TOLLGATE_ECS_PASS_ROLE_ARNS`);
    /// `None` when the variable is not set (IAM alone decides).
    pub pass_roles: Option<Vec<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_artifact_bytes: 50 * 1024 * 1024,
            default_wait_timeout: Duration::from_secs(60 * 60),
            memory: tollgate_core::memory::MemoryBudget::of_mb(
                tollgate_core::memory::DEFAULT_MEMORY_MB,
            ),
            pass_roles: None,
        }
    }
}

impl Settings {
    /// Reads the settings; an invalid value names the variable and the form.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let max_artifact_bytes = whole_number(
            env,
            vars::ARTIFACT_MAX_BYTES,
            defaults.max_artifact_bytes,
            1024,
            2 * 1024 * 1024 * 1024,
            "bytes",
        )?;
        let minutes = whole_number(
            env,
            vars::ECS_WAIT_TIMEOUT_MINUTES,
            defaults.default_wait_timeout.as_secs() / 60,
            1,
            ecs::MAX_WAIT_MINUTES,
            "minutes",
        )?;
        Ok(Self {
            max_artifact_bytes,
            default_wait_timeout: Duration::from_secs(minutes * 60),
            memory: tollgate_core::memory::MemoryBudget::from_env(env),
            pass_roles: env.get(vars::ECS_PASS_ROLE_ARNS).map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        })
    }

    /// The largest artifact verify-artifact reads: `TOLLGATE_ARTIFACT_MAX_BYTES`,
    /// or less when the function's memory cannot also hold one file read
    /// out of it twice and that file parsed ([`ARTIFACT_OVERHEAD`]).
    pub fn artifact_limit(&self) -> u64 {
        let room = self.memory.work_bytes().saturating_sub(ARTIFACT_OVERHEAD);
        self.max_artifact_bytes.min(room)
    }
}

/// Memory verify-artifact needs besides the artifact itself: one file
/// (at most [`artifact::MAX_FILE_BYTES`]) as bytes and as text, parsed
/// within [`deploy_files::FILE_PARSE_LIMIT`].
pub const ARTIFACT_OVERHEAD: u64 = 2 * artifact::MAX_FILE_BYTES + deploy_files::FILE_PARSE_LIMIT;

fn whole_number(
    env: &impl Env,
    var: &str,
    default: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    let Some(raw) = env.get(var) else {
        return Ok(default);
    };
    let expected = format!("whole {unit} from {min} to {max}, e.g. {default}");
    let n: u64 = raw.trim().parse().map_err(|_| {
        ConfigError::invalid(
            var,
            &raw,
            format!("not a whole number of {unit}"),
            expected.clone(),
        )
    })?;
    if !(min..=max).contains(&n) {
        return Err(ConfigError::invalid(var, &raw, "out of range", expected));
    }
    Ok(n)
}

/// The clock, in milliseconds since the epoch (injectable for tests).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        }))
    }

    /// A clock backed by a function of whole epoch seconds (tests).
    pub fn from_fn(f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(move || f().saturating_mul(1000)))
    }

    /// Now, in epoch seconds.
    pub fn now(&self) -> u64 {
        (self.0)() / 1000
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// What the actions need from outside: the ports, settings and a clock.
/// Built once at init and shared by every invocation.
#[derive(Debug)]
pub struct Deps<A, E, C, J> {
    /// Artifact objects (S3 through the job's credentials).
    pub artifacts: A,
    /// The ECS API.
    pub ecs: E,
    /// Runs smoke check specs.
    pub checks: C,
    /// Whether a job is still live (CodePipeline), asked before side effects.
    pub jobs: J,
    /// CloudWatch reads for metric gates (`gate`).
    pub metrics: Box<dyn actions::gate::Metrics>,
    /// The last lines of a task's log stream (`run-task`).
    pub logs: Arc<dyn task::LogReader>,
    /// Settings from the environment.
    pub settings: Settings,
    /// The clock.
    pub clock: Clock,
}

/// Why an action failed: the failure type CodePipeline shows and a message
/// that says what broke and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// `failureDetails.type`.
    pub kind: FailureKind,
    /// `failureDetails.message`.
    pub message: String,
}

impl Failure {
    /// `ConfigurationError`.
    pub fn config(message: impl fmt::Display) -> Self {
        Self {
            kind: FailureKind::ConfigurationError,
            message: message.to_string(),
        }
    }

    /// `JobFailed`.
    pub fn job(message: impl fmt::Display) -> Self {
        Self {
            kind: FailureKind::JobFailed,
            message: message.to_string(),
        }
    }

    /// `PermissionError`.
    pub fn permission(message: impl fmt::Display) -> Self {
        Self {
            kind: FailureKind::PermissionError,
            message: message.to_string(),
        }
    }

    /// `SystemUnavailable`.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Self {
            kind: FailureKind::SystemUnavailable,
            message: message.to_string(),
        }
    }
}

impl From<params::ParamError> for Failure {
    fn from(e: params::ParamError) -> Self {
        Self::config(e)
    }
}

impl From<artifact::ArtifactError> for Failure {
    fn from(e: artifact::ArtifactError) -> Self {
        use artifact::ArtifactError as E;
        let kind = match &e {
            E::Denied { .. } | E::BadCredentials { .. } | E::Kms { .. } => {
                FailureKind::PermissionError
            }
            E::Unavailable { .. } => FailureKind::SystemUnavailable,
            E::NotFound { .. }
            | E::TooLarge { .. }
            | E::Other { .. }
            | E::NotAZip { .. }
            | E::BadEntry { .. }
            | E::Write(_) => FailureKind::JobFailed,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

impl From<ecs::EcsError> for Failure {
    fn from(e: ecs::EcsError) -> Self {
        use ecs::EcsError as E;
        let kind = match &e {
            E::Denied { .. } => FailureKind::PermissionError,
            E::NotFound { .. } => FailureKind::ConfigurationError,
            E::Unavailable { .. } => FailureKind::SystemUnavailable,
            E::Rejected { .. } => FailureKind::JobFailed,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

impl From<Failure> for JobOutcome {
    fn from(f: Failure) -> Self {
        JobOutcome::Failure(JobFailure {
            kind: f.kind,
            message: f.message,
            external_execution_id: None,
        })
    }
}

/// Runs the action a job's `UserParameters` pick. Never fails: every problem
/// becomes a failure outcome, reported once by the caller's report core.
///
/// `deadline` is when the work must be done (the budget's work deadline):
/// smoke checks stop by then and report what they found.
pub async fn run<A, E, C, J>(
    deps: Arc<Deps<A, E, C, J>>,
    job: Job,
    step: Step,
    deadline: tokio::time::Instant,
) -> JobOutcome
where
    A: artifact::ArtifactStore,
    E: ecs::EcsApi,
    C: actions::smoke::CheckRunner,
    J: liveness::JobLiveness,
{
    step.enter("reading UserParameters");
    let raw = job
        .data
        .action_configuration
        .configuration
        .user_parameters
        .as_deref();
    let params = match params::parse(raw) {
        Ok(p) => p,
        Err(e) => return Failure::from(e).into(),
    };
    tracing::info!(
        job_id = %job.id,
        action = params.action(),
        continuation = job.data.continuation_token.is_some(),
        "action selected"
    );
    params
        .run(&deps, &job, &step, deadline)
        .await
        .unwrap_or_else(JobOutcome::from)
}

/// The job's artifact credentials, or a failure saying why there are none.
pub(crate) fn job_credentials(job: &Job) -> Result<&ArtifactCredentials, Failure> {
    job.data.artifact_credentials.as_ref().ok_or_else(|| {
        Failure::job(
            "the job carries no artifactCredentials, so its artifacts cannot be read; run this \
             function as a CodePipeline Invoke action with input artifacts",
        )
    })
}

/// Downloads an input artifact (by name, or the only one) with the job's
/// credentials and opens the zip.
pub(crate) async fn open_input<A: artifact::ArtifactStore, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    name: Option<&str>,
    step: &Step,
) -> Result<artifact::Archive, Failure> {
    let (art, location) = artifact::select(&job.data.input_artifacts, name, "artifact", "input")
        .map_err(Failure::config)?;
    let creds = job_credentials(job)?;
    step.enter(format!(
        "downloading artifact {} from s3://{}/{}",
        art.name, location.bucket_name, location.object_key
    ));
    let bytes = deps
        .artifacts
        .get(&art.name, location, creds, deps.settings.artifact_limit())
        .await?;
    Ok(artifact::Archive::open(&art.name, location, bytes)?)
}

/// The function's configuration: the report core's and the actions'.
pub fn config(env: &impl Env) -> Result<(ReportConfig, Settings), ConfigError> {
    Ok((
        tollgate_report::config::report_config(env)?,
        Settings::from_env(env)?,
    ))
}

/// One invocation: parse the job, run the action under the report core's
/// guard (deadline, panics) and report exactly once.
pub async fn handle<R, A, E, C, J>(
    deps: &Arc<Deps<A, E, C, J>>,
    reporter: &R,
    raw: serde_json::Value,
    budget: Budget,
    cfg: &ReportConfig,
) -> Result<Completion, ReportFailure>
where
    R: JobReporter,
    A: artifact::ArtifactStore + 'static,
    E: ecs::EcsApi + 'static,
    C: actions::smoke::CheckRunner + 'static,
    J: liveness::JobLiveness + 'static,
{
    let deps = deps.clone();
    let deadline = budget.work_deadline;
    tollgate_report::pipeline::run_job(reporter, raw, budget, cfg, move |job, step| {
        run(deps, job, step, deadline)
    })
    .await
}

/// One invocation while the function is misconfigured (its configuration
/// failed at init): the job is reported `ConfigurationError` with the init
/// failure's reason at once, and nothing else runs.
pub async fn handle_misconfigured<R: JobReporter>(
    failure: &tollgate_report::lambda::InitFailure,
    reporter: &R,
    raw: serde_json::Value,
    budget: Budget,
    cfg: &ReportConfig,
) -> Result<Completion, ReportFailure> {
    let reason = failure.reason();
    tollgate_report::pipeline::run_job(reporter, raw, budget, cfg, move |job, _step| {
        failure.log_refused(&job.id);
        async move { JobOutcome::failed(FailureKind::ConfigurationError, reason) }
    })
    .await
}

#[cfg(test)]
pub(crate) mod fakes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_and_errors() {
        let s = Settings::from_env(&[("X", "1")]).expect("defaults");
        assert_eq!(s, Settings::default());
        // 128 MB holds the default 50 MiB artifact; a 2 GiB cap is cut to
        // what the memory holds, and grows with it.
        assert_eq!(s.artifact_limit(), s.max_artifact_bytes);
        let big = Settings::from_env(&[(vars::ARTIFACT_MAX_BYTES, "2147483648")]).expect("valid");
        let at_128 = big.artifact_limit();
        // 128 MiB less 32 MiB for the process and 26 MiB for one file.
        assert_eq!(at_128, 70 * 1024 * 1024);
        let at_1024 = Settings::from_env(&[
            (vars::ARTIFACT_MAX_BYTES, "2147483648"),
            (tollgate_core::memory::MEMORY_SIZE_VAR, "1024"),
        ])
        .expect("valid")
        .artifact_limit();
        assert!(at_1024 > 900 * 1024 * 1024, "{at_1024}");
        let s = Settings::from_env(&[(vars::ECS_WAIT_TIMEOUT_MINUTES, "15")]).expect("valid");
        assert_eq!(s.default_wait_timeout, Duration::from_secs(900));
        let e = Settings::from_env(&[(vars::ARTIFACT_MAX_BYTES, "50MB")]).expect_err("invalid");
        assert!(
            e.to_string()
                .starts_with("TOLLGATE_ARTIFACT_MAX_BYTES=\"50MB\" is invalid"),
            "{e}"
        );
        let e = Settings::from_env(&[(vars::ECS_WAIT_TIMEOUT_MINUTES, "5000")]).expect_err("range");
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    async fn through_the_report_core(user_parameters: &str) -> Vec<(String, JobOutcome)> {
        let (deps, _) = fakes::deps(
            fakes::FakeArtifacts::with_zip(&[(
                "imagedefinitions.json",
                r#"[{"name":"web","imageUri":"web:3f9c2ab"}]"#,
            )]),
            fakes::FakeEcs::with_web_service(),
        );
        let reporter = fakes::FakeReporter::default();
        let cfg = tollgate_report::ReportConfig::default();
        let budget = tollgate_report::Budget::within(
            tokio::time::Instant::now() + Duration::from_secs(30),
            &cfg,
        );
        let job = fakes::job(user_parameters, None);
        let raw = serde_json::json!({"CodePipeline.job": {
        "id": job.id, "accountId": "111111111111",
        "data": {
            "actionConfiguration": {"configuration": {"FunctionName": "f", "UserParameters": user_parameters}},
            "inputArtifacts": [{"name": "BuildOutput", "location": {"type": "S3",
                "s3Location": {"bucketName": fakes::BUCKET, "objectKey": fakes::IN_KEY}}}],
            "outputArtifacts": [],
            "artifactCredentials": {"accessKeyId": fakes::ACCESS_KEY, "secretAccessKey": fakes::SECRET_KEY, "sessionToken": "t"}
        }}});
        handle(&deps, &reporter, raw, budget, &cfg)
            .await
            .expect("delivered");
        reporter.sent.into_inner().expect("lock")
    }

    fn sample(name: &str) -> Job {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/pipeline-action/");
        let text = std::fs::read_to_string(format!("{dir}{name}.json")).expect("sample exists");
        serde_json::from_str::<tollgate_report::events::codepipeline::CodePipelineEvent>(&text)
            .expect("sample is a job")
            .job
    }

    #[test]
    fn sample_events_carry_the_documented_parameters() {
        for (name, action) in [
            ("smoke", "smoke"),
            ("smoke-inline", "smoke"),
            ("verify-artifact", "verify-artifact"),
            ("ecs-deploy", "ecs-deploy"),
            ("ecs-deploy-continuation", "ecs-deploy"),
            ("ecs-wait", "ecs-wait"),
            ("run-task", "run-task"),
            ("run-task-continuation", "run-task"),
        ] {
            let job = sample(name);
            let raw = job.data.action_configuration.configuration.user_parameters;
            let p = params::parse(raw.as_deref()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.action(), action, "{name}");
            assert!(
                raw.expect("present").chars().count() <= 1000,
                "{name}: UserParameters is capped at 1000 chars"
            );
        }
        let token = sample("ecs-deploy-continuation")
            .data
            .continuation_token
            .expect("token");
        assert_eq!(ecs::WaitToken::decode(&token).expect("ours").service, "web");
        let token = sample("run-task-continuation")
            .data
            .continuation_token
            .expect("token");
        let t = actions::run_task::TaskToken::decode(&token).expect("ours");
        assert_eq!(t.job, sample("run-task").id);
        for (name, field) in [
            ("bad-params-not-json", "UserParameters"),
            ("bad-params-unknown-action", "action"),
            ("bad-params-missing-field", "cluster"),
            ("bad-params-unknown-field", "timeout"),
        ] {
            let raw = sample(name)
                .data
                .action_configuration
                .configuration
                .user_parameters;
            let e = params::parse(raw.as_deref()).expect_err(name);
            assert_eq!(e.field, field, "{name}: {e}");
        }
    }

    #[tokio::test]
    async fn bad_parameters_end_in_one_configuration_error() {
        let sent = through_the_report_core(r#"{"action":"ecs-deploy","service":"web"}"#).await;
        assert_eq!(sent.len(), 1);
        let JobOutcome::Failure(f) = &sent[0].1 else {
            panic!("failure expected")
        };
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(
            f.message.contains("field \"cluster\" is missing"),
            "{}",
            f.message
        );
    }

    #[tokio::test]
    async fn a_deploy_ends_in_one_in_progress_report() {
        let sent = through_the_report_core(actions::ecs_deploy::EXAMPLE).await;
        assert_eq!(sent.len(), 1);
        let JobOutcome::Success(s) = &sent[0].1 else {
            panic!("success expected")
        };
        assert!(s.continuation_token.is_some());
        assert_eq!(sent[0].0, "job-1");
    }
}
