//! pipeline-action as a Lambda function ([`PipelineAction`]): a job in,
//! exactly one report out. A configuration error found at init is kept and
//! reported with every job (`ConfigurationError`), so a pipeline never waits
//! out the action's timeout.

use crate::{
    Clock, Deps, artifact::ArtifactStore, ecs::EcsApi, liveness::JobLiveness, task::LogReader,
};
use lambda_runtime::Diagnostic;
use std::sync::Arc;
use tollgate_checks::{Engine, EngineConfig};
use tollgate_core::config::Env;
use tollgate_report::lambda::{Function, InitFailure, Invocation};
use tollgate_report::{Completion, JobReporter, ReportConfig};

/// What `main.rs` builds from the SDK configuration, once, for
/// [`PipelineAction::init`]: the generic ports, and the two only one action
/// each uses, behind trait objects so that no other action's signature
/// carries them.
#[allow(missing_debug_implementations)]
pub struct Adapters<A, E, J> {
    /// Artifact store (S3 with the job's credentials).
    pub artifacts: A,
    /// The ECS API.
    pub ecs: E,
    /// Job liveness (CodePipeline reads).
    pub jobs: J,
    /// CloudWatch reads for metric gates (`gate`).
    pub metrics: Box<dyn crate::actions::gate::Metrics>,
    /// The last lines of a task's log stream (`run-task`).
    pub logs: Arc<dyn LogReader>,
}

/// The function: its dependencies (or why it has none) and its reporter.
#[derive(Debug)]
pub struct PipelineAction<R, A, E, J> {
    deps: Result<Arc<Deps<A, E, Engine, J>>, InitFailure>,
    reporter: R,
    report: ReportConfig,
}

impl<R, A, E, J> PipelineAction<R, A, E, J> {
    /// Reads and validates the configuration from `env` once, and builds
    /// the check engine and the adapters (`adapters()` gives the artifact
    /// store, the ECS API, job liveness, the metric source and the log
    /// reader: [`Adapters`]).
    pub fn init(env: &impl Env, reporter: R, adapters: impl FnOnce() -> Adapters<A, E, J>) -> Self {
        let (deps, report) = match crate::config(env) {
            Ok((report, settings)) => {
                let deps = Engine::new(EngineConfig::default())
                    .map_err(|e| {
                        InitFailure::new("pipeline-action", "CheckEngineInit", e.to_string())
                    })
                    .map(|checks| {
                        let Adapters {
                            artifacts,
                            ecs,
                            jobs,
                            metrics,
                            logs,
                        } = adapters();
                        let clock = Clock::system();
                        Arc::new(Deps {
                            artifacts,
                            ecs,
                            checks,
                            jobs,
                            metrics,
                            logs,
                            settings,
                            clock,
                        })
                    });
                (deps, report)
            }
            Err(e) => (
                Err(InitFailure::new(
                    "pipeline-action",
                    "InvalidConfiguration",
                    e.to_string(),
                )),
                // The report core still needs its tuning: the defaults when
                // even that is invalid (the failure says so).
                tollgate_report::config::report_config(env).unwrap_or_default(),
            ),
        };
        Self {
            deps,
            reporter,
            report,
        }
    }
}

impl<R, A, E, J> Function for PipelineAction<R, A, E, J>
where
    R: JobReporter + 'static,
    A: ArtifactStore + 'static,
    E: EcsApi + 'static,
    J: JobLiveness + 'static,
{
    type Event = serde_json::Value;
    type Output = Completion;

    async fn handle(
        &self,
        event: Self::Event,
        invocation: Invocation,
    ) -> Result<Completion, Diagnostic> {
        let (budget, cfg) = (invocation.budget(&self.report), &self.report);
        match &self.deps {
            Ok(deps) => crate::handle(deps, &self.reporter, event, budget, cfg).await,
            Err(failure) => {
                crate::handle_misconfigured(failure, &self.reporter, event, budget, cfg).await
            }
        }
        .map_err(Diagnostic::from)
    }
}
