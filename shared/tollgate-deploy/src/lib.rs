//! # tollgate-deploy
//!
//! Invariant: names no AWS SDK crate (the adapters are the function's own
//! `aws` module) and no other function's logic; depends on
//! `tollgate-core`, `tollgate-report` and `tollgate-checks`.
//!
//! The logic of deploy-hook: smoke-tests the new version of an ECS service before it
//! takes production traffic, as a CodeDeploy lifecycle hook or as an Amazon
//! ECS native blue/green lifecycle hook. One function serves both.
//!
//! - [`dispatch`]: recognises the payload (CodeDeploy's two ids, or ECS's
//!   `executionId` / `lifecycleStage` / `executionDetails`) and routes it;
//!   anything else is an error naming both accepted shapes.
//! - [`codedeploy_mode`]: looks the deployment up (hook, green task set,
//!   listener → URL), runs the checks, and reports `Succeeded` / `Failed`
//!   exactly once through [`tollgate_report::hook::run_hook`].
//! - [`ecs_native`]: answers `hookStatus` synchronously; soaks run in rounds
//!   with `IN_PROGRESS` + `callBackDelay`, progress in `hookDetails`.
//! - [`discovery`] and [`green`]: the CodeDeploy / ELBv2 reads behind ports
//!   ([`DeploymentReader`], [`ListenerReader`]), each failure naming the step
//!   and the fix.
//! - [`reuse`]: the reads a warm process may answer from memory (an ECS
//!   deployment's targets, a load balancer's DNS name), wrapped around the
//!   ports at init; liveness and state are always read fresh.
//! - [`config`]: the environment variables (table in its docs).
//! - [`smoke`]: the check specs (a default one loaded at init; one per
//!   CodeDeploy deployment group or ECS service read from SSM on first use
//!   and cached within the function's memory), their `variables:` resolved
//!   from Secrets Manager / SSM, run through [`tollgate_checks`].
//! - [`gate_hook`]: the spec's metric gate (`gate:`), one measurement per
//!   invocation: ECS native hooks answer `IN_PROGRESS` + `callBackDelay`
//!   with the running verdict in `hookDetails`; a CodeDeploy
//!   `AfterAllowTraffic` hook carries its bake on an SQS queue and reports
//!   the verdict ([`codedeploy_gate`]).
//! - [`ecs_targets`]: an ECS native hook's green and blue target groups
//!   for the gate (`DescribeServiceRevisions`, checked against the
//!   production listener rule's weights), fail closed.
//! - `tollgate_core::hook_failures`: a failed CodeDeploy hook's checks, left in SSM for
//!   the notifier before the `Failed` report (when configured).
//!
//! A function built on this module calls [`DeployHook::init`] once, then
//! [`dispatch::handle`] per invocation.

pub mod app;
pub mod codedeploy_gate;
pub mod codedeploy_mode;
pub mod config;
pub mod discovery;
pub mod dispatch;
pub mod ecs_native;
pub mod ecs_targets;
pub mod failure_records;
pub mod gate_hook;
pub mod green;
pub mod reuse;
pub mod rollback;
pub mod smoke;

pub use config::{DeployConfig, HookName, HookSetting, SpecSource};
pub use discovery::{DeploymentReader, ListenerReader, ReadError};
pub use smoke::{InitError, SmokeRunner, SpecRunner, SpecStores, SpecTarget, Stores};

use failure_records::FailureRecorder;
use rollback::ServiceDeployments;
use std::sync::Arc;
use tollgate_core::config::Env;
use tollgate_core::ports::{ParameterStore, ParameterWriter, SecretStore};

/// Everything one deploy-hook process needs, built once at init.
#[derive(Debug)]
pub struct DeployHook<D, L, S, E> {
    /// The configuration.
    pub config: DeployConfig,
    /// CodeDeploy reads.
    pub codedeploy: D,
    /// ELBv2 reads.
    pub elb: L,
    /// ECS service deployments (rollbacks are confirmed, not guessed).
    pub ecs: E,
    /// The check spec and engine.
    pub smoke: S,
    /// Writes failed hooks' records for the notifier; `None` when
    /// `TOLLGATE_HOOK_FAILURE_PARAMETER_PREFIX` is unset.
    pub recorder: Option<FailureRecorder>,
    /// CloudWatch and the clock for the specs' metric gates (`gate:`).
    pub gates: gate_hook::Gates,
}

impl<D, L, S, E> DeployHook<D, L, S, E> {
    /// Attaches the SSM writer for hook-failure records when the prefix is
    /// configured; without a prefix the writer is dropped and nothing is
    /// ever written.
    pub fn with_failure_records(mut self, writer: impl ParameterWriter + 'static) -> Self {
        self.recorder = self
            .config
            .failure_record_prefix
            .as_ref()
            .map(|prefix| FailureRecorder::new(prefix.clone(), writer));
        self
    }

    /// Attaches the CloudWatch reads the specs' metric gates use (without
    /// them, a gate fails with a configuration error, never passes).
    pub fn with_metrics(mut self, metrics: impl gate_hook::HookMetrics + 'static) -> Self {
        let queue = self.gates.queue.take();
        let targets = self.gates.targets.clone();
        self.gates = gate_hook::Gates::new(metrics);
        self.gates.queue = queue;
        self.gates.targets = targets;
        self
    }

    /// Attaches the ECS and ELB reads that find an ECS native hook's green
    /// and blue target groups for the metric gate ([`ecs_targets`]).
    pub fn with_target_reader(mut self, reader: impl ecs_targets::TargetReader + 'static) -> Self {
        self.gates.targets = Arc::new(reader);
        self
    }

    /// Attaches the queue that carries a CodeDeploy hook's metric gate from
    /// one measurement to the next ([`codedeploy_gate`]), when configured.
    pub fn with_gate_queue(mut self, queue: Option<impl gate_hook::GateQueue + 'static>) -> Self {
        if let Some(q) = queue {
            self.gates.queue = Some(Arc::new(q));
        }
        self
    }
}

impl<D: DeploymentReader, L: ListenerReader, E: ServiceDeployments>
    DeployHook<D, L, SpecRunner, E>
{
    /// Reads the configuration, loads the default spec (from SSM when
    /// configured) and resolves its `variables:`, and builds the engine.
    /// `params` and `secrets` stay with the runner for the per-target specs.
    /// Any failure is for the function's init error.
    pub async fn init<P: ParameterStore + 'static, S: SecretStore + 'static>(
        env: &impl Env,
        params: P,
        secrets: S,
        codedeploy: D,
        elb: L,
        ecs: E,
    ) -> Result<Self, InitError> {
        let config = DeployConfig::from_env(env)?;
        let smoke = SpecRunner::init(&config, Arc::new(Stores { params, secrets })).await?;
        tracing::info!(
            spec_source = config.spec_source.as_ref().map(SpecSource::describe),
            spec_prefix = config.spec_prefix.as_deref(),
            spec_cache_s = config.spec_cache_ttl.as_secs(),
            spec_cache_capacity = smoke.cache().capacity(),
            hook = ?config.hook,
            target_url = config.target_url.as_ref().map(|u| u.as_str()),
            verify_green = config.verify_green,
            soak_rounds = config.soak_rounds,
            hook_failure_parameter_prefix = config.failure_record_prefix.as_deref(),
            "deploy-hook configured"
        );
        Ok(Self {
            config,
            codedeploy,
            elb,
            ecs,
            smoke,
            recorder: None,
            gates: gate_hook::Gates::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::discovery::fakes::{FakeCodeDeploy, FakeElb};
    use super::rollback::fakes::FakeDeployments;
    use super::*;
    use tollgate_test_support::parameters::FakeStore;

    async fn init(env: &[(&str, &str)]) -> Result<(), InitError> {
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DeployHook::init(
            &env,
            FakeStore::denied(),
            FakeStore::denied(),
            FakeCodeDeploy::default(),
            FakeElb::default(),
            FakeDeployments::default(),
        )
        .await
        .map(|_| ())
    }

    #[tokio::test]
    async fn init_builds_from_a_valid_spec() {
        init(&[(
            config::vars::CHECK_SPEC,
            "checks: [{name: h, url: '${TARGET}/h', expect: {status: 200}}]",
        )])
        .await
        .expect("valid");
    }

    #[tokio::test]
    async fn init_errors_are_typed_for_the_runtime() {
        let err = init(&[]).await.expect_err("no spec");
        assert_eq!(err.error_type(), "InvalidConfiguration");
        let err = init(&[(config::vars::CHECK_SPEC_PARAMETER, "/tollgate/x")])
            .await
            .expect_err("denied");
        assert_eq!(err.error_type(), "SpecUnavailable");
        assert!(err.to_string().contains("grant ssm:GetParameter"), "{err}");
        let err = init(&[(config::vars::CHECK_SPEC, "checks: [")])
            .await
            .expect_err("syntax");
        assert_eq!(err.error_type(), "InvalidCheckSpec");
    }
}
