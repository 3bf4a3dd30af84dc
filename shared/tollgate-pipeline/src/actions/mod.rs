//! The pipeline actions, one module each, and the one table that registers
//! them.
//!
//! An action's module owns everything about it: its parameters type, its
//! `NAME` (as written in `"action"`), its `EXAMPLE` (valid `UserParameters`,
//! shown in every error about it), `parse` (its fields, from the
//! `UserParameters` object [`crate::params`] has read) and `run` (its
//! execution). Adding an action is its module plus one line in the
//! `actions!` invocation below, which declares the module and builds
//! [`Params`], [`ACTIONS`], the name → parser lookup and the `run` dispatch
//! from it.
//!
//! Every `run` takes the same arguments: the shared [`Deps`], the job, its
//! parsed parameters, the [`Step`] to narrate and the work deadline.

use crate::artifact::ArtifactStore;
use crate::ecs::EcsApi;
use crate::liveness::JobLiveness;
use crate::params::ParamError;
use crate::{Deps, Failure};
use serde_json::{Map, Value};
use smoke::CheckRunner;
use tokio::time::Instant;
use tollgate_report::events::codepipeline::Job;
use tollgate_report::{JobOutcome, Step};

/// Declares the action modules and builds the registry from one line each:
/// `module::ParamsType => Variant`.
macro_rules! actions {
    ($($module:ident :: $params:ident => $variant:ident,)+) => {
        $(pub mod $module;)+

        /// The parsed parameters of one action: one variant per registered
        /// action, holding that action module's parameters type.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Params {
            $(
                #[doc = concat!("The `", stringify!($module), "` module's action.")]
                $variant($module::$params),
            )+
        }

        /// Action names, as written in `"action"`, in registration order.
        pub const ACTIONS: [&str; [$($module::NAME),+].len()] = [$($module::NAME),+];

        /// Each action's example, in registration order (tests).
        #[cfg(test)]
        const EXAMPLES: [&str; ACTIONS.len()] = [$($module::EXAMPLE),+];

        /// Parses the fields of the action called `action`; `None` when no
        /// action has that name.
        pub(crate) fn parse(
            action: &str,
            map: &Map<String, Value>,
        ) -> Option<Result<Params, ParamError>> {
            $(
                if action == $module::NAME {
                    return Some($module::parse(map).map(Params::$variant));
                }
            )+
            None
        }

        impl Params {
            /// The action's name as written in `"action"`.
            pub fn action(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $module::NAME,)+
                }
            }

            /// Runs the action these parameters configure.
            pub async fn run<A, E, C, J>(
                &self,
                deps: &Deps<A, E, C, J>,
                job: &Job,
                step: &Step,
                deadline: Instant,
            ) -> Result<JobOutcome, Failure>
            where
                A: ArtifactStore,
                E: EcsApi,
                C: CheckRunner,
                J: JobLiveness,
            {
                match self {
                    $(Self::$variant(p) => $module::run(deps, job, p, step, deadline).await,)+
                }
            }
        }
    };
}

// The registration table: one line per action.
actions! {
    smoke::SmokeParams => Smoke,
    verify_artifact::VerifyParams => VerifyArtifact,
    ecs_deploy::EcsDeployParams => EcsDeploy,
    ecs_wait::EcsWaitParams => EcsWait,
    gate::GateParams => Gate,
    run_task::RunTaskParams => RunTask,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_valid_for_its_own_action() {
        for (name, example) in ACTIONS.iter().zip(EXAMPLES) {
            let p = crate::params::parse(Some(example)).expect(example);
            assert_eq!(p.action(), *name, "{example}");
        }
    }
}
