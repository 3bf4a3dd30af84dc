//! Lambda's on-failure destination record, and what it says happened.
//!
//! When every attempt of an asynchronous invocation failed (or the event
//! grew too old to run), Lambda sends one record to the function's
//! `OnFailure` destination:
//! `{"version", "timestamp", "requestContext": {"requestId", "functionArn",
//! "condition", "approximateInvokeCount"}, "requestPayload": <the event>,
//! "responseContext": {"statusCode", "executedVersion", "functionError"},
//! "responsePayload": {"errorType", "errorMessage"}}`.
//!
//! `aws_lambda_events` has no type for it, so it is ours. The payload holds
//! the original event, artifact credentials included: this type has a
//! hand-written `Debug` that prints none of it, and nothing here quotes the
//! payload or the error message into text that leaves the function.

use serde::Deserialize;
use serde_json::Value;

/// One on-failure destination record.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRecord {
    /// Which invocation failed, how often and why it stopped.
    pub request_context: RequestContext,
    /// The original event (secret-bearing: never logged).
    #[serde(default)]
    pub request_payload: Value,
    /// What the last attempt answered (`functionError`: `Handled`/`Unhandled`).
    #[serde(default)]
    pub response_context: Option<ResponseContext>,
    /// The last attempt's error: `{"errorType", "errorMessage"}`; absent or
    /// null when the event was never run (`EventAgeExceeded`).
    #[serde(default)]
    pub response_payload: Option<Value>,
}

impl std::fmt::Debug for DestinationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationRecord")
            .field("request_context", &self.request_context)
            .field("request_payload", &"<redacted>")
            .field("response_context", &self.response_context)
            .field("error_type", &self.error_type())
            .finish()
    }
}

/// `requestContext` of a destination record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// The invocation's request id (the key to its log lines).
    #[serde(default)]
    pub request_id: String,
    /// The function (and version) that failed.
    #[serde(default)]
    pub function_arn: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    #[serde(default)]
    pub condition: String,
    /// How many times Lambda ran the event.
    #[serde(default)]
    pub approximate_invoke_count: u32,
}

/// `responseContext` of a destination record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    /// `Handled` (the function returned an error) or `Unhandled` (Lambda
    /// saw it: timeout, crash, out of memory).
    #[serde(default)]
    pub function_error: Option<String>,
}

/// What the record's event is, for the dead-letter consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A CodePipeline job (pipeline-action): report `PutJobFailureResult`.
    PipelineJob,
    /// A CodeDeploy lifecycle hook (deploy-hook): report `Failed`.
    CodeDeployHook,
    /// Nothing to report to: why.
    Unreportable(&'static str),
}

impl DestinationRecord {
    /// Which kind of event failed.
    pub fn subject(&self) -> Subject {
        let p = &self.request_payload;
        if p.get("CodePipeline.job").is_some() {
            Subject::PipelineJob
        } else if p.get("DeploymentId").is_some()
            && p.get("LifecycleEventHookExecutionId").is_some()
        {
            Subject::CodeDeployHook
        } else if p.get("executionId").is_some() && p.get("lifecycleStage").is_some() {
            Subject::Unreportable(
                "an ECS native lifecycle hook: ECS invokes it synchronously and takes the failed \
                 invocation as the hook's answer",
            )
        } else {
            Subject::Unreportable("neither a CodePipeline job nor a CodeDeploy lifecycle hook")
        }
    }

    /// The last attempt's `errorType`, when it is a plain identifier (an
    /// odd value is not echoed).
    pub fn error_type(&self) -> Option<&str> {
        let t = self.response_payload.as_ref()?.get("errorType")?.as_str()?;
        let plain = !t.is_empty()
            && t.len() <= 64
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
        plain.then_some(t)
    }

    /// The failed function's name, from its ARN (`…:function:<name>[:<qualifier>]`),
    /// when it is a valid Lambda function name.
    pub fn function_name(&self) -> Option<&str> {
        let arn = &self.request_context.function_arn;
        let rest = &arn[arn.find(":function:")? + ":function:".len()..];
        let name = rest.split(':').next()?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        valid.then_some(name)
    }

    /// The request id when it looks like one (a UUID-ish token).
    fn request_id(&self) -> &str {
        let id = self.request_context.request_id.as_str();
        let plain = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if plain { id } else { "(unknown)" }
    }

    /// The id the failed function logged its work under: the job id
    /// (pipeline-action's `job_id`) or the hook execution id, when it is a
    /// plain token.
    pub fn work_id(&self) -> Option<&str> {
        let p = &self.request_payload;
        let id = p
            .get("CodePipeline.job")
            .and_then(|j| j.get("id"))
            .or_else(|| p.get("LifecycleEventHookExecutionId"))?
            .as_str()?;
        let plain = !id.is_empty()
            && id.len() <= 1024
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=+/".contains(c));
        plain.then_some(id)
    }

    /// One sentence saying what happened, for the failure report and the
    /// log: `pipeline-action failed 3 times (RetriesExhausted): …; request
    /// <id>; logs: <log group>, search for <job id>`. It quotes no part of
    /// the event but its id, nor the error message (either may carry a
    /// secret).
    pub fn what_happened(&self, role: &str, log_group: Option<&str>) -> String {
        let n = self.request_context.approximate_invoke_count;
        let runs = match n {
            0 => "was never run".to_owned(),
            1 => "failed once".to_owned(),
            n => format!("failed {n} times"),
        };
        let condition = match self.request_context.condition.as_str() {
            "RetriesExhausted" => "RetriesExhausted",
            "EventAgeExceeded" => "EventAgeExceeded",
            _ => "unknown condition",
        };
        let why = match (self.error_type(), condition) {
            (Some(t), _) => format!("{t} ({})", explain(t)),
            (None, "EventAgeExceeded") => {
                "the event grew older than the maximum event age before it could run".to_owned()
            }
            (None, _) => "no error was recorded".to_owned(),
        };
        let logs = match (log_group, self.function_name()) {
            (Some(group), _) => group.to_owned(),
            (None, Some(name)) => format!("/aws/lambda/{name}"),
            (None, None) => "the function's log group".to_owned(),
        };
        let search = match self.work_id() {
            Some(id) => format!(", search for {id}"),
            None => String::new(),
        };
        format!(
            "{role} {runs} ({condition}): {why}; request {}; logs: {logs}{search}. Tollgate's \
             dead-letter consumer reported this failure: fix the cause and retry the stage or \
             deployment",
            self.request_id()
        )
    }
}

/// What an error type means, in words.
fn explain(error_type: &str) -> &'static str {
    match error_type {
        "Sandbox.Timedout" => "the invocation ran past the function's timeout",
        "Runtime.ExitError" => {
            "the process exited or was killed: out of memory, a crash, or a signal"
        }
        "Runtime.OutOfMemory" => "the process ran out of memory",
        "ReportDenied" => {
            "the function's role may not report the result; its log names the missing permission"
        }
        "ReportUndelivered" => "the result report could not be delivered before the deadline",
        "ReportRejected" => "the service rejected the result report",
        "UnrecognisedEvent" => "the function did not recognise the event",
        t if t.starts_with("Runtime.") => "the Lambda runtime failed",
        t if t.starts_with("Sandbox.") => "the Lambda execution environment failed",
        _ => "the function ended with an error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(payload: Value, response: Value, count: u32, condition: &str) -> DestinationRecord {
        serde_json::from_value(json!({
            "version": "1.0",
            "timestamp": "2026-11-25T10:00:00.000Z",
            "requestContext": {
                "requestId": "6d1b2e4c-9a0f-4e55-8a51-0c6b1d2e3f40",
                "functionArn": "arn:aws:lambda:eu-west-1:111111111111:function:tg-PipelineActionFunction-Ab12:$LATEST",
                "condition": condition,
                "approximateInvokeCount": count
            },
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": response
        }))
        .expect("record")
    }

    #[test]
    fn a_killed_job_says_what_happened_without_quoting_the_error_message() {
        let r = record(
            json!({"CodePipeline.job": {"id": "j1"}}),
            json!({"errorType": "Runtime.ExitError", "errorMessage": "Bearer SECRETTOKEN signal: killed"}),
            3,
            "RetriesExhausted",
        );
        assert_eq!(r.subject(), Subject::PipelineJob);
        let text = r.what_happened("pipeline-action", Some("/tollgate/tg/pipeline-action"));
        assert!(
            text.starts_with(
                "pipeline-action failed 3 times (RetriesExhausted): Runtime.ExitError (the process \
                 exited or was killed: out of memory, a crash, or a signal); request \
                 6d1b2e4c-9a0f-4e55-8a51-0c6b1d2e3f40; logs: /tollgate/tg/pipeline-action, search \
                 for j1."
            ),
            "{text}"
        );
        assert!(!text.contains("SECRETTOKEN"), "{text}");
        assert!(!format!("{r:?}").contains("j1"), "Debug prints no payload");
        let odd_id = record(
            json!({"CodePipeline.job": {"id": "<!channel> x"}}),
            Value::Null,
            1,
            "RetriesExhausted",
        );
        assert_eq!(odd_id.work_id(), None, "an odd id is not echoed");
    }

    #[test]
    fn an_expired_event_and_odd_fields() {
        let r = record(
            json!({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "e-1"}),
            Value::Null,
            0,
            "EventAgeExceeded",
        );
        assert_eq!(r.subject(), Subject::CodeDeployHook);
        let text = r.what_happened("deploy-hook", None);
        assert!(
            text.starts_with(
                "deploy-hook was never run (EventAgeExceeded): the event grew older than the \
                 maximum event age before it could run; request 6d1b2e4c-9a0f-4e55-8a51-0c6b1d2e3f40; \
                 logs: /aws/lambda/tg-PipelineActionFunction-Ab12, search for e-1."
            ),
            "{text}"
        );
        let odd = record(
            json!({"detail": {}}),
            json!({"errorType": "<!channel> x y"}),
            1,
            "Whatever <!here>",
        );
        let text = odd.what_happened("pipeline-action", None);
        assert!(!text.contains('<'), "{text}");
        assert!(
            text.contains("failed once (unknown condition): no error was recorded"),
            "{text}"
        );
        assert!(matches!(odd.subject(), Subject::Unreportable(_)));
        let ecs = record(
            json!({"executionId": "x", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"}),
            Value::Null,
            1,
            "RetriesExhausted",
        );
        assert!(matches!(ecs.subject(), Subject::Unreportable(s) if s.contains("synchronously")));
    }
}
