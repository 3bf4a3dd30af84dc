//! The check specs and their runner.
//!
//! - **The default spec** (`TOLLGATE_CHECK_SPEC` or `TOLLGATE_CHECK_SPEC_PARAMETER`):
//!   loaded, validated and its `variables:` resolved once at init; a problem
//!   is the function's configuration error (every hook reported Failed with
//!   it, in seconds).
//! - **Per-target specs** (`TOLLGATE_CHECK_SPEC_PREFIX`): one SSM parameter
//!   per target ([`SpecTarget::parameter_name`]):
//!   `<prefix>/codedeploy/<application>/<deployment-group>` for a CodeDeploy
//!   hook (both names from `GetDeployment`) and `<prefix>/ecs/<cluster>/<service>`
//!   for an ECS native hook (from `executionDetails.serviceArn`). Read on a
//!   target's first hook, validated against the variables that entry point
//!   supplies, its `variables:` resolved, and kept in a [`SpecCache`]
//!   bounded by the function's memory for `TOLLGATE_CHECK_SPEC_CACHE_S`. A
//!   target without a parameter uses the default spec, or, without one,
//!   fails naming the parameter to create. A bad, unreadable or unresolvable
//!   per-target spec fails that hook at once ([`SpecLoadError`], naming the
//!   parameter and the fix, never quoting the document); nothing is cached
//!   for it, so the fix is read on the next hook.
//!
//! The runner is the [`SmokeRunner`] port; the real one ([`SpecRunner`])
//! wraps [`tollgate_checks::Engine`].

use super::config::{DeployConfig, SpecSource};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tollgate_checks::gate::GateSpec;
use tollgate_checks::{
    Engine, EngineConfig, EngineError, ResolvedVariables, RunOptions, RunReport, SecretVariables,
    Spec, SpecError, Vars,
};
use tollgate_core::Secret;
use tollgate_core::memory::MemoryBudget;
use tollgate_core::ports::{ParameterError, ParameterStore, SecretError, SecretStore};
use tollgate_core::secret_ref::{ResolveError, SecretCache};

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

/// What one cached per-target spec is counted at against the function's
/// memory: a spec comes from one SSM parameter (8 KB at most), parsed with
/// its regexes and JSONPaths compiled, plus its resolved `variables:`
/// (16 KiB in all at most, `tollgate_checks::variables`), each kept with the
/// echoed forms the redactor hides (a few times their length).
pub const SPEC_ENTRY_BUDGET: u64 = 1024 * 1024;
/// Most per-target specs kept at once, whatever the memory.
pub const MAX_CACHED_SPECS: usize = 64;

/// Which target a hook is for; names its spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpecTarget {
    /// A CodeDeploy deployment group (names from `GetDeployment`).
    CodeDeploy {
        /// Application name.
        application: String,
        /// Deployment group name.
        group: String,
    },
    /// An ECS service (from the native hook's `serviceArn`).
    Ecs {
        /// Cluster name.
        cluster: String,
        /// Service name.
        service: String,
    },
    /// An ECS native hook whose `serviceArn` names no cluster and service:
    /// only the default spec can serve it.
    EcsUnnamed,
}

impl SpecTarget {
    /// The SSM parameter holding this target's spec under `prefix`, or why
    /// there can be none (a name SSM cannot hold, or no name at all).
    pub fn parameter_name(&self, prefix: &str) -> Result<String, String> {
        let (kind, a, b) = match self {
            Self::CodeDeploy { application, group } => ("codedeploy", application, group),
            Self::Ecs { cluster, service } => ("ecs", cluster, service),
            Self::EcsUnnamed => {
                return Err("the hook's serviceArn names no cluster and service".to_owned());
            }
        };
        for segment in [a, b] {
            if let Some(c) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
            {
                return Err(format!(
                    "{segment:?} holds {c:?}, which an SSM parameter name cannot"
                ));
            }
        }
        Ok(format!("{prefix}/{kind}/{a}/{b}"))
    }

    /// The target in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::CodeDeploy { application, group } => {
                format!("deployment group {group:?} of CodeDeploy application {application:?}")
            }
            Self::Ecs { cluster, service } => {
                format!("ECS service {service:?} in cluster {cluster:?}")
            }
            Self::EcsUnnamed => "an ECS service the hook does not name".to_owned(),
        }
    }

    /// The variables this entry point supplies.
    pub fn supplied(&self) -> &'static [&'static str] {
        match self {
            Self::CodeDeploy { .. } => CODEDEPLOY_VARIABLES,
            Self::Ecs { .. } | Self::EcsUnnamed => ECS_VARIABLES,
        }
    }
}

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
         the variables it supplies are {known}, and those in the spec's variables: map"
    )]
    UnknownVariables {
        /// Where it came from.
        source_name: String,
        /// `${A}, ${B}`.
        unknown: String,
        /// The supplied names.
        known: String,
    },
    /// A reference in the spec's `variables:` could not be read.
    #[error("the check spec from {source_name} cannot be used: {error}")]
    Secret {
        /// Where the spec came from.
        source_name: String,
        /// Which variable, which reference, what to grant or fix.
        error: ResolveError,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn resolve_is_transient(e: &ResolveError) -> bool {
    matches!(
        e,
        ResolveError::Parameter {
            source: ParameterError::Other { .. },
            ..
        } | ResolveError::Secret {
            source: SecretError::Other { .. },
            ..
        }
    )
}

impl InitError {
    /// Whether trying again may succeed (a throttled or unreachable SSM),
    /// as opposed to a configuration that is wrong until someone fixes it.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Parameter(ParameterError::Other { .. }) => true,
            Self::Secret { error, .. } => resolve_is_transient(error),
            _ => false,
        }
    }

    /// Short error type for the runtime.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidConfiguration",
            Self::Parameter(_) => "SpecUnavailable",
            Self::Spec { .. } | Self::UnknownVariables { .. } => "InvalidCheckSpec",
            Self::Secret { .. } => "SpecSecretUnavailable",
            Self::Engine(_) => "EngineSetup",
        }
    }
}

/// Parses `text` and checks its variables against `supplied` (plus its own
/// `variables:` names, which may not shadow a supplied one): what
/// deploy-hook does with every spec it reads ([`CODEDEPLOY_VARIABLES`] for
/// a deployment group's spec, [`ECS_VARIABLES`] for a service's, both for
/// the default spec). `source_name` names the spec in the error.
pub fn parse_checked(text: &str, source_name: &str, supplied: &[&str]) -> Result<Spec, InitError> {
    let spec = Spec::from_yaml_or_json(text).map_err(|error| InitError::Spec {
        source_name: source_name.to_owned(),
        error,
    })?;
    spec.secret_variables()
        .clashes(supplied.iter().copied(), "deploy-hook")
        .map_err(|error| InitError::Spec {
            source_name: source_name.to_owned(),
            error,
        })?;
    let known: BTreeSet<&str> = supplied
        .iter()
        .copied()
        .chain(spec.secret_variables().names())
        .collect();
    let unknown: Vec<String> = spec
        .variables()
        .into_iter()
        .filter(|v| !known.contains(v.as_str()))
        .map(|v| format!("${{{v}}}"))
        .collect();
    if !unknown.is_empty() {
        return Err(InitError::UnknownVariables {
            source_name: source_name.to_owned(),
            unknown: unknown.join(", "),
            known: supplied
                .iter()
                .collect::<BTreeSet<_>>()
                .iter()
                .map(|v| format!("${{{v}}}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(spec)
}

/// The spec document's `gate:` section (the metric gate), if it has one;
/// an invalid one is the same error as an invalid check spec.
pub fn parse_gate(text: &str, source_name: &str) -> Result<Option<GateSpec>, InitError> {
    GateSpec::from_document(text).map_err(|error| InitError::Spec {
        source_name: source_name.to_owned(),
        error,
    })
}

/// Every variable either entry point supplies: what the default spec,
/// which serves both, is checked against.
fn all_supplied() -> Vec<&'static str> {
    CODEDEPLOY_VARIABLES
        .iter()
        .chain(ECS_VARIABLES)
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Loads, parses and validates the default spec once. An SSM parameter is
/// read here and never again (the spec is kept for the life of the process).
pub async fn load_spec<P: ParameterStore>(
    source: &SpecSource,
    params: &P,
) -> Result<Spec, InitError> {
    let source_name = source.describe();
    match source {
        SpecSource::Inline(text) => parse_checked(text, &source_name, &all_supplied()),
        SpecSource::Parameter(name) => {
            let value = params.get_parameter(name).await?;
            parse_checked(value.expose(), &source_name, &all_supplied())
        }
    }
}

/// A boxed future (the stores are kept behind one object-safe trait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the runner reads at run time: parameters (per-target specs, `ssm:`
/// references) and secrets (`secretsmanager:` references).
pub trait SpecStores: Send + Sync + 'static {
    /// `GetParameter` (decrypted).
    fn parameter<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ParameterError>>;
    /// Resolves a spec's `variables:` (each secret read once).
    fn resolve<'a>(
        &'a self,
        variables: &'a SecretVariables,
    ) -> BoxFuture<'a, Result<ResolvedVariables, ResolveError>>;
}

/// The real [`SpecStores`]: the SSM and Secrets Manager adapters.
#[derive(Debug, Clone)]
pub struct Stores<P, S> {
    /// Parameter Store.
    pub params: P,
    /// Secrets Manager.
    pub secrets: S,
}

impl<P: ParameterStore + 'static, S: SecretStore + 'static> SpecStores for Stores<P, S> {
    fn parameter<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ParameterError>> {
        Box::pin(self.params.get_parameter(name))
    }

    fn resolve<'a>(
        &'a self,
        variables: &'a SecretVariables,
    ) -> BoxFuture<'a, Result<ResolvedVariables, ResolveError>> {
        Box::pin(async move {
            let mut cache = SecretCache::default();
            variables
                .resolve(&mut cache, &self.secrets, &self.params)
                .await
        })
    }
}

/// Why a hook has no spec to run. Each names the target, the parameter
/// and what to do; none quotes the document or a secret.
#[derive(Debug, thiserror::Error)]
pub enum SpecLoadError {
    /// No per-target parameter and no default spec.
    #[error(
        "no check spec for {target}: SSM parameter {parameter:?} does not exist and the function \
         has no default spec; create the parameter (check it first with `tollgate validate --spec FILE`), \
         or set CheckSpec or CheckSpecParameter for the targets without one"
    )]
    NoSpec {
        /// The target in words.
        target: String,
        /// The parameter looked for.
        parameter: String,
    },
    /// The target's names cannot form a parameter name, and there is no
    /// default spec.
    #[error(
        "no check spec for {target}: {why}, so it has no per-target spec, and the function has no \
         default spec; set CheckSpec or CheckSpecParameter"
    )]
    Unnamed {
        /// The target in words.
        target: String,
        /// Why no parameter name.
        why: String,
    },
    /// The parameter could not be read.
    #[error("cannot read the check spec for {target}: {error}")]
    Unreadable {
        /// The target in words.
        target: String,
        /// Names the parameter and the permission.
        error: ParameterError,
    },
    /// The spec is invalid, or a `variables:` reference cannot be read.
    #[error("{error} (the spec for {target}; fix the parameter and retry the deployment)")]
    Invalid {
        /// The target in words.
        target: String,
        /// The problem, naming the parameter and the field.
        error: Box<InitError>,
    },
}

/// Why a run did not happen: no usable spec, or the spec does not fit
/// this invocation's variables.
#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    /// No spec could be had for the target.
    #[error(transparent)]
    Load(#[from] SpecLoadError),
    /// The spec cannot run with the variables given.
    #[error("the check spec cannot run: {0}")]
    Spec(#[from] SpecError),
}

/// Port: runs the spec for a target once.
pub trait SmokeRunner: Send + Sync + 'static {
    /// Runs every check of `target`'s spec with `vars` and returns by `deadline`.
    fn run(
        &self,
        target: &SpecTarget,
        vars: Vars,
        deadline: Instant,
        options: RunOptions,
    ) -> impl Future<Output = Result<RunReport, SmokeError>> + Send;

    /// The metric gate of `target`'s spec (its `gate:` section), if any.
    fn gate(
        &self,
        target: &SpecTarget,
    ) -> impl Future<Output = Result<Option<Arc<GateSpec>>, SmokeError>> + Send;
}

/// A spec ready to run: parsed, its `variables:` resolved.
struct Loaded {
    spec: Spec,
    secrets: ResolvedVariables,
    /// The document's metric gate, if any.
    gate: Option<Arc<GateSpec>>,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("checks", &self.spec.len())
            .field("secrets", &self.secrets)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

/// One cache entry: the target's own spec, or `None` for "no parameter:
/// the default spec".
#[derive(Debug)]
struct Cached {
    spec: Option<Arc<Loaded>>,
    read_at: Instant,
    used_at: Instant,
}

/// Per-target specs by parameter name: at most `capacity` (the function's
/// memory at [`SPEC_ENTRY_BUDGET`] each, a quarter of the work budget,
/// capped at [`MAX_CACHED_SPECS`]; the least recently used goes first),
/// each re-read after `ttl`. An entry whose re-read fails transiently
/// (throttling, a timeout) is used as it was, with a warning.
#[derive(Debug)]
pub struct SpecCache {
    entries: Mutex<HashMap<String, Cached>>,
    capacity: usize,
    ttl: Duration,
}

impl SpecCache {
    /// A cache sized for `memory`.
    pub fn new(memory: &MemoryBudget, ttl: Duration) -> Self {
        let by_memory = memory.work_bytes() / 4 / SPEC_ENTRY_BUDGET;
        let capacity = usize::try_from(by_memory)
            .unwrap_or(MAX_CACHED_SPECS)
            .clamp(1, MAX_CACHED_SPECS);
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// How many specs it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many it holds now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh entry, or (with `stale_ok`) any entry.
    fn get(&self, name: &str, stale_ok: bool) -> Option<Option<Arc<Loaded>>> {
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.get_mut(name)?;
        if !stale_ok && now.saturating_duration_since(entry.read_at) >= self.ttl {
            return None;
        }
        entry.used_at = now;
        Some(entry.spec.clone())
    }

    fn put(&self, name: &str, spec: Option<Arc<Loaded>>) {
        let now = Instant::now();
        let mut entries = self.lock();
        if !entries.contains_key(name)
            && entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.used_at)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(
            name.to_owned(),
            Cached {
                spec,
                read_at: now,
                used_at: now,
            },
        );
    }

    fn forget(&self, name: &str) {
        self.lock().remove(name);
    }
}

/// The real runner: the engine, the default spec, and the per-target
/// specs (read through `stores`, kept in the cache).
pub struct SpecRunner {
    engine: Engine,
    default: Option<Arc<Loaded>>,
    prefix: Option<String>,
    stores: Arc<dyn SpecStores>,
    cache: SpecCache,
}

impl fmt::Debug for SpecRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpecRunner")
            .field("default", &self.default)
            .field("prefix", &self.prefix)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl SpecRunner {
    /// Loads the default spec (when configured) and resolves its
    /// `variables:`, builds the engine (one HTTP client for the life of the
    /// process), checks that the spec fits the function's memory, and
    /// prepares the per-target cache.
    pub async fn init(
        config: &DeployConfig,
        stores: Arc<dyn SpecStores>,
    ) -> Result<Self, InitError> {
        let engine = Engine::new(EngineConfig::default())?;
        let default = match &config.spec_source {
            None => None,
            Some(source) => {
                let source_name = source.describe();
                let (spec, gate) = match source {
                    SpecSource::Inline(text) => (
                        parse_checked(text, &source_name, &all_supplied())?,
                        parse_gate(text, &source_name)?,
                    ),
                    SpecSource::Parameter(name) => {
                        let value = stores.parameter(name).await?;
                        (
                            parse_checked(value.expose(), &source_name, &all_supplied())?,
                            parse_gate(value.expose(), &source_name)?,
                        )
                    }
                };
                Some(Arc::new(
                    prepare(&engine, stores.as_ref(), spec, gate, &source_name).await?,
                ))
            }
        };
        let cache = SpecCache::new(&engine.config().memory, config.spec_cache_ttl);
        Ok(Self {
            engine,
            default,
            prefix: config.spec_prefix.clone(),
            stores,
            cache,
        })
    }

    /// The per-target cache (for tests and logs).
    pub fn cache(&self) -> &SpecCache {
        &self.cache
    }

    /// The spec for `target`: its own (cached or read now), else the default.
    async fn spec_for(&self, target: &SpecTarget) -> Result<Arc<Loaded>, SpecLoadError> {
        let Some(prefix) = &self.prefix else {
            return self.default_or(target, None);
        };
        let name = match target.parameter_name(prefix) {
            Ok(name) => name,
            Err(why) => {
                return self.default.clone().ok_or(SpecLoadError::Unnamed {
                    target: target.describe(),
                    why,
                });
            }
        };
        if let Some(hit) = self.cache.get(&name, false) {
            return self.default_or(target, hit);
        }
        match self.read_target(target, &name).await {
            Ok(own) => {
                // "No parameter" is kept only when a default serves it: a
                // missing spec is looked for again on the next hook.
                if own.is_some() || self.default.is_some() {
                    self.cache.put(&name, own.clone());
                }
                self.default_or(target, own)
            }
            Err(e) => {
                let transient = matches!(
                    &e,
                    SpecLoadError::Unreadable {
                        error: ParameterError::Other { .. },
                        ..
                    }
                ) || matches!(&e, SpecLoadError::Invalid { error, .. } if error.is_transient());
                match self.cache.get(&name, true) {
                    Some(stale) if transient => {
                        tracing::warn!(
                            parameter = %name,
                            error = %e,
                            "could not re-read the target's check spec; using the one read earlier"
                        );
                        self.default_or(target, stale)
                    }
                    _ => {
                        self.cache.forget(&name);
                        Err(e)
                    }
                }
            }
        }
    }

    /// `own` when the target has its own spec, else the default spec, else
    /// the error naming the parameter to create.
    fn default_or(
        &self,
        target: &SpecTarget,
        own: Option<Arc<Loaded>>,
    ) -> Result<Arc<Loaded>, SpecLoadError> {
        if let Some(spec) = own {
            return Ok(spec);
        }
        match (&self.default, &self.prefix) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(prefix)) => Err(SpecLoadError::NoSpec {
                target: target.describe(),
                parameter: target
                    .parameter_name(prefix)
                    .unwrap_or_else(|why| format!("(none: {why})")),
            }),
            // Unreachable by configuration (one of the two is required);
            // still an answer, not a panic.
            (None, None) => Err(SpecLoadError::Unnamed {
                target: target.describe(),
                why: "no TOLLGATE_CHECK_SPEC_PREFIX is set".to_owned(),
            }),
        }
    }

    /// Reads, validates and prepares the target's own spec; `None` when its
    /// parameter does not exist.
    async fn read_target(
        &self,
        target: &SpecTarget,
        name: &str,
    ) -> Result<Option<Arc<Loaded>>, SpecLoadError> {
        let text = match self.stores.parameter(name).await {
            Ok(text) => text,
            Err(ParameterError::NotFound { .. }) => {
                tracing::info!(parameter = %name, target = %target.describe(), "no per-target check spec; using the default");
                return Ok(None);
            }
            Err(error) => {
                return Err(SpecLoadError::Unreadable {
                    target: target.describe(),
                    error,
                });
            }
        };
        let source_name = format!("SSM parameter {name:?}");
        let invalid = |error| SpecLoadError::Invalid {
            target: target.describe(),
            error: Box::new(error),
        };
        let spec =
            parse_checked(text.expose(), &source_name, target.supplied()).map_err(invalid)?;
        let gate = parse_gate(text.expose(), &source_name).map_err(invalid)?;
        let loaded = prepare(&self.engine, self.stores.as_ref(), spec, gate, &source_name)
            .await
            .map_err(invalid)?;
        tracing::info!(
            parameter = %name,
            target = %target.describe(),
            checks = loaded.spec.len(),
            secret_variables = loaded.secrets.len(),
            cached = self.cache.len() + 1,
            capacity = self.cache.capacity(),
            "per-target check spec loaded"
        );
        Ok(Some(Arc::new(loaded)))
    }
}

/// Checks the spec against the function's memory and resolves its
/// `variables:`.
async fn prepare(
    engine: &Engine,
    stores: &dyn SpecStores,
    spec: Spec,
    gate: Option<GateSpec>,
    source_name: &str,
) -> Result<Loaded, InitError> {
    engine
        .memory_share(&spec)
        .map_err(|error| InitError::Spec {
            source_name: source_name.to_owned(),
            error,
        })?;
    let secrets = stores
        .resolve(spec.secret_variables())
        .await
        .map_err(|error| InitError::Secret {
            source_name: source_name.to_owned(),
            error,
        })?;
    Ok(Loaded {
        spec,
        secrets,
        gate: gate.map(Arc::new),
    })
}

impl SmokeRunner for SpecRunner {
    async fn run(
        &self,
        target: &SpecTarget,
        mut vars: Vars,
        deadline: Instant,
        options: RunOptions,
    ) -> Result<RunReport, SmokeError> {
        let loaded = self.spec_for(target).await?;
        loaded.secrets.apply(&mut vars);
        Ok(self
            .engine
            .run_with(&loaded.spec, &vars, deadline, &options)
            .await?)
    }

    async fn gate(&self, target: &SpecTarget) -> Result<Option<Arc<GateSpec>>, SmokeError> {
        Ok(self.spec_for(target).await?.gate.clone())
    }
}

#[cfg(test)]
pub(crate) mod fakes {
    //! A scripted runner that records the variables it was given.

    use super::*;
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
        pub targets: Mutex<Vec<SpecTarget>>,
        pub gate: Option<Arc<GateSpec>>,
    }

    impl FakeRunner {
        pub fn new(script: Script) -> Self {
            Self {
                script,
                runs: Mutex::new(Vec::new()),
                targets: Mutex::new(Vec::new()),
                gate: None,
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
            target: &SpecTarget,
            vars: Vars,
            _deadline: Instant,
            options: RunOptions,
        ) -> Result<RunReport, SmokeError> {
            self.targets.lock().expect("lock").push(target.clone());
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
                Script::BadVariable => Err(SmokeError::Spec(SpecError::UnknownVariable {
                    path: "checks[0].url".into(),
                    name: "DEPLOYMENT_ID".into(),
                    hint: "known variables: TARGET".into(),
                })),
                Script::Slow(d) => {
                    tokio::time::sleep(*d).await;
                    Ok(report(true, "200"))
                }
                Script::Panic => panic!("fake runner exploded"),
            }
        }

        async fn gate(&self, _target: &SpecTarget) -> Result<Option<Arc<GateSpec>>, SmokeError> {
            Ok(self.gate.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vars as env;
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

    // ------------------------------------------------ per-target specs

    const WEB: &str = "checks: [{name: web, url: '${TARGET}/web?g=${DEPLOYMENT_GROUP_NAME}', expect: {status: 200}}]";
    const API: &str = "checks: [{name: api, url: '${TARGET}/api', headers: {Authorization: 'Bearer ${API_TOKEN}'}, expect: {status: 200}}]\nvariables: {API_TOKEN: 'secretsmanager:tollgate/api#token'}";
    const DEFAULT: &str = "checks: [{name: default, url: '${TARGET}/', expect: {status: 200}}]";

    fn cd(application: &str, group: &str) -> SpecTarget {
        SpecTarget::CodeDeploy {
            application: application.into(),
            group: group.into(),
        }
    }

    fn ecs(cluster: &str, service: &str) -> SpecTarget {
        SpecTarget::Ecs {
            cluster: cluster.into(),
            service: service.into(),
        }
    }

    fn store(extra: &[(&str, &str)]) -> FakeStore {
        let mut values: HashMap<String, String> = HashMap::from([
            (
                "/checks/codedeploy/web-app/web-dg".to_owned(),
                WEB.to_owned(),
            ),
            ("/checks/ecs/prod/api".to_owned(), API.to_owned()),
            (
                "tollgate/api".to_owned(),
                r#"{"token": "tok-Api-7781"}"#.to_owned(),
            ),
        ]);
        values.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        FakeStore::with(values)
    }

    async fn runner(vars: &[(&str, &str)], store: &FakeStore) -> Result<SpecRunner, InitError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = DeployConfig::from_env(&env)?;
        let stores = Arc::new(Stores {
            params: store.clone(),
            secrets: store.clone(),
        });
        SpecRunner::init(&config, stores).await
    }

    fn names(spec: &Loaded) -> Vec<&str> {
        spec.spec.check_names().collect()
    }

    #[test]
    fn targets_map_to_parameter_names() {
        assert_eq!(
            cd("web-app", "web-dg").parameter_name("/checks"),
            Ok("/checks/codedeploy/web-app/web-dg".to_owned())
        );
        assert_eq!(
            ecs("prod", "api").parameter_name("/t/checks"),
            Ok("/t/checks/ecs/prod/api".to_owned())
        );
        let err = cd("web app", "dg").parameter_name("/c").expect_err("space");
        assert!(err.contains("\"web app\" holds ' '"), "{err}");
        assert!(SpecTarget::EcsUnnamed.parameter_name("/c").is_err());
        assert!(cd("a", "b").describe().contains("deployment group \"b\""));
    }

    #[tokio::test]
    async fn each_target_gets_its_own_spec_and_others_the_default() {
        let store = store(&[]);
        let r = runner(
            &[
                (env::CHECK_SPEC_PREFIX, "/checks"),
                (env::CHECK_SPEC, DEFAULT),
            ],
            &store,
        )
        .await
        .expect("init");
        let web = r.spec_for(&cd("web-app", "web-dg")).await.expect("web");
        assert_eq!(names(&web), ["web"]);
        let api = r.spec_for(&ecs("prod", "api")).await.expect("api");
        assert_eq!(names(&api), ["api"]);
        assert_eq!(api.secrets.len(), 1);
        let other = r.spec_for(&cd("other", "dg")).await.expect("fallback");
        assert_eq!(names(&other), ["default"]);
        let unnamed = r.spec_for(&SpecTarget::EcsUnnamed).await.expect("default");
        assert_eq!(names(&unnamed), ["default"]);
        assert_eq!(
            store.reads(),
            [
                "/checks/codedeploy/web-app/web-dg",
                "/checks/ecs/prod/api",
                "tollgate/api",
                "/checks/codedeploy/other/dg",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn specs_are_read_once_per_ttl_and_a_re_read_sees_changes() {
        let store = store(&[]);
        let r = runner(
            &[
                (env::CHECK_SPEC_PREFIX, "/checks"),
                (env::CHECK_SPEC, DEFAULT),
                (env::CHECK_SPEC_CACHE_S, "60"),
            ],
            &store,
        )
        .await
        .expect("init");
        for _ in 0..3 {
            r.spec_for(&cd("web-app", "web-dg")).await.expect("web");
            r.spec_for(&cd("other", "dg")).await.expect("default");
        }
        assert_eq!(store.reads().len(), 2, "{:?}", store.reads());
        tokio::time::advance(Duration::from_secs(61)).await;
        r.spec_for(&cd("web-app", "web-dg")).await.expect("web");
        assert_eq!(store.reads().len(), 3, "re-read after the TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_keeps_at_most_its_capacity_dropping_the_least_recently_used() {
        let cache = SpecCache::new(&MemoryBudget::of_mb(128), Duration::from_secs(60));
        // (128 MB - 32 MB reserve) / 4 at 1 MiB each.
        assert_eq!(cache.capacity(), 24);
        assert_eq!(
            SpecCache::new(&MemoryBudget::of_mb(10_240), Duration::ZERO).capacity(),
            MAX_CACHED_SPECS
        );
        for i in 0..24 {
            cache.put(&format!("/p/{i}"), None);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(cache.get("/p/0", false).is_some(), "touch the oldest");
        cache.put("/p/new", None);
        assert_eq!(cache.len(), 24);
        assert!(cache.get("/p/0", false).is_some(), "recently used stays");
        assert!(
            cache.get("/p/1", false).is_none(),
            "least recently used goes"
        );
    }

    #[tokio::test]
    async fn a_missing_per_target_spec_without_a_default_names_the_parameter() {
        let store = store(&[]);
        let r = runner(&[(env::CHECK_SPEC_PREFIX, "/checks")], &store)
            .await
            .expect("init without a default");
        let err = r.spec_for(&cd("billing", "blue")).await.expect_err("none");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "no check spec for deployment group \"blue\" of CodeDeploy application \"billing\": \
                 SSM parameter \"/checks/codedeploy/billing/blue\" does not exist"
            ),
            "{text}"
        );
        assert!(text.contains("tollgate validate"), "{text}");
        // Not cached: the parameter, once created, is read on the next hook.
        r.spec_for(&cd("billing", "blue")).await.expect_err("none");
        assert_eq!(store.reads().len(), 2);
        let err = r
            .spec_for(&SpecTarget::EcsUnnamed)
            .await
            .expect_err("unnamed");
        assert!(err.to_string().contains("names no cluster"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_per_target_spec_fails_naming_the_parameter_never_quoting_it() {
        let store = store(&[
            (
                "/checks/codedeploy/bad/yaml",
                "checks: [{name: h, url: '${TARGET}', headers: {Authorization: 'Bearer tok-Leak-1'}, expect: {status: 2xx}}]",
            ),
            (
                "/checks/ecs/prod/soak",
                "checks: [{name: h, url: '${TARGET}/${DEPLOYMENT_ID}', expect: {status: 200}}]",
            ),
            (
                "/checks/ecs/prod/nosecret",
                "checks: [{name: h, url: '${TARGET}/${K}', expect: {status: 200}}]\nvariables: {K: 'ssm:/missing/key'}",
            ),
        ]);
        let r = runner(
            &[
                (env::CHECK_SPEC_PREFIX, "/checks"),
                (env::CHECK_SPEC, DEFAULT),
            ],
            &store,
        )
        .await
        .expect("init");
        let err = r.spec_for(&cd("bad", "yaml")).await.expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the check spec from SSM parameter \"/checks/codedeploy/bad/yaml\" is invalid: checks[0].expect.status"
            ),
            "{text}"
        );
        assert!(!text.contains("tok-Leak-1"), "{text}");
        // An ECS service's spec is checked against what ECS hooks supply.
        let err = r
            .spec_for(&ecs("prod", "soak"))
            .await
            .expect_err("codedeploy var");
        assert!(err.to_string().contains("uses ${DEPLOYMENT_ID}"), "{err}");
        let err = r
            .spec_for(&ecs("prod", "nosecret"))
            .await
            .expect_err("unresolvable");
        let text = err.to_string();
        assert!(text.contains("variables.K (ssm:/missing/key)"), "{text}");
        assert!(text.contains("\"/missing/key\" does not exist"), "{text}");
        // Nothing bad is cached: each hook reads again.
        let before = store.reads().len();
        r.spec_for(&cd("bad", "yaml")).await.expect_err("invalid");
        assert_eq!(store.reads().len(), before + 1);
    }

    #[tokio::test]
    async fn a_denied_read_names_the_permission() {
        let r = runner(
            &[
                (env::CHECK_SPEC_PREFIX, "/checks"),
                (env::CHECK_SPEC, DEFAULT),
            ],
            &FakeStore::with(HashMap::<String, String>::new()),
        )
        .await
        .expect("init");
        // A store that denies per-target reads.
        let denied = SpecRunner {
            stores: Arc::new(Stores {
                params: FakeStore::denied(),
                secrets: FakeStore::denied(),
            }),
            ..r
        };
        let err = denied.spec_for(&cd("a", "b")).await.expect_err("denied");
        let text = err.to_string();
        assert!(text.contains("/checks/codedeploy/a/b"), "{text}");
        assert!(text.contains("grant ssm:GetParameter"), "{text}");
    }

    #[tokio::test]
    async fn the_default_spec_resolves_its_secrets_at_init() {
        let store = store(&[]);
        let spec = "checks: [{name: h, url: '${TARGET}/', headers: {X-Api-Key: '${KEY}'}, expect: {status: 200}}]\nvariables: {KEY: 'secretsmanager:tollgate/api#token'}";
        let r = runner(&[(env::CHECK_SPEC, spec)], &store)
            .await
            .expect("init");
        assert_eq!(store.reads(), ["tollgate/api"]);
        assert!(!format!("{r:?}").contains("tok-Api-7781"));
        let err = runner(
            &[(
                env::CHECK_SPEC,
                "checks: [{name: h, url: '${TARGET}/', expect: {status: 200}}]\nvariables: {TARGET: 'ssm:/x'}",
            )],
            &store,
        )
        .await
        .expect_err("shadowing");
        assert!(
            err.to_string().contains("supplies ${TARGET} itself"),
            "{err}"
        );
        let err = runner(
            &[(
                env::CHECK_SPEC,
                "checks: [{name: h, url: '${TARGET}/${K}', expect: {status: 200}}]\nvariables: {K: 'secretsmanager:absent'}",
            )],
            &store,
        )
        .await
        .expect_err("absent secret");
        assert_eq!(err.error_type(), "SpecSecretUnavailable");
        assert!(!err.is_transient());
    }
}
