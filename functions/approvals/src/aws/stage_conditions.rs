//! [`StageConditions`] over `aws-sdk-codepipeline`: `GetPipelineState` (the
//! stage's entry or on-success condition and the execution it is evaluated
//! for) and `OverrideStageCondition`. SDK retries: 2 attempts for the
//! read; `OverrideStageCondition` is sent once (a retry of an attempt that
//! CodePipeline applied but whose answer was lost would be refused and read
//! as "someone else overrode"). A timeout, a lost connection, an unreadable
//! answer or a 5xx is [`OverrideAnswer::Unsure`]: CodePipeline may have
//! acted, and the caller reads the state again.
//!
//! The execution a condition belongs to: `StageConditionState` carries no
//! execution id, so the entry condition is taken as the stage's inbound
//! execution's (else its latest execution's), the on-success condition as
//! the latest execution's (assumed from the API reference, not verified).

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::error::SdkError;
use aws_sdk_codepipeline::types::{ConditionType, StageConditionState, StageState};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tollgate_approvals::ports::PortError;
use tollgate_approvals::stage_condition::{
    BoxFuture, ConditionView, OverrideAnswer, RuleView, StageConditions,
};
use tollgate_aws::SdkConfig;
use tollgate_core::stage_condition_request::{ConditionKind, ConditionRef};
use tollgate_core::text::ellipsize;

/// CodePipeline's stage conditions.
#[derive(Debug, Clone)]
pub struct CodePipelineConditions {
    client: Client,
    /// The same, with one attempt: for `OverrideStageCondition`.
    once: Client,
}

impl CodePipelineConditions {
    /// Builds the clients.
    pub fn new(sdk: &SdkConfig) -> Self {
        let with_attempts = |n: u32| {
            Client::from_conf(
                aws_sdk_codepipeline::config::Builder::from(sdk)
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(n))
                    .build(),
            )
        };
        Self {
            client: with_attempts(2),
            once: with_attempts(1),
        }
    }
}

fn port_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    call: &str,
    c: &ConditionRef,
    code: &str,
    e: &E,
) -> PortError {
    match code {
        "PipelineNotFoundException" | "StageNotFoundException" => PortError::NotFound(format!(
            "{call}: {code}: the pipeline {:?} has no stage {:?}",
            c.pipeline, c.stage
        )),
        "AccessDeniedException" => PortError::Denied(format!(
            "{call}: AccessDenied: grant codepipeline:{call} on the pipeline to the approvals function's role (ApprovalPipelineArns with ApprovalStageOverrides=true)"
        )),
        _ => PortError::Failed(format!(
            "{call}: {}",
            ellipsize(&DisplayErrorContext(e).to_string(), 300)
        )),
    }
}

/// The execution an entry condition is evaluated for: the stage's inbound
/// execution, else its latest only while that one is in progress. A latest
/// execution that has finished has long passed the entry, and taking it
/// would let an old button override a newer execution's condition (the
/// condition's state names no execution; docs/approvals.md).
pub fn entry_execution(stage: &StageState) -> Option<&str> {
    stage
        .inbound_execution()
        .or_else(|| {
            stage.latest_execution().filter(|e| {
                *e.status() == aws_sdk_codepipeline::types::StageExecutionStatus::InProgress
            })
        })
        .map(|e| e.pipeline_execution_id())
}

/// The condition `c` names, from its stage's state.
pub fn view_of(stage: &StageState, kind: ConditionKind) -> ConditionView {
    let (state, execution): (Option<&StageConditionState>, Option<&str>) = match kind {
        ConditionKind::BeforeEntry => {
            (stage.before_entry_condition_state(), entry_execution(stage))
        }
        ConditionKind::OnSuccess => (
            stage.on_success_condition_state(),
            stage.latest_execution().map(|e| e.pipeline_execution_id()),
        ),
    };
    let Some(state) = state else {
        return ConditionView {
            execution: execution.map(str::to_owned),
            ..ConditionView::default()
        };
    };
    let latest = state.latest_execution();
    let conditions = state.condition_states();
    ConditionView {
        execution: execution.map(str::to_owned),
        status: latest
            .and_then(|l| l.status())
            .map(|s| s.as_str().to_owned()),
        summary: latest.and_then(|l| l.summary()).map(str::to_owned),
        changed_at: conditions
            .iter()
            .filter_map(|c| c.latest_execution()?.last_status_change())
            .map(|t| t.secs())
            .max(),
        rules: conditions
            .iter()
            .flat_map(|c| c.rule_states())
            .map(|r| RuleView {
                name: r.rule_name().unwrap_or_default().to_owned(),
                status: r
                    .latest_execution()
                    .and_then(|e| e.status())
                    .map(|s| s.as_str().to_owned()),
                summary: r
                    .latest_execution()
                    .and_then(|e| e.summary())
                    .map(str::to_owned),
            })
            .collect(),
    }
}

impl CodePipelineConditions {
    async fn read(&self, c: &ConditionRef) -> Result<ConditionView, PortError> {
        let out = self
            .client
            .get_pipeline_state()
            .name(&c.pipeline)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or_default().to_owned();
                port_error("GetPipelineState", c, &code, &e)
            })?;
        let Some(stage) = out
            .stage_states()
            .iter()
            .find(|s| s.stage_name() == Some(c.stage.as_str()))
        else {
            return Err(PortError::NotFound(format!(
                "GetPipelineState: the pipeline {:?} has no stage {:?}",
                c.pipeline, c.stage
            )));
        };
        Ok(view_of(stage, c.kind))
    }

    async fn apply(&self, c: &ConditionRef) -> Result<OverrideAnswer, PortError> {
        let kind = match c.kind {
            ConditionKind::BeforeEntry => ConditionType::BeforeEntry,
            ConditionKind::OnSuccess => ConditionType::OnSuccess,
        };
        let sent = self
            .once
            .override_stage_condition()
            .pipeline_name(&c.pipeline)
            .stage_name(&c.stage)
            .pipeline_execution_id(&c.execution)
            .condition_type(kind)
            .send()
            .await;
        let e = match sent {
            Ok(_) => return Ok(OverrideAnswer::Accepted),
            Err(e) => e,
        };
        let code = e.code().unwrap_or_default().to_owned();
        let unsure = match &e {
            SdkError::TimeoutError(_) => Some("did not answer in time".to_owned()),
            SdkError::DispatchFailure(d) if !d.is_user() => {
                Some("the connection failed while sending".to_owned())
            }
            SdkError::ResponseError(_) => Some("its answer could not be read".to_owned()),
            SdkError::ServiceError(s) if s.raw().status().is_server_error() => Some(format!(
                "CodePipeline answered {} ({code})",
                s.raw().status().as_u16()
            )),
            _ => None,
        };
        if let Some(why) = unsure {
            return Ok(OverrideAnswer::Unsure(format!(
                "OverrideStageCondition: {why}"
            )));
        }
        match code.as_str() {
            // The condition is not in progress any more (or never allowed
            // overrides), or a later execution failed the stage.
            "ConditionNotOverridableException" | "NotLatestPipelineExecutionException" => {
                Ok(OverrideAnswer::NotOverridable(code))
            }
            _ => Err(port_error("OverrideStageCondition", c, &code, &e)),
        }
    }
}

impl StageConditions for CodePipelineConditions {
    fn condition<'a>(
        &'a self,
        c: &'a ConditionRef,
    ) -> BoxFuture<'a, Result<ConditionView, PortError>> {
        Box::pin(self.read(c))
    }

    fn override_condition<'a>(
        &'a self,
        c: &'a ConditionRef,
    ) -> BoxFuture<'a, Result<OverrideAnswer, PortError>> {
        Box::pin(self.apply(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_codepipeline::types::{StageExecution, StageExecutionStatus};

    fn execution(id: &str, status: StageExecutionStatus) -> StageExecution {
        StageExecution::builder()
            .pipeline_execution_id(id)
            .status(status)
            .build()
            .expect("execution")
    }

    #[test]
    fn an_entry_condition_belongs_to_the_inbound_execution_never_to_a_finished_one() {
        let finished = StageState::builder()
            .stage_name("Prod")
            .latest_execution(execution("exec-A", StageExecutionStatus::Succeeded))
            .build();
        assert_eq!(
            entry_execution(&finished),
            None,
            "a finished latest execution has passed the entry: an old button must find nothing waiting"
        );
        let inbound = StageState::builder()
            .stage_name("Prod")
            .latest_execution(execution("exec-A", StageExecutionStatus::Succeeded))
            .inbound_execution(execution("exec-B", StageExecutionStatus::InProgress))
            .build();
        assert_eq!(entry_execution(&inbound), Some("exec-B"));
        let running = StageState::builder()
            .stage_name("Prod")
            .latest_execution(execution("exec-B", StageExecutionStatus::InProgress))
            .build();
        assert_eq!(entry_execution(&running), Some("exec-B"));
    }
}
