//! The one fake of each port this crate defines, for its unit tests.
//!
//! They live here, not in `tollgate-test-support`: that crate would have to
//! depend on this one, and this crate's own tests would then see two copies
//! of its types. (The tests in `tests/` build against the library without
//! `cfg(test)` and keep their own.)
//!
//! - [`FakeSource`]: the enrichment reads ([`SourceReader`]), one scripted
//!   answer per read, every call recorded.
//! - [`FakeSlack`]: the chat transport ([`ChatTransport`]), either a Slack
//!   Web API in memory or one scripted answer for every call, every call
//!   recorded.

use crate::deliver::{ChatTransport, DeliveryError, HttpAnswer};
use crate::enrich::{
    ActionExecutionInfo, DeploymentInfo, ExecutionSummaryInfo, PipelineExecutionInfo, SourceError,
    SourceReader,
};
use crate::stage_condition::StageConditionInfo;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tollgate_core::secret::Secret;

/// One call a [`FakeSource`] answered (the region is left out: every test
/// uses the event's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceCall {
    /// `GetPipelineExecution`.
    PipelineExecution {
        pipeline: String,
        execution_id: String,
    },
    /// `ListActionExecutions` of one execution.
    ActionExecutions {
        pipeline: String,
        execution_id: String,
    },
    /// `ListPipelineExecutions`.
    PipelineExecutions { pipeline: String, max_results: i32 },
    /// `GetDeployment`.
    Deployment { deployment_id: String },
    /// `GetPipeline` of one version.
    PipelineStages { pipeline: String, version: i32 },
    /// `ListActionExecutions` of a pipeline.
    RecentActionExecutions { pipeline: String, max_results: i32 },
    /// `GetPipelineState`.
    StageConditions { pipeline: String },
    /// SSM `GetParameter` of a hook failure record.
    HookFailureRecord { name: String },
}

/// The enrichment reads: each read answers what it was scripted to (the
/// same answer every time), and every call is recorded.
///
/// [`FakeSource::new`] answers the four required reads with empty values
/// and the optional ones as the trait's defaults do;
/// [`FakeSource::unanswered`] has the required reads fail as not found.
#[derive(Debug)]
pub(crate) struct FakeSource {
    pipeline_execution: Result<PipelineExecutionInfo, SourceError>,
    action_executions: Result<Vec<ActionExecutionInfo>, SourceError>,
    pipeline_executions: Result<Vec<ExecutionSummaryInfo>, SourceError>,
    deployment: Result<DeploymentInfo, SourceError>,
    pipeline_stages: Result<Vec<String>, SourceError>,
    recent_action_executions: Result<Vec<ActionExecutionInfo>, SourceError>,
    stage_conditions: Result<Vec<StageConditionInfo>, SourceError>,
    hook_failure_record: Result<Option<String>, SourceError>,
    calls: Mutex<Vec<SourceCall>>,
}

impl Default for FakeSource {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer of a read a test does not expect to matter.
pub(crate) fn not_found<T>() -> Result<T, SourceError> {
    Err(SourceError::NotFound {
        action: "x",
        detail: "unused".into(),
    })
}

impl FakeSource {
    /// Empty answers to the required reads; the optional reads answer as
    /// the trait's defaults (no `GetPipeline`, nothing else found).
    pub(crate) fn new() -> Self {
        Self {
            pipeline_execution: Ok(PipelineExecutionInfo::default()),
            action_executions: Ok(Vec::new()),
            pipeline_executions: Ok(Vec::new()),
            deployment: Ok(DeploymentInfo::default()),
            pipeline_stages: Err(SourceError::Failed {
                action: "codepipeline:GetPipeline",
                detail: "not available from this source".to_owned(),
            }),
            recent_action_executions: Ok(Vec::new()),
            stage_conditions: Ok(Vec::new()),
            hook_failure_record: Ok(None),
            calls: Mutex::default(),
        }
    }

    /// Like [`FakeSource::new`], but the four required reads fail as not
    /// found ([`not_found`]).
    pub(crate) fn unanswered() -> Self {
        Self {
            pipeline_execution: not_found(),
            action_executions: not_found(),
            pipeline_executions: not_found(),
            deployment: not_found(),
            ..Self::new()
        }
    }

    pub(crate) fn pipeline_execution(
        mut self,
        answer: Result<PipelineExecutionInfo, SourceError>,
    ) -> Self {
        self.pipeline_execution = answer;
        self
    }

    pub(crate) fn action_executions(
        mut self,
        answer: Result<Vec<ActionExecutionInfo>, SourceError>,
    ) -> Self {
        self.action_executions = answer;
        self
    }

    pub(crate) fn deployment(mut self, answer: Result<DeploymentInfo, SourceError>) -> Self {
        self.deployment = answer;
        self
    }

    pub(crate) fn pipeline_stages(mut self, answer: Result<Vec<String>, SourceError>) -> Self {
        self.pipeline_stages = answer;
        self
    }

    pub(crate) fn recent_action_executions(
        mut self,
        answer: Result<Vec<ActionExecutionInfo>, SourceError>,
    ) -> Self {
        self.recent_action_executions = answer;
        self
    }

    pub(crate) fn stage_conditions(
        mut self,
        answer: Result<Vec<StageConditionInfo>, SourceError>,
    ) -> Self {
        self.stage_conditions = answer;
        self
    }

    pub(crate) fn hook_failure_record(
        mut self,
        answer: Result<Option<String>, SourceError>,
    ) -> Self {
        self.hook_failure_record = answer;
        self
    }

    /// Every call so far, in order.
    pub(crate) fn calls(&self) -> Vec<SourceCall> {
        self.calls.lock().expect("lock").clone()
    }

    /// How many `GetPipelineState` reads were made.
    pub(crate) fn stage_condition_reads(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, SourceCall::StageConditions { .. }))
            .count()
    }

    /// The hook failure records read, by parameter name.
    pub(crate) fn hook_failure_reads(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                SourceCall::HookFailureRecord { name } => Some(name),
                _ => None,
            })
            .collect()
    }

    /// The `GetPipeline` reads: (pipeline, version).
    pub(crate) fn plan_reads(&self) -> Vec<(String, i32)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                SourceCall::PipelineStages { pipeline, version } => Some((pipeline, version)),
                _ => None,
            })
            .collect()
    }

    /// How many unfiltered `ListActionExecutions` reads were made.
    pub(crate) fn recent_reads(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, SourceCall::RecentActionExecutions { .. }))
            .count()
    }

    fn record(&self, call: SourceCall) {
        self.calls.lock().expect("lock").push(call);
    }
}

impl SourceReader for FakeSource {
    async fn pipeline_execution(
        &self,
        _region: &str,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<PipelineExecutionInfo, SourceError> {
        self.record(SourceCall::PipelineExecution {
            pipeline: pipeline.to_owned(),
            execution_id: execution_id.to_owned(),
        });
        self.pipeline_execution.clone()
    }

    async fn action_executions(
        &self,
        _region: &str,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        self.record(SourceCall::ActionExecutions {
            pipeline: pipeline.to_owned(),
            execution_id: execution_id.to_owned(),
        });
        self.action_executions.clone()
    }

    async fn pipeline_executions(
        &self,
        _region: &str,
        pipeline: &str,
        max_results: i32,
    ) -> Result<Vec<ExecutionSummaryInfo>, SourceError> {
        self.record(SourceCall::PipelineExecutions {
            pipeline: pipeline.to_owned(),
            max_results,
        });
        self.pipeline_executions.clone()
    }

    async fn deployment(
        &self,
        _region: &str,
        deployment_id: &str,
    ) -> Result<DeploymentInfo, SourceError> {
        self.record(SourceCall::Deployment {
            deployment_id: deployment_id.to_owned(),
        });
        self.deployment.clone()
    }

    async fn pipeline_stages(
        &self,
        _region: &str,
        pipeline: &str,
        version: i32,
    ) -> Result<Vec<String>, SourceError> {
        self.record(SourceCall::PipelineStages {
            pipeline: pipeline.to_owned(),
            version,
        });
        self.pipeline_stages.clone()
    }

    async fn recent_action_executions(
        &self,
        _region: &str,
        pipeline: &str,
        max_results: i32,
    ) -> Result<Vec<ActionExecutionInfo>, SourceError> {
        self.record(SourceCall::RecentActionExecutions {
            pipeline: pipeline.to_owned(),
            max_results,
        });
        self.recent_action_executions.clone()
    }

    async fn stage_conditions(
        &self,
        _region: &str,
        pipeline: &str,
    ) -> Result<Vec<StageConditionInfo>, SourceError> {
        self.record(SourceCall::StageConditions {
            pipeline: pipeline.to_owned(),
        });
        self.stage_conditions.clone()
    }

    async fn hook_failure_record(
        &self,
        _region: &str,
        name: &str,
    ) -> Result<Option<String>, SourceError> {
        self.record(SourceCall::HookFailureRecord {
            name: name.to_owned(),
        });
        self.hook_failure_record.clone()
    }
}

/// The chat transport. By default a Slack Web API in memory: `post_api`
/// answers like Slack (`chat.postMessage` gets a new `ts`, `chat.update`
/// of a deleted message `message_not_found`), and `post_json` is refused
/// (the bot mode uses `post_api`). [`FakeSlack::answering`] makes every
/// call, of either kind, answer one scripted result instead. Every call is
/// recorded as (API method, body).
#[derive(Debug, Default)]
pub(crate) struct FakeSlack {
    script: Option<Result<HttpAnswer, DeliveryError>>,
    /// The `Authorization` header every call must carry, if checked.
    auth: Option<String>,
    calls: Mutex<Vec<(String, Value)>>,
    next_ts: AtomicU64,
    /// Messages deleted in Slack.
    gone: Mutex<Vec<String>>,
}

impl FakeSlack {
    /// Every call answers `answer` (an HTTP answer or a transport error).
    pub(crate) fn answering(answer: Result<HttpAnswer, DeliveryError>) -> Self {
        Self {
            script: Some(answer),
            ..Self::default()
        }
    }

    /// Asserts that every call carries this `Authorization` header first.
    pub(crate) fn expecting_auth(mut self, auth: &str) -> Self {
        self.auth = Some(auth.to_owned());
        self
    }

    /// The message `ts` is deleted in Slack from now on.
    pub(crate) fn delete(&self, ts: &str) {
        self.gone.lock().expect("lock").push(ts.to_owned());
    }

    /// Every call so far: (API method, body).
    pub(crate) fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().expect("lock").clone()
    }

    fn check_auth(&self, headers: &[(&'static str, Secret)]) {
        if let Some(auth) = &self.auth {
            assert_eq!(headers[0].1.expose(), auth);
        }
    }

    fn method(url: &Secret) -> String {
        url.expose()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    fn scripted(
        &self,
        answer: &Result<HttpAnswer, DeliveryError>,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: &[u8],
    ) -> Result<HttpAnswer, DeliveryError> {
        self.check_auth(headers);
        let v = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.calls
            .lock()
            .expect("lock")
            .push((Self::method(url), v));
        answer.clone()
    }
}

impl ChatTransport for FakeSlack {
    async fn post_json(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        _timeout: Duration,
    ) -> Result<HttpAnswer, DeliveryError> {
        match &self.script {
            Some(answer) => self.scripted(answer, url, headers, &body),
            None => unreachable!("the bot mode uses post_api"),
        }
    }

    async fn post_api(
        &self,
        url: &Secret,
        headers: &[(&'static str, Secret)],
        body: Vec<u8>,
        _timeout: Duration,
    ) -> Result<HttpAnswer, DeliveryError> {
        if let Some(answer) = &self.script {
            return self.scripted(answer, url, headers, &body);
        }
        tokio::task::yield_now().await;
        self.check_auth(headers);
        let method = Self::method(url);
        let v: Value = serde_json::from_slice(&body).expect("json");
        let ts = format!(
            "1700000000.{:06}",
            self.next_ts.fetch_add(1, Ordering::SeqCst)
        );
        let deleted = method == "chat.update"
            && v["ts"]
                .as_str()
                .is_some_and(|t| self.gone.lock().expect("lock").iter().any(|g| g == t));
        let answer = if deleted {
            json!({"ok": false, "error": "message_not_found"})
        } else {
            json!({"ok": true, "channel": v["channel"], "ts": v.get("ts").cloned().unwrap_or(json!(ts))})
        };
        self.calls.lock().expect("lock").push((method, v));
        tokio::task::yield_now().await;
        Ok(HttpAnswer {
            status: 200,
            retry_after: None,
            body: answer.to_string(),
            scopes: None,
        })
    }
}
