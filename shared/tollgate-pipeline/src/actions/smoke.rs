//! `smoke`: runs a check spec ([`tollgate_checks`]) against a target and
//! gates the pipeline on it.
//!
//! The spec is inline in `UserParameters` (`"spec"`, an object or YAML/JSON
//! text) or a file inside an input artifact (`"spec_path"`), so it can live
//! in the application's repository next to the code it checks. Template
//! variables come from `"vars"` (e.g. `TARGET`).
//!
//! Success: the one-line summary, and output variables `passed`, `failed`,
//! `total` and `p95_ms` for downstream actions. Failure (`JobFailed`): every
//! failed expectation, expected vs actual. A spec error is a
//! `ConfigurationError` naming the spec field.
//!
//! Owns the action whole: [`SmokeParams`] and their parsing ([`parse`]),
//! the [`CheckRunner`] port and the execution ([`run`]).

use crate::artifact::ArtifactStore;
use crate::params::{Fields, ParamError, kind};
use crate::{Deps, Failure, open_input};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use tokio::time::Instant;
use tollgate_checks::{Engine, RunReport, Spec, SpecError, Vars};
use tollgate_report::events::codepipeline::Job;
use tollgate_report::limits::{FAILURE_MESSAGE_MAX, SUMMARY_MAX};
use tollgate_report::{JobOutcome, JobSuccess, Step};

/// The action's name, as written in `"action"`.
pub const NAME: &str = "smoke";

/// Valid `UserParameters`, shown in every error about this action.
pub const EXAMPLE: &str = r#"{"action":"smoke","spec_path":"checks/staging.yaml","vars":{"TARGET":"https://staging.example.com"}}"#;

/// Where a smoke spec comes from. `Debug` never shows an inline spec: it may
/// hold tokens (header values) that must stay out of logs.
#[derive(Clone, PartialEq)]
pub enum SpecSource {
    /// The spec itself, inline (`"spec": {...}` or a YAML/JSON string).
    Inline(Value),
    /// A file inside an input artifact (`"spec_path"`).
    Artifact {
        /// Input artifact name; `None` when the action has exactly one.
        artifact: Option<String>,
        /// Path of the spec file inside the artifact zip.
        path: String,
    },
}

/// `smoke` parameters. `Debug` shows the variables' names, not their values.
#[derive(Clone, PartialEq)]
pub struct SmokeParams {
    /// The check spec.
    pub spec: SpecSource,
    /// Variables for the spec's templates, e.g. `TARGET`.
    pub vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for SpecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(spec) => write!(f, "Inline(<{} bytes>)", spec.to_string().len()),
            Self::Artifact { artifact, path } => f
                .debug_struct("Artifact")
                .field("artifact", artifact)
                .field("path", path)
                .finish(),
        }
    }
}

impl std::fmt::Debug for SmokeParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmokeParams")
            .field("spec", &self.spec)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses `smoke`'s fields.
pub fn parse(map: &Map<String, Value>) -> Result<SmokeParams, ParamError> {
    let ex = EXAMPLE;
    let mut f = Fields::new("", map, ex);
    f.known(&["action", "spec", "spec_path", "artifact", "vars"])?;
    let artifact = f.opt_string("artifact", "the input artifact holding the spec")?;
    let spec = match (
        map.get("spec"),
        f.opt_string("spec_path", "a path inside the input artifact")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ParamError::new(
                "spec",
                "and \"spec_path\" are both set: give the spec inline (\"spec\") or as a file in an input artifact (\"spec_path\"), not both",
                ex,
            ));
        }
        (None, None) => {
            return Err(ParamError::new(
                "spec_path",
                "is missing: give \"spec_path\" (a YAML or JSON spec file inside an input artifact) or an inline \"spec\" object",
                ex,
            ));
        }
        (Some(Value::Object(o)), None) => SpecSource::Inline(Value::Object(o.clone())),
        (Some(Value::String(s)), None) if !s.trim().is_empty() => {
            SpecSource::Inline(Value::String(s.clone()))
        }
        (Some(other), None) => {
            return Err(ParamError::new(
                "spec",
                format!(
                    "must be a spec object (or a YAML/JSON string), got {}",
                    kind(other)
                ),
                ex,
            ));
        }
        (None, Some(path)) => SpecSource::Artifact {
            artifact: artifact.clone(),
            path,
        },
    };
    if artifact.is_some() && matches!(spec, SpecSource::Inline(_)) {
        return Err(ParamError::new(
            "artifact",
            "is only used with \"spec_path\"; remove it or move the spec into the artifact",
            ex,
        ));
    }
    let vars = f.opt_string_map("vars", "template variables such as TARGET")?;
    Ok(SmokeParams {
        spec,
        vars: vars.unwrap_or_default(),
    })
}

/// Time kept between the checks' deadline and the work deadline.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Port: runs a spec until a deadline (the check engine; fakes in tests).
pub trait CheckRunner: Send + Sync {
    /// Runs every check of `spec` and returns by `deadline` with what is known.
    fn run_checks(
        &self,
        spec: &Spec,
        vars: &Vars,
        deadline: Instant,
    ) -> impl Future<Output = Result<RunReport, SpecError>> + Send;
}

impl CheckRunner for Engine {
    fn run_checks(
        &self,
        spec: &Spec,
        vars: &Vars,
        deadline: Instant,
    ) -> impl Future<Output = Result<RunReport, SpecError>> + Send {
        self.run(spec, vars, deadline)
    }
}

/// Loads the spec from where the parameters say.
async fn load_spec<A: ArtifactStore, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &SmokeParams,
    step: &Step,
) -> Result<(Spec, String), Failure> {
    match &params.spec {
        SpecSource::Inline(value) => {
            step.enter("parsing the inline smoke spec");
            let parsed = match value {
                Value::String(text) => Spec::from_yaml_or_json(text),
                other => Spec::from_value(other),
            };
            let origin = "the inline spec in UserParameters (field \"spec\")".to_owned();
            parsed
                .map(|s| (s, origin.clone()))
                .map_err(|e| spec_failure(&origin, &e))
        }
        SpecSource::Artifact { artifact, path } => {
            let mut archive = open_input(deps, job, artifact.as_deref(), step).await?;
            let Some(text) = archive.read_text(path)? else {
                return Err(Failure::config(format!(
                    "invalid UserParameters: field \"spec_path\" names {path}, which is not in artifact {} \
                     (it contains: {}); fix the path or add the file to the artifact",
                    archive.name(),
                    archive.listing()
                )));
            };
            step.enter(format!("parsing smoke spec {path}"));
            let origin = format!("spec file {path} in artifact {}", archive.name());
            Spec::from_yaml_or_json(&text)
                .map(|s| (s, origin.clone()))
                .map_err(|e| spec_failure(&origin, &e))
        }
    }
}

fn spec_failure(origin: &str, e: &SpecError) -> Failure {
    Failure::config(format!("the smoke spec ({origin}) is invalid: {e}"))
}

/// Runs `smoke`. The checks stop by `deadline` (the invocation's work
/// deadline) and report what they found by then.
pub async fn run<A, E, C, J>(
    deps: &Deps<A, E, C, J>,
    job: &Job,
    params: &SmokeParams,
    step: &Step,
    deadline: Instant,
) -> Result<JobOutcome, Failure>
where
    A: ArtifactStore,
    C: CheckRunner,
{
    let (spec, origin) = load_spec(deps, job, params, step).await?;
    if !spec.secret_variables().is_empty() {
        let names: Vec<&str> = spec.secret_variables().names().collect();
        return Err(Failure::config(format!(
            "the smoke spec ({origin}) declares variables: ({}), Secrets Manager / SSM references, \
             which the pipeline's smoke action does not read; remove them and pass only non-secret \
             values in \"vars\", or gate the release with deploy-hook, which resolves them",
            names.join(", ")
        )));
    }
    let mut vars = Vars::new();
    for (k, v) in &params.vars {
        vars.insert(k.clone(), v.clone());
    }
    spec.check_vars(&vars)
        .map_err(|e| spec_failure(&origin, &e))?;
    step.enter(format!("running {} smoke check(s)", spec.len()));
    // Stop the checks a little before the work deadline, so their partial
    // results (unfinished checks marked) are reported rather than a bare timeout.
    let now = Instant::now();
    let checks_deadline = deadline
        .checked_sub(DEADLINE_MARGIN)
        .unwrap_or(now)
        .max(now);
    let report = deps
        .checks
        .run_checks(&spec, &vars, checks_deadline)
        .await
        .map_err(|e| spec_failure(&origin, &e))?;
    tracing::info!(
        outcome = ?report.outcome,
        passed = report.passed,
        failed = report.failed,
        unfinished = report.unfinished,
        p95_ms = report.p95_ms,
        "smoke checks finished"
    );
    if !report.is_success() {
        return Err(Failure::job(report.failure_details(FAILURE_MESSAGE_MAX)));
    }
    let mut vars = BTreeMap::new();
    vars.insert("passed".to_owned(), report.passed.to_string());
    vars.insert("failed".to_owned(), report.failed.to_string());
    vars.insert("total".to_owned(), report.total.to_string());
    if let Some(p95) = report.p95_ms {
        vars.insert("p95_ms".to_owned(), format!("{}", p95.round()));
    }
    Ok(JobOutcome::Success(JobSuccess {
        summary: Some(report.summary_line(SUMMARY_MAX)),
        output_variables: vars,
        ..JobSuccess::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::testing::assert_rejected;
    use crate::fakes::{self, FakeArtifacts, FakeEcs, TestDeps};
    use crate::params::Params;
    use std::sync::Arc;
    use std::time::Duration;
    use tollgate_checks::{CheckResult, CheckStatus, ExpectationResult, Outcome};
    use tollgate_report::FailureKind;

    const SPEC_YAML: &str = "checks:\n  - name: health\n    url: \"${TARGET}/health\"\n    expect:\n      status: 200\n  - name: version\n    url: \"${TARGET}/version\"\n";

    fn check(name: &str, status: CheckStatus, failure: Option<(&str, &str, &str)>) -> CheckResult {
        CheckResult {
            name: name.into(),
            status,
            reason: None,
            method: "GET".into(),
            url: format!("https://staging.example.com/{name}"),
            attempts: 1,
            requests: 1,
            latencies_ms: vec![42.0],
            http_status: Some(200),
            samples: None,
            expectations: failure
                .map(|(what, expected, actual)| {
                    vec![ExpectationResult {
                        what: what.into(),
                        expected: expected.into(),
                        actual: actual.into(),
                        passed: false,
                    }]
                })
                .unwrap_or_default(),
            elapsed_ms: 42.0,
        }
    }

    fn report(checks: Vec<CheckResult>) -> RunReport {
        let passed = checks
            .iter()
            .filter(|c| c.status == CheckStatus::Passed)
            .count();
        let failed = checks.len() - passed;
        RunReport {
            outcome: if failed == 0 {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            total: checks.len(),
            passed,
            failed,
            unfinished: 0,
            deadline_reached: false,
            stopped_by: None,
            elapsed_ms: 120.0,
            requests: checks.len() as u32,
            p50_ms: Some(40.0),
            p95_ms: Some(87.4),
            checks,
        }
    }

    async fn smoke(deps: &Arc<TestDeps>, raw: &str) -> Result<JobOutcome, Failure> {
        let Params::Smoke(p) = crate::params::parse(Some(raw)).expect("params") else {
            panic!("smoke params")
        };
        let job = fakes::job(raw, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        run(deps, &job, &p, &Step::default(), deadline).await
    }

    fn passing() -> RunReport {
        report(vec![
            check("health", CheckStatus::Passed, None),
            check("version", CheckStatus::Passed, None),
        ])
    }

    #[tokio::test]
    async fn an_inline_spec_passes_with_output_variables() {
        let (deps, _) = fakes::deps(FakeArtifacts::default(), FakeEcs::default());
        *deps.checks.report.lock().expect("lock") = Some(Ok(passing()));
        let raw = r#"{"action":"smoke","spec":{"checks":[{"name":"health","url":"${TARGET}/health"}]},"vars":{"TARGET":"https://staging.example.com"}}"#;
        let Ok(JobOutcome::Success(s)) = smoke(&deps, raw).await else {
            panic!("success expected")
        };
        assert_eq!(
            s.summary.as_deref(),
            Some("2/2 passed in 120 ms (p95 87 ms)")
        );
        assert_eq!(s.output_variables["passed"], "2");
        assert_eq!(s.output_variables["failed"], "0");
        assert_eq!(s.output_variables["total"], "2");
        assert_eq!(s.output_variables["p95_ms"], "87");
        let runs = deps.checks.runs.lock().expect("lock");
        assert_eq!(runs[0].0, ["health"]);
        assert_eq!(runs[0].1.as_deref(), Some("https://staging.example.com"));
    }

    #[tokio::test]
    async fn secret_variables_are_refused_by_name_before_any_request() {
        let (deps, _) = fakes::deps(FakeArtifacts::default(), FakeEcs::default());
        *deps.checks.report.lock().expect("lock") = Some(Ok(passing()));
        let raw = r#"{"action":"smoke","spec":{"checks":[{"name":"h","url":"${TARGET}/h"}],"variables":{"TOKEN":"secretsmanager:tollgate/web#token"}},"vars":{"TARGET":"https://staging.example.com"}}"#;
        let Err(failure) = smoke(&deps, raw).await else {
            panic!("refused")
        };
        assert!(
            failure.message.contains("declares variables: (TOKEN)"),
            "{}",
            failure.message
        );
        assert!(deps.checks.runs.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_spec_file_in_the_artifact_is_used() {
        let (deps, _) = fakes::deps(
            FakeArtifacts::with_zip(&[("checks/staging.yaml", SPEC_YAML)]),
            FakeEcs::default(),
        );
        *deps.checks.report.lock().expect("lock") = Some(Ok(passing()));
        let out = smoke(&deps, EXAMPLE).await;
        assert!(matches!(out, Ok(JobOutcome::Success(_))), "{out:?}");
        assert_eq!(
            deps.checks.runs.lock().expect("lock")[0].0,
            ["health", "version"]
        );
        assert_eq!(
            *deps.artifacts.get_keys.lock().expect("lock"),
            [fakes::ACCESS_KEY]
        );
    }

    #[tokio::test]
    async fn failed_expectations_fail_the_job() {
        let (deps, _) = fakes::deps(FakeArtifacts::default(), FakeEcs::default());
        *deps.checks.report.lock().expect("lock") = Some(Ok(report(vec![
            check("health", CheckStatus::Passed, None),
            check(
                "checkout",
                CheckStatus::Failed,
                Some(("status", "200-299", "503")),
            ),
        ])));
        let raw = r#"{"action":"smoke","spec":"checks:\n  - name: health\n    url: https://staging.example.com/health\n"}"#;
        let Err(f) = smoke(&deps, raw).await else {
            panic!("failure expected")
        };
        assert_eq!(f.kind, FailureKind::JobFailed);
        assert!(
            f.message
                .contains("FAIL checkout: status 503 (expected 200-299)"),
            "{}",
            f.message
        );
    }

    #[tokio::test]
    async fn spec_errors_name_the_field() {
        let (deps, _) = fakes::deps(
            FakeArtifacts::with_zip(&[(
                "checks/staging.yaml",
                "checks:\n  - name: x\n    url: \"${TARGET}/\"\n    expect: {status: 2xx}\n",
            )]),
            FakeEcs::default(),
        );
        let Err(f) = smoke(&deps, EXAMPLE).await else {
            panic!("failure expected")
        };
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(f.message.starts_with("the smoke spec (spec file checks/staging.yaml in artifact BuildOutput) is invalid: checks[0].expect.status"), "{}", f.message);
        assert!(deps.checks.runs.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn unknown_variables_are_a_configuration_error() {
        let (deps, _) = fakes::deps(FakeArtifacts::default(), FakeEcs::default());
        let raw = r#"{"action":"smoke","spec":{"checks":[{"name":"h","url":"${TARGET}/health"}]}}"#;
        let Err(f) = smoke(&deps, raw).await else {
            panic!("failure expected")
        };
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(
            f.message.contains("unknown variable ${TARGET}"),
            "{}",
            f.message
        );
    }

    #[tokio::test]
    async fn a_missing_spec_file_lists_the_artifact() {
        let (deps, _) = fakes::deps(
            FakeArtifacts::with_zip(&[("smoke.yaml", SPEC_YAML)]),
            FakeEcs::default(),
        );
        let Err(f) = smoke(&deps, EXAMPLE).await else {
            panic!("failure expected")
        };
        assert_eq!(f.kind, FailureKind::ConfigurationError);
        assert!(
            f.message
                .contains("field \"spec_path\" names checks/staging.yaml"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("it contains: smoke.yaml"),
            "{}",
            f.message
        );
    }

    #[test]
    fn the_example_parses() {
        let Params::Smoke(s) = crate::params::parse(Some(EXAMPLE)).expect("valid") else {
            panic!("smoke")
        };
        assert_eq!(
            s.spec,
            SpecSource::Artifact {
                artifact: None,
                path: "checks/staging.yaml".into()
            }
        );
        assert_eq!(s.vars["TARGET"], "https://staging.example.com");
    }

    #[test]
    fn inline_smoke_spec_is_kept() {
        let Params::Smoke(s) = crate::params::parse(Some(
            r#"{"action":"smoke","spec":{"checks":[]},"vars":{"N":3}}"#,
        ))
        .expect("ok") else {
            panic!("smoke")
        };
        assert!(matches!(s.spec, SpecSource::Inline(Value::Object(_))));
        assert_eq!(s.vars["N"], "3");
    }

    #[test]
    fn malformed_parameters_name_the_field() {
        assert_rejected(&[
            (r#"{"action":"smoke"}"#, "spec_path", "is missing"),
            (
                r#"{"action":"smoke","spec":{},"spec_path":"a.yaml"}"#,
                "spec",
                "both set",
            ),
            (
                r#"{"action":"smoke","spec":[1]}"#,
                "spec",
                "must be a spec object",
            ),
            (
                r#"{"action":"smoke","spec_path":"a.yaml","vars":{"TARGET":true}}"#,
                "vars.TARGET",
                "must be a string",
            ),
            (
                r#"{"action":"smoke","spec_path":"a.yaml","vars":["TARGET"]}"#,
                "vars",
                "object of string values",
            ),
        ]);
    }

    #[test]
    fn values_are_not_echoed_for_type_errors() {
        let e = crate::params::testing::err(
            r#"{"action":"smoke","spec_path":"a","vars":{"TOKEN":{"secret":"hunter2"}}}"#,
        );
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
