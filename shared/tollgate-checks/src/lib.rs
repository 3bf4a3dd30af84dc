//! # tollgate-checks
//!
//! Invariant: knows no AWS service, no Lambda and no report: a spec, a
//! target and a deadline in, a [`RunReport`] out. Depends only on
//! `tollgate-core`. The `tollgate` CLI that runs it from a laptop or
//! CodeBuild is its own crate (`tools/tollgate-cli`), so that it may link
//! the CloudWatch adapter for `tollgate gate`.
//!
//! Declarative smoke checks: one spec (YAML or JSON) that runs the same way
//! in a CodeDeploy hook, a CodePipeline action and on a laptop
//! (`tollgate check`).
//!
//! - [`Spec`]: parsed and validated once (regexes and JSONPaths compiled);
//!   every error names its field: `checks[2].expect.status: expected a code,
//!   a list or a range like "200-299", got "2xx"`.
//! - [`Vars`]: values for `${NAME}` placeholders in URLs, headers, bodies and
//!   expected texts; secret ones are redacted from every result.
//! - [`variables`]: the spec's `variables:` map of Secrets Manager / SSM
//!   references, resolved by the caller through the core ports and added
//!   as secret [`Vars`].
//! - [`Engine`]: one HTTP client built at init; [`Engine::run`] runs the
//!   checks concurrently and returns by the deadline, marking what did not
//!   finish.
//! - [`RunReport`]: per-check results with expected vs actual for every
//!   expectation, a one-line [`RunReport::summary_line`] (fits CodePipeline's
//!   2048 chars), [`RunReport::failure_details`] (fits 5000), a readable
//!   [`RunReport::table`], and `serde::Serialize` for logs.
//!
//! The spec reference is `docs/checks.md`.
//!
//! ```no_run
//! use tollgate_checks::{Engine, EngineConfig, Spec, Vars};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // At init: parse once, build the engine once.
//! let spec = Spec::from_yaml_or_json(r#"
//! checks:
//!   - name: health
//!     url: "${TARGET}/health"
//!     retry: {attempts: 5, interval: 2s}
//!     expect:
//!       status: 200
//!       json: [{path: $.status, equals: ok}]
//! "#)?;
//! let engine = Engine::new(EngineConfig::default())?;
//!
//! // Per invocation: variables, a deadline, one run.
//! let vars = Vars::new()
//!     .with("TARGET", "https://green.staging.example.com")
//!     .with_secret("TOKEN", "not-shown-anywhere");
//! spec.check_vars(&vars)?; // optional: fail early on an unknown variable
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
//! let report = engine.run(&spec, &vars, deadline).await?;
//! if report.is_success() {
//!     println!("{}", report.summary_line(2048));
//! } else {
//!     eprintln!("{}", report.failure_details(5000));
//! }
//! # Ok(()) }
//! ```
//!
//! For soak runs in rounds (one round per hook invocation), call
//! [`Engine::run_with`] with [`RunOptions`] (e.g. `samples: Some(10)`,
//! `skip_initial_delay: true` after the first round).

mod engine;
mod error;
mod expect;
pub mod gate;
mod http;
mod parse;
mod redact;
mod result;
mod spec;
pub mod targets;
mod template;
pub mod variables;

pub use engine::{DEFAULT_MAX_BODY, Engine, EngineConfig, EngineError, RunOptions};
pub use error::SpecError;
pub use parse::parse_duration;
pub use result::{CheckResult, CheckStatus, ExpectationResult, Outcome, RunReport, SampleStats};
pub use spec::{DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, Spec};
pub use template::Vars;
pub use variables::{ResolvedVariables, SecretVariables};
