//! The one fake of each port of this crate, for its unit tests: CodePipeline's
//! approvals ([`FakePipeline`]), Slack ([`FakeChat`]), CodePipeline's stage
//! conditions ([`FakeConditions`]) and ECS's service deployments
//! ([`FakeEcs`]).

use crate::ecs_hook::{PauseState, ResumeAnswer, ServiceDeployments};
use crate::ports::{ApprovalState, Chat, Pipelines, PortError, PutOutcome};
use crate::stage_condition::{ConditionView, OverrideAnswer, RuleView, StageConditions};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::secret::Secret;
use tollgate_core::stage_condition_request::{ConditionKind, ConditionRef};

/// The service deployment [`FakeEcs`] knows.
pub(crate) const ECS_ARN: &str =
    "arn:aws:ecs:eu-west-1:111122223333:service-deployment/prod/checkout-web/r9i43YFjvgF";
/// Its pause hook.
pub(crate) const ECS_HOOK: &str = "ecs-pause-e7tK9G_WRJqNF";

/// CodePipeline's manual approval: a token while `InProgress`, one result.
/// [`FakePipeline::untouched`]: a pipeline no call may touch (the ECS pause
/// and stage-condition clicks), every call panics.
#[derive(Debug)]
pub(crate) struct FakePipeline {
    /// Every call panics.
    untouched: bool,
    state: Mutex<(String, String, Option<String>, Option<String>)>,
    pub(crate) puts: Mutex<Vec<(bool, String)>>,
    /// `PutApprovalResult` never answers; `Some(true)`: after recording.
    pub(crate) hang: Mutex<Option<bool>>,
    /// What `ListActionExecutions` shows (the commit-author rule).
    pub(crate) outputs: Mutex<Result<Vec<crate::author::ActionOutput>, PortError>>,
    /// The actions `ListActionExecutions` was asked about.
    pub(crate) listed: Mutex<Vec<String>>,
}

impl FakePipeline {
    pub(crate) fn waiting(execution: &str) -> Self {
        Self {
            untouched: false,
            state: Mutex::new((execution.into(), "InProgress".into(), None, None)),
            puts: Mutex::new(Vec::new()),
            hang: Mutex::new(None),
            outputs: Mutex::new(Ok(Vec::new())),
            listed: Mutex::new(Vec::new()),
        }
    }
    /// A pipeline no pause or override click may touch: every call panics.
    pub(crate) fn untouched() -> Self {
        Self {
            untouched: true,
            ..Self::waiting("e-untouched")
        }
    }
    /// Records a decision as CodePipeline does; `Some` when refused.
    fn record(&self, token: &Secret, approved: bool, summary: &str) -> Option<PutOutcome> {
        let mut s = self.state.lock().expect("lock");
        if token.expose() != format!("token-{}", s.0) {
            return Some(PutOutcome::InvalidToken);
        }
        match s.1.as_str() {
            "InProgress" => {}
            "Failed" if s.3.is_some() => return Some(PutOutcome::InvalidToken),
            _ => return Some(PutOutcome::AlreadyCompleted),
        }
        s.1 = if approved { "Succeeded" } else { "Failed" }.into();
        s.2 = Some(summary.to_owned());
        self.puts
            .lock()
            .expect("lock")
            .push((approved, summary.to_owned()));
        None
    }

    pub(crate) fn set(&self, status: &str, error: Option<&str>) {
        let mut s = self.state.lock().expect("lock");
        s.1 = status.into();
        s.3 = error.map(str::to_owned);
    }
}

impl Pipelines for FakePipeline {
    async fn approval_state(&self, a: &ApprovalRef) -> Result<ApprovalState, PortError> {
        assert!(
            !self.untouched,
            "a pause or override click asked CodePipeline"
        );
        tokio::task::yield_now().await;
        if a.pipeline != "pay" {
            return Err(PortError::NotFound(format!(
                "pipeline {} does not exist",
                a.pipeline
            )));
        }
        let s = self.state.lock().expect("lock").clone();
        Ok(ApprovalState {
            execution: Some(s.0.clone()),
            token: (s.1 == "InProgress").then(|| Secret::new(format!("token-{}", s.0))),
            status: Some(s.1),
            changed_at: Some(1_700_000_000),
            summary: s.2,
            updated_by: None,
            error: s.3,
        })
    }

    async fn put_result(
        &self,
        _a: &ApprovalRef,
        token: &Secret,
        approved: bool,
        summary: &str,
    ) -> Result<PutOutcome, PortError> {
        assert!(
            !self.untouched,
            "a pause or override click decided an approval"
        );
        tokio::task::yield_now().await;
        let hang = *self.hang.lock().expect("lock");
        if hang == Some(false) {
            std::future::pending::<()>().await;
        }
        if let Some(early) = self.record(token, approved, summary) {
            return Ok(early);
        }
        if hang == Some(true) {
            std::future::pending::<()>().await;
        }
        Ok(PutOutcome::Recorded)
    }

    async fn action_outputs(
        &self,
        _a: &ApprovalRef,
        action: &str,
    ) -> Result<Vec<crate::author::ActionOutput>, PortError> {
        assert!(!self.untouched, "the author rule applies to Approve only");
        self.listed.lock().expect("lock").push(action.to_owned());
        self.outputs.lock().expect("lock").clone()
    }
}

/// Slack: records every call as (API method, what was sent) and answers
/// it. `usergroups.users.list` of `S0APPROVERS` has `U0GROUPMEMBER`;
/// `users.info` shows [`FakeChat::with_email`]'s e-mail (none by default).
/// [`FakeChat::forbidding_approval_calls`]: opening a view or reading an
/// e-mail panics (a pause or override click does neither).
#[derive(Debug, Default)]
pub(crate) struct FakeChat {
    calls: Mutex<Vec<(String, Value)>>,
    email: Option<String>,
    approval_calls_forbidden: bool,
}

impl FakeChat {
    /// `users.info` shows this e-mail.
    pub(crate) fn with_email(mut self, email: Option<&str>) -> Self {
        self.email = email.map(str::to_owned);
        self
    }
    /// `views.open` and `users.info` panic.
    pub(crate) fn forbidding_approval_calls(mut self) -> Self {
        self.approval_calls_forbidden = true;
        self
    }
    /// The calls of one method, in order.
    pub(crate) fn calls(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, v)| v.clone())
            .collect()
    }
    /// Every call, in order: (method, what was sent).
    pub(crate) fn all_calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().expect("lock").clone()
    }
    fn record(&self, m: &str, v: Value) {
        self.calls.lock().expect("lock").push((m.into(), v));
    }
}

impl Chat for FakeChat {
    async fn update(&self, channel: &str, ts: &str, mut message: Value) -> Result<(), PortError> {
        message["channel"] = json!(channel);
        message["ts"] = json!(ts);
        self.record("chat.update", message);
        Ok(())
    }
    async fn respond(&self, url: &str, mut message: Value) -> Result<(), PortError> {
        message["url"] = json!(url);
        self.record("respond", message);
        Ok(())
    }
    async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), PortError> {
        assert!(
            !self.approval_calls_forbidden,
            "a pause or override click opened a view"
        );
        self.record(
            "views.open",
            json!({"trigger_id": trigger_id, "view": view}),
        );
        Ok(())
    }
    async fn group_members(&self, group: &str) -> Result<Vec<String>, PortError> {
        self.record("usergroups.users.list", json!({"usergroup": group}));
        Ok(if group == "S0APPROVERS" {
            vec!["U0GROUPMEMBER".into()]
        } else {
            vec![]
        })
    }
    async fn user_email(&self, user: &str) -> Result<Option<String>, PortError> {
        assert!(
            !self.approval_calls_forbidden,
            "the author rule applies to Approve only"
        );
        self.record("users.info", json!({"user": user}));
        Ok(self.email.clone())
    }
}

/// CodePipeline: the Production stage's entry condition, for `EXEC`.
#[derive(Debug)]
pub(crate) struct FakeConditions {
    /// (execution, status)
    state: Mutex<(String, String)>,
    overrides: Mutex<u32>,
    /// `Some(applied)`: OverrideStageCondition answers Unsure.
    pub(crate) lose_answer: Mutex<Option<bool>>,
}

impl FakeConditions {
    pub(crate) fn with(execution: &str, status: &str) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((execution.into(), status.into())),
            overrides: Mutex::new(0),
            lose_answer: Mutex::new(None),
        })
    }
    pub(crate) fn overrides(&self) -> u32 {
        *self.overrides.lock().expect("lock")
    }
}

impl StageConditions for FakeConditions {
    fn condition<'a>(
        &'a self,
        c: &'a ConditionRef,
    ) -> crate::stage_condition::BoxFuture<'a, Result<ConditionView, PortError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if c.stage != "Production" || c.kind != ConditionKind::BeforeEntry {
                return Ok(ConditionView::default());
            }
            let s = self.state.lock().expect("lock").clone();
            Ok(ConditionView {
                execution: Some(s.0),
                status: Some(s.1),
                summary: None,
                changed_at: Some(1_700_000_000),
                rules: vec![RuleView {
                    name: "NoAlarms<!here>".into(),
                    status: Some("InProgress".into()),
                    summary: Some("alarm *pay-5xx* in ALARM".into()),
                }],
            })
        })
    }

    fn override_condition<'a>(
        &'a self,
        c: &'a ConditionRef,
    ) -> crate::stage_condition::BoxFuture<'a, Result<OverrideAnswer, PortError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut s = self.state.lock().expect("lock");
            if let Some(applied) = *self.lose_answer.lock().expect("lock") {
                if applied {
                    s.1 = "Overridden".into();
                    *self.overrides.lock().expect("lock") += 1;
                }
                return Ok(OverrideAnswer::Unsure(
                    "OverrideStageCondition: timed out".into(),
                ));
            }
            if s.0 != c.execution || s.1 != "InProgress" {
                return Ok(OverrideAnswer::NotOverridable(
                    "ConditionNotOverridableException".into(),
                ));
            }
            s.1 = "Overridden".into();
            *self.overrides.lock().expect("lock") += 1;
            Ok(OverrideAnswer::Accepted)
        })
    }
}

/// ECS: one deployment ([`ECS_ARN`]) with one pause hook ([`ECS_HOOK`]); ContinueServiceDeployment
/// succeeds once, while the hook waits.
#[derive(Debug)]
pub(crate) struct FakeEcs {
    state: Mutex<(String, String)>,
    resumes: Mutex<Vec<bool>>,
    /// `Some(applied)`: ContinueServiceDeployment answers Unsure, having
    /// applied the decision or not.
    lose_answer: Mutex<Option<bool>>,
}

impl FakeEcs {
    pub(crate) fn paused() -> Arc<Self> {
        Self::with("IN_PROGRESS", "AWAITING_ACTION")
    }
    pub(crate) fn with(deployment: &str, hook: &str) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((deployment.into(), hook.into())),
            resumes: Mutex::new(Vec::new()),
            lose_answer: Mutex::new(None),
        })
    }
    pub(crate) fn losing_answer(applied: bool) -> Arc<Self> {
        let ecs = Self::paused();
        *ecs.lose_answer.lock().expect("lock") = Some(applied);
        ecs
    }
    pub(crate) fn resumes(&self) -> Vec<bool> {
        self.resumes.lock().expect("lock").clone()
    }
}

impl ServiceDeployments for FakeEcs {
    fn pause_state<'a>(
        &'a self,
        deployment: &'a str,
        hook: &'a str,
    ) -> crate::ecs_hook::BoxFuture<'a, Result<PauseState, PortError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if deployment != ECS_ARN {
                return Ok(PauseState::default());
            }
            let s = self.state.lock().expect("lock").clone();
            Ok(PauseState {
                deployment_status: Some(s.0),
                hook_status: (hook == ECS_HOOK).then_some(s.1),
                expires_at: Some(1_700_003_600),
                timeout_action: Some("ROLLBACK".into()),
                updated_at: Some(1_700_000_000),
            })
        })
    }

    fn resume<'a>(
        &'a self,
        _deployment: &'a str,
        hook: &'a str,
        rollback: bool,
    ) -> crate::ecs_hook::BoxFuture<'a, Result<ResumeAnswer, PortError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut s = self.state.lock().expect("lock");
            if let Some(applied) = *self.lose_answer.lock().expect("lock") {
                if applied {
                    s.1 = if rollback { "FAILED" } else { "SUCCEEDED" }.into();
                    self.resumes.lock().expect("lock").push(rollback);
                }
                return Ok(ResumeAnswer::Unsure(
                    "ContinueServiceDeployment: the connection failed while sending".into(),
                ));
            }
            if hook != ECS_HOOK || s.1 != "AWAITING_ACTION" || s.0 != "IN_PROGRESS" {
                return Ok(ResumeAnswer::NotPaused("ClientException".into()));
            }
            s.1 = if rollback { "FAILED" } else { "SUCCEEDED" }.into();
            if rollback {
                s.0 = "ROLLBACK_REQUESTED".into();
            }
            self.resumes.lock().expect("lock").push(rollback);
            Ok(ResumeAnswer::Accepted)
        })
    }
}
