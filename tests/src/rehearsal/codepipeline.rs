//! The rehearsed pipeline execution as CodePipeline would record it, and the
//! CodePipeline read answers (moto has no pipeline executions) the notifier
//! gets from the stand-in when it looks up a reason, the commit and the
//! previous run: `GetPipelineExecution`, `ListActionExecutions`,
//! `ListPipelineExecutions`. The answers are built from what this run's
//! functions actually reported.

use crate::AwsStandIn;
use crate::seed::REGION;
use serde_json::{Map, Value, json};

/// The commit being released.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Full commit id.
    pub id: String,
    /// First line of the message.
    pub message: String,
    /// `owner/repo`.
    pub repository: String,
    /// Branch.
    pub branch: String,
}

/// `InProgress`, `Succeeded` or `Failed`, as CodePipeline spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Running.
    InProgress,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// One action execution.
#[derive(Debug, Clone)]
pub struct ActionRun {
    /// Stage.
    pub stage: String,
    /// Action.
    pub action: String,
    /// (owner, provider, category).
    pub kind: (String, String, String),
    /// Status.
    pub status: RunStatus,
    /// `externalExecutionSummary`.
    pub summary: Option<String>,
    /// `externalExecutionId`.
    pub external_id: Option<String>,
    /// Failure (code, message).
    pub error: Option<(String, String)>,
    /// Output variables.
    pub output_variables: Map<String, Value>,
    /// Action configuration.
    pub configuration: Map<String, Value>,
    /// Start, epoch seconds.
    pub started: u64,
    /// Last update, epoch seconds.
    pub updated: u64,
}

/// The pipeline execution being rehearsed.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    /// Pipeline name.
    pub pipeline: String,
    /// Execution id.
    pub execution_id: String,
    /// The previous execution (it succeeded).
    pub previous_execution_id: String,
    /// Status.
    pub status: RunStatus,
    /// Start, epoch seconds.
    pub started: u64,
    /// Last update, epoch seconds.
    pub updated: u64,
    /// The source revision.
    pub commit: Commit,
    /// Actions so far, in order.
    pub actions: Vec<ActionRun>,
}

impl PipelineRun {
    /// Adds or updates the action `stage`/`action`.
    pub fn record(&mut self, run: ActionRun) {
        self.updated = run.updated;
        match self
            .actions
            .iter_mut()
            .find(|a| a.stage == run.stage && a.action == run.action)
        {
            Some(a) => {
                let started = a.started;
                *a = run;
                a.started = started;
            }
            None => self.actions.push(run),
        }
    }

    fn revision_summary(&self) -> String {
        json!({"ProviderType": "GitHub", "CommitMessage": self.commit.message}).to_string()
    }

    /// `GetPipelineExecution`.
    pub fn get_pipeline_execution(&self) -> Value {
        json!({"pipelineExecution": {
            "pipelineName": self.pipeline,
            "pipelineVersion": 3,
            "pipelineExecutionId": self.execution_id,
            "status": self.status.as_str(),
            "artifactRevisions": [{
                "name": "SourceOutput",
                "revisionId": self.commit.id,
                "revisionSummary": self.revision_summary(),
                "revisionUrl": format!("https://github.com/{}/commit/{}", self.commit.repository, self.commit.id),
                "created": self.started
            }],
            "trigger": {"triggerType": "StartPipelineExecution", "triggerDetail": "rehearsal"},
            "executionMode": "SUPERSEDED",
            "executionType": "STANDARD"
        }})
    }

    /// `ListActionExecutions` for this execution, newest first.
    pub fn list_action_executions(&self) -> Value {
        let details: Vec<Value> = self
            .actions
            .iter()
            .enumerate()
            .rev()
            .map(|(i, a)| {
                let mut result = Map::new();
                if let Some(s) = &a.summary {
                    result.insert("externalExecutionSummary".into(), json!(s));
                }
                if let Some(id) = &a.external_id {
                    result.insert("externalExecutionId".into(), json!(id));
                }
                if let Some((code, message)) = &a.error {
                    result.insert(
                        "errorDetails".into(),
                        json!({"code": code, "message": message}),
                    );
                }
                let status = match a.status {
                    RunStatus::InProgress => "InProgress",
                    RunStatus::Succeeded => "Succeeded",
                    RunStatus::Failed => "Failed",
                };
                json!({
                    "pipelineExecutionId": self.execution_id,
                    "actionExecutionId": format!("{}-{i:04}", &self.execution_id[..8.min(self.execution_id.len())]),
                    "pipelineVersion": 3,
                    "stageName": a.stage,
                    "actionName": a.action,
                    "startTime": a.started,
                    "lastUpdateTime": a.updated,
                    "status": status,
                    "input": {
                        "actionTypeId": {"category": a.kind.2, "owner": a.kind.0, "provider": a.kind.1, "version": "1"},
                        "configuration": a.configuration,
                        "region": REGION
                    },
                    "output": {
                        "executionResult": result,
                        "outputVariables": a.output_variables
                    }
                })
            })
            .collect();
        json!({"actionExecutionDetails": details})
    }

    /// `ListPipelineExecutions`: this execution and the previous, successful one.
    pub fn list_pipeline_executions(&self) -> Value {
        json!({"pipelineExecutionSummaries": [
            {"pipelineExecutionId": self.execution_id, "status": self.status.as_str(),
             "startTime": self.started, "lastUpdateTime": self.updated},
            {"pipelineExecutionId": self.previous_execution_id, "status": "Succeeded",
             "startTime": self.started.saturating_sub(86_400), "lastUpdateTime": self.started.saturating_sub(85_800)}
        ]})
    }

    /// Scripts the three reads on the stand-in with the current state.
    pub fn script(&self, standin: &AwsStandIn) {
        standin.script("GetPipelineExecution", vec![self.get_pipeline_execution()]);
        standin.script("ListActionExecutions", vec![self.list_action_executions()]);
        standin.script(
            "ListPipelineExecutions",
            vec![self.list_pipeline_executions()],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> PipelineRun {
        PipelineRun {
            pipeline: "web-release".into(),
            execution_id: "0123abcd-0000-4000-8000-000000000001".into(),
            previous_execution_id: "prev".into(),
            status: RunStatus::InProgress,
            started: 100,
            updated: 100,
            commit: Commit {
                id: "3f9c2ab".into(),
                message: "Show order history".into(),
                repository: "acme/web".into(),
                branch: "main".into(),
            },
            actions: Vec::new(),
        }
    }

    fn action(name: &str, status: RunStatus, at: u64) -> ActionRun {
        ActionRun {
            stage: "Staging".into(),
            action: name.into(),
            kind: ("AWS".into(), "Lambda".into(), "Invoke".into()),
            status,
            summary: Some(format!("{name} summary")),
            external_id: None,
            error: (status == RunStatus::Failed).then(|| ("JobFailed".into(), "broke".into())),
            output_variables: Map::new(),
            configuration: Map::new(),
            started: at,
            updated: at,
        }
    }

    #[test]
    fn recorded_actions_are_listed_newest_first_with_their_errors() {
        let mut r = run();
        r.record(action("Deploy", RunStatus::InProgress, 110));
        r.record(action("Deploy", RunStatus::Succeeded, 120));
        r.record(action("Smoke", RunStatus::Failed, 130));
        let list = r.list_action_executions();
        let details = list["actionExecutionDetails"].as_array().expect("list");
        assert_eq!(details.len(), 2);
        assert_eq!(details[0]["actionName"], "Smoke");
        assert_eq!(
            details[0]["output"]["executionResult"]["errorDetails"]["message"],
            "broke"
        );
        assert_eq!(details[1]["status"], "Succeeded");
        assert_eq!(
            details[1]["startTime"], 110,
            "the start of the first attempt is kept"
        );
        assert_eq!(r.updated, 130);
        let exec = r.get_pipeline_execution();
        assert_eq!(
            exec["pipelineExecution"]["artifactRevisions"][0]["revisionId"],
            "3f9c2ab"
        );
        assert_eq!(
            r.list_pipeline_executions()["pipelineExecutionSummaries"][1]["status"],
            "Succeeded"
        );
    }
}
