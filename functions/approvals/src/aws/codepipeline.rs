//! [`Pipelines`] over `aws-sdk-codepipeline`: `GetPipelineState` (the
//! approval's latest execution and its token), `ListActionExecutions` (that
//! the token is the button's execution's; the output variable naming the
//! commit's author) and `PutApprovalResult`.
//! SDK retries: 2 attempts; the endpoint bounds the whole request to
//! Slack's 3 seconds anyway. Errors carry the service's code and what to
//! do, never the token.

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::config::http::HttpResponse;
use aws_sdk_codepipeline::error::SdkError;
use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tollgate_approvals::author::ActionOutput;
use tollgate_approvals::ports::{ApprovalState, Pipelines, PortError, PutOutcome};
use tollgate_aws::SdkConfig;
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::secret::Secret;

/// CodePipeline's manual approvals.
#[derive(Debug, Clone)]
pub struct CodePipelineApprovals {
    client: Client,
    /// For console links.
    region: String,
}

impl CodePipelineApprovals {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(2);
        Self {
            region: sdk
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_default(),
            client: Client::from_conf(
                aws_sdk_codepipeline::config::Builder::from(sdk)
                    .retry_config(retry)
                    .build(),
            ),
        }
    }
}

fn port_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    call: &str,
    approval: &ApprovalRef,
    code: &str,
    e: &E,
) -> PortError {
    let detail = DisplayErrorContext(e).to_string();
    match code {
        "PipelineNotFoundException" | "StageNotFoundException" | "ActionNotFoundException" => {
            PortError::NotFound(format!(
                "{call}: {code}: the pipeline {:?} has no stage {:?} with an action {:?}",
                approval.pipeline, approval.stage, approval.action
            ))
        }
        "AccessDeniedException" => PortError::Denied(format!(
            "{call}: AccessDenied: grant codepipeline:{call} on the pipeline to the approvals function's role (ApprovalPipelineArns)"
        )),
        _ => PortError::Failed(format!(
            "{call}: {}",
            tollgate_core::text::ellipsize(&detail, 300)
        )),
    }
}

impl CodePipelineApprovals {
    /// Whether the action execution `id` (GetPipelineState's latest of the
    /// approval action) is the approval's execution's own, by
    /// `ListActionExecutions` of that execution. An unreadable answer is an
    /// error: no token is used on a guess.
    async fn belongs_to(
        &self,
        approval: &ApprovalRef,
        id: Option<&str>,
    ) -> Result<bool, PortError> {
        let Some(id) = id else {
            return Ok(false);
        };
        let filter = aws_sdk_codepipeline::types::ActionExecutionFilter::builder()
            .pipeline_execution_id(&approval.execution)
            .build();
        let out = self
            .client
            .list_action_executions()
            .pipeline_name(&approval.pipeline)
            .filter(filter)
            .max_results(100)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or_default().to_owned();
                port_error("ListActionExecutions", approval, &code, &e)
            })?;
        Ok(out.action_execution_details().iter().any(|d| {
            d.stage_name() == Some(approval.stage.as_str())
                && d.action_name() == Some(approval.action.as_str())
                && d.action_execution_id() == Some(id)
        }))
    }
}

/// Whether a failed call may still have been carried out: no answer
/// (timed out, the connection lost once the request could have been
/// sent, an unreadable answer) or a server error. A refusal (4xx) or a
/// request that never left (a construction error) is certain.
fn unsure<E>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => !d.is_user(),
        SdkError::ServiceError(s) => s.raw().status().as_u16() >= 500,
        _ => false,
    }
}

/// What happened, without the request (which holds the token).
fn unsure_detail<E, R>(e: &SdkError<E, R>) -> &'static str {
    match e {
        SdkError::TimeoutError(_) => "timed out",
        SdkError::DispatchFailure(_) => "the connection failed",
        SdkError::ResponseError(_) => "the answer could not be read",
        _ => "a server error",
    }
}

/// One path segment or query value, percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The console host for a region (China and GovCloud have their own).
fn console_base(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        "https://console.amazonaws-us-gov.com".to_owned()
    } else if region.is_empty() {
        "https://console.aws.amazon.com".to_owned()
    } else {
        format!("https://{region}.console.aws.amazon.com")
    }
}

/// Pages of `ListActionExecutions` read for one execution's output
/// variables (100 action executions a page).
const OUTPUT_PAGES: usize = 5;

impl Pipelines for CodePipelineApprovals {
    async fn action_outputs(
        &self,
        approval: &ApprovalRef,
        action: &str,
    ) -> Result<Vec<ActionOutput>, PortError> {
        let filter = aws_sdk_codepipeline::types::ActionExecutionFilter::builder()
            .pipeline_execution_id(&approval.execution)
            .build();
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..OUTPUT_PAGES {
            let out = self
                .client
                .list_action_executions()
                .pipeline_name(&approval.pipeline)
                .filter(filter.clone())
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| {
                    let code = e.code().unwrap_or_default().to_owned();
                    port_error("ListActionExecutions", approval, &code, &e)
                })?;
            for d in out.action_execution_details() {
                let output = ActionOutput {
                    action: d.action_name().unwrap_or_default().to_owned(),
                    namespace: d.input().and_then(|i| i.namespace()).map(str::to_owned),
                    status: d.status().map(|s| s.as_str().to_owned()),
                    started_ms: d.start_time().and_then(|t| t.to_millis().ok()),
                    variables: d
                        .output()
                        .and_then(|o| o.output_variables())
                        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                };
                if output.is(action) {
                    found.push(output);
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(found)
    }

    fn console_url(&self, approval: &ApprovalRef) -> Option<String> {
        Some(format!(
            "{}/codesuite/codepipeline/pipelines/{}/executions/{}/timeline?region={}",
            console_base(&self.region),
            enc(&approval.pipeline),
            enc(&approval.execution),
            enc(&self.region)
        ))
    }

    async fn approval_state(&self, approval: &ApprovalRef) -> Result<ApprovalState, PortError> {
        let out = self
            .client
            .get_pipeline_state()
            .name(&approval.pipeline)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or_default().to_owned();
                port_error("GetPipelineState", approval, &code, &e)
            })?;
        let not_found = || {
            PortError::NotFound(format!(
                "the pipeline {:?} has no stage {:?} with an action {:?}",
                approval.pipeline, approval.stage, approval.action
            ))
        };
        let stage = out
            .stage_states()
            .iter()
            .find(|s| s.stage_name() == Some(approval.stage.as_str()))
            .ok_or_else(not_found)?;
        let action = stage
            .action_states()
            .iter()
            .find(|a| a.action_name() == Some(approval.action.as_str()))
            .ok_or_else(not_found)?;
        let mut state = ApprovalState {
            execution: stage
                .latest_execution()
                .map(|e| e.pipeline_execution_id().to_owned()),
            ..ApprovalState::default()
        };
        if let Some(x) = action.latest_execution() {
            // GetPipelineState's action execution names no pipeline
            // execution, and in PARALLEL mode the stage's latest execution
            // need not be the one whose approval is waiting: tie the two
            // before a token is used (review finding), so a click on one
            // release's request can never decide another's.
            if state.execution.as_deref() == Some(approval.execution.as_str())
                && x.token().is_some()
                && !self.belongs_to(approval, x.action_execution_id()).await?
            {
                state.execution = Some("(another execution)".to_owned());
                return Ok(state);
            }
            state.status = x.status().map(|s| s.as_str().to_owned());
            state.token = x.token().map(Secret::new);
            state.changed_at = x.last_status_change().map(|t| t.secs());
            state.summary = x.summary().map(str::to_owned);
            state.updated_by = x.last_updated_by().map(str::to_owned);
            state.error = x
                .error_details()
                .and_then(|d| d.message().or(d.code()))
                .map(str::to_owned);
        }
        Ok(state)
    }

    async fn put_result(
        &self,
        approval: &ApprovalRef,
        token: &Secret,
        approved: bool,
        summary: &str,
    ) -> Result<PutOutcome, PortError> {
        let status = if approved {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        let result = ApprovalResult::builder()
            .summary(summary)
            .status(status)
            .build()
            .map_err(|e| PortError::Failed(format!("PutApprovalResult: {e}")))?;
        let sent = self
            .client
            .put_approval_result()
            .pipeline_name(&approval.pipeline)
            .stage_name(&approval.stage)
            .action_name(&approval.action)
            .result(result)
            .token(token.expose())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(PutOutcome::Recorded),
            Err(e) if unsure(&e) => Ok(PutOutcome::Unsure(format!(
                "PutApprovalResult: {}",
                unsure_detail(&e)
            ))),
            Err(e) => {
                let code = e.code().unwrap_or_default().to_owned();
                match code.as_str() {
                    "ApprovalAlreadyCompletedException" => Ok(PutOutcome::AlreadyCompleted),
                    "InvalidApprovalTokenException" => Ok(PutOutcome::InvalidToken),
                    _ => Err(port_error("PutApprovalResult", approval, &code, &e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_link_names_the_execution_encoded() {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let p = CodePipelineApprovals::new(&sdk);
        let url = p
            .console_url(&ApprovalRef::new("pay ments", "Prod", "Approve", "e-1"))
            .expect("a link");
        assert_eq!(
            url,
            "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/pay%20ments/executions/e-1/timeline?region=eu-west-1"
        );
    }
}
