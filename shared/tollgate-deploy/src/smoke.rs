//! The check spec: loaded once at init (inline or from SSM), validated
//! against the variables deploy-hook supplies, then run per invocation
//! through the [`SmokeRunner`] port (the real one wraps
//! [`tollgate_checks::Engine`]).

use super::config::SpecSource;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;
use tollgate_checks::{
    Engine, EngineConfig, EngineError, RunOptions, RunReport, Spec, SpecError, Vars,
};
use tollgate_core::ports::{ParameterError, ParameterStore};

/// Variables every CodeDeploy hook invocation supplies (when known).
pub const CODEDEPLOY_VARIABLES: &[&str] = &[
    "TARGET",
    "DEPLOYMENT_ID",
    "APPLICATION_NAME",
    "DEPLOYMENT_GROUP_NAME",
    "HOOK",
    "CLUSTER",
    "SERVICE",
    "TASK_SET_ID",
    "TARGET_GROUP",
];

/// Variables every ECS native hook invocation supplies (when known).
pub const ECS_VARIABLES: &[&str] = &[
    "TARGET",
    "EXECUTION_ID",
    "LIFECYCLE_STAGE",
    "SERVICE_ARN",
    "TARGET_SERVICE_REVISION_ARN",
    "SERVICE_DEPLOYMENT_ARN",
    "CLUSTER",
    "SERVICE",
    "SOAK_ROUND",
];

/// Why the function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A variable is missing or invalid.
    #[error(transparent)]
    Config(#[from] tollgate_core::config::ConfigError),
    /// The spec's SSM parameter could not be read.
    #[error("cannot load the check spec: {0}")]
    Parameter(#[from] ParameterError),
    /// The spec does not parse or validate.
    #[error("the check spec from {source_name} is invalid: {error}")]
    Spec {
        /// Where it came from.
        source_name: String,
        /// The first problem, starting with the field path.
        error: SpecError,
    },
    /// The spec uses a variable deploy-hook never supplies.
    #[error(
        "the check spec from {source_name} uses {unknown}, which deploy-hook does not supply; \
         the variables it supplies are {known}"
    )]
    UnknownVariables {
        /// Where it came from.
        source_name: String,
        /// `${A}, ${B}`.
        unknown: String,
        /// The supplied names.
        known: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl InitError {
    /// Short error type for `/runtime/init/error`.
    /// Whether trying again may succeed (a throttled or unreachable SSM),
    /// as opposed to a configuration that is wrong until someone fixes it.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Parameter(ParameterError::Other { .. }))
    }

    /// Short error type for the runtime.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidConfiguration",
            Self::Parameter(_) => "SpecUnavailable",
            Self::Spec { .. } | Self::UnknownVariables { .. } => "InvalidCheckSpec",
            Self::Engine(_) => "EngineSetup",
        }
    }
}

/// Loads, parses and validates the spec once. An SSM parameter is read
/// here and never again (the spec is cached for the life of the process).
pub async fn load_spec<P: ParameterStore>(
    source: &SpecSource,
    params: &P,
) -> Result<Spec, InitError> {
    let source_name = source.describe();
    let spec = match source {
        SpecSource::Inline(text) => Spec::from_yaml_or_json(text),
        SpecSource::Parameter(name) => {
            let value = params.get_parameter(name).await?;
            Spec::from_yaml_or_json(value.expose())
        }
    }
    .map_err(|error| InitError::Spec {
        source_name: source_name.clone(),
        error,
    })?;
    let known: BTreeSet<&str> = CODEDEPLOY_VARIABLES
        .iter()
        .chain(ECS_VARIABLES)
        .copied()
        .collect();
    let unknown: Vec<String> = spec
        .variables()
        .into_iter()
        .filter(|v| !known.contains(v.as_str()))
        .map(|v| format!("${{{v}}}"))
        .collect();
    if !unknown.is_empty() {
        return Err(InitError::UnknownVariables {
            source_name,
            unknown: unknown.join(", "),
            known: known
                .iter()
                .map(|v| format!("${{{v}}}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(spec)
}

/// Port: runs the spec once.
pub trait SmokeRunner: Send + Sync + 'static {
    /// Runs every check with `vars` and returns by `deadline`.
    fn run(
        &self,
        vars: Vars,
        deadline: Instant,
        options: RunOptions,
    ) -> impl Future<Output = Result<RunReport, SpecError>> + Send;
}

/// The real runner: the parsed spec and the engine, both built at init.
#[derive(Debug, Clone)]
pub struct SpecRunner {
    engine: Engine,
    spec: Arc<Spec>,
}

impl SpecRunner {
    /// Builds the engine (one HTTP client for the life of the process) and
    /// checks that the spec fits the function's memory (`source_name`
    /// names the spec in the error).
    pub fn new(spec: Spec, source_name: &str) -> Result<Self, InitError> {
        let engine = Engine::new(EngineConfig::default())?;
        engine
            .memory_share(&spec)
            .map_err(|error| InitError::Spec {
                source_name: source_name.to_owned(),
                error,
            })?;
        Ok(Self {
            engine,
            spec: Arc::new(spec),
        })
    }
}

impl SmokeRunner for SpecRunner {
    async fn run(
        &self,
        vars: Vars,
        deadline: Instant,
        options: RunOptions,
    ) -> Result<RunReport, SpecError> {
        self.engine
            .run_with(&self.spec, &vars, deadline, &options)
            .await
    }
}

#[cfg(test)]
pub(crate) mod fakes {
    //! A scripted runner that records the variables it was given.

    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tollgate_checks::{CheckResult, CheckStatus, ExpectationResult, Outcome};

    /// What the fake does when run.
    #[derive(Debug, Clone)]
    pub enum Script {
        /// All `n` checks pass.
        Pass(usize),
        /// A run whose one check got this status instead of 200.
        Fail(&'static str),
        /// The spec needs a variable this invocation lacks.
        BadVariable,
        /// Sleep this long first, then pass.
        Slow(Duration),
        /// Panic.
        Panic,
    }

    /// One recorded run: the variables given and the options.
    pub type Run = (Vec<(String, String)>, RunOptions);

    #[derive(Debug)]
    pub struct FakeRunner {
        pub script: Script,
        pub runs: Mutex<Vec<Run>>,
    }

    impl FakeRunner {
        pub fn new(script: Script) -> Self {
            Self {
                script,
                runs: Mutex::new(Vec::new()),
            }
        }

        pub fn runs(&self) -> Vec<Run> {
            self.runs.lock().expect("lock").clone()
        }

        pub fn var(&self, run: usize, name: &str) -> Option<String> {
            self.runs()
                .get(run)?
                .0
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    /// A one-check run; a failed one has `status <actual> (expected 200)`.
    pub fn report(passed: bool, actual: &str) -> RunReport {
        let check = CheckResult {
            name: "health".into(),
            status: if passed {
                CheckStatus::Passed
            } else {
                CheckStatus::Failed
            },
            reason: None,
            method: "GET".into(),
            url: "http://green.test/health".into(),
            attempts: 1,
            requests: 1,
            latencies_ms: vec![3.0],
            http_status: actual.parse().ok().or(Some(200)),
            samples: None,
            expectations: vec![ExpectationResult {
                what: "status".into(),
                expected: "200".into(),
                actual: if passed { "200".into() } else { actual.into() },
                passed,
            }],
            elapsed_ms: 3.0,
        };
        RunReport {
            outcome: if passed {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            total: 1,
            passed: usize::from(passed),
            failed: usize::from(!passed),
            unfinished: 0,
            deadline_reached: false,
            stopped_by: None,
            elapsed_ms: 3.0,
            requests: 1,
            p50_ms: Some(3.0),
            p95_ms: Some(3.0),
            checks: vec![check],
        }
    }

    impl SmokeRunner for FakeRunner {
        async fn run(
            &self,
            vars: Vars,
            _deadline: Instant,
            options: RunOptions,
        ) -> Result<RunReport, SpecError> {
            let pairs = vars
                .names()
                .map(|n| (n.to_owned(), vars.get(n).unwrap_or_default().to_owned()))
                .collect();
            self.runs.lock().expect("lock").push((pairs, options));
            match &self.script {
                Script::Pass(n) => {
                    let mut r = report(true, "200");
                    r.total = *n;
                    r.passed = *n;
                    Ok(r)
                }
                Script::Fail(actual) => Ok(report(false, actual)),
                Script::BadVariable => Err(SpecError::UnknownVariable {
                    path: "checks[0].url".into(),
                    name: "DEPLOYMENT_ID".into(),
                    hint: "known variables: TARGET".into(),
                }),
                Script::Slow(d) => {
                    tokio::time::sleep(*d).await;
                    Ok(report(true, "200"))
                }
                Script::Panic => panic!("fake runner exploded"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tollgate_test_support::parameters::FakeStore;

    fn params() -> FakeStore {
        FakeStore::with(HashMap::from([(
            "/tollgate/web/checks".to_owned(),
            r#"{"checks": [{"name": "health", "url": "${TARGET}/health?d=${DEPLOYMENT_ID}", "expect": {"status": 200}}]}"#
                .to_owned(),
        )]))
    }

    #[tokio::test]
    async fn a_spec_loads_inline_or_from_ssm() {
        let inline = SpecSource::Inline(
            "checks:\n  - name: h\n    url: \"${TARGET}/h\"\n    expect: {status: 200}\n".into(),
        );
        let spec = load_spec(&inline, &params()).await.expect("inline");
        assert!(spec.variables().contains("TARGET"));
        let ssm = SpecSource::Parameter("/tollgate/web/checks".into());
        let spec = load_spec(&ssm, &params()).await.expect("ssm");
        assert!(spec.variables().contains("DEPLOYMENT_ID"));
    }

    #[tokio::test]
    async fn a_bad_spec_names_its_source_and_field() {
        let bad = SpecSource::Inline(
            "checks:\n  - name: h\n    url: \"${TARGET}/h\"\n    expect: {status: 2xx}\n".into(),
        );
        let err = load_spec(&bad, &params()).await.expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the check spec from TOLLGATE_CHECK_SPEC is invalid: checks[0].expect.status"
            ),
            "{text}"
        );
        assert_eq!(err.error_type(), "InvalidCheckSpec");
    }

    #[tokio::test]
    async fn an_unknown_variable_fails_at_init() {
        let bad = SpecSource::Inline(
            "checks:\n  - name: h\n    url: \"${TARGTE}/h\"\n    expect: {status: 200}\n".into(),
        );
        let err = load_spec(&bad, &params()).await.expect_err("unknown var");
        let text = err.to_string();
        assert!(
            text.contains("uses ${TARGTE}, which deploy-hook does not supply"),
            "{text}"
        );
        assert!(text.contains("${TARGET}"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_parameter_says_which() {
        let err = load_spec(&SpecSource::Parameter("/nope".into()), &params())
            .await
            .expect_err("missing");
        assert_eq!(err.error_type(), "SpecUnavailable");
        assert!(
            err.to_string().contains("\"/nope\" does not exist"),
            "{err}"
        );
    }
}
